"""Tests for psrl_jax.envs.atari: the Atari 100k protocol, checked against raw envpool."""

import envpool
import numpy as np
import pytest

from psrl_jax.envs import atari
from psrl_jax.envs.atari import ATARI_100K_GAMES, make_atari
from psrl_jax.errors import UsageError


def raw_pool(game, num_envs, seed, episodic_life, max_episode_steps=27_000):
    """Plain envpool with the protocol's settings and unclipped rewards."""
    return envpool.make(
        f'{game}-v5', env_type='gymnasium', num_envs=num_envs, seed=seed,
        episodic_life=episodic_life, reward_clip=False, repeat_action_probability=0.0,
        noop_max=30, use_fire_reset=False, max_episode_steps=max_episode_steps)


def random_actions(num_actions, num_envs, steps, seed):
    return np.random.default_rng(seed).integers(0, num_actions, (steps, num_envs))


def run(env, actions):
    """Steps env through actions [T, N]; returns the TimeSteps, observations stacked [T, ...]."""
    steps = [env.step(a) for a in actions]
    return type(steps[0])(*[np.stack(f) for f in zip(*steps)])


def test_shapes_dtypes_and_attributes():
    with make_atari('Pong', 2, 0, training=True) as env:
        assert env.observation_shape == (84, 84, 4)
        assert (env.num_envs, env.frame_channels, env.action_repeat) == (2, 1, 1)
        assert env.num_actions == 6 and env.action_dim is None  # Pong's minimal action set
        obs = env.reset()
        assert obs.shape == (2, 84, 84, 4) and obs.dtype == np.uint8
        ts = env.step(np.array([0, 1]))
        assert ts.observation.shape == (2, 84, 84, 4) and ts.observation.dtype == np.uint8
        assert ts.reward.dtype == np.float32 and ts.reward.shape == (2,)
        for name in ('terminal', 'truncated', 'valid', 'first', 'game_over'):
            assert getattr(ts, name).dtype == bool and getattr(ts, name).shape == (2,)
        assert ts.game_return.dtype == np.float32 and ts.game_length.dtype == np.int32
        with pytest.raises(ValueError):
            env.step(np.array([0, 6]))  # out of the action set
        with pytest.raises(ValueError):
            env.step(np.zeros(3, np.int32))  # wrong batch size


def test_observation_is_envpool_obs_transposed_oldest_first():
    actions = random_actions(6, 2, 40, seed=1)
    with make_atari('Pong', 2, 3, training=False) as env:
        reference = raw_pool('Pong', 2, 3, episodic_life=False)
        obs = env.reset()
        raw, _ = reference.reset()
        assert raw.shape == (2, 4, 84, 84)
        for k in range(4):
            np.testing.assert_array_equal(obs[..., k], raw[:, k])
        for k in range(1, 4):  # A new game's stack is its first frame repeated.
            np.testing.assert_array_equal(obs[..., k], obs[..., 0])
        previous = obs
        for a in actions:
            ts = env.step(a)
            raw = reference.step(a)[0]
            np.testing.assert_array_equal(ts.observation, raw.transpose(0, 2, 3, 1))
            # Oldest first: the stack shifts towards channel 0 and the new frame goes last.
            np.testing.assert_array_equal(ts.observation[..., :3], previous[..., 1:])
            previous = ts.observation
        assert not np.array_equal(previous[..., 3], previous[..., 0])  # frames do change
        reference.close()


@pytest.mark.parametrize('training', [True, False])
def test_reward_clipped_in_training_only(training):
    # Asterix pays 50 per item, so raw rewards exceed 1 within a few random steps.
    actions = random_actions(9, 2, 120, seed=0)
    with make_atari('Asterix', 2, 5, training=training) as env:
        reference = raw_pool('Asterix', 2, 5, episodic_life=training)
        env.reset()
        reference.reset()
        rewards, raw_rewards, valid = [], [], []
        for a in actions:
            ts = env.step(a)
            _, raw_reward, _, _, info = reference.step(a)
            np.testing.assert_array_equal(raw_reward, info['reward'])
            rewards.append(ts.reward)
            raw_rewards.append(raw_reward)
            valid.append(ts.valid)
        reference.close()
    rewards, raw_rewards, valid = np.array(rewards), np.array(raw_rewards), np.array(valid)
    assert np.abs(raw_rewards).max() > 1
    expected = np.sign(raw_rewards) if training else raw_rewards
    np.testing.assert_array_equal(rewards, np.where(valid, expected, 0.0))


def test_life_loss_is_terminal_only_in_training():
    actions = random_actions(4, 2, 600, seed=2)
    with make_atari('Breakout', 2, 7, training=True) as train, \
            make_atari('Breakout', 2, 7, training=False) as evaluate:
        train.reset()
        evaluate.reset()
        tr = run(train, actions)
        ev = run(evaluate, actions)
    # Both envs play the same game until the first life is lost (same seed, same actions).
    t, i = np.argwhere(tr.terminal)[0]
    np.testing.assert_array_equal(tr.observation[:t + 1], ev.observation[:t + 1])
    assert not tr.game_over[t, i] and not tr.truncated[t, i]  # a life, not the game
    assert not ev.terminal[t, i] and ev.valid[t + 1, i]  # the eval game goes on
    # The pseudo-step continues the stack: no restart, the old frames shift by one.
    assert not tr.valid[t + 1, i] and not tr.first[t + 1, i] and tr.reward[t + 1, i] == 0
    np.testing.assert_array_equal(tr.observation[t + 1, i, ..., :3],
                                  tr.observation[t, i, ..., 1:])
    # Breakout has 5 lives: the training env ends 5 episodes per game, the eval env 1.
    g = np.argmax(tr.game_over[:, i])
    assert tr.game_over[g, i] and tr.terminal[:g + 1, i].sum() == 5
    assert np.all(ev.terminal == ev.game_over) and ev.game_over.any()


def test_pseudo_steps_first_flags_and_game_statistics():
    actions = random_actions(4, 3, 700, seed=3)
    with make_atari('Breakout', 3, 11, training=True) as env:
        reference = raw_pool('Breakout', 3, 11, episodic_life=True)
        env.reset()
        reference.reset()
        ts = run(env, actions)
        infos = [reference.step(a)[4] for a in actions]
        reference.close()
    raw = np.array([info['reward'] for info in infos])
    elapsed = np.array([info['elapsed_step'] for info in infos])
    ended = ts.terminal | ts.truncated
    assert ts.game_over.sum() >= 3 and ended.sum() > ts.game_over.sum()  # life losses too
    # valid is False exactly on the step after an episode end; that step is inert.
    np.testing.assert_array_equal(~ts.valid[1:], ended[:-1])
    assert ts.valid[0].all()
    pseudo = ~ts.valid
    assert np.all(ts.reward[pseudo] == 0) and not (ended[pseudo]).any()
    # first marks a restarted stack: after a game over, not after a life loss.
    np.testing.assert_array_equal(ts.first[1:], ts.game_over[:-1])
    for t, i in np.argwhere(ts.first):
        frames = ts.observation[t, i]
        assert all(np.array_equal(frames[..., k], frames[..., 0]) for k in range(4))
    # Game statistics: the raw (unclipped) return over all lives and the agent-step count.
    for i in range(3):
        start = 0
        for t in np.flatnonzero(ts.game_over[:, i]):
            game = slice(start, t + 1)
            np.testing.assert_allclose(ts.game_return[t, i], raw[game, i].sum())
            assert ts.game_length[t, i] == ts.valid[game, i].sum() == elapsed[t, i]
            start = t + 1
    assert np.all(ts.game_return[~ts.game_over] == 0)
    assert np.all(ts.game_length[~ts.game_over] == 0)
    assert not ts.first[0].any() and np.all(np.abs(ts.reward) <= 1)


@pytest.mark.parametrize('training', [True, False])
def test_time_limit_truncates_the_game(training):
    cap = 50
    actions = random_actions(4, 2, 160, seed=4)
    with make_atari('Breakout', 2, 13, training=training, max_episode_steps=cap) as env:
        env.reset()
        ts = run(env, actions)
    assert not (ts.truncated & ts.terminal).any()
    if not training:  # No life-loss pseudo-steps: cap steps, a pseudo-step, cap steps, ...
        for i in range(2):
            np.testing.assert_array_equal(np.flatnonzero(ts.truncated[:, i]),
                                          [cap - 1, 2 * cap, 3 * cap + 1])
    else:  # Life losses end episodes inside a game; the cap counts the game's valid steps.
        assert ts.terminal.any()
    for i in range(2):
        ends = np.flatnonzero(ts.truncated[:, i])
        assert ends.size >= 2
        np.testing.assert_array_equal(ends, np.flatnonzero(ts.game_over[:, i]))
        start = 0
        for t in ends:
            assert ts.valid[start:t + 1, i].sum() == ts.game_length[t, i] == cap
            assert not ts.valid[t + 1, i] and ts.first[t + 1, i]
            start = t + 1


class HideTruncation:
    """An envpool stand-in that never reports time-limit truncation (envpool issue #179)."""

    def __init__(self, pool):
        self._pool = pool
        self.action_space = pool.action_space

    def reset(self, env_id=None):
        return self._pool.reset(env_id)

    def step(self, action, env_id=None):
        obs, reward, term, trunc, info = self._pool.step(action, env_id)
        return obs, reward, term, np.zeros_like(trunc), info

    def close(self):
        self._pool.close()


def test_missed_truncation_flag_is_caught_from_elapsed_steps():
    cap = 30
    actions = np.zeros((70, 2), np.int32)  # NOOP: Pong lasts far beyond 30 steps
    with make_atari('Pong', 2, 0, training=False, max_episode_steps=cap) as env:
        env._pool = HideTruncation(env._pool)  # pylint: disable=protected-access
        env.reset()
        ts = run(env, actions)
    np.testing.assert_array_equal(np.flatnonzero(ts.truncated[:, 0]), [cap - 1, 2 * cap])
    assert ts.truncated.sum() == 4 and ts.game_over.sum() == 4 and not ts.terminal.any()
    np.testing.assert_array_equal(np.flatnonzero(~ts.valid[:, 0]), [cap, 2 * cap + 1])
    np.testing.assert_array_equal(ts.first, ~ts.valid)
    assert np.all(ts.game_length[ts.truncated] == cap)


def test_seeding_is_reproducible():
    actions = random_actions(4, 2, 60, seed=5)

    def trajectory(seed):
        with make_atari('Breakout', 2, seed, training=True) as env:
            first = env.reset()
            return first, run(env, actions)

    first_a, a = trajectory(21)
    first_b, b = trajectory(21)
    first_c, c = trajectory(22)
    np.testing.assert_array_equal(first_a, first_b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.observation, c.observation)


def test_second_reset_of_a_training_env_starts_new_games():
    with make_atari('Breakout', 1, 0, training=True) as env:
        env.reset()
        run(env, random_actions(4, 1, 40, seed=6))
        obs = env.reset()
        assert all(np.array_equal(obs[..., k], obs[..., 0]) for k in range(4))
        ts = env.step(np.array([1]))
        assert ts.valid.all() and not ts.first.any()


def test_unknown_game_is_a_usage_error():
    with pytest.raises(UsageError) as err:
        make_atari('NotAGame', 1, 0, training=True)
    message = str(err.value)
    assert '\n' not in message and 'NotAGame' in message
    assert message.index('Alien') < message.index('UpNDown') < message.index('Asteroids')
    with pytest.raises(UsageError):
        make_atari('pong', 1, 0, training=True)  # names are case-sensitive envpool keys
    with pytest.raises(UsageError):
        make_atari('Pong', 0, 0, training=True)
    with pytest.raises(UsageError):
        make_atari('Pong', 1, -1, training=True)


def test_missing_roms_are_a_usage_error(monkeypatch):
    monkeypatch.setattr(atari, '_atari_registry', lambda: {})
    with pytest.raises(UsageError, match='ROMs are missing'):
        make_atari('Pong', 1, 0, training=True)
    monkeypatch.setattr(atari, '_atari_registry', lambda: {'Pong': '/nonexistent/pong.bin'})
    with pytest.raises(UsageError, match='ROM for Pong is missing'):
        make_atari('Pong', 1, 0, training=True)
    with pytest.raises(UsageError, match='ROM for Breakout is missing'):
        make_atari('Breakout', 1, 0, training=True)


def test_every_atari_100k_game_is_available():
    games = atari.atari_games()
    assert games[:26] == ATARI_100K_GAMES and len(games) > 26 and 'Asteroids' in games
