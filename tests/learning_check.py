"""The learning check of tests/test_learning*.py: a short MinAtar run of one preset ends with an
evaluation return clearly above both the uniformly random policy's and the best constant action's, on
the same evaluation games, all measured with the same evaluation code (training.evaluate)."""
import csv
import json
import math
import os
import re
import subprocess
import sys

from psrl_jax import baselines, training
from psrl_jax.envs.minatar import make_minatar

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GAME = 'breakout'
STEPS = 6000
EPISODES = 100
# The margin: the agent's mean beats each baseline's by more than 4 standard errors of the
# difference of the two means (one-sided p < 4e-5 under a normal approximation over 100 games each).
Z = 4.0


def assert_learns(preset: str, workdir: str) -> None:
    """Trains `preset` on breakout for STEPS agent steps (seed 0) in `workdir`, then asserts its final
    evaluation over EPISODES games beats the random and best constant-action policies by the margin."""
    result = subprocess.run(
        [sys.executable, '-m', 'experiments.train_minatar',
         f'--config=experiments/configs/minatar.py:{preset}', f'--env={GAME}', '--seed=0',
         f'--total_steps={STEPS}', '--eval_every=0', f'--eval_episodes={EPISODES}',
         '--log_every=1000', f'--workdir={workdir}'],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(os.path.join(workdir, 'summary.json')) as f:
        summary = json.load(f)
    assert summary['algorithm'] == preset
    assert summary['env'] == GAME and summary['total_steps'] == STEPS
    assert summary['human_normalized_score'] is None
    with open(os.path.join(workdir, 'metrics.csv'), newline='') as f:
        metrics = list(csv.DictReader(f))
    assert [int(r['step']) for r in metrics] == list(range(1000, STEPS + 1, 1000))
    # Each progress line shows the mean return of the games that ended in its interval.
    shown = dict(re.findall(r'^step (\d+)/\d+ \|.*\| train return (\S+)$', result.stdout, re.M))
    logged = {r['step']: f"{float(r['train_return']):.2f}" for r in metrics
              if math.isfinite(float(r['train_return']))}
    assert shown == logged and len(shown) >= 5, (shown, logged)

    base = baselines.baseline_returns(lambda n, seed: make_minatar(GAME, n, seed), 6, EPISODES,
                                      training.evaluation_seed(0, EPISODES))
    mean, std = summary['eval_return_mean'], summary['eval_return_std']
    report = (f'{preset} {mean:.2f} +- {std:.2f}, random {base["random"]:.2f} +- '
              f'{base["random_std"]:.2f}, best constant {base["best_constant"]:.2f} +- '
              f'{base["best_constant_std"]:.2f} (action {base["best_constant_action"]})')
    print(report)
    for name in ('random', 'best_constant'):
        error = math.sqrt((std ** 2 + base[f'{name}_std'] ** 2) / EPISODES)
        assert mean - base[name] > Z * error, f'{name}: {report}'
