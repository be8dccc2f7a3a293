"""PSRL's cost (WORKSPACE_NOTES.md, "PSRL's cost"): the memory-saving forms compute what the plain
ones do, and the default DMControl update fits its memory target at the config's batch."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import cost
from psrl_jax import networks, psrl, replay, transforms
from psrl_jax.agents import rainbow, sac
from psrl_jax.agents.microbatch import microbatched_grad

import numpy_reference as ref


def _normal(seed, shape):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


# Both of correlation_volume's forms: the per-row products above FULL_PRODUCT_POSITIONS positions,
# the gathered full product at or below it.
VOLUME_SHAPES = [(1, (1, 15, 14, 3)), (2, (2, 10, 10, 4)), (3, (2, 5, 6, 4))]


def test_volume_shapes_cover_both_forms_of_the_correlation_volume():
    positions = [shape[1] * shape[2] for _, shape in VOLUME_SHAPES]
    assert max(positions) > transforms.FULL_PRODUCT_POSITIONS >= min(positions)


@pytest.mark.parametrize('r, shape', VOLUME_SHAPES)
def test_correlation_volume_gradients_are_the_adjoint_of_the_reference(r, shape):
    """d<G, V(z_a, z_b)>/dz_a [p, c] = sum_d G[p, d] z_b[p + d, c] / C, and for z_b the transpose."""
    z_a, z_b = _normal(0, shape), _normal(1, shape)
    cotangent = _normal(2, shape[:3] + ((2 * r + 1) ** 2,))
    grads = jax.grad(lambda a, b: jnp.sum(transforms.correlation_volume(a, b, r) * cotangent),
                     argnums=(0, 1))(jnp.asarray(z_a), jnp.asarray(z_b))
    batch, height, width, channels = shape
    grad_a, grad_b = np.zeros(shape), np.zeros(shape)
    for k, (dx, dy) in enumerate(ref.displacements(r).astype(int)):
        for y in range(height):
            for x in range(width):
                if 0 <= y + dy < height and 0 <= x + dx < width:
                    g = cotangent[:, y, x, k, None] / channels
                    grad_a[:, y, x] += g * z_b[:, y + dy, x + dx]
                    grad_b[:, y + dy, x + dx] += g * z_a[:, y, x]
    np.testing.assert_allclose(grads[0], grad_a, atol=1e-5)
    np.testing.assert_allclose(grads[1], grad_b, atol=1e-5)


def test_correspondence_module_on_a_coarser_grid():
    """resolution=R: C matches the features resized to R x R and returns that flow up-sampled to the
    input's grid, with the same parameters as C on the features' own grid."""
    z_a, z_b = (jnp.asarray(np.abs(_normal(s, (2, 9, 9, 8)))) for s in (3, 4))
    fine = networks.CorrespondenceModule(max_displacement=1, hidden=4)
    coarse = networks.CorrespondenceModule(max_displacement=1, hidden=4, resolution=5)
    params = coarse.init(jax.random.PRNGKey(0), z_a, z_b)
    assert (jax.tree.map(jnp.shape, params)
            == jax.tree.map(jnp.shape, fine.init(jax.random.PRNGKey(0), z_a, z_b)))
    # Non-zero refinement, so that the whole module is checked.
    params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(jax.random.PRNGKey(1), p.shape),
                          params)
    resize = lambda z: jax.image.resize(z, (2, 5, 5, 8), 'linear')
    expected = transforms.upsample_flow(fine.apply(params, resize(z_a), resize(z_b)), 9, 9)
    got = coarse.apply(params, z_a, z_b)
    assert got.shape == (2, 9, 9, 2)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert float(jnp.abs(got).max()) > 0.05


def test_microbatched_grad_equals_the_whole_batch_gradient():
    """Chunked accumulation gives jax.grad's gradient, per-example outputs and batch-mean metrics."""
    x, y = jnp.asarray(_normal(5, (12, 3))), jnp.asarray(_normal(6, (12,)))
    params = {'w': jnp.asarray(_normal(7, (3,))), 'b': jnp.asarray(0.3)}

    def loss_fn(p, data):
        inputs, targets = data
        errors = (jnp.tanh(inputs @ p['w'] + p['b']) - targets) ** 2
        return jnp.sum(errors) / 12, (errors, {'mean_error': errors.mean()})

    whole, (errors, metrics) = jax.grad(loss_fn, has_aux=True)(params, (x, y))
    for chunks in (1, 3, 4):
        grads, per_example, chunk_metrics = microbatched_grad(loss_fn, params, (x, y), chunks)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
                     grads, whole)
        np.testing.assert_allclose(per_example, errors, rtol=1e-6)
        np.testing.assert_allclose(chunk_metrics['mean_error'], metrics['mean_error'], rtol=1e-6)
    with pytest.raises(ValueError, match='multiple of microbatches=5'):
        microbatched_grad(loss_fn, params, (x, y), 5)


SMALL = dict(horizon=2, max_displacement=1, projection_dim=16, correspondence_hidden=8,
             transition_hidden=8)


def _batch(batch, steps, observation_shape, action_shape, action_dtype, seed=0):
    rng = np.random.default_rng(seed)
    actions = (rng.integers(0, 4, (batch, steps - 1)) if action_dtype == jnp.int32
               else rng.uniform(-1, 1, (batch, steps - 1) + action_shape))
    return replay.Batch(
        observation=jnp.asarray(rng.integers(0, 256, (batch, steps) + observation_shape), jnp.uint8),
        action=jnp.asarray(actions, action_dtype), reward=jnp.zeros((batch, steps - 1)),
        same_episode=jnp.asarray(rng.uniform(size=(batch, steps)) < 0.9).at[:, 0].set(True),
        next_observation=jnp.asarray(rng.integers(0, 256, (batch,) + observation_shape), jnp.uint8),
        returns=jnp.asarray(rng.uniform(-1, 1, batch), jnp.float32),
        discount=jnp.full((batch,), 0.9, jnp.float32))


def _agent(name, microbatches, **objective):
    if name == 'rainbow':
        config = rainbow.RainbowConfig(psrl=psrl.PSRLConfig(num_actions=4, **SMALL, **objective),
                                       hidden=32, microbatches=microbatches)
        return rainbow, config, (84, 84, 4), (), jnp.int32
    config = sac.SACConfig(psrl=psrl.PSRLConfig(encoder='dmc', frame_channels=3, action_dim=2,
                                                augmentation=('shift',), **SMALL, **objective),
                           hidden=32, microbatches=microbatches)
    return sac, config, (84, 84, 9), (2,), jnp.float32


@pytest.mark.parametrize('name', ['rainbow', 'sac'])
def test_microbatched_update_equals_the_whole_batch_update(name):
    """An agent's update with its gradient accumulated over 4 chunks gives the one-piece update."""
    results = []
    for chunks in (1, 4):
        module, config, obs, action_shape, dtype = _agent(name, chunks)
        state = module.init(jax.random.PRNGKey(0), config, obs)
        batch = _batch(8, config.psrl.sequence_length, obs, action_shape, dtype)
        weights = jnp.linspace(0.5, 1.0, 8)
        results.append(jax.jit(module.update, static_argnames='config')(
            state, batch, weights, jax.random.PRNGKey(1), config=config))
    (plain, plain_priorities, plain_metrics), (chunked, priorities, metrics) = results
    np.testing.assert_allclose(priorities, plain_priorities, rtol=1e-5, atol=1e-6)
    for key in ('loss_rl', 'loss_sim', 'loss_c', 'grad_norm'):
        np.testing.assert_allclose(metrics[key], plain_metrics[key], rtol=1e-4, err_msg=key)
    assert float(plain_metrics['loss_c']) > 0 and float(plain_metrics['loss_sim']) != 0
    # Adam's first step moves each parameter by lr * g / (|g| + eps), up to the learning rate: the
    # same gradient summed in another order gives the same step, except where g is within float
    # error of 0, where the step's size (and sign) is noise: measured, 0 of rainbow's 562,666
    # weights and 1 of sac's 2,631,540 at LLVM level 1. So every parameter agrees within 2 lr, and
    # all but a handful (isolated weights, not a layer: a zeroed 64-weight leaf fails) within 1%.
    moved = np.concatenate([np.abs(np.asarray(a) - np.asarray(b)).ravel() for a, b in
                            zip(jax.tree.leaves(chunked.params), jax.tree.leaves(plain.params))])
    off = moved > 0.01 * config.learning_rate
    assert moved.max() <= 2 * config.learning_rate and off.sum() <= 4, off.sum()


def test_query_gradients_first_stops_the_encoder_gradient_of_later_frames():
    """query_gradients='first': z^q_{k+i>0} keep their values but pass no gradient to E^q."""
    observations = jnp.asarray(np.random.default_rng(8).uniform(size=(2, 3, 84, 84, 4)), jnp.float32)
    values, grads = {}, {}
    for mode in ('all', 'first'):
        config = psrl.PSRLConfig(num_actions=4, query_gradients=mode, **SMALL)
        params = psrl.init_params(jax.random.PRNGKey(0), config, (84, 84, 4))
        values[mode] = psrl.encode_query(params, observations, config)
        later = lambda p: jnp.sum(psrl.encode_query(p, observations, config)[:, 1:] ** 2)
        grads[mode] = optax_norm(jax.grad(later)(params)['encoder'])
        first = lambda p: jnp.sum(psrl.encode_query(p, observations, config)[:, 0] ** 2)
        assert optax_norm(jax.grad(first)(params)['encoder']) > 0
    assert values['all'].shape == (2, config.num_query, 7, 7, 64)
    np.testing.assert_array_equal(values['all'], values['first'])
    assert grads['all'] > 0 and grads['first'] == 0


def optax_norm(tree):
    return float(sum(jnp.sum(x ** 2) for x in jax.tree.leaves(tree)))


def test_default_dmc_psrl_update_fits_in_8_gb_at_the_configs_batch():
    """XLA's temporaries of the default DMControl psrl update at batch 512 (compiled, not run);
    45.8 GB before the cost work, 3.2 GB after it. DESIGN: a default config fits a 16 GB GPU."""
    agent = cost.build('dmc', 'psrl')
    assert agent.replay.batch_size == 512
    temp_gb = cost.compiled_update(agent, cost.SPECS['dmc']).memory_analysis().temp_size_in_bytes / 1e9
    assert temp_gb <= 8.0, f'{temp_gb:.2f} GB of temporaries'


def test_a_smaller_batch_keeps_the_configs_chunk_size():
    # DMControl psrl: 512 in 4 chunks of 128. The benchmark's CPU batch of 64 runs in one piece
    # (XLA:CPU's micro-batch loop is ~3.8x slower), 256 in 2 chunks, the config's batch as is.
    assert [cost.chunks('dmc', 'psrl', b) for b in (None, 512, 256, 128, 64, 192)] == [4, 4, 2, 1, 1, 4]
    assert cost.chunks('dmc', 'drq', 64) == 1 and cost.chunks('atari', 'psrl', 16) == 1
    assert cost.build('dmc', 'psrl', 256).replay.batch_size == 256


def test_components_subtract_each_switch_from_the_full_update_and_time_them(monkeypatch):
    # Two switches: one the config has (L1 terms: removing it saves), one it leaves out (the
    # refinement: adding it costs); the signs put both as positive costs of the part.
    monkeypatch.setattr(cost, 'COMPONENTS', (('L1 terms', dict(l1=False)),
                                             ('refinement (adds)',
                                              dict(correspondence_refinement=True))))
    rows = {row['what']: row for row in cost.components('minatar', batch_size=4, repeats=2)}
    assert list(rows) == ['psrl update', 'L1 terms', 'refinement (adds)', 'spr update',
                          'rainbow update']
    assert rows['refinement (adds)']['gflops'] > 0.01 and rows['L1 terms']['gflops'] >= 0
    assert rows['psrl update']['gflops'] > rows['rainbow update']['gflops']
    assert all(np.isfinite(row['ms']) for row in rows.values())
    assert all(rows[p]['ms'] > 0 for p in ('psrl update', 'spr update', 'rainbow update'))
