"""Atari 100k environments on envpool.

`make_atari(game, num_envs, seed, training)` gives a batch of envpool `<game>-v5` games under
the Atari 100k protocol of SPR/DER: frame skip 4 with max-pool over the last two frames, 84x84
grayscale, stack 4, no sticky actions, minimal action set, up to 30 no-ops at reset, no FIRE
at reset (as SPR/Dopamine), games capped at 27,000 agent steps (108,000 frames). Training envs
make a life loss terminal and clip rewards to their sign; evaluation envs do neither.

Auto-reset is envpool's: the step after an episode end is a pseudo-step (action ignored,
reward 0, valid=False). After a training life loss envpool plays 1-30 no-ops in that
pseudo-step and continues the frame stack (first=False); after a game ends it starts a new
game with a fresh stack (first=True).
"""

import os

import numpy as np

from psrl_jax.envs.base import (Env, GameStatistics, TimeStep, check_discrete_action,
                                check_positive_int, check_seed)
from psrl_jax.errors import UsageError

# The 26 games of the Atari 100k benchmark, by envpool name (without "-v5").
ATARI_100K_GAMES = (
    'Alien', 'Amidar', 'Assault', 'Asterix', 'BankHeist', 'BattleZone', 'Boxing',
    'Breakout', 'ChopperCommand', 'CrazyClimber', 'DemonAttack', 'Freeway', 'Frostbite',
    'Gopher', 'Hero', 'Jamesbond', 'Kangaroo', 'Krull', 'KungFuMaster', 'MsPacman', 'Pong',
    'PrivateEye', 'Qbert', 'RoadRunner', 'Seaquest', 'UpNDown',
)

MAX_EPISODE_STEPS = 27_000  # agent steps = 108,000 frames at frame skip 4
FRAME_STACK = 4
FRAME_SKIP = 4
NOOP_MAX = 30
IMAGE_SIZE = 84

_ROM_HINT = ('reinstall envpool (its wheel ships the ROMs in envpool_assets/atari/roms) or point '
             'ENVPOOL_ASSETS_PATH at a folder holding atari/roms/<game>.bin')


def _envpool():
    """Imports envpool, turning a missing ROM folder into a UsageError."""
    try:
        import envpool  # pylint: disable=import-outside-toplevel
    except FileNotFoundError as err:
        raise UsageError(f'envpool cannot find its Atari ROMs ({err}): {_ROM_HINT}') from None
    except ImportError as err:
        raise UsageError(f'envpool is not importable ({err}): pip install envpool') from None
    return envpool


def _atari_registry() -> dict:
    """Maps every envpool Atari game name (without "-v5") to the path of its ROM file."""
    envpool = _envpool()
    games = {}
    for task_id, (import_path, _, kwargs) in envpool.registration.registry.specs.items():
        if import_path == 'envpool.atari' and task_id.endswith('-v5'):
            rom = os.path.join(kwargs['base_path'], 'atari', 'roms', kwargs['task'] + '.bin')
            games[task_id[:-len('-v5')]] = rom
    return games


def atari_games() -> tuple:
    """All Atari game names envpool accepts: ATARI_100K_GAMES first, then the rest sorted."""
    others = sorted(set(_atari_registry()) - set(ATARI_100K_GAMES))
    return ATARI_100K_GAMES + tuple(others)


def _check_game(game: str) -> None:
    """Raises UsageError unless `game` names an envpool Atari game whose ROM is present."""
    registry = _atari_registry()
    if not registry:
        raise UsageError(f'envpool registered no Atari games, its ROMs are missing: {_ROM_HINT}')
    if game not in registry:
        if game in ATARI_100K_GAMES:
            raise UsageError(f'the Atari ROM for {game} is missing from envpool: {_ROM_HINT}')
        others = sorted(set(registry) - set(ATARI_100K_GAMES))
        raise UsageError(f'unknown Atari game {game!r}: use an Atari 100k game '
                         f'({", ".join(ATARI_100K_GAMES)}) or another envpool Atari game '
                         f'({", ".join(others)})')
    if not os.path.exists(registry[game]):
        raise UsageError(f'the Atari ROM for {game} is missing ({registry[game]}): {_ROM_HINT}')


def make_atari(game: str, num_envs: int, seed: int, training: bool,
               max_episode_steps: int = MAX_EPISODE_STEPS) -> 'AtariEnv':
    """Builds `num_envs` envpool Atari games under the Atari 100k protocol.

    Args:
        game: envpool game name without "-v5", e.g. "Pong" (any envpool Atari game).
        num_envs: number of parallel games N.
        seed: envpool seed (the same seed gives the same games for the same actions).
        training: life loss is terminal and rewards are sign-clipped iff True.
        max_episode_steps: agent steps after which a game is truncated (27,000 = 108k frames).

    Returns:
        An AtariEnv with observations uint8 [N, 84, 84, 4].
    """
    if not isinstance(game, str):
        raise UsageError(f'the Atari game must be a name such as "Pong", got {game!r}')
    num_envs = check_positive_int('num_envs', num_envs)
    max_episode_steps = check_positive_int('max_episode_steps', max_episode_steps)
    seed = check_seed(seed)
    _check_game(game)
    return AtariEnv(game, num_envs, seed, bool(training), max_episode_steps)


class AtariEnv(Env):
    """A batch of envpool Atari games (see the module docstring for the protocol)."""

    frame_channels = 1
    action_repeat = 1
    action_dim = None

    def __init__(self, game: str, num_envs: int, seed: int, training: bool,
                 max_episode_steps: int):
        self.game = game
        self.num_envs = num_envs
        self.seed = seed
        self.training = training
        self.max_episode_steps = max_episode_steps
        self.observation_shape = (IMAGE_SIZE, IMAGE_SIZE, FRAME_STACK)
        self._resets = 0
        self._pool = self._make_pool(seed)
        self.num_actions = int(self._pool.action_space.n)
        self._stats = GameStatistics(num_envs)
        self._lives = np.zeros(num_envs, np.int32)
        self._pending = np.zeros(num_envs, bool)       # the next step is a pseudo-step
        self._forced = np.zeros(num_envs, bool)        # ... that we must request ourselves
        self._game_over = np.zeros(num_envs, bool)     # the last step ended a game
        self._started = False

    def _make_pool(self, seed: int):
        return _envpool().make(
            f'{self.game}-v5', env_type='gymnasium', num_envs=self.num_envs, seed=seed,
            episodic_life=self.training, reward_clip=self.training,
            repeat_action_probability=0.0, full_action_space=False, noop_max=NOOP_MAX,
            use_fire_reset=False, frame_skip=FRAME_SKIP, stack_num=FRAME_STACK,
            img_height=IMAGE_SIZE, img_width=IMAGE_SIZE, gray_scale=True,
            max_episode_steps=self.max_episode_steps)

    @staticmethod
    def _to_nhwc(obs: np.ndarray) -> np.ndarray:
        """[N, 4, 84, 84] -> [N, 84, 84, 4], oldest frame first."""
        return np.ascontiguousarray(np.transpose(obs, (0, 2, 3, 1)))

    def reset(self) -> np.ndarray:
        """Starts a new game in every env; returns uint8 [N, 84, 84, 4].

        With episodic life envpool only restarts games that are over, so a training env that
        was reset before is rebuilt, seeded with seed + resets * num_envs (new games,
        reproducible from the seed).
        """
        if self._started and self.training:
            self._pool.close()
            self._resets += 1
            self._pool = self._make_pool(self.seed + self._resets * self.num_envs)
        obs, info = self._pool.reset()
        order = np.argsort(info['env_id'])
        self._lives = np.asarray(info['lives'], np.int32)[order]
        self._pending[:] = False
        self._forced[:] = False
        self._game_over[:] = False
        self._stats.reset()
        self._started = True
        return self._to_nhwc(np.asarray(obs)[order])

    def _pool_step(self, action: np.ndarray):
        """Steps envpool, resetting the envs in self._forced; returns arrays in env-id order:
        obs [N, 4, 84, 84], reward, terminated, truncated, raw reward, game over, lives,
        elapsed steps."""
        n = self.num_envs
        obs = np.zeros((n, FRAME_STACK, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
        out = {k: np.zeros(n, t) for k, t in (
            ('reward', np.float32), ('term', bool), ('trunc', bool), ('raw', np.float32),
            ('over', bool), ('lives', np.int32), ('elapsed', np.int64))}

        def scatter(o, info, reward=None, term=None, trunc=None):
            ids = np.asarray(info['env_id'])
            obs[ids] = o
            out['raw'][ids] = info['reward']
            out['over'][ids] = np.asarray(info['terminated']).astype(bool)
            out['lives'][ids] = info['lives']
            out['elapsed'][ids] = info['elapsed_step']
            if reward is not None:
                out['reward'][ids] = reward
                out['term'][ids] = term
                out['trunc'][ids] = trunc

        if not self._forced.any():
            o, reward, term, trunc, info = self._pool.step(action)
            scatter(o, info, reward, term, trunc)
        else:
            forced = np.flatnonzero(self._forced)
            stepped = np.flatnonzero(~self._forced)
            o, info = self._pool.reset(forced)
            scatter(o, info)
            if stepped.size:
                o, reward, term, trunc, info = self._pool.step(action[stepped], stepped)
                scatter(o, info, reward, term, trunc)
        return obs, out

    def step(self, action: np.ndarray) -> TimeStep:
        """Steps every game by one agent step (4 frames); action int [N] in [0, num_actions)."""
        if not self._started:
            raise RuntimeError('call reset() before step()')
        action = check_discrete_action(action, self.num_envs, self.num_actions)
        obs, out = self._pool_step(action)
        valid = ~self._pending
        lives, elapsed, over = out['lives'], out['elapsed'], out['over']
        # envpool's episodic-life rule: a life lost while lives remain.
        life_lost = valid & self.training & (lives < self._lives) & (lives > 0)
        capped = valid & (elapsed >= self.max_episode_steps)
        terminal = valid & (over | life_lost | (out['term'] & ~capped))
        truncated = capped & ~terminal
        ended = terminal | truncated | (valid & (out['term'] | out['trunc']))
        # A pseudo-step restarted the stack iff envpool reset the game (elapsed step back to 0,
        # or lives refilled: a game over during the no-ops that follow a life loss).
        first = ~valid & ((elapsed == 0) | (lives > self._lives))
        game_over = (valid & (over | capped)) | (first & ~self._game_over)
        game_return, game_length = self._stats.update(out['raw'], valid, game_over)

        self._forced = ended & ~(out['term'] | out['trunc'])
        self._pending = ended
        self._lives = lives
        self._game_over = game_over
        return TimeStep(
            observation=self._to_nhwc(obs),
            reward=np.where(valid, out['reward'], 0.0).astype(np.float32),
            terminal=terminal, truncated=truncated, valid=valid, first=first,
            game_over=game_over, game_return=game_return, game_length=game_length)

    def close(self) -> None:
        """Closes the envpool pool."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None
