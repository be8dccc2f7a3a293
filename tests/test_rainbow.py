"""Rainbow pieces: C51 projection, schedules, policies, target handling, the double-Q C51 loss, its
priorities and the auxiliary objective's inputs against independent references, and learning."""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from psrl_jax import networks, psrl, replay
from psrl_jax.agents import rainbow, terms

SMALL_PSRL = dict(horizon=2, max_displacement=1, projection_dim=16, correspondence_hidden=8,
                  transition_hidden=8)
PRESETS = {
    'rainbow': dict(correspondence=False, cat=False, aat=False, internal=False, l1=False),
    'spr': dict(correspondence=False, cat=False, internal=False, l1=False, sim_steps=2),
    'psrl': {},
}


def make_config(preset='psrl', exact=False, **agent):
    """exact: no augmentation and zero noise scales, so an update is a deterministic function of
    the parameters and the batch (the noisy layers then equal their noise-free means)."""
    objective = psrl.PSRLConfig(num_actions=4, **{**SMALL_PSRL, **PRESETS[preset]},
                                **(dict(augmentation=()) if exact else {}))
    return rainbow.RainbowConfig(psrl=objective, hidden=32, **(dict(noisy_std=0.0) if exact else {}),
                                 **agent)


def make_batch(config, batch=8, seed=0, extra=0):
    """Random observations and actions; T = the objective's sequence length (at least 2) + extra;
    example 0 leaves its episode after o_{k+1}."""
    rng = np.random.default_rng(seed)
    t = max(config.psrl.sequence_length, 2) + extra
    same_episode = np.ones((batch, t), bool)
    same_episode[0, 2:] = False
    return replay.Batch(
        observation=jnp.asarray(rng.integers(0, 256, (batch, t, 84, 84, 4)), jnp.uint8),
        action=jnp.asarray(rng.integers(0, 4, (batch, t - 1)), jnp.int32),
        reward=jnp.zeros((batch, t - 1)),
        same_episode=jnp.asarray(same_episode),
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


def test_an_ema_target_moves_tau_of_the_way_to_the_updated_parameters():
    """Atari's psrl presets: target' = (1 - tau) target + tau params', every update."""
    config = make_config('psrl', target_update_tau=0.01)
    assert not config.target_is_online
    state = rainbow.init(jax.random.PRNGKey(0), config, (84, 84, 4))
    start = state.replace(target_params=jax.tree.map(lambda x: x + 0.5, state.target_params))
    new, _, _ = jax.jit(functools.partial(rainbow.update, config=config))(
        start, make_batch(config), jnp.ones(8), jax.random.PRNGKey(1))
    expected = jax.tree.map(lambda t, p: 0.99 * np.asarray(t) + 0.01 * np.asarray(p),
                            start.target_params, new.params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
                 new.target_params, expected)
    moved = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))),
                         new.params, start.params)
    assert any(jax.tree.leaves(moved))


def test_term_gradients_are_each_terms_share_of_the_learners_gradient():
    """terms.term_gradients of rainbow.gradients (experiments.gradient_shares): L_sim's and L_c's
    parts against the standalone objective (psrl.psrl_loss) with only that term, the C51 loss's
    reaching only the encoder and the head, and the parts adding up to the gradient `update` steps
    along."""
    config = make_config('psrl', exact=True, target_update_tau=0.01)
    pc, seq = config.psrl, config.psrl.sequence_length
    state = rainbow.init(jax.random.PRNGKey(0), config, (84, 84, 4))
    state = state.replace(target_params=jax.tree.map(lambda x: 0.9 * x, state.target_params))
    batch = make_batch(config)
    weights = jnp.linspace(0.2, 1.0, 8)
    key = jax.random.PRNGKey(5)
    parts = jax.jit(functools.partial(terms.term_gradients, rainbow.gradients, config=config))(
        state, batch, weights, key)
    sequences = psrl.PSRLBatch(batch.observation[:, :seq], batch.action[:, :seq - 1],
                               batch.same_episode[:, :seq])

    def only(objective):
        loss = lambda p: jnp.sum(weights * psrl.psrl_loss(p, state.target_params, sequences, key,
                                                          objective)[0]) / 8
        return jax.grad(loss)(state.params)

    expected = {'c': only(dataclasses.replace(pc, cat=False, aat=False, l1=False)),
                'sim': only(dataclasses.replace(pc, lambda_c=0.0))}
    for term, tree in expected.items():
        assert optax.global_norm(tree['encoder']) > 0, term
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-3, atol=1e-6),
                     parts[term], tree)
    assert optax.global_norm(parts['sim']['conv1x1']) > 0
    assert optax.global_norm(parts['c']['correspondence']) > 0
    for group in parts['rl']:
        reached = float(optax.global_norm(parts['rl'][group])) > 0
        assert reached == (group in ('encoder', 'q_head')), group
    update = jax.jit(functools.partial(rainbow.update, config=config))
    _, _, metrics = update(state, batch, weights, key)
    total = jax.tree.map(lambda *xs: sum(xs), *parts.values())
    np.testing.assert_allclose(float(optax.global_norm(total)), float(metrics['grad_norm']), rtol=1e-4)


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
    assert priorities.shape == (8,) and float(priorities.min()) >= 1e-6
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


def head_logits(params, observations, config):
    """Noise-free atom logits [B, A, atoms] of uint8 observations [B, 84, 84, 4], from the modules."""
    z = psrl.make_modules(config.psrl).encoder.apply(
        params['encoder'], jnp.asarray(observations, jnp.float32) / 255.0)
    head = networks.RainbowHead(config.num_actions, config.num_atoms, config.hidden, 0.0)
    return head.apply(params['q_head'], z, noisy=False)


def c51_reference(online, target, batch, config):
    """The double-Q C51 update of SPR/Rainbow in numpy (float64).

    a* = argmax_a sum_i z_i p_online(s', a)_i on the bootstrap observation s' = next_observation;
    m = Phi(returns + discount z, p_target(s', a*)) (C51's projection, discount 0 after a terminal);
    cross-entropy -sum_i m_i log p_online(s, a)_i at the action taken a = action[:, 0];
    priority KL(max(m, 1e-6) || p) clamped to [1e-6, 1e6] (SPR's src/algos.py).
    Returns (cross_entropy [B], priorities [B], m [B, atoms], a* [B]).
    """
    atoms = np.linspace(config.v_min, config.v_max, config.num_atoms)
    logits = lambda params, obs: np.asarray(head_logits(params, obs, config), np.float64)
    log_softmax = lambda x: x - np.log(np.sum(np.exp(x - x.max(-1, keepdims=True)), -1,
                                              keepdims=True)) - x.max(-1, keepdims=True)
    rows = np.arange(len(batch.returns))
    selector = np.exp(log_softmax(logits(online, batch.next_observation))) @ atoms
    best = np.argmax(selector, axis=1)
    evaluated = np.exp(log_softmax(logits(target, batch.next_observation)))[rows, best]
    m = numpy_projection(evaluated, np.asarray(batch.returns, np.float64),
                         np.asarray(batch.discount, np.float64), config.v_min, config.v_max,
                         config.num_atoms)
    log_p = log_softmax(logits(online, batch.observation[:, 0]))[rows, np.asarray(batch.action[:, 0])]
    clamped = np.clip(m, 1e-6, 1.0)
    kl = np.clip(np.sum(clamped * (np.log(clamped) - log_p), axis=1), 1e-6, 1e6)
    return -np.sum(m * log_p, axis=1), kl, m, best


# Adam's first (bias-corrected) step is -lr g / (|g| + eps): with lr = eps = 1e3 it is -g up to a
# known factor, so an update's parameter change reads out its gradient.
GRADIENT_READOUT = dict(learning_rate=1e3, adam_eps=1e3, max_grad_norm=1e6)


def assert_step_follows_gradient(old, new, loss, config):
    """new - old == -lr g / (|g| + eps) with g = grad loss(old), on every parameter but the noise
    scales (whose gradient depends on the noise draw even at zero scale)."""
    grads = jax.jit(jax.grad(loss))(old)
    largest = max(float(jnp.abs(g).max()) for g in jax.tree.leaves(grads))
    for (path, g), p0, p1 in zip(jax.tree_util.tree_leaves_with_path(grads), jax.tree.leaves(old),
                                 jax.tree.leaves(new)):
        if '_sigma' in jax.tree_util.keystr(path):
            continue
        g = np.asarray(g, np.float64)
        expected = -config.learning_rate * g / (np.abs(g) + config.adam_eps)
        np.testing.assert_allclose(np.asarray(p1, np.float64) - np.asarray(p0, np.float64),
                                   expected, rtol=1e-3, atol=1e-4 * largest,
                                   err_msg=jax.tree_util.keystr(path))


def cross_entropy_loss(params, batch, m, weights, config):
    """mean_b w_b CE(m_b, p_params(s_b, a_b)) as a jax function of params (m held fixed)."""
    logits = head_logits(params, batch.observation[:, 0], config)
    log_p = jax.nn.log_softmax(logits[jnp.arange(len(m)), batch.action[:, 0]])
    return jnp.mean(weights * -jnp.sum(jnp.asarray(m, jnp.float32) * log_p, axis=-1))


@pytest.mark.parametrize('target', ['online', 'periodic'])
def test_double_q_c51_loss_and_priorities_match_the_reference(target):
    """Online argmax, target evaluation on next_observation, its discount, the action taken,
    SPR's KL priorities, and a step whose gradient flows only through the prediction (the
    rainbow preset's whole loss: no auxiliary term)."""
    config = make_config('rainbow', exact=True, **GRADIENT_READOUT,
                         **({} if target == 'online' else dict(target_update_period=2)))
    state = rainbow.init(jax.random.PRNGKey(0), config, (84, 84, 4))
    assert set(state.params) == {'encoder', 'q_head'}
    if target == 'periodic':
        state = state.replace(
            target_params=rainbow.init(jax.random.PRNGKey(1), config, (84, 84, 4)).params)
    target_params = state.params if target == 'online' else state.target_params
    batch = make_batch(config, extra=1)
    weights = jnp.asarray(np.random.default_rng(1).uniform(0.2, 1.0, 8), jnp.float32)
    new_state, priorities, metrics = jax.jit(functools.partial(rainbow.update, config=config))(
        state, batch, weights, jax.random.PRNGKey(5))
    cross_entropy, kl, m, best = c51_reference(state.params, target_params, batch, config)
    # The batch distinguishes each wire: o_{k+1} is not s', action[:, 1] is not the action taken,
    # terminal and non-terminal discounts mix, and (periodic) the target's argmax differs.
    assert not np.array_equal(batch.observation[:, 1], batch.next_observation)
    assert np.any(batch.action[:, 0] != batch.action[:, 1])
    assert np.any(batch.discount == 0.0) and np.any(batch.discount > 0.0)
    if target == 'periodic':
        target_best = np.argmax(np.asarray(
            rainbow.q_values(target_params, batch.next_observation, config)), axis=1)
        assert np.any(target_best != best)
    np.testing.assert_allclose(float(metrics['loss_rl']), cross_entropy.mean(), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(priorities), kl, rtol=1e-4, atol=1e-6)
    assert np.all(kl < cross_entropy)   # KL = cross-entropy - H(m): the choice is visible
    assert_step_follows_gradient(state.params, new_state.params,
                           lambda p: cross_entropy_loss(p, batch, m, weights, config), config)


@pytest.mark.parametrize('preset', ['spr', 'psrl'])
def test_auxiliary_objective_gets_the_sampled_subsequence(preset):
    """psrl_objective sees z^q of o_k .., z^t of o_{k+1} .. o_{k+T-1}, their newest frames, a_k ..,
    the episode mask, and is added to the C51 loss under the importance weights."""
    config = make_config(preset, exact=True, **GRADIENT_READOUT)
    pc = config.psrl
    state = rainbow.init(jax.random.PRNGKey(0), config, (84, 84, 4))
    batch = make_batch(config, extra=1)          # a longer subsequence than the objective needs
    weights = jnp.asarray(np.random.default_rng(1).uniform(0.2, 1.0, 8), jnp.float32)
    new_state, _, metrics = jax.jit(functools.partial(rainbow.update, config=config))(
        state, batch, weights, jax.random.PRNGKey(5))
    seq = pc.sequence_length
    observations = jnp.asarray(batch.observation[:, :seq], jnp.float32) / 255.0
    target = psrl.encode(state.params, observations[:, 1:], pc)

    def objective(params):
        query = psrl.encode(params, observations[:, :pc.num_query], pc)
        return psrl.psrl_objective(params, jax.lax.stop_gradient(params), query, target,
                                   observations[..., -1:], batch.action[:, :seq - 1],
                                   batch.same_episode[:, :seq], pc)

    _, expected = jax.jit(objective)(state.params)
    for name, value in expected.items():
        np.testing.assert_allclose(float(metrics[name]), float(value), rtol=1e-4, atol=1e-6,
                                   err_msg=name)
    _, _, m, _ = c51_reference(state.params, state.params, batch, config)
    assert_step_follows_gradient(state.params, new_state.params,
                           lambda p: (cross_entropy_loss(p, batch, m, weights, config)
                                      + jnp.mean(weights * objective(p)[0])), config)
