"""SAC pieces: squashed-Gaussian density, temperature, target EMA, policies, learning on a batch."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from psrl_jax import psrl, replay
from psrl_jax.agents import sac

SMALL_PSRL = dict(horizon=2, max_displacement=1, projection_dim=16, correspondence_hidden=8,
                  transition_hidden=8)
OBS = (84, 84, 9)


def make_config(preset='psrl', **agent):
    off = dict(correspondence=False, cat=False, aat=False, internal=False, l1=False)
    objective = psrl.PSRLConfig(encoder='dmc', frame_channels=3, action_dim=2,
                                augmentation=('shift',),
                                **{**SMALL_PSRL, **(off if preset == 'drq' else {})})
    return sac.SACConfig(psrl=objective, hidden=32, **agent)


def make_batch(config, batch=6, seed=0):
    rng = np.random.default_rng(seed)
    t = max(config.psrl.sequence_length, 2)
    return replay.Batch(
        observation=jnp.asarray(rng.integers(0, 256, (batch, t) + OBS), jnp.uint8),
        action=jnp.asarray(rng.uniform(-1, 1, (batch, t - 1, 2)), jnp.float32),
        reward=jnp.zeros((batch, t - 1)),
        same_episode=jnp.ones((batch, t), bool),
        next_observation=jnp.asarray(rng.integers(0, 256, (batch,) + OBS), jnp.uint8),
        returns=jnp.asarray(rng.uniform(0, 1, batch), jnp.float32),
        discount=jnp.full((batch,), 0.99, jnp.float32))


def test_squashed_gaussian_log_probability():
    """log pi(a) = log N(u; mean, std) - sum log(1 - tanh(u)^2), checked with scipy."""
    config = make_config('drq')
    state = sac.init(jax.random.PRNGKey(0), config, OBS)
    features = jax.random.uniform(jax.random.PRNGKey(1), (5, 35, 35, 32))
    key = jax.random.PRNGKey(2)
    action, log_prob = sac.sample_action(state.actor, features, key, config)
    mean, log_std = sac._actor(config).apply(state.actor, features)
    u = np.arctanh(np.clip(np.asarray(action, np.float64), -1 + 1e-7, 1 - 1e-7))
    expected = (stats.norm.logpdf(u, np.asarray(mean), np.exp(np.asarray(log_std))).sum(1)
                - np.log(1 - np.tanh(u) ** 2).sum(1))
    np.testing.assert_allclose(np.asarray(log_prob), expected, rtol=1e-3, atol=1e-3)
    assert float(jnp.abs(action).max()) < 1.0


def test_policies():
    config = make_config('drq', random_steps=10)
    state = sac.init(jax.random.PRNGKey(0), config, OBS)
    obs = jnp.asarray(np.random.default_rng(0).integers(0, 256, (300,) + OBS), jnp.uint8)
    early = np.asarray(sac.act(state, obs, jax.random.PRNGKey(1), jnp.asarray(0), config))
    # Uniform on [-1, 1]^2 before learning: mean ~0, variance ~1/3.
    assert abs(early.mean()) < 0.1 and abs(early.var() - 1 / 3) < 0.05
    late = np.asarray(sac.act(state, obs[:4], jax.random.PRNGKey(1), jnp.asarray(10), config))
    greedy = np.asarray(sac.evaluate_act(state, obs[:4], jax.random.PRNGKey(5), config))
    features = sac._features(state.params, obs[:4].astype(jnp.float32) / 255.0, config)
    mean, _ = sac._actor(config).apply(state.actor, features)
    np.testing.assert_allclose(greedy, np.tanh(np.asarray(mean)), rtol=1e-5, atol=1e-6)
    assert late.shape == (4, 2) and not np.allclose(late, greedy)  # a draw, not the mean


def test_temperature_moves_against_the_entropy_gap():
    """alpha falls when the policy's entropy exceeds the target -|A|, and rises when below."""
    batch = make_batch(make_config('drq'))
    # std ~0.8 gives a near-uniform squashed policy (entropy ~ +1 > -2); std ~1e-4 gives ~ -16.
    for log_std, direction in (((-0.3, -0.2), -1), ((-10.0, -9.0), +1)):
        config = make_config('drq', actor_update_period=1, log_std_min=log_std[0],
                             log_std_max=log_std[1])
        state = sac.init(jax.random.PRNGKey(0), config, OBS)
        new_state, _, metrics = jax.jit(functools.partial(sac.update, config=config))(
            state, batch, jnp.ones(6), jax.random.PRNGKey(1))
        change = float(new_state.log_alpha - state.log_alpha)
        gap = float(metrics['entropy']) - config.target_entropy
        assert np.sign(change) == -np.sign(gap) == direction


def test_target_ema_every_second_update_and_actor_schedule():
    config = make_config('drq')
    state = sac.init(jax.random.PRNGKey(0), config, OBS)
    update = jax.jit(functools.partial(sac.update, config=config))
    batch = make_batch(config)
    first, _, _ = update(state, batch, jnp.ones(6), jax.random.PRNGKey(1))
    unchanged = jax.tree.map(lambda a, b: bool(jnp.all(a == b)),
                             state.target_params, first.target_params)
    assert all(jax.tree.leaves(unchanged))
    assert all(jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.all(a == b)),
                                            state.actor, first.actor)))
    second, _, _ = update(first, batch, jnp.ones(6), jax.random.PRNGKey(2))
    tau = config.target_update_tau
    expected = jax.tree.map(lambda t, p: (1 - tau) * t + tau * p, first.target_params,
                            second.params)
    for got, want in zip(jax.tree.leaves(second.target_params), jax.tree.leaves(expected)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6, atol=1e-7)
    assert not all(jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.all(a == b)),
                                                first.actor, second.actor)))


def test_critic_loss_falls_on_a_fixed_batch_with_psrl():
    config = make_config('psrl')
    state = sac.init(jax.random.PRNGKey(0), config, OBS)
    assert {'encoder', 'critic', 'correspondence', 'transition'} <= set(state.params)
    update = jax.jit(functools.partial(sac.update, config=config))
    batch = make_batch(config)
    losses = []
    for _ in range(5):
        state, priorities, metrics = update(state, batch, jnp.ones(6), jax.random.PRNGKey(3))
        assert all(np.isfinite(float(v)) for v in metrics.values())
        losses.append(float(metrics['loss_rl']))
    assert losses[-1] < losses[0]
    assert priorities.shape == (6,) and float(metrics['loss_c']) > 0.0
