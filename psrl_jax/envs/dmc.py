"""DMControl from pixels on dm_control, batched, with envpool's auto-reset semantics.

`make_dmc("cartpole-swingup", num_envs, seed)` steps `num_envs` independent dm_control suite
envs (seeded seed + i) in a loop, under the PlaNet/DrQ benchmark protocol: per-task action
repeat with rewards summed over the repeat, 84x84 RGB from camera 0 (2 for quadruped) rendered
once per agent step after the last repeat, 3 frames stacked on the channel axis (the first
frame of an episode repeated), time limits as truncation and discount-0 episode ends as
terminal. The step after an episode end is a pseudo-step: the action is ignored, the reward is
0, valid=False and the observation is the next episode's first (first=True).

Rendering is headless: MUJOCO_GL is respected when set, otherwise it defaults to egl.
"""

import os

import numpy as np

from psrl_jax.envs.base import (Env, GameStatistics, TimeStep, check_continuous_action,
                                check_positive_int, check_seed)
from psrl_jax.errors import UsageError

# Action repeat per domain (PlaNet benchmark, as used by CURL/DrQ); other domains use 2.
ACTION_REPEAT = {
    'finger': 2, 'cartpole': 8, 'reacher': 4, 'cheetah': 4, 'walker': 2, 'ball_in_cup': 4,
}
DEFAULT_ACTION_REPEAT = 2
FRAME_CHANNELS = 3

_GL_HINT = ('install the Debian packages libosmesa6 libgl1-mesa-dri libegl-mesa0 libgl1 and set '
            'MUJOCO_GL=egl (or MUJOCO_GL=osmesa with PYOPENGL_PLATFORM=osmesa)')


def _gl_error(err: BaseException) -> UsageError:
    """One-line UsageError for a MuJoCo rendering backend that does not load."""
    lines = str(err).strip().splitlines() or ['']
    backend = os.environ.get('MUJOCO_GL')
    return UsageError(f'MuJoCo cannot render headless (MUJOCO_GL={backend}, '
                      f'{type(err).__name__}: {lines[0]}): {_GL_HINT}')


def _suite():
    """Imports dm_control.suite with MUJOCO_GL defaulting to egl."""
    os.environ.setdefault('MUJOCO_GL', 'egl')
    try:
        from dm_control import suite  # pylint: disable=import-outside-toplevel
    except ModuleNotFoundError as err:
        if (err.name or '').split('.')[0] in ('dm_control', 'mujoco'):
            raise UsageError(f'{err.name} is not installed: pip install dm_control '
                             'mujoco==3.17.0') from None
        raise _gl_error(err) from None
    except (ImportError, RuntimeError, OSError) as err:
        raise _gl_error(err) from None
    return suite


def dmc_tasks() -> tuple:
    """All dm_control suite tasks as "<domain>-<task>" names, sorted."""
    return tuple(sorted(f'{d}-{t}' for d, t in _suite().ALL_TASKS))


def default_action_repeat(env: str) -> int:
    """PlaNet action repeat for "<domain>-<task>" (2 for domains outside the benchmark)."""
    return ACTION_REPEAT.get(env.split('-', 1)[0], DEFAULT_ACTION_REPEAT)


def make_dmc(env: str, num_envs: int, seed: int, action_repeat: int | None = None,
             image_size: int = 84, frame_stack: int = 3) -> 'DMCEnv':
    """Builds `num_envs` pixel dm_control envs for the task "<domain>-<task>".

    Args:
        env: task name such as "cartpole-swingup" (any dm_control.suite task).
        num_envs: number of envs N, seeded seed + i.
        seed: base seed.
        action_repeat: env steps per agent step; None takes the PlaNet value of the domain.
        image_size: rendered height and width.
        frame_stack: frames stacked on the channel axis.

    Returns:
        A DMCEnv with observations uint8 [N, image_size, image_size, 3 * frame_stack].
    """
    num_envs = check_positive_int('num_envs', num_envs)
    image_size = check_positive_int('image_size', image_size)
    frame_stack = check_positive_int('frame_stack', frame_stack)
    seed = check_seed(seed)
    suite = _suite()
    names = sorted(f'{d}-{t}' for d, t in suite.ALL_TASKS)
    if not isinstance(env, str) or env not in names:
        raise UsageError(f'unknown DMControl task {env!r}: use one of {", ".join(names)}')
    if action_repeat is None:
        action_repeat = default_action_repeat(env)
    action_repeat = check_positive_int('action_repeat', action_repeat)
    return DMCEnv(suite, env, num_envs, seed, action_repeat, image_size, frame_stack)


class DMCEnv(Env):
    """A batch of pixel dm_control envs (see the module docstring for the protocol)."""

    frame_channels = FRAME_CHANNELS
    num_actions = None

    def __init__(self, suite, env: str, num_envs: int, seed: int, action_repeat: int,
                 image_size: int, frame_stack: int):
        self.env = env
        self.num_envs = num_envs
        self.seed = seed
        self.action_repeat = action_repeat
        self.image_size = image_size
        self.frame_stack = frame_stack
        self.observation_shape = (image_size, image_size, FRAME_CHANNELS * frame_stack)
        domain, task = env.split('-', 1)
        self._camera = 2 if domain == 'quadruped' else 0
        self._envs = []
        try:
            for i in range(num_envs):
                self._envs.append(suite.load(domain, task, task_kwargs={'random': seed + i}))
            try:  # Fail early, with advice, when no OpenGL backend works.
                self._render(0)
            except Exception as err:  # pylint: disable=broad-except
                raise _gl_error(err) from None
        except BaseException:
            try:
                self.close()
            except Exception:  # pylint: disable=broad-except
                pass  # Keep the original error.
            raise
        spec = self._envs[0].action_spec()
        self.action_dim = int(np.prod(spec.shape))
        self._low = np.broadcast_to(np.asarray(spec.minimum, np.float64), spec.shape)
        self._high = np.broadcast_to(np.asarray(spec.maximum, np.float64), spec.shape)
        self._stack = np.zeros((num_envs,) + self.observation_shape, np.uint8)
        self._stats = GameStatistics(num_envs)
        self._pending = np.zeros(num_envs, bool)
        self._started = False

    def _render(self, i: int) -> np.ndarray:
        """uint8 [H, W, 3] frame of env i."""
        return self._envs[i].physics.render(
            height=self.image_size, width=self.image_size, camera_id=self._camera)

    def _restart_stack(self, i: int) -> None:
        """Fills env i's stack with its current frame repeated."""
        self._stack[i] = np.tile(self._render(i), (1, 1, self.frame_stack))

    def _push_frame(self, i: int) -> None:
        """Drops env i's oldest frame and appends its current one."""
        c = FRAME_CHANNELS
        self._stack[i, ..., :-c] = self._stack[i, ..., c:]
        self._stack[i, ..., -c:] = self._render(i)

    def reset(self) -> np.ndarray:
        """Starts a new episode in every env; returns uint8 [N, S, S, 3 * stack]."""
        for i, env in enumerate(self._envs):
            env.reset()
            self._restart_stack(i)
        self._pending[:] = False
        self._stats.reset()
        self._started = True
        return self._stack.copy()

    def step(self, action: np.ndarray) -> TimeStep:
        """One agent step (action_repeat env steps) per env; action float [N, action_dim] in
        [-1, 1] (clipped), mapped affinely onto the task's action bounds."""
        if not self._started:
            raise RuntimeError('call reset() before step()')
        action = check_continuous_action(action, self.num_envs, self.action_dim)
        action = self._low + (action + 1.0) * 0.5 * (self._high - self._low)
        n = self.num_envs
        reward = np.zeros(n, np.float64)
        terminal = np.zeros(n, bool)
        truncated = np.zeros(n, bool)
        valid = ~self._pending
        for i, env in enumerate(self._envs):
            if not valid[i]:  # envpool-style pseudo-step: ignore the action, start anew.
                env.reset()
                self._restart_stack(i)
                continue
            for _ in range(self.action_repeat):
                time_step = env.step(action[i].reshape(self._low.shape))
                reward[i] += time_step.reward or 0.0
                if time_step.last():
                    terminal[i] = time_step.discount == 0.0
                    truncated[i] = not terminal[i]
                    break
            self._push_frame(i)
        game_over = terminal | truncated
        game_return, game_length = self._stats.update(reward, valid, game_over)
        self._pending = game_over.copy()
        return TimeStep(
            observation=self._stack.copy(), reward=reward.astype(np.float32),
            terminal=terminal, truncated=truncated, valid=valid, first=~valid,
            game_over=game_over, game_return=game_return, game_length=game_length)

    def close(self) -> None:
        """Frees every physics and its rendering contexts (avoids osmesa atexit errors)."""
        for env in self._envs:
            env.physics.free()
            env.close()
        self._envs = []
