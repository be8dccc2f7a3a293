"""Tests for psrl_jax.envs.dmc: pixel DMControl with action repeat, frame stack and auto-reset,
checked against raw dm_control envs stepped by hand."""

import os
import subprocess
import sys
import types

os.environ.setdefault('MUJOCO_GL', 'egl')

import dm_env  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
import pytest  # pylint: disable=wrong-import-position
from dm_control import suite  # pylint: disable=wrong-import-position
from dm_control.mujoco import engine  # pylint: disable=wrong-import-position

from psrl_jax.envs import dmc  # pylint: disable=wrong-import-position
from psrl_jax.envs.dmc import make_dmc  # pylint: disable=wrong-import-position
from psrl_jax.errors import UsageError  # pylint: disable=wrong-import-position

SEED = 3
REPEAT = 8  # cartpole
STEPS = 128  # one 125-step episode, its pseudo-step, and two steps of the next episode
# Observations compared with raw renders (index t: after step t - 1; 0: after reset). Rendering
# costs ~20 ms on a loaded CPU, so the raw envs render only these.
CHECKED = (0, 1, 2, 3, 64, 124, 125, 126, 127, 128)


def render(env):
    return env.physics.render(height=84, width=84, camera_id=0)


@pytest.fixture(scope='module')
def rollout():
    """One cartpole-swingup run of the wrapper (2 envs) and of raw dm_control envs by hand."""
    actions = np.random.default_rng(0).uniform(-1, 1, (STEPS, 2, 1))
    env = make_dmc('cartpole-swingup', 2, SEED)
    renders = [0, 0]
    for i, sub in enumerate(env._envs):  # pylint: disable=protected-access
        original = sub.physics.render

        def counted(*args, i=i, original=original, **kwargs):
            renders[i] += 1
            return original(*args, **kwargs)

        sub.physics.render = counted
    first_obs = env.reset()
    steps = [env.step(a) for a in actions]
    ts = type(steps[0])(*[np.stack(f) for f in zip(*steps)])
    attributes = (env.observation_shape, env.action_dim, env.action_repeat, env.frame_channels,
                  env.num_actions)
    env.close()

    # Raw envs with the same seeds: sum rewards over 8 repeats and render after the last.
    raw_rewards = np.zeros((STEPS, 2))
    raw_frames = np.zeros((len(CHECKED), 2, 84, 84, 3), np.uint8)
    raw_last = np.zeros((STEPS, 2), bool)
    for i in range(2):
        raw = suite.load('cartpole', 'swingup', task_kwargs={'random': SEED + i})
        raw.reset()
        raw_frames[0, i] = render(raw)
        checked = 1
        ended = False
        for t in range(STEPS):
            if ended:  # the pseudo-step: a new episode, the action is ignored
                raw.reset()
                ended = False
            else:
                for _ in range(REPEAT):
                    time_step = raw.step(actions[t, i])
                    raw_rewards[t, i] += time_step.reward
                ended = raw_last[t, i] = time_step.last()
            if t + 1 in CHECKED:
                raw_frames[checked, i] = render(raw)
                checked += 1
        raw.physics.free()
    return types.SimpleNamespace(first_obs=first_obs, ts=ts, attributes=attributes,
                                 renders=renders, raw_rewards=raw_rewards,
                                 raw_frames=raw_frames, raw_last=raw_last)


def test_pixels_shape_dtype_and_attributes(rollout):
    assert rollout.first_obs.shape == (2, 84, 84, 9) and rollout.first_obs.dtype == np.uint8
    assert rollout.ts.observation.shape == (STEPS, 2, 84, 84, 9)
    assert rollout.ts.observation.dtype == np.uint8
    assert rollout.attributes == ((84, 84, 9), 1, REPEAT, 3, None)
    assert rollout.ts.reward.dtype == np.float32 and rollout.ts.game_length.dtype == np.int32


def test_action_repeat_sums_rewards_like_raw_dm_control(rollout):
    np.testing.assert_allclose(rollout.ts.reward, rollout.raw_rewards, rtol=1e-6, atol=1e-6)
    assert np.all(rollout.raw_rewards[rollout.ts.valid] > 0)  # swingup pays every step


def test_newest_frame_is_rendered_after_the_last_repeat(rollout):
    obs = np.concatenate([rollout.first_obs[None], rollout.ts.observation])
    np.testing.assert_array_equal(obs[list(CHECKED), ..., 6:], rollout.raw_frames)
    # Rendered once per agent step: the construction check (env 0), reset, then each step.
    assert rollout.renders == [1 + STEPS, 1 + STEPS]


def test_episode_is_1000_env_steps_then_a_pseudo_step(rollout):
    ts = rollout.ts
    episode = 1000 // REPEAT
    for i in range(2):
        np.testing.assert_array_equal(np.flatnonzero(ts.truncated[:, i]), [episode - 1])
        np.testing.assert_array_equal(np.flatnonzero(rollout.raw_last[:, i]), [episode - 1])
        np.testing.assert_array_equal(np.flatnonzero(ts.game_over[:, i]), [episode - 1])
        np.testing.assert_array_equal(np.flatnonzero(~ts.valid[:, i]), [episode])
        np.testing.assert_array_equal(np.flatnonzero(ts.first[:, i]), [episode])
    assert not ts.terminal.any()
    np.testing.assert_array_equal(ts.game_length[episode - 1], [episode, episode])
    np.testing.assert_allclose(ts.game_return[episode - 1],
                               rollout.raw_rewards[:episode].sum(0), rtol=1e-5)
    assert np.all(ts.game_return[ts.game_over == 0] == 0)
    assert np.all(ts.game_length[ts.game_over == 0] == 0)
    # The pseudo-step ignores its action, pays 0 and shows the next episode's first frame.
    pseudo = ts.observation[episode]
    assert np.all(ts.reward[episode] == 0)
    for k in range(3):
        np.testing.assert_array_equal(pseudo[..., 3 * k:3 * k + 3],
                                      rollout.raw_frames[CHECKED.index(episode + 1)])


def test_frame_stack_repeats_the_first_frame_then_shifts(rollout):
    obs = np.concatenate([rollout.first_obs[None], rollout.ts.observation])
    for k in (1, 2):
        np.testing.assert_array_equal(obs[0, ..., 3 * k:3 * k + 3], obs[0, ..., :3])
    for t in range(1, STEPS + 1):
        if rollout.ts.first[t - 1].any():
            continue
        np.testing.assert_array_equal(obs[t, ..., :6], obs[t - 1, ..., 3:])
    assert not np.array_equal(obs[5, ..., 6:], obs[5, ..., :3])  # the cart does move


def test_default_and_overridden_action_repeat():
    assert [dmc.default_action_repeat(name) for name in (
        'finger-spin', 'cartpole-swingup', 'reacher-easy', 'cheetah-run', 'walker-walk',
        'ball_in_cup-catch', 'hopper-hop')] == [2, 8, 4, 4, 2, 4, 2]
    action = np.array([[0.5]])
    with make_dmc('cartpole-swingup', 1, 9, action_repeat=3) as env:
        assert env.action_repeat == 3
        env.reset()
        reward = env.step(action).reward[0]
    raw = suite.load('cartpole', 'swingup', task_kwargs={'random': 9})
    raw.reset()
    expected = sum(raw.step(action[0]).reward for _ in range(3))
    raw.physics.free()
    np.testing.assert_allclose(reward, expected, rtol=1e-6)


class FakeEnv:
    """A dm_control stand-in: action bounds [0, 2], ends with discount 0 after 5 env steps."""

    def __init__(self):
        self.physics = types.SimpleNamespace(render=self.render, free=lambda: None)
        self.t = 0
        self.cameras = set()
        self.actions = []

    def render(self, height, width, camera_id):
        self.cameras.add(camera_id)
        return np.full((height, width, 3), self.t, np.uint8)

    def action_spec(self):
        return types.SimpleNamespace(shape=(1,), minimum=np.zeros(1), maximum=np.full(1, 2.0))

    def reset(self):
        self.t = 0
        return dm_env.restart(None)

    def step(self, action):
        self.t += 1
        self.actions.append(float(action[0]))
        return dm_env.termination(1.0, None) if self.t == 5 else dm_env.transition(1.0, None)

    def close(self):
        pass


def test_discount_zero_ends_as_terminal_mid_repeat():
    fake = FakeEnv()
    fake_suite = types.SimpleNamespace(load=lambda domain, task, task_kwargs: fake)
    env = dmc.DMCEnv(fake_suite, 'fake-task', 1, 0, action_repeat=4, image_size=8, frame_stack=3)
    assert env.action_dim == 1
    env.reset()
    first = env.step(np.array([[-1.0]]))
    second = env.step(np.array([[1.0]]))
    pseudo = env.step(np.array([[0.0]]))
    assert fake.actions == [0.0] * 4 + [2.0]  # [-1, 1] mapped to [0, 2]; the repeat stops
    assert first.reward[0] == 4 and second.reward[0] == 1 and pseudo.reward[0] == 0
    assert second.terminal[0] and not second.truncated[0] and second.game_over[0]
    assert second.game_return[0] == 5 and second.game_length[0] == 2
    assert not pseudo.valid[0] and pseudo.first[0] and np.all(pseudo.observation == 0)
    np.testing.assert_array_equal(second.observation[0, 0, 0], [0] * 3 + [4] * 3 + [5] * 3)
    env.close()


@pytest.mark.parametrize('name, camera', [('quadruped-walk', 2), ('walker-walk', 0)])
def test_camera_is_2_for_quadruped_else_0(name, camera):
    fake = FakeEnv()
    fake_suite = types.SimpleNamespace(load=lambda domain, task, task_kwargs: fake)
    with dmc.DMCEnv(fake_suite, name, 1, 0, action_repeat=2, image_size=8, frame_stack=3) as env:
        env.reset()
        env.step(np.zeros((1, 1)))
    assert fake.cameras == {camera}


def test_unknown_task_is_a_usage_error():
    for name in ('cartpole-foo', 'cartpole', 'nodomain-swingup'):
        with pytest.raises(UsageError) as err:
            make_dmc(name, 1, 0)
        message = str(err.value)
        assert '\n' not in message and 'cartpole-swingup' in message and 'walker-walk' in message
    with pytest.raises(UsageError):
        make_dmc('cartpole-swingup', 0, 0)
    with pytest.raises(UsageError):
        make_dmc('cartpole-swingup', 1, 0, action_repeat=0)


def test_missing_gl_is_a_usage_error(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError('OpenGL platform library has not been loaded\nmore detail')

    monkeypatch.setattr(engine.Physics, 'render', broken)
    with pytest.raises(UsageError) as err:
        make_dmc('cartpole-swingup', 2, 0)
    message = str(err.value)
    assert '\n' not in message and 'OpenGL platform library' in message
    assert 'libosmesa6 libgl1-mesa-dri libegl-mesa0 libgl1' in message
    assert 'MUJOCO_GL=egl' in message and 'PYOPENGL_PLATFORM=osmesa' in message


def test_close_frees_osmesa_contexts_without_atexit_errors():
    script = ('import numpy as np\n'
              'from psrl_jax.envs.dmc import make_dmc\n'
              'env = make_dmc("cartpole-swingup", 2, 0)\n'
              'held = list(env._envs)  # still referenced at exit: close() must free them\n'
              'env.reset(); env.step(np.zeros((2, 1))); env.close()\n'
              'print("closed")\n')
    environ = dict(os.environ, MUJOCO_GL='osmesa', PYOPENGL_PLATFORM='osmesa')
    result = subprocess.run([sys.executable, '-c', script], env=environ, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0 and 'closed' in result.stdout, result.stderr
    assert 'Traceback' not in result.stderr and 'Error' not in result.stderr, result.stderr
