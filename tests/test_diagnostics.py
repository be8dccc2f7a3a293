"""The ground-truth checks of C (psrl_jax.diagnostics) against hand-worked geometry and numpy."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from psrl_jax import diagnostics, psrl, transforms

SMALL = dict(horizon=2, max_displacement=1, projection_dim=16, correspondence_hidden=8,
             transition_hidden=8)


@pytest.mark.parametrize('pad, mode', [(4, 'edge'), (1, 'constant')])
def test_relative_shift_maps_one_copy_onto_the_other_on_the_pixels_both_show(pad, mode):
    """copy(p) = image(p + offset - pad), so warp(copy_b, offset_a - offset_b) = copy_a where both
    copies show the image, which is the flow c_{a->b} the check holds C to."""
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.uniform(size=(6, 12, 11, 2)), jnp.float32)
    offsets = jnp.asarray(rng.integers(0, 2 * pad + 1, (2, 6, 2)))
    copy_a, copy_b = (transforms.shift(images, o, pad, mode) for o in offsets)
    true = np.asarray(offsets[0] - offsets[1])[:, ::-1].astype(np.float32)   # (dx, dy)
    flow = jnp.broadcast_to(jnp.asarray(true)[:, None, None, :], (6, 12, 11, 2))
    warped = np.asarray(transforms.warp(copy_b, flow))
    for b in range(6):
        for y in range(12):
            for x in range(11):
                ya, xa = y + int(offsets[0, b, 0]) - pad, x + int(offsets[0, b, 1]) - pad
                yb, xb = y + int(true[b, 1]), x + int(true[b, 0])
                if 0 <= ya < 12 and 0 <= xa < 11 and 0 <= yb < 12 and 0 <= xb < 11:
                    np.testing.assert_allclose(warped[b, y, x], copy_a[b, y, x], atol=1e-6)
                    np.testing.assert_allclose(copy_a[b, y, x], images[b, ya, xa], atol=1e-6)


def _checks(config, observations, same_episode, key, prior, flow_bias=(0.0, 0.0)):
    """The checks of an untrained C with displacement prior `prior` and its refinement's output
    bias set to flow_bias (a constant flow added everywhere, in cells)."""
    params = psrl.init_params(jax.random.PRNGKey(0), config, observations.shape[2:])
    c = params['correspondence']['params']
    c['log_displacement_penalty'] = c['log_displacement_penalty'] * 0 + np.log(prior)
    last = sorted(k for k in c if k.startswith('Conv_'))[-1]
    c[last]['bias'] = jnp.asarray(flow_bias, jnp.float32)
    return jax.jit(diagnostics.correspondence_checks, static_argnames='config')(
        params, observations, same_episode, key, config=config)


def test_shift_errors_of_a_still_and_of_a_constant_flow_against_numpy():
    """With a prior strong enough to pin C's soft-argmax at zero flow: c_shift_epe equals zero
    flow's error, computed here in numpy from the drawn offsets, and c_warp_gain is 1; with a
    constant flow (1, 0) added, c_shift_epe is |(1, 0) - (dx, dy)| averaged the same way."""
    config = psrl.PSRLConfig(encoder='minatar', frame_channels=4, num_actions=6,
                             augmentation=('grid_shift',), **SMALL)
    rng = np.random.default_rng(1)
    observations = jnp.asarray((rng.uniform(size=(8, 3, 10, 10, 4)) < 0.2) * 255, jnp.uint8)
    same_episode = jnp.ones((8, 3), bool)
    key = jax.random.PRNGKey(3)
    checks = _checks(config, observations, same_episode, key, prior=1e4)
    # The offsets the check draws, and the pixels both copies show (1-cell pad on 10x10).
    key_a, key_b = jax.random.split(key)
    offset_a, offset_b = (np.asarray(jax.random.randint(k, (8, 2), 0, 3)) for k in (key_a, key_b))
    shifts = []   # the relative shift (dx, dy) at every pixel both copies show
    for b in range(8):
        dy, dx = offset_a[b] - offset_b[b]
        for y in range(10):
            for x in range(10):
                ya, xa = y + offset_a[b, 0] - 1, x + offset_a[b, 1] - 1
                if 0 <= ya < 10 and 0 <= xa < 10 and 0 <= y + dy < 10 and 0 <= x + dx < 10:
                    shifts.append((dx, dy))
    shifts = np.asarray(shifts, np.float64)
    assert np.abs(shifts).max() > 0
    np.testing.assert_allclose(checks['c_shift_epe_zero'], np.hypot(*shifts.T).mean(), rtol=1e-5)
    np.testing.assert_allclose(checks['c_shift_epe'], checks['c_shift_epe_zero'], atol=1e-3)
    np.testing.assert_allclose(checks['c_warp_gain'], 1.0, atol=1e-3)
    moved = _checks(config, observations, same_episode, key, prior=1e4, flow_bias=(1.0, 0.0))
    np.testing.assert_allclose(moved['c_shift_epe'],
                               np.hypot(1.0 - shifts[:, 0], shifts[:, 1]).mean(), rtol=1e-4)


def test_warp_gain_counts_only_pairs_inside_one_episode():
    config = psrl.PSRLConfig(encoder='minatar', frame_channels=4, num_actions=6,
                             augmentation=('grid_shift',), **SMALL)
    rng = np.random.default_rng(2)
    observations = jnp.asarray((rng.uniform(size=(4, 3, 10, 10, 4)) < 0.3) * 255, jnp.uint8)
    key = jax.random.PRNGKey(4)
    both = _checks(config, observations, jnp.ones((4, 3), bool), key, prior=1.0)
    first_two = _checks(config, observations[:2], jnp.ones((2, 3), bool), key, prior=1.0)
    masked = _checks(config, observations, jnp.asarray([[1, 1, 1]] * 2 + [[1, 0, 0]] * 2, bool),
                     key, prior=1.0)
    np.testing.assert_allclose(masked['c_warp_gain'], first_two['c_warp_gain'], rtol=1e-5)
    assert abs(float(both['c_warp_gain']) - float(masked['c_warp_gain'])) > 1e-4


def test_object_flow_errors_hand_worked():
    """Sample 0: the ball moves from (row 2, col 3) to (3, 4), so the external flow at (3, 4) should
    point back by (dx, dy) = (-1, -1); C says (-1, 0) there: error 1, zero flow's sqrt(2).
    Sample 1: two objects in one frame (not counted). Sample 2: still object, C says (0.6, 0.8):
    error 1, zero flow's 0. Sample 3: the pair crosses an episode end (not counted)."""
    objects = np.zeros((4, 2, 10, 10), np.float32)
    objects[0, 0, 2, 3] = objects[0, 1, 3, 4] = 1
    objects[1, 0, 5, 5] = objects[1, 1, 5, 6] = objects[1, 1, 0, 0] = 1
    objects[2, :, 7, 1] = 1
    objects[3, 0, 1, 1] = objects[3, 1, 8, 8] = 1
    flow = np.full((4, 10, 10, 2), 9.0, np.float32)      # 9 everywhere but at the objects' cells
    flow[0, 3, 4] = (-1.0, 0.0)
    flow[2, 7, 1] = (0.6, 0.8)
    mask = np.array([1, 1, 1, 0], np.float32)
    errors = jax.jit(diagnostics.object_flow_errors)(objects, flow, mask)
    np.testing.assert_allclose(errors['c_object_epe'], (1.0 + 1.0) / 2, rtol=1e-6)
    np.testing.assert_allclose(errors['c_object_epe_zero'], (np.sqrt(2) + 0.0) / 2, rtol=1e-6)
    none = diagnostics.object_flow_errors(objects[1:2], flow[1:2], mask[1:2])
    assert np.isnan(none['c_object_epe']) and np.isnan(none['c_object_epe_zero'])


def test_object_checks_join_the_others_on_a_real_breakout_stream():
    """On real consecutive breakout states zero flow's object error is the mean length of the
    ball's moves (numpy, from the ball's cells), over the pairs inside one game."""
    from psrl_jax.envs.minatar import make_minatar
    env = make_minatar('breakout', 1, seed=3)
    frames, firsts = [env.reset()[0]], [True]
    for _ in range(24):
        step = env.step(np.array([0]))
        frames.append(step.observation[0])
        firsts.append(bool(step.first[0]))
    pairs = range(len(frames) - 1)
    observations = jnp.asarray(np.stack([np.stack(frames[i:i + 2]) for i in pairs]))
    same_episode = jnp.asarray([[True, not firsts[i + 1]] for i in pairs])
    moves = [np.subtract(*[np.argwhere(frames[j][..., 1] > 0)[0] for j in (i, i + 1)])
             for i in pairs if not firsts[i + 1]]
    assert 0 < len(moves) < len(pairs) and any(np.abs(m).sum() == 1 for m in moves)
    config = psrl.PSRLConfig(encoder='minatar', frame_channels=4, num_actions=6,
                             augmentation=('grid_shift',), **SMALL)
    params = psrl.init_params(jax.random.PRNGKey(0), config, observations.shape[2:])
    checks = jax.jit(diagnostics.correspondence_checks, static_argnames=('config', 'object_channel'))(
        params, observations, same_episode, jax.random.PRNGKey(1), config=config,
        object_channel=env.object_channel)
    assert {'c_shift_epe', 'c_warp_gain', 'c_object_epe', 'c_object_epe_zero'} <= set(checks)
    np.testing.assert_allclose(checks['c_object_epe_zero'], np.mean(np.hypot(*np.transpose(moves))),
                               rtol=1e-6)
    assert np.isfinite(checks['c_object_epe'])


def test_y_shift_cos_is_one_for_shift_invariant_heads_and_the_mean_over_differing_draws():
    """y_shift_cos: with psi's kernel the same at every cell (y sums the map over positions) and
    every object 2 cells from the edge, a 1-cell shift only moves the map, so y is unchanged: 1.
    With the initial, position-dependent psi it is the mean cosine of the two copies' y over the
    samples whose draws differ, recomputed here from the re-drawn offsets."""
    config = psrl.PSRLConfig(encoder='minatar', frame_channels=4, num_actions=6,
                             augmentation=('grid_shift',), **SMALL)
    rng = np.random.default_rng(5)
    inner = (rng.uniform(size=(16, 1, 6, 6, 4)) < 0.2) * 255
    observations = jnp.asarray(np.pad(inner, ((0, 0), (0, 0), (2, 2), (2, 2), (0, 0))), jnp.uint8)
    params = psrl.init_params(jax.random.PRNGKey(0), config, observations.shape[2:])
    key = jax.random.PRNGKey(7)
    check = jax.jit(diagnostics.similarity_checks, static_argnames='config')

    key_a, key_b = jax.random.split(key)
    offsets = [jax.random.randint(k, (16, 2), 0, 3) for k in (key_a, key_b)]
    differ = np.any(np.asarray(offsets[0]) != np.asarray(offsets[1]), axis=-1)
    assert 0 < differ.sum() < 16
    m = psrl.make_modules(config)
    images = observations[:, 0].astype(jnp.float32) / 255.0

    def y(p, o):
        z = m.encoder.apply(p['encoder'], transforms.shift(images, o, 1, 'constant'))
        z = m.conv1x1.apply(p['conv1x1'], z)
        return np.asarray(m.predictor.apply(p['predictor'], m.projection.apply(p['projection'], z)),
                          np.float64)

    y_a, y_b = y(params, offsets[0]), y(params, offsets[1])
    cosines = np.sum(y_a * y_b, -1) / (np.linalg.norm(y_a, axis=-1) * np.linalg.norm(y_b, axis=-1))
    found = float(check(params, observations, key, config=config)['y_shift_cos'])
    np.testing.assert_allclose(found, cosines[differ].mean(), rtol=1e-5)
    assert found < 0.99

    kernel = params['projection']['params']['Dense_0']['kernel']          # [10 * 10 * 16, D]
    per_cell = kernel[:16]
    params['projection']['params']['Dense_0']['kernel'] = jnp.tile(per_cell, (100, 1))
    np.testing.assert_allclose(check(params, observations, key, config=config)['y_shift_cos'], 1.0,
                               atol=1e-5)
