"""Rainbow pieces: C51 projection, schedules, policies, target handling, and that an update learns."""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from psrl_jax import psrl, replay
from psrl_jax.agents import rainbow

SMALL_PSRL = dict(horizon=2, max_displacement=1, projection_dim=16, correspondence_hidden=8,
                  transition_hidden=8)
PRESETS = {
    'rainbow': dict(correspondence=False, cat=False, aat=False, internal=False, l1=False),
    'spr': dict(correspondence=False, cat=False, internal=False, l1=False, sim_steps=2),
    'psrl': {},
}


def make_config(preset='psrl', **agent):
    objective = psrl.PSRLConfig(num_actions=4, **{**SMALL_PSRL, **PRESETS[preset]})
    return rainbow.RainbowConfig(psrl=objective, hidden=32, **agent)


def make_batch(config, batch=8, seed=0):
    rng = np.random.default_rng(seed)
    t = max(config.psrl.sequence_length, 2)
    return replay.Batch(
        observation=jnp.asarray(rng.integers(0, 256, (batch, t, 84, 84, 4)), jnp.uint8),
        action=jnp.asarray(rng.integers(0, 4, (batch, t - 1)), jnp.int32),
        reward=jnp.zeros((batch, t - 1)),
        same_episode=jnp.ones((batch, t), bool),
        next_observation=jnp.asarray(rng.integers(0, 256, (batch, 84, 84, 4)), jnp.uint8),
        returns=jnp.asarray(rng.uniform(-1, 1, batch), jnp.float32),
        discount=jnp.asarray(rng.choice([0.0, 0.99 ** 10], batch), jnp.float32))


def numpy_projection(probabilities, returns, discounts, v_min, v_max, atoms):
    """C51's projection as in the paper's algorithm 1 (loop form)."""
    z = np.linspace(v_min, v_max, atoms)
    delta = (v_max - v_min) / (atoms - 1)
    out = np.zeros_like(probabilities)
    for i in range(probabilities.shape[0]):
        for j in range(atoms):
            tz = np.clip(returns[i] + discounts[i] * z[j], v_min, v_max)
            b = (tz - v_min) / delta
            low, up = int(np.floor(b)), int(np.ceil(b))
            if low == up:
                out[i, low] += probabilities[i, j]
            else:
                out[i, low] += probabilities[i, j] * (up - b)
                out[i, up] += probabilities[i, j] * (b - low)
    return out


def test_projection_matches_c51_algorithm():
    config = make_config('rainbow')
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(51), size=6).astype(np.float32)
    returns = np.array([0.0, 1.3, -2.7, 15.0, -30.0, 0.05], np.float32)
    discounts = np.array([0.99, 0.0, 0.5, 0.9, 0.99, 1.0], np.float32)
    got = np.asarray(rainbow.project_distribution(p, returns, discounts, config))
    np.testing.assert_allclose(got, numpy_projection(p, returns, discounts, -10, 10, 51),
                               atol=1e-5)
    np.testing.assert_allclose(got.sum(1), 1.0, rtol=1e-5)
    # Terminal (discount 0) with return 1.3: all mass on the atoms 1.2 (index 28) and 1.6.
    np.testing.assert_allclose(got[1, 27:31], [0.0, 0.75, 0.25, 0.0], atol=1e-5)


def test_epsilon_schedule():
    config = make_config(epsilon_decay_steps=100)
    values = [float(rainbow.epsilon(config, jnp.asarray(s))) for s in (0, 50, 100, 1000)]
    np.testing.assert_allclose(values, [1.0, 0.5, 0.0, 0.0], atol=1e-6)


def test_policies():
    config = make_config('rainbow', epsilon_decay_steps=10)
    state = rainbow.init(jax.random.PRNGKey(0), config, (84, 84, 4))
    obs = jnp.asarray(np.random.default_rng(1).integers(0, 256, (5, 84, 84, 4)), jnp.uint8)
    greedy = np.argmax(np.asarray(rainbow.q_values(state.params, obs, config)), axis=1)
    for seed in range(3):  # greedy on the noise-free net, whatever the key
        action = rainbow.evaluate_act(state, obs, jax.random.PRNGKey(seed), config)
        assert action.dtype == jnp.int32 and action.shape == (5,)
        np.testing.assert_array_equal(np.asarray(action), greedy)
    # At step 0 epsilon is 1: actions are uniform over the action set.
    many = jnp.asarray(np.repeat(np.asarray(obs[:1]), 400, axis=0))
    actions = np.asarray(rainbow.act(state, many, jax.random.PRNGKey(3), jnp.asarray(0), config))
    assert set(actions) == {0, 1, 2, 3}


def test_target_is_the_online_network_by_default_and_a_periodic_copy_otherwise():
    config = make_config('rainbow')
    assert config.target_is_online
    assert rainbow.init(jax.random.PRNGKey(0), config, (84, 84, 4)).target_params is None
    periodic = make_config('rainbow', target_update_period=2)
    state = rainbow.init(jax.random.PRNGKey(0), periodic, (84, 84, 4))
    initial = state.target_params
    update = jax.jit(functools.partial(rainbow.update, config=periodic))
    batch = make_batch(periodic)
    state, _, _ = update(state, batch, jnp.ones(8), jax.random.PRNGKey(1))
    same = jax.tree.map(lambda a, b: bool(jnp.all(a == b)), initial, state.target_params)
    assert all(jax.tree.leaves(same))  # not refreshed after 1 update
    state, _, _ = update(state, batch, jnp.ones(8), jax.random.PRNGKey(2))
    copied = jax.tree.map(lambda a, b: bool(jnp.all(a == b)), state.params, state.target_params)
    assert all(jax.tree.leaves(copied))  # copied after 2


@pytest.mark.parametrize('preset', ['rainbow', 'spr', 'psrl'])
def test_updates_reduce_the_loss_on_a_fixed_batch(preset):
    config = make_config(preset, learning_rate=1e-3)
    state = rainbow.init(jax.random.PRNGKey(0), config, (84, 84, 4))
    batch = make_batch(config)
    update = jax.jit(functools.partial(rainbow.update, config=config))
    key = jax.random.PRNGKey(7)
    losses = []
    for _ in range(6):
        state, priorities, metrics = update(state, batch, jnp.ones(8), key)
        losses.append(float(metrics['loss_rl']
                            + config.psrl.lambda_sim * metrics['loss_sim']
                            + config.psrl.lambda_c * metrics['loss_c']))
        assert all(np.isfinite(float(v)) for v in metrics.values())
    assert losses[-1] < losses[0]
    assert priorities.shape == (8,) and float(priorities.min()) >= 0.0
    np.testing.assert_allclose(float(priorities.mean()), float(metrics['loss_rl']), rtol=1e-5)
    assert int(state.updates) == 6


def test_importance_weights_scale_the_gradient():
    config = make_config('rainbow')
    state = rainbow.init(jax.random.PRNGKey(0), config, (84, 84, 4))
    batch = make_batch(config)
    update = jax.jit(functools.partial(rainbow.update, config=config))
    key = jax.random.PRNGKey(3)
    _, _, full = update(state, batch, jnp.ones(8), key)
    _, _, half = update(state, batch, jnp.full(8, 0.5), key)
    np.testing.assert_allclose(float(half['grad_norm']), 0.5 * float(full['grad_norm']), rtol=1e-4)


def test_rainbow_preset_has_no_auxiliary_loss():
    config = make_config('rainbow')
    state = rainbow.init(jax.random.PRNGKey(0), config, (84, 84, 4))
    assert set(state.params) == {'encoder', 'q_head'}
    _, _, metrics = jax.jit(functools.partial(rainbow.update, config=config))(
        state, make_batch(config), jnp.ones(8), jax.random.PRNGKey(1))
    assert float(metrics['loss_sim']) == 0.0 and float(metrics['loss_c']) == 0.0
