"""Reference policies: their returns come from training.evaluate and equal a hand-run of the env."""
import numpy as np

from psrl_jax import baselines
from psrl_jax.envs.minatar import make_minatar


def _hand_run(action, episodes, seed):
    """Mean return of `episodes` breakout games, env i seeded seed + i, always playing `action`."""
    env = make_minatar('breakout', episodes, seed)
    env.reset()
    returns = np.full(episodes, np.nan)
    while np.isnan(returns).any():
        step = env.step(np.full(episodes, action))
        done = step.game_over & np.isnan(returns)
        returns[done] = step.game_return[done]
    return returns.mean()


def test_constant_and_random_policies_on_breakout():
    result = baselines.baseline_returns(lambda n, seed: make_minatar('breakout', n, seed),
                                        num_actions=6, episodes=8, seed=11)
    assert result['episodes'] == 8 and len(result['constant']) == 6
    for action in (0, 3):
        np.testing.assert_allclose(result['constant'][action], _hand_run(action, 8, 11))
    assert result['best_constant'] == max(result['constant'])
    assert result['constant'][result['best_constant_action']] == result['best_constant']
    # Breakout gives a point per brick: a random paddle hits the ball now and then.
    assert 0 <= result['random'] < 5
    assert len(result['constant_std']) == 6 and result['best_constant_std'] >= 0
    assert result['random_std'] >= 0
