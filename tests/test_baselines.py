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


def test_the_command_plays_the_evaluation_games_of_a_run_with_that_seed(tmp_path):
    import json
    import os
    import subprocess
    import sys
    from psrl_jax import training
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = tmp_path / 'breakout.json'
    result = subprocess.run([sys.executable, '-m', 'experiments.baselines', '--env=breakout',
                             '--episodes=3', '--seed=2', f'--out={out}'],
                            cwd=root, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    saved = json.loads(out.read_text())
    expected = baselines.baseline_returns(lambda n, seed: make_minatar('breakout', n, seed), 6, 3,
                                          training.evaluation_seed(2, 3))
    assert {k: saved[k] for k in expected} == expected
    assert saved['env'] == 'breakout' and saved['seed'] == 2
    assert result.stdout.strip() == (
        f'breakout: random {expected["random"]:.2f}, best constant action '
        f'{expected["best_constant_action"]} {expected["best_constant"]:.2f} (over 3 games)')
    bad = subprocess.run([sys.executable, '-m', 'experiments.baselines', '--env=pong'],
                         cwd=root, capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "error: unknown MinAtar game 'pong': use one of asterix, breakout, freeway, seaquest, "
        "space_invaders"]
