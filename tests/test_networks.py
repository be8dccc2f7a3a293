"""Shapes, dtypes and defining properties of the flax modules."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from psrl_jax import networks, transforms

KEY = jax.random.PRNGKey(0)


@pytest.mark.parametrize('name,obs_shape,feature_shape', [
    ('atari', (84, 84, 4), (7, 7, 64)),
    ('dmc', (84, 84, 9), (35, 35, 32)),
])
def test_encoder_shapes(name, obs_shape, feature_shape):
    encoder = networks.ENCODERS[name]()
    x = jax.random.uniform(KEY, (3,) + obs_shape)
    params = encoder.init(KEY, x)
    z = encoder.apply(params, x)
    assert z.shape == (3,) + feature_shape and z.dtype == jnp.float32
    assert float(z.min()) >= 0.0  # ReLU features (renormalized into [0, 1] for Atari)
    if name == 'atari':
        flat = np.asarray(z).reshape(3, -1)
        np.testing.assert_allclose(flat.min(1), 0.0, atol=1e-6)
        np.testing.assert_allclose(flat.max(1), 1.0, atol=1e-3)


def test_renormalize_matches_numpy():
    x = jax.random.normal(KEY, (2, 3, 3, 4))
    flat = np.asarray(x).reshape(2, -1)
    expected = (flat - flat.min(1, keepdims=True)) / (
        flat.max(1, keepdims=True) - flat.min(1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(np.asarray(networks.renormalize(x)).reshape(2, -1), expected,
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('alpha', [0.5, 2.0])
def test_correspondence_module_starts_as_masked_pearson_soft_argmax(alpha):
    """The refinement starts at zero: C's first output is the soft-argmax of 10 x the correlation
    of channel-centred, unit-RMS features minus alpha |d|^2, over the displacements that stay inside
    the map."""
    module = networks.CorrespondenceModule(max_displacement=2, init_inverse_temperature=10.0,
                                           init_displacement_penalty=alpha)
    z_a = jax.random.uniform(KEY, (2, 6, 6, 8))
    z_b = jax.random.uniform(jax.random.PRNGKey(1), (2, 6, 6, 8))
    params = module.init(KEY, z_a, z_b)
    flow = np.asarray(module.apply(params, z_a, z_b))
    assert flow.shape == (2, 6, 6, 2)

    def unit(z):
        z = np.asarray(z, np.float64) - np.asarray(z).mean(-1, keepdims=True)
        return z / np.sqrt(np.mean(z ** 2, axis=-1, keepdims=True) + 1e-6)

    a, b = unit(z_a), unit(z_b)
    for y, x in ((0, 0), (2, 3), (5, 1)):
        weights, moves = [], []
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                if 0 <= y + dy < 6 and 0 <= x + dx < 6:   # only displacements inside the map
                    weights.append(10.0 * np.mean(a[0, y, x] * b[0, y + dy, x + dx])
                                   - alpha * (dx * dx + dy * dy))
                    moves.append((dx, dy))
        p = np.exp(np.array(weights) - max(weights))
        expected = (p / p.sum()) @ np.array(moves, np.float64)
        np.testing.assert_allclose(flow[0, y, x], expected, rtol=1e-4, atol=1e-5)


def test_correspondence_module_finds_a_feature_shift():
    """With sharp matching, the decoded flow of distinct one-hot features is the shift itself."""
    module = networks.CorrespondenceModule(max_displacement=2, init_inverse_temperature=200.0)
    ids = np.random.default_rng(0).permutation(64).reshape(8, 8)
    z_b = jax.nn.one_hot(ids, 64)[None]
    # z_a(p) = z_b(p + (dx, dy)) with (dx, dy) = (1, -2): the flow a -> b is (1, -2) inside.
    z_a = jnp.roll(z_b, shift=(2, -1), axis=(1, 2))
    params = module.init(KEY, z_a, z_b)
    flow = np.asarray(module.apply(params, z_a, z_b))[0, 2:6, 1:6]
    np.testing.assert_allclose(flow[..., 0], 1.0, atol=1e-3)
    np.testing.assert_allclose(flow[..., 1], -2.0, atol=1e-3)


@pytest.mark.parametrize('discrete', [True, False])
def test_transition_model_shapes_and_action_dependence(discrete):
    model = networks.TransitionModel(num_actions=5 if discrete else None)
    z = jax.random.uniform(KEY, (2, 7, 7, 16))
    a0 = jnp.array([0, 1]) if discrete else jnp.zeros((2, 3))
    a1 = jnp.array([4, 1]) if discrete else jnp.array([[1.0, -1.0, 0.5], [0.0, 0.0, 0.0]])
    params = model.init(KEY, z, a0)
    out0, out1 = model.apply(params, z, a0), model.apply(params, z, a1)
    assert out0.shape == z.shape
    assert not np.allclose(out0[0], out1[0])     # example 0's action changed
    np.testing.assert_allclose(out0[1], out1[1])  # example 1's did not


def test_noisy_dense_noise_off_is_the_mean_layer_and_noise_is_factorised():
    layer = networks.NoisyDense(4, std_init=0.5)
    x = jax.random.normal(KEY, (3, 6))
    params = layer.init({'params': KEY, 'noise': KEY}, x, noisy=True)
    p = params['params']
    np.testing.assert_allclose(layer.apply(params, x, noisy=False),
                               np.asarray(x) @ p['kernel'] + p['bias'], rtol=1e-5)
    np.testing.assert_allclose(p['kernel_sigma'], 0.5 / np.sqrt(6))
    np.testing.assert_allclose(p['bias_sigma'], 0.5 / np.sqrt(4))
    a = layer.apply(params, x, noisy=True, rngs={'noise': jax.random.PRNGKey(1)})
    b = layer.apply(params, x, noisy=True, rngs={'noise': jax.random.PRNGKey(2)})
    assert not np.allclose(a, b)
    # The kernel noise is rank one: (W_noisy - W) / sigma = outer(f(e_in), f(e_out)).
    eye = jnp.eye(6)
    noisy_kernel = layer.apply(params, eye, noisy=True, rngs={'noise': jax.random.PRNGKey(1)})
    bias_free = noisy_kernel - layer.apply(params, jnp.zeros((1, 6)), noisy=True,
                                           rngs={'noise': jax.random.PRNGKey(1)})
    deviation = (np.asarray(bias_free) - np.asarray(p['kernel'])) / np.asarray(p['kernel_sigma'])
    assert np.linalg.matrix_rank(deviation, tol=1e-4) == 1


def test_rainbow_head_dueling_structure():
    head = networks.RainbowHead(num_actions=3, num_atoms=5, hidden=16)
    z = jax.random.uniform(KEY, (2, 7, 7, 4))
    params = head.init({'params': KEY, 'noise': KEY}, z)
    logits = head.apply(params, z, noisy=False)
    assert logits.shape == (2, 3, 5)
    # Dueling: the mean over actions of the logits equals the value stream (advantages centred).
    value = networks.NoisyDense(5).apply({'params': params['params']['NoisyDense_3']},
                                         jax.nn.relu(networks.NoisyDense(16).apply(
                                             {'params': params['params']['NoisyDense_2']},
                                             z.reshape(2, -1), False)), False)
    np.testing.assert_allclose(np.asarray(logits.mean(axis=1)), np.asarray(value), rtol=1e-4,
                               atol=1e-5)


def test_scale_gradient():
    x = jnp.array([1.0, -2.0])
    np.testing.assert_allclose(networks.scale_gradient(x, 0.25), x)
    np.testing.assert_allclose(jax.grad(lambda v: networks.scale_gradient(v, 0.25).sum())(x),
                               [0.25, 0.25])


def test_actor_and_critic_shapes_and_log_std_bounds():
    z = 100.0 * jax.random.normal(KEY, (4, 5, 5, 8))
    actor = networks.Actor(action_dim=2, hidden=32)
    mean, log_std = actor.apply(actor.init(KEY, z), z)
    assert mean.shape == log_std.shape == (4, 2)
    assert float(log_std.min()) >= -10.0 and float(log_std.max()) <= 2.0
    critic = networks.Critic(hidden=32)
    q1, q2 = critic.apply(critic.init(KEY, z, mean), z, mean)
    assert q1.shape == q2.shape == (4,) and not np.allclose(q1, q2)  # two independent heads
