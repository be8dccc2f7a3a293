"""Our runs beside the paper's tables: per Atari game and per DMControl task; per MinAtar game.

Rows hold our mean and sample sd over seeds (and HNS for Atari) next to the paper's numbers for the
methods of ATARI_COMPARE_METHODS / DMC_COMPARE_METHODS (the paper has no MinAtar table);
experiments/aggregate.py writes them.
"""

from typing import Sequence

from psrl_jax.envs.atari import ATARI_100K_GAMES
from psrl_jax.envs.minatar import MINATAR_GAMES
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


def minatar_per_game_rows(runs: Sequence[RunResult]) -> tuple[list[dict], list[str]]:
    """Per-game table of raw game scores: our mean and sd over seeds, one row per (algorithm,
    game) for the five MinAtar games (n_seeds = 0 when a game has no runs).
    Returns:
      (rows, warnings) - a warning for each group whose seeds ran different total_steps.
    """
    groups = group_runs([r for r in runs if r.suite == 'minatar'],
                        lambda r: (r.algorithm, r.env))
    rows, warnings = [], []
    for algorithm in sorted({a for a, _ in groups}):
        for game in MINATAR_GAMES:
            members = groups.get((algorithm, game), [])
            mean, sd = mean_sd([r.eval_return_mean for r in members])
            rows.append({'algorithm': algorithm, 'game': game, 'n_seeds': len(members),
                         'seeds': ' '.join(str(r.seed) for r in members),
                         'total_steps': steps_label(members), 'mean': mean, 'sd': sd})
            if len({r.total_steps for r in members}) > 1:
                warnings.append(f'{algorithm} {game}: seeds ran different total_steps '
                                f'({rows[-1]["total_steps"]}); all are averaged')
    return rows, warnings
