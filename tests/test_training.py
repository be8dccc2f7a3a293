"""The loop's wiring: what the replay rebuilds from a real environment's stream (stacks, actions,
n-step returns, discounts, episode ends), the importance-sampling exponent it samples with, and
the priorities it writes back."""
import types

import jax
import jax.numpy as jnp
import numpy as np

from experiments import launch
from experiments.configs import atari as atari_configs
from psrl_jax import psrl, replay, training
from psrl_jax.agents import rainbow
from psrl_jax.envs.atari import make_atari

GAMMA = 0.9


def rainbow_agent(replay_config, num_actions, **overrides):
    """A small Rainbow bound into a training.Agent (epsilon 1 throughout: uniform actions)."""
    objective = psrl.PSRLConfig(num_actions=num_actions, correspondence=False, cat=False,
                                aat=False, internal=False, l1=False)
    config = rainbow.RainbowConfig(psrl=objective, hidden=16, epsilon_end=1.0)
    bind = lambda fn: (lambda *a: fn(*a, config=config))
    fields = dict(name='rainbow', init=lambda key: rainbow.init(key, config, (84, 84, 4)),
                  act=bind(rainbow.act), evaluate_act=bind(rainbow.evaluate_act),
                  update=bind(rainbow.update), replay=replay_config, action_shape=(),
                  action_dtype=np.int32, updates_per_step=1, priority_weight=lambda step: 0.4)
    return training.Agent(**{**fields, **overrides})


def n_step_reference(k, rewards, terminals, truncations, n):
    """(return, discount, m) of the n-step transition from step k of a recorded stream."""
    total = 0.0
    for i in range(n):
        total += GAMMA ** i * rewards[k + i]
        if terminals[k + i]:
            return total, 0.0, i + 1
        if truncations[k + i]:
            return total, GAMMA ** (i + 1), i + 1
    return total, GAMMA ** n, n


def test_replay_rebuilds_the_stream_the_loop_stored():
    """Asterix with uniform actions scores and loses lives within 400 steps: each sampleable start's
    stack, action, same-episode mask, n-step return, discount and bootstrap observation equal
    those of the recorded environment stream (life losses terminal, pseudo-steps invalid)."""
    n_step, horizon, steps = 3, 2, 400
    config = replay.ReplayConfig(capacity=512, stack=4, horizon=horizon, n_step=n_step,
                                 gamma=GAMMA, batch_size=4)
    env = make_atari('Asterix', 1, 0, training=True)
    agent = rainbow_agent(config, env.num_actions)
    collect, _, first_action = training.make_step_functions(agent)
    carry = training.init_carry(agent, training.seed_keys(0, 1), (84, 84, 1))
    observation, first = env.reset(), np.ones(1, bool)
    carry, actions = first_action(carry, observation, 0)
    stream = {name: [] for name in ('observation', 'action', 'reward', 'terminal', 'truncated',
                                    'valid')}
    for step in range(steps):
        actions = np.asarray(actions)
        timestep = env.step(actions)
        for name, value in (('observation', observation), ('action', actions),
                            ('reward', timestep.reward), ('terminal', timestep.terminal),
                            ('truncated', timestep.truncated), ('valid', timestep.valid)):
            stream[name].append(np.asarray(value)[0])
        entry = training.Entry(observation[..., -1:], actions, timestep.reward, timestep.terminal,
                               timestep.truncated, timestep.valid, first)
        carry, actions, _ = collect(carry, entry, timestep.observation, step + 1)
        observation, first = timestep.observation, timestep.first
    env.close()
    stream = {name: np.asarray(value) for name, value in stream.items()}
    assert stream['terminal'].sum() >= 2 and (~stream['valid']).sum() >= 2
    assert stream['reward'].any()

    buffer = jax.tree.map(lambda x: x[0], carry.replay)
    starts = np.flatnonzero(np.asarray(replay.sampleable_mask(buffer, config)))
    lookahead = max(n_step, horizon)
    np.testing.assert_array_equal(starts, [k for k in range(steps - lookahead)
                                           if stream['valid'][k]])
    batch = replay.gather(buffer, config, jnp.asarray(starts))
    for row, k in enumerate(starts):
        total, discount, m = n_step_reference(k, stream['reward'], stream['terminal'],
                                              stream['truncated'], n_step)
        np.testing.assert_array_equal(batch.observation[row], stream['observation'][k:k + horizon + 1])
        np.testing.assert_array_equal(batch.action[row], stream['action'][k:k + horizon])
        np.testing.assert_array_equal(batch.same_episode[row],
                                      np.cumprod([True] + list(stream['valid'][k:k + horizon])))
        np.testing.assert_allclose(float(batch.returns[row]), total, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(float(batch.discount[row]), discount, rtol=1e-6)
        np.testing.assert_array_equal(batch.next_observation[row], stream['observation'][k + m])


def test_learn_samples_with_the_scheduled_beta_and_writes_the_priorities_back():
    """A stand-in update reads the sampled starts' priorities (stored as their rewards) and the
    exponent beta implied by the importance weights, and returns 1000 + priority."""
    alpha, batch_size, entries = 0.5, 8, 40
    config = replay.ReplayConfig(capacity=64, stack=1, horizon=1, n_step=1, gamma=GAMMA,
                                 batch_size=batch_size, priority_exponent=alpha)

    def update(state, batch, weights, key):
        del key
        priority = batch.reward[:, 0]
        # w_i = (p_i / p_min)^(-alpha beta): beta from the sample of largest priority.
        largest = jnp.argmax(priority)
        beta = -jnp.log(weights[largest]) / (alpha * (jnp.log(priority[largest])
                                                      - jnp.log(jnp.min(priority))))
        metrics = {'loss_rl': beta, 'loss_sim': jnp.zeros(()), 'loss_c': jnp.zeros(())}
        return state, 1000.0 + priority, metrics

    schedule = lambda step: 0.2 + step / 100.0
    agent = rainbow_agent(config, 4, update=update, priority_weight=schedule)
    collect, learn, _ = training.make_step_functions(agent)
    carry = training.init_carry(agent, training.seed_keys(0, 1), (84, 84, 1))
    frame = np.zeros((1, 84, 84, 1), np.uint8)
    observation = np.zeros((1, 84, 84, 4), np.uint8)
    entry = lambda t: training.Entry(frame, np.zeros(1, np.int32), np.full(1, 1.0 + t, np.float32),
                                     np.zeros(1, bool), np.zeros(1, bool), np.ones(1, bool),
                                     np.full(1, t == 0))
    for t in range(entries):
        carry, _, _ = collect(carry, entry(t), observation, t + 1)
    rewards = np.asarray(carry.replay.rewards[0])
    carry = carry.replace(replay=carry.replay.replace(priorities=jnp.array(carry.replay.rewards)))
    carry, _, _ = learn(carry, entry(entries), observation, 37)

    np.testing.assert_allclose(float(carry.metric_sums['loss_rl'][0]), schedule(37), rtol=1e-4)
    priorities = np.asarray(carry.replay.priorities[0])
    written = np.flatnonzero(priorities >= 1000.0)
    assert 1 <= len(written) <= batch_size and np.all(written < entries - 1)
    np.testing.assert_allclose(priorities[written], 1000.0 + rewards[written])
    assert float(carry.replay.max_priority[0]) == priorities.max()


def test_launchers_anneal_beta_from_the_config_start_to_its_end_over_the_run():
    config = atari_configs.get_config('rainbow')
    env = types.SimpleNamespace(num_actions=6, action_dim=None, frame_channels=1,
                                observation_shape=(84, 84, 4))
    loop = training.LoopConfig(env='Pong', seed=0, total_steps=1000, learning_starts=100,
                               eval_episodes=1, eval_every=0, log_every=100, checkpoint_every=0)
    agent = launch.build_agent('atari', config, env, loop)
    start, end = config.replay.priority_weight_start, config.replay.priority_weight_end
    assert (start, end) == (0.4, 1.0)
    for step, beta in ((0, 0.4), (250, 0.55), (1000, 1.0), (2000, 1.0)):
        np.testing.assert_allclose(float(agent.priority_weight(step)), beta, rtol=1e-6)


def test_runs_of_any_length_share_one_compiled_learn_step():
    """The learn step's program does not depend on the run's length: beta (annealed over the run)
    enters it as an argument, so a resumed run with a larger --total_steps, or a short test run,
    finds the program another run compiled (the persistent compilation cache keys on it)."""
    from experiments.configs import minatar as minatar_configs
    config = minatar_configs.get_config('rainbow')
    env = types.SimpleNamespace(num_actions=6, action_dim=None, frame_channels=4,
                                observation_shape=(10, 10, 4), object_channel=1)
    programs, literals = [], []
    for total_steps in (300, 100_000):
        loop = training.LoopConfig(env='breakout', seed=0, total_steps=total_steps,
                                   learning_starts=100, eval_episodes=1, eval_every=0,
                                   log_every=100, checkpoint_every=0)
        agent = launch.build_agent('minatar', config, env, loop)
        _, learn, _ = training.make_step_functions(agent)
        carry = jax.eval_shape(lambda: training.init_carry(agent, training.seed_keys(0, 2),
                                                           (10, 10, 4)))
        entry = training.Entry(*(jax.ShapeDtypeStruct((2, *shape), dtype) for shape, dtype in (
            ((10, 10, 4), jnp.uint8), ((), jnp.int32), ((), jnp.float32), ((), bool), ((), bool),
            ((), bool), ((), bool))))
        observation = jax.ShapeDtypeStruct((2, 10, 10, 4), jnp.uint8)
        outer = jax.make_jaxpr(lambda c, e, o: learn(c, e, o, 200))(carry, entry, observation)
        (call,) = outer.jaxpr.eqns                      # the one jitted learn program
        programs.append(str(call.params['jaxpr']))
        literals.append([float(v.val) for v in call.invars if hasattr(v, 'val')])  # literals
    assert programs[0] == programs[1]
    # ... and beta, which does differ at step 200 of the two runs, is passed to it.
    np.testing.assert_allclose(literals, [[200, 0.8], [200, 0.4012]], rtol=1e-6)


def test_the_update_is_traced_once_for_the_metrics_and_the_learn_step():
    """init_carry traces the update for its metrics' shapes; the learn step, vmapped or looped over
    the seeds, reuses that trace instead of tracing the update, the dearest part, again."""
    config = replay.ReplayConfig(capacity=64, stack=4, horizon=1, n_step=3, gamma=GAMMA,
                                 batch_size=4, priority_exponent=0.5)
    frame = np.zeros((2, 84, 84, 1), np.uint8)
    observation = np.zeros((2, 84, 84, 4), np.uint8)
    entry = training.Entry(frame, np.zeros(2, np.int32), np.ones(2, np.float32), np.zeros(2, bool),
                           np.zeros(2, bool), np.ones(2, bool), np.zeros(2, bool))
    for seed_loop in (False, True):
        traces = []
        agent = rainbow_agent(config, 4, seed_loop=seed_loop)
        update = agent.update
        agent = rainbow_agent(config, 4, seed_loop=seed_loop,
                              update=lambda *a: traces.append(1) or update(*a))
        carry = training.init_carry(agent, training.seed_keys(0, 2), (84, 84, 1))
        assert len(traces) == 1
        _, learn, _ = training.make_step_functions(agent)
        carry, _, finite = jax.eval_shape(learn, carry, entry, observation, 10)   # traced, not run
        assert len(traces) == 1, seed_loop
        assert finite.shape == (2,) and carry.metric_sums['loss_rl'].shape == (2,)
