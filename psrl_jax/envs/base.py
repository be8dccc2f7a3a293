"""The batched environment interface shared by the Atari and DMControl wrappers.

Every environment steps `num_envs` games in lock step and returns numpy arrays with a leading
axis of size `num_envs`. Auto-reset follows envpool: the step after an episode end (terminal or
truncated) is a pseudo-step that ignores the action and returns reward 0, `valid=False` and the
first observation of the next episode.
"""

import abc
from typing import NamedTuple

import numpy as np

from psrl_jax.errors import UsageError


class TimeStep(NamedTuple):
    """One batched step; every field has leading axis N = num_envs.

    observation: uint8 [N, H, W, stack * c], oldest frame first on the channel axis.
    reward: float32 [N], sign-clipped in Atari training envs, raw otherwise.
    terminal: bool [N], the episode ended in a terminal state (no bootstrap); an Atari life loss
        counts in training.
    truncated: bool [N], the episode was cut by a time limit (bootstrap through it).
    valid: bool [N], False iff this is the auto-reset pseudo-step after an episode end.
    first: bool [N], the observation's frame stack was restarted (first frame repeated).
    game_over: bool [N], a whole game ended on this step (all lives lost, or time limit).
    game_return: float32 [N], raw return of the game that ended (all lives); 0 elsewhere.
    game_length: int32 [N], agent steps of the game that ended; 0 elsewhere.
    """

    observation: np.ndarray
    reward: np.ndarray
    terminal: np.ndarray
    truncated: np.ndarray
    valid: np.ndarray
    first: np.ndarray
    game_over: np.ndarray
    game_return: np.ndarray
    game_length: np.ndarray


class Env(abc.ABC):
    """A batch of `num_envs` environments behind one interface.

    Attributes:
        num_envs: number of environments N.
        observation_shape: (H, W, stack * frame_channels) of one observation.
        frame_channels: channels per frame (1 for Atari gray, 3 for DMC RGB).
        action_repeat: environment steps per agent step (1 for Atari agent steps).
        num_actions: number of discrete actions, or None for continuous control.
        action_dim: size of a continuous action in [-1, 1], or None for discrete control.
    """

    num_envs: int
    observation_shape: tuple
    frame_channels: int
    action_repeat: int
    num_actions: int | None = None
    action_dim: int | None = None

    @abc.abstractmethod
    def reset(self) -> np.ndarray:
        """Starts new episodes everywhere; returns uint8 [N, *observation_shape], first=True."""

    @abc.abstractmethod
    def step(self, action: np.ndarray) -> TimeStep:
        """Steps every env: action int32 [N] (discrete) or float32 [N, action_dim]."""

    @abc.abstractmethod
    def close(self) -> None:
        """Releases the simulators; the env must not be used afterwards."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class GameStatistics:
    """Running raw return and agent-step count of the game in progress in each env."""

    def __init__(self, num_envs: int):
        self._return = np.zeros(num_envs, np.float64)
        self._length = np.zeros(num_envs, np.int64)

    def reset(self) -> None:
        """Forgets every game in progress."""
        self._return[:] = 0.0
        self._length[:] = 0

    def update(self, raw_reward: np.ndarray, counted: np.ndarray, game_over: np.ndarray):
        """Adds one step and reports finished games.

        Args:
            raw_reward: float [N] unclipped reward of this step.
            counted: bool [N], this step is an agent step of the current game (valid).
            game_over: bool [N], the game ended with this step.

        Returns:
            (game_return float32 [N], game_length int32 [N]), zero where game_over is False.
        """
        self._return += np.where(counted, raw_reward, 0.0)
        self._length += counted.astype(np.int64)
        game_return = np.where(game_over, self._return, 0.0).astype(np.float32)
        game_length = np.where(game_over, self._length, 0).astype(np.int32)
        self._return[game_over] = 0.0
        self._length[game_over] = 0
        return game_return, game_length


def check_discrete_action(action, num_envs: int, num_actions: int) -> np.ndarray:
    """Validates a batch of discrete actions; returns int32 [N]."""
    action = np.asarray(action)
    if action.shape != (num_envs,):
        raise ValueError(f'expected actions of shape ({num_envs},), got {action.shape}')
    if not np.issubdtype(action.dtype, np.integer):
        raise ValueError(f'expected integer actions, got dtype {action.dtype}')
    if action.size and (action.min() < 0 or action.max() >= num_actions):
        raise ValueError(f'actions must lie in [0, {num_actions}), got {action}')
    return action.astype(np.int32)


def check_continuous_action(action, num_envs: int, action_dim: int) -> np.ndarray:
    """Validates a batch of continuous actions; returns float64 [N, action_dim] clipped to
    [-1, 1] (non-finite values raise)."""
    action = np.asarray(action, dtype=np.float64)
    if action.shape != (num_envs, action_dim):
        raise ValueError(f'expected actions of shape ({num_envs}, {action_dim}), '
                         f'got {action.shape}')
    if not np.all(np.isfinite(action)):
        raise ValueError('actions must be finite')
    return np.clip(action, -1.0, 1.0)


def check_positive_int(name: str, value) -> int:
    """Returns value as int, or raises UsageError unless it is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise UsageError(f'{name} must be a positive integer, got {value!r}')
    return int(value)


def check_seed(seed) -> int:
    """Returns seed as int, or raises UsageError unless it is an integer >= 0."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UsageError(f'seed must be a non-negative integer, got {seed!r}')
    return int(seed)
