"""SAC pieces: squashed-Gaussian density, the soft target, the critic and actor steps against
references, temperature, target EMA, policies, learning on a batch."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from psrl_jax import networks, psrl, replay
from psrl_jax.agents import sac

SMALL_PSRL = dict(horizon=2, max_displacement=1, projection_dim=16, correspondence_hidden=8,
                  transition_hidden=8)
OBS = (84, 84, 9)


# A log-std pinned at -12 (std 6e-6) makes a policy draw tanh(mean) to within 1e-4, and with a
# temperature of 1e-8 the entropy terms vanish: the critic and actor steps become deterministic.
NEAR_DETERMINISTIC = dict(log_std_min=-12.0, log_std_max=-12.0, init_temperature=1e-8)


def make_config(preset='psrl', exact=False, **agent):
    """exact: no augmentation, so an update is a function of the batch and the policy draws."""
    off = dict(correspondence=False, cat=False, aat=False, internal=False, l1=False)
    objective = psrl.PSRLConfig(encoder='dmc', frame_channels=3, action_dim=2,
                                augmentation=() if exact else ('shift',),
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
        discount=jnp.asarray([0.0] + [0.99] * (batch - 1), jnp.float32))


def encode(params, observations, config):
    """Encoder features [B, 35, 35, 32] of uint8 observations, from the module itself."""
    observations = jnp.asarray(observations, jnp.float32) / 255.0
    return psrl.make_modules(config.psrl).encoder.apply(params['encoder'], observations)


def critic(params, features, action, config):
    return networks.Critic(config.hidden, config.feature_dim).apply(params['critic'], features,
                                                                     action)


def with_other_target(state, config):
    """The state with a target network unlike the online one (as after many EMA steps)."""
    return state.replace(target_params=sac.init(jax.random.PRNGKey(17), config, OBS).params)


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
    assert late.shape == (4, 2) and not np.allclose(late, greedy, atol=1e-2)  # a draw, not the mean
    np.testing.assert_array_equal(
        greedy, np.asarray(sac.evaluate_act(state, obs[:4], jax.random.PRNGKey(6), config)))
    # The evaluation policy is the training policy's mean: with std ~0 the two agree.
    narrow = make_config('drq', random_steps=10, **NEAR_DETERMINISTIC)
    draw = sac.act(state, obs[:4], jax.random.PRNGKey(1), jnp.asarray(10), narrow)
    np.testing.assert_allclose(np.asarray(draw), greedy, atol=1e-4)
    assert np.all(np.abs(greedy) < 1.0)


def test_soft_target_is_the_smaller_target_twin_minus_alpha_log_pi():
    """r + discount (min(Q^t_1, Q^t_2)(s', a') - alpha log pi(a'|s')), a' the actor's draw on
    the online encoder's features of s', the twins on the target encoder's; discount 0 masks."""
    config = make_config('drq', exact=True, init_temperature=0.7)
    state = with_other_target(sac.init(jax.random.PRNGKey(0), config, OBS), config)
    batch = make_batch(config)
    key = jax.random.PRNGKey(3)
    got = sac.soft_target(state, jnp.asarray(batch.next_observation, jnp.float32) / 255.0,
                          batch.returns, batch.discount, key, config)
    action, log_prob = sac.sample_action(state.actor, encode(state.params, batch.next_observation,
                                                             config), key, config)
    q1, q2 = critic(state.target_params, encode(state.target_params, batch.next_observation,
                                                config), action, config)
    assert np.any(q1 < q2) and np.any(q1 > q2)   # which twin is smaller varies
    expected = batch.returns + batch.discount * (np.minimum(q1, q2) - 0.7 * np.asarray(log_prob))
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(float(got[0]), float(batch.returns[0]), rtol=1e-6)  # terminal


def assert_signs_follow(old, new, grads):
    """Adam's first step moves every parameter with a non-negligible gradient against its sign."""
    largest = max(float(jnp.abs(g).max()) for g in jax.tree.leaves(grads))
    for g, p0, p1 in zip(jax.tree.leaves(grads), jax.tree.leaves(old), jax.tree.leaves(new)):
        g, step = np.asarray(g), np.asarray(p1) - np.asarray(p0)
        clear = np.abs(g) > 1e-4 * largest
        np.testing.assert_array_equal(np.sign(step[clear]), -np.sign(g[clear]))


def test_critic_step_regresses_both_twins_on_the_soft_target_of_next_observation():
    config = make_config('drq', exact=True, **NEAR_DETERMINISTIC)
    state = with_other_target(sac.init(jax.random.PRNGKey(0), config, OBS), config)
    batch = make_batch(config)
    assert not np.array_equal(batch.observation[:, 1], batch.next_observation)
    new_state, priorities, metrics = jax.jit(functools.partial(sac.update, config=config))(
        state, batch, jnp.ones(6), jax.random.PRNGKey(1))
    online_next = encode(state.params, batch.next_observation, config)
    mean, _ = networks.Actor(2, config.hidden, config.feature_dim).apply(state.actor, online_next)
    target_q = np.minimum(*critic(state.target_params, encode(
        state.target_params, batch.next_observation, config), jnp.tanh(mean), config))
    y = np.asarray(batch.returns + batch.discount * target_q)

    def td(params):
        q1, q2 = critic(params, encode(params, batch.observation[:, 0], config),
                        batch.action[:, 0], config)
        return jnp.mean((q1 - y) ** 2 + (q2 - y) ** 2), q1

    (loss, q1), grads = jax.value_and_grad(td, has_aux=True)(state.params)
    np.testing.assert_allclose(float(metrics['loss_rl']), float(loss), rtol=1e-4)
    np.testing.assert_allclose(np.asarray(priorities), np.abs(np.asarray(q1) - y), atol=1e-4)
    assert_signs_follow(state.params, new_state.params, grads)


def test_actor_step_climbs_the_updated_critic_on_detached_features():
    """The actor minimises alpha log pi - min(Q_1, Q_2) on o_k's encoder features, with the critic
    just updated; here (alpha ~ 0) each parameter moves against d(-min Q)/d theta."""
    config = make_config('drq', exact=True, actor_update_period=1, **NEAR_DETERMINISTIC)
    state = sac.init(jax.random.PRNGKey(0), config, OBS)
    batch = make_batch(config)
    new_state, _, _ = jax.jit(functools.partial(sac.update, config=config))(
        state, batch, jnp.ones(6), jax.random.PRNGKey(1))
    features = encode(state.params, batch.observation[:, 0], config)
    actor = networks.Actor(2, config.hidden, config.feature_dim, -12.0, -12.0)
    value = lambda actor_params, params: jnp.mean(jnp.minimum(*critic(
        params, features, jnp.tanh(actor.apply(actor_params, features)[0]), config)))
    grads = jax.grad(lambda a: -value(a, new_state.params))(state.actor)
    assert_signs_follow(state.actor, new_state.actor, grads)
    assert float(value(new_state.actor, new_state.params)) > float(value(state.actor,
                                                                         new_state.params))


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
