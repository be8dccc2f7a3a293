"""MinAtar behind the batched interface: observations, pseudo-steps, game accounting, seeding."""
import numpy as np
import pytest

import minatar

from psrl_jax.envs.minatar import MINATAR_GAMES, make_minatar
from psrl_jax.errors import UsageError

CHANNELS = {'asterix': 4, 'breakout': 4, 'freeway': 7, 'seaquest': 10, 'space_invaders': 6}


@pytest.mark.parametrize('game', MINATAR_GAMES)
def test_observations_are_the_game_state_as_uint8(game):
    env = make_minatar(game, 3, seed=5)
    observation = env.reset()
    assert env.observation_shape == (10, 10, CHANNELS[game]) == observation.shape[1:]
    assert env.frame_channels == CHANNELS[game] and env.num_actions == 6
    assert observation.dtype == np.uint8 and set(np.unique(observation)) <= {0, 255}
    # The same state as the minatar package's own environment with the same seed.
    reference = minatar.Environment(game, sticky_action_prob=0.1, difficulty_ramping=True)
    reference.seed(6)
    reference.reset()
    np.testing.assert_array_equal(observation[1], reference.state().astype(np.uint8) * 255)
    actions = np.random.default_rng(0).integers(0, 6, (20, 3))
    for action in actions:
        step = env.step(action)
        if not step.valid[1] or step.game_over[1]:
            break
        reward, _ = reference.act(int(action[1]))
        assert step.reward[1] == reward
        np.testing.assert_array_equal(step.observation[1], reference.state().astype(np.uint8) * 255)


def test_game_end_then_pseudo_step_then_a_new_game():
    env = make_minatar('breakout', 2, seed=0)
    env.reset()
    rng = np.random.default_rng(1)
    returns = np.zeros(2)
    for _ in range(2000):
        step = env.step(rng.integers(0, 6, 2))
        returns += np.where(step.valid, step.reward, 0.0)
        if step.game_over[0]:
            assert step.terminal[0] and not step.truncated[0] and step.valid[0]
            assert step.game_return[0] == returns[0] and step.game_length[0] > 0
            after = env.step(rng.integers(0, 6, 2))
            assert not after.valid[0] and after.first[0] and after.reward[0] == 0
            assert not after.game_over[0] and after.game_return[0] == 0
            assert env.step(rng.integers(0, 6, 2)).valid[0]
            return
    pytest.fail('no breakout game ended in 2,000 random steps')


def test_endless_games_are_truncated_at_the_cap():
    env = make_minatar('freeway', 1, seed=0, max_episode_steps=30)
    env.reset()
    steps = [env.step(np.array([2])) for _ in range(30)]
    assert not any(s.game_over for s in steps[:-1])
    assert steps[-1].truncated[0] and not steps[-1].terminal[0] and steps[-1].game_length[0] == 30


def test_same_seed_same_games():
    runs = []
    for _ in range(2):
        env = make_minatar('asterix', 2, seed=3)
        observations = [env.reset()]
        for action in np.random.default_rng(2).integers(0, 6, (50, 2)):
            observations.append(env.step(action).observation)
        runs.append(np.stack(observations))
    np.testing.assert_array_equal(runs[0], runs[1])


@pytest.mark.parametrize('game, num_envs, seed, message', [
    ('pong', 1, 0, "unknown MinAtar game 'pong'"),
    ('breakout', 0, 0, 'num_envs must be a positive integer'),
    ('breakout', 1, -1, 'seed must be a non-negative integer'),
])
def test_bad_arguments_raise_one_line_usage_errors(game, num_envs, seed, message):
    with pytest.raises(UsageError, match=message):
        make_minatar(game, num_envs, seed)
