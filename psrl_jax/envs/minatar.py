"""MinAtar (Young & Tian 2019) games, batched, behind the Atari/DMControl interface.

`make_minatar("breakout", num_envs, seed)` steps `num_envs` games of the `minatar` package in a loop
with MinAtar's own defaults, as Revisiting Rainbow (Obando-Ceron & Castro 2021) runs them: sticky
actions with probability 0.1, difficulty ramping, all 6 actions, no frame stacking (the state's
trail channels carry the motion). An observation is the 10x10xN binary state as uint8 0/255 (N: 4
asterix and breakout, 7 freeway, 10 seaquest, 6 space_invaders); rewards are raw game points. A
game ends as MinAtar says (terminal; freeway's 2,500-step clock included) or, against endless games,
after `max_episode_steps` agent steps (truncated). The step after an end is envpool's pseudo-step:
action ignored, reward 0, valid=False, the next game's first observation (first=True).
"""
import numpy as np

from psrl_jax.envs.base import (Env, GameStatistics, TimeStep, check_discrete_action,
                                check_positive_int, check_seed)
from psrl_jax.errors import UsageError

MINATAR_GAMES = ('asterix', 'breakout', 'freeway', 'seaquest', 'space_invaders')
MAX_EPISODE_STEPS = 10_000
STICKY_ACTION_PROB = 0.1
NUM_ACTIONS = 6
# The channel of each game that holds one object, whose move C's flow is checked against
# (diagnostics.object_flow_errors): breakout's ball, the player's cell elsewhere.
OBJECT_CHANNELS = {'asterix': 0, 'breakout': 1, 'freeway': 0, 'seaquest': 0, 'space_invaders': 0}


def _minatar():
    try:
        import minatar  # pylint: disable=import-outside-toplevel
    except ImportError as err:
        raise UsageError(f'minatar is not importable ({err}): pip install minatar==1.0.15') from None
    return minatar


def make_minatar(game: str, num_envs: int, seed: int,
                 max_episode_steps: int = MAX_EPISODE_STEPS) -> 'MinAtarEnv':
    """Builds `num_envs` MinAtar games, env i seeded with seed + i.

    Returns a MinAtarEnv with observations uint8 [N, 10, 10, channels] in {0, 255}.
    """
    if game not in MINATAR_GAMES:
        raise UsageError(f'unknown MinAtar game {game!r}: use one of {", ".join(MINATAR_GAMES)}')
    num_envs = check_positive_int('num_envs', num_envs)
    max_episode_steps = check_positive_int('max_episode_steps', max_episode_steps)
    return MinAtarEnv(game, num_envs, check_seed(seed), max_episode_steps)


class MinAtarEnv(Env):
    """A batch of MinAtar games (see the module docstring for the protocol)."""

    action_repeat = 1
    num_actions = NUM_ACTIONS
    action_dim = None

    def __init__(self, game: str, num_envs: int, seed: int, max_episode_steps: int):
        minatar = _minatar()
        self.game = game
        self.num_envs = num_envs
        self.seed = seed
        self.max_episode_steps = max_episode_steps
        self._games = []
        for i in range(num_envs):
            env = minatar.Environment(game, sticky_action_prob=STICKY_ACTION_PROB,
                                      difficulty_ramping=True)
            env.seed(seed + i)
            self._games.append(env)
        self.frame_channels = int(self._games[0].state_shape()[2])
        self.object_channel = OBJECT_CHANNELS[game]
        self.observation_shape = tuple(self._games[0].state_shape())
        self._stats = GameStatistics(num_envs)
        self._pending = np.zeros(num_envs, bool)
        self._length = np.zeros(num_envs, np.int64)
        self._started = False

    def _observe(self) -> np.ndarray:
        return np.stack([g.state() for g in self._games]).astype(np.uint8) * np.uint8(255)

    def reset(self) -> np.ndarray:
        """Starts a new game in every env; returns uint8 [N, 10, 10, channels]."""
        for game in self._games:
            game.reset()
        self._pending[:] = False
        self._length[:] = 0
        self._stats.reset()
        self._started = True
        return self._observe()

    def step(self, action: np.ndarray) -> TimeStep:
        """Steps every game once; action int [N] in [0, 6)."""
        if not self._started:
            raise RuntimeError('call reset() before step()')
        action = check_discrete_action(action, self.num_envs, self.num_actions)
        n = self.num_envs
        reward = np.zeros(n, np.float32)
        terminal = np.zeros(n, bool)
        valid = ~self._pending
        for i, game in enumerate(self._games):
            if not valid[i]:   # pseudo-step: ignore the action, start the next game
                game.reset()
                self._length[i] = 0
                continue
            reward[i], terminal[i] = game.act(int(action[i]))
            self._length[i] += 1
        truncated = valid & ~terminal & (self._length >= self.max_episode_steps)
        game_over = terminal | truncated
        game_return, game_length = self._stats.update(reward, valid, game_over)
        self._pending = game_over.copy()
        return TimeStep(
            observation=self._observe(), reward=reward, terminal=terminal, truncated=truncated,
            valid=valid, first=~valid, game_over=game_over, game_return=game_return,
            game_length=game_length)

    def close(self) -> None:
        self._games = []
