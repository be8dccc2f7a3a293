"""Our runs beside the paper's tables (per Atari game and per DMControl task) and, on MinAtar, beside
the random and best constant policies with PSRL's verdict against each other algorithm.

Rows hold our mean and sample sd over seeds (and HNS for Atari) next to the paper's numbers for the
methods of ATARI_COMPARE_METHODS / DMC_COMPARE_METHODS; experiments/aggregate.py writes them. Runs
with C also get a row of C's ground-truth checks against zero flow's (`correspondence_rows`).
"""

from typing import Mapping, Sequence

import numpy as np

from psrl_jax.envs.atari import ATARI_100K_GAMES
from psrl_jax.evaluation.aggregates import aggregate_with_ci
from psrl_jax.evaluation.runs import RunResult, group_runs, mean_sd, steps_label
from psrl_jax.evaluation.scores import (DMC_TASKS, has_human_score, human_normalized_score,
                                        nearest_dmc_budget, paper_atari_scores, paper_dmc_scores)

# Paper columns shown beside our Atari and DMControl numbers.
ATARI_COMPARE_METHODS = ('PSRL', 'SPR', 'DrQ')
DMC_COMPARE_METHODS = ('PSRL', 'DrQ')


def atari_per_game_rows(runs: Sequence[RunResult]) -> tuple[list[dict], list[str]]:
    """Per-game table: our mean and sd over seeds beside the paper's PSRL, SPR and DrQ.

    One row per (algorithm, game) for all 26 games (n_seeds = 0 and empty scores when a game has
    no runs) plus any further games run; `sd` is the sample standard deviation over seeds.
    Returns:
      (rows, warnings) - a warning for each group whose seeds ran different total_steps.
    """
    groups = group_runs([r for r in runs if r.suite == 'atari'], lambda r: (r.algorithm, r.env))
    paper = paper_atari_scores()
    extra = sorted({env for _, env in groups if env not in ATARI_100K_GAMES})
    rows, warnings = [], []
    for algorithm in sorted({a for a, _ in groups}):
        for game in ATARI_100K_GAMES + tuple(extra):
            members = groups.get((algorithm, game), [])
            if (algorithm, game) not in groups and game in extra:
                continue
            mean, sd = mean_sd([r.eval_return_mean for r in members])
            known = has_human_score(game)
            row = {'algorithm': algorithm, 'game': game, 'n_seeds': len(members),
                   'seeds': ' '.join(str(r.seed) for r in members),
                   'total_steps': steps_label(members), 'mean': mean, 'sd': sd,
                   'hns': human_normalized_score(game, mean) if known and members else None}
            for m in ATARI_COMPARE_METHODS:
                row[f'paper_{m}'] = paper[m][game] if known else None
            for m in ATARI_COMPARE_METHODS:
                row[f'paper_hns_{m}'] = (human_normalized_score(game, paper[m][game])
                                         if known else None)
            rows.append(row)
            if len({r.total_steps for r in members}) > 1:
                warnings.append(f'{algorithm} {game}: seeds ran different total_steps '
                                f'({row["total_steps"]}); all are averaged')
    return rows, warnings



def dmc_per_task_rows(runs: Sequence[RunResult]) -> tuple[list[dict], list[str]]:
    """Per-task table: our mean and sd over seeds beside the paper's PSRL and DrQ.

    Runs are grouped by (algorithm, paper budget nearest to total_steps, task); each group lists
    the six benchmark tasks (n_seeds = 0 when missing) and any further tasks run.
    Returns:
      (rows, warnings) - a warning for each group whose seeds ran different total_steps.
    """
    dmc = [r for r in runs if r.suite == 'dmc']
    groups = group_runs(dmc, lambda r: (r.algorithm, nearest_dmc_budget(r.total_steps), r.env))
    rows, warnings = [], []
    for algorithm, budget in sorted({(a, b) for a, b, _ in groups}):
        paper = paper_dmc_scores(budget)
        extra = sorted({t for a, b, t in groups
                        if (a, b) == (algorithm, budget) and t not in DMC_TASKS})
        for task in DMC_TASKS + tuple(extra):
            members = groups.get((algorithm, budget, task), [])
            mean, sd = mean_sd([r.eval_return_mean for r in members])
            row = {'algorithm': algorithm, 'budget': budget, 'task': task,
                   'n_seeds': len(members), 'seeds': ' '.join(str(r.seed) for r in members),
                   'total_steps': steps_label(members), 'mean': mean, 'sd': sd}
            for m in DMC_COMPARE_METHODS:
                ref = paper[m].get(task)
                row[f'paper_{m}_mean'] = ref[0] if ref else None
                row[f'paper_{m}_std'] = ref[1] if ref else None
            rows.append(row)
            if len({r.total_steps for r in members}) > 1:
                warnings.append(f'{algorithm} {task}: seeds ran different total_steps '
                                f'({row["total_steps"]}); all are averaged')
    return rows, warnings



def minatar_per_game_rows(runs: Sequence[RunResult], baselines: Mapping[str, Mapping],
                          reps: int = 2000, seed: int = 0) -> tuple[list[dict], list[str]]:
    """Per (algorithm, MinAtar game): the mean final return over seeds with its 95% bootstrap CI
    (rliable, seeds resampled), each seed's return (in the order of `seeds`), beside the uniformly
    random policy's and the best constant action's returns (`baselines`: game ->
    experiments.baselines' JSON; games without one get None).

    Returns (rows, warnings): a warning for each group whose seeds ran different total_steps.
    """
    minatar = [r for r in runs if r.suite == 'minatar']
    groups = group_runs(minatar, lambda r: (r.algorithm, r.env))
    rows, warnings = [], []
    for (algorithm, game), members in sorted(groups.items()):
        returns = np.asarray([[r.eval_return_mean] for r in members])
        mean, low, high = aggregate_with_ci(returns, reps=reps, seed=seed)['mean']
        base = baselines.get(game) or {}
        rows.append({'algorithm': algorithm, 'game': game, 'n_seeds': len(members),
                     'seeds': ' '.join(str(r.seed) for r in members),
                     'returns': ' '.join(f'{r.eval_return_mean:g}' for r in members),
                     'total_steps': steps_label(members), 'mean': mean, 'ci_low': low,
                     'ci_high': high, 'sd': mean_sd([r.eval_return_mean for r in members])[1],
                     'random': base.get('random'), 'best_constant': base.get('best_constant'),
                     'best_constant_action': base.get('best_constant_action')})
        if len({r.total_steps for r in members}) > 1:
            warnings.append(f'{algorithm} {game}: seeds ran different total_steps '
                            f'({rows[-1]["total_steps"]}); all are averaged')
    return rows, warnings


MIN_VERDICT_SEEDS = 3   # a bootstrap CI of one seed is a point, of two a coin's three outcomes


def minatar_verdicts(rows: Sequence[dict], ours: str = 'psrl') -> list[dict]:
    """`ours` against every other algorithm on each game both ran: 'wins' when its CI lies above the
    other's, 'loses' when below, 'ties' when the two 95% CIs overlap; 'undecided' when either side
    has fewer than MIN_VERDICT_SEEDS seeds."""
    by_key = {(r['algorithm'], r['game']): r for r in rows}
    verdicts = []
    for (algorithm, game), other in sorted(by_key.items()):
        mine = by_key.get((ours, game))
        if algorithm == ours or mine is None:
            continue
        verdict = ('undecided' if min(mine['n_seeds'], other['n_seeds']) < MIN_VERDICT_SEEDS else
                   'wins' if mine['ci_low'] > other['ci_high'] else
                   'loses' if mine['ci_high'] < other['ci_low'] else 'ties')
        verdicts.append({'game': game, 'ours': ours, 'other': algorithm, 'verdict': verdict,
                         'ours_mean': mine['mean'], 'other_mean': other['mean'],
                         'ours_seeds': mine['n_seeds'], 'other_seeds': other['n_seeds']})
    return verdicts


# C's ground-truth checks as metrics.csv logs them (psrl_jax.diagnostics), each with its zero-flow
# reference: C finds correspondences where an error lies below zero flow's and c_warp_gain below 1.
CORRESPONDENCE_CHECKS = ('c_shift_epe', 'c_shift_epe_zero', 'c_warp_gain', 'c_object_epe',
                         'c_object_epe_zero')
CHECK_WINDOW = 5   # logged values per seed averaged into a run's end-of-run check


def logs_correspondence_checks(run: RunResult) -> bool:
    """Whether the run's metrics.csv holds C's checks (the runs of objectives with C)."""
    return 'c_shift_epe' in run.train_curve and 'step' in run.train_curve


def correspondence_rows(runs: Sequence[RunResult], window: int = CHECK_WINDOW) -> list[dict]:
    """Per (suite, env, algorithm) whose runs log C's checks: each check's mean over seeds of the
    seed's mean over its last `window` logged values (one check is one batch, so single rows are
    noisy); None for a check no seed logged. `step`: the last step any seed logged."""
    logged = [r for r in runs if logs_correspondence_checks(r)]
    groups = group_runs(logged, lambda r: (r.suite, r.env, r.algorithm))
    rows = []
    for (suite, env, algorithm), members in sorted(groups.items()):
        row = {'suite': suite, 'env': env, 'algorithm': algorithm, 'n_seeds': len(members),
               'step': int(max(r.train_curve['step'].max() for r in members))}
        for name in CORRESPONDENCE_CHECKS:
            tails = [values[np.isfinite(values)][-window:] for values in
                     (r.train_curve.get(name, np.zeros(0)) for r in members)]
            seeds = [float(tail.mean()) for tail in tails if tail.size]
            row[name] = float(np.mean(seeds)) if seeds else None
        rows.append(row)
    return rows
