"""--num_seeds: N agents vmapped through one jitted step equal N separate runs, also when the seed
axis is sharded over devices (CPU devices faked with XLA_FLAGS in a subprocess)."""
import functools
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np

from psrl_jax import psrl, replay, training
from psrl_jax.agents import rainbow
from psrl_jax.envs.atari import make_atari

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS, LEARNING_STARTS = 24, 18


def tiny_agent(seed_loop=False):
    """Rainbow on Pong's 6 actions with a small replay: cheap to compile, same loop as any preset.
    seed_loop: the seeds' updates one by one (training.over_seeds), else vmapped."""
    objective = psrl.PSRLConfig(num_actions=6, correspondence=False, cat=False, aat=False,
                                internal=False, l1=False)
    config = rainbow.RainbowConfig(psrl=objective, hidden=16, epsilon_decay_steps=LEARNING_STARTS)
    bind = lambda fn: (lambda *a: fn(*a, config=config))
    return training.Agent(
        name='rainbow', init=lambda key: rainbow.init(key, config, (84, 84, 4)),
        act=bind(rainbow.act), evaluate_act=bind(rainbow.evaluate_act),
        update=bind(rainbow.update),
        replay=replay.ReplayConfig(capacity=64, stack=4, horizon=1, n_step=3, gamma=0.99,
                                   batch_size=4, priority_exponent=0.5),
        action_shape=(), action_dtype=np.int32, updates_per_step=2,
        priority_weight=lambda step: 0.4, seed_loop=seed_loop)


AGENT = tiny_agent()
STEP_FUNCTIONS = training.make_step_functions(AGENT)   # compiled once per number of seeds


def drive(seed, num_seeds, place=lambda tree: tree, step_functions=STEP_FUNCTIONS):
    """The first STEPS agent steps of training.train's loop; returns the final carry."""
    env = make_atari('Pong', num_seeds, seed, training=True)
    collect, learn, first_action = step_functions
    carry = place(training.init_carry(AGENT, training.seed_keys(seed, num_seeds), (84, 84, 1)))
    observation, first = env.reset(), np.ones(num_seeds, bool)
    carry, actions = first_action(carry, place(observation), 0)
    actions = np.asarray(actions)
    for step in range(STEPS):
        timestep = env.step(actions)
        entry = training.Entry(observation[..., -1:], actions, timestep.reward, timestep.terminal,
                               timestep.truncated, timestep.valid, first)
        fn = learn if step >= LEARNING_STARTS else collect
        carry, actions, finite = fn(carry, place(entry), place(timestep.observation), step + 1)
        actions = np.asarray(actions)
        assert np.asarray(finite).all()
        observation, first = timestep.observation, timestep.first
    env.close()
    return carry


@functools.lru_cache(maxsize=None)
def separate_run(seed):
    """drive(seed, 1): one seed's run on its own, computed once per process for every test."""
    return drive(seed, num_seeds=1)


def assert_same_agents(batched, singles):
    """Seed k of the group saw exactly the separate run's data and learned the same parameters
    (up to float reassociation in batched kernels, which Adam's normalisation amplifies near 0)."""
    for k, single in enumerate(singles):
        for field in ('frames', 'actions', 'rewards', 'terminals', 'valids', 'firsts'):
            np.testing.assert_array_equal(np.asarray(getattr(batched.replay, field)[k]),
                                          np.asarray(getattr(single.replay, field)[0]))
        mine = jax.tree.map(lambda x: np.asarray(x[k]), batched.agent.params)
        theirs = jax.tree.map(lambda x: np.asarray(x[0]), single.agent.params)
        for a, b in zip(jax.tree.leaves(mine), jax.tree.leaves(theirs)):
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
    assert int(batched.agent.updates[0]) == 2 * (STEPS - LEARNING_STARTS)


def test_vmapped_seeds_equal_separate_runs():
    batched = drive(seed=3, num_seeds=2)
    singles = [separate_run(3), separate_run(4)]
    assert_same_agents(batched, singles)
    # The two seeds really differ (different keys and environments).
    a, b = (jax.tree.leaves(jax.tree.map(lambda x: np.asarray(x[k]), batched.agent.params))
            for k in (0, 1))
    assert not all(np.allclose(x, y) for x, y in zip(a, b))


def test_seeds_looped_on_the_cpu_equal_separate_runs():
    """seed_loop=True: each seed's update traced on its own (training.over_seeds), same results."""
    looped = drive(seed=3, num_seeds=2,
                   step_functions=training.make_step_functions(tiny_agent(seed_loop=True)))
    assert_same_agents(looped, [separate_run(3), separate_run(4)])


def test_seed_axis_sharded_over_two_cpu_devices():
    script = textwrap.dedent('''
        import jax, numpy as np, sys
        sys.path.insert(0, 'tests')
        import test_seeds as T
        from psrl_jax import training
        assert jax.local_device_count() == 2
        sharding = training.seed_sharding(2)
        assert sharding is not None and len(sharding.device_set) == 2
        place = lambda tree: jax.device_put(tree, sharding)
        sharded = T.drive(seed=3, num_seeds=2, place=place)
        leaf = jax.tree.leaves(sharded.agent.params)[0]
        assert len(leaf.sharding.device_set) == 2, leaf.sharding
        assert training.seed_sharding(3) is None  # 3 seeds do not split over 2 devices
        T.assert_same_agents(sharded, [T.separate_run(3), T.separate_run(4)])
        print('sharded ok')
    ''')
    env = dict(os.environ, XLA_FLAGS=f'{os.environ.get("XLA_FLAGS", "")} '
                                     '--xla_force_host_platform_device_count=2'.strip())
    result = subprocess.run([sys.executable, '-c', script], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and 'sharded ok' in result.stdout, result.stderr[-3000:]
