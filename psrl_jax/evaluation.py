"""Evaluation and reporting: paper tables, human-normalized scores, rliable aggregates, plots.

Atari 100k agents are judged by aggregate human-normalized scores (HNS) with stratified
bootstrap confidence intervals (rliable, Agarwal et al. 2021); DMControl agents by the per-task
mean and standard deviation of the evaluation return over seeds. Every run is compared with the
paper's tables, which ship inside the package (psrl_jax/data/atari100k.csv and dmc.csv).

Run folders follow the output contract of DESIGN.md: `summary.json`, `eval.csv`, `metrics.csv`
(and `seed_<k>/` subfolders for multi-seed runs). Everything here is host-side numpy; the one
numeric function a jitted loop may call, `human_normalized_score`, is written with plain
arithmetic so it also accepts jax arrays (traced or not).
"""

import csv
import dataclasses
import functools
import glob
import importlib.resources
import io
import json
import math
import os
import re
from typing import Any, Mapping, Sequence

import matplotlib.figure
import matplotlib.ticker
import numpy as np
from absl import logging as absl_logging

from psrl_jax.envs.atari import ATARI_100K_GAMES

__all__ = [
    'ATARI_100K_GAMES', 'ATARI_COMPARE_METHODS', 'DMC_BUDGETS', 'DMC_COMPARE_METHODS',
    'DMC_TASKS', 'METRICS', 'METRIC_TITLES', 'AtariAggregates', 'RunResult',
    'aggregate_metrics', 'aggregate_with_ci', 'atari_aggregates', 'atari_per_game_rows',
    'dmc_per_task_rows', 'env_suite', 'find_summary_files', 'fmt_number', 'format_reference',
    'has_human_score', 'human_normalized_score', 'human_scores', 'load_run', 'load_runs',
    'markdown_table', 'mean_curve', 'nearest_dmc_budget', 'paper_atari_aggregates',
    'paper_atari_games', 'paper_atari_hns', 'paper_atari_methods', 'paper_atari_scores',
    'paper_dmc_methods', 'paper_dmc_scores', 'performance_profiles', 'plot_aggregate_intervals',
    'plot_learning_curves', 'plot_loss_curves', 'plot_performance_profiles', 'random_scores',
    'save_figure', 'write_csv',
]

# Aggregate metrics, in rliable's order, and their display names.
METRICS = ('mean', 'median', 'iqm', 'optimality_gap')
METRIC_TITLES = {'mean': 'Mean', 'median': 'Median', 'iqm': 'IQM',
                 'optimality_gap': 'Optimality gap'}
# Paper columns shown beside our Atari and DMControl numbers.
ATARI_COMPARE_METHODS = ('PSRL', 'SPR', 'DrQ')
DMC_COMPARE_METHODS = ('PSRL', 'DrQ')
# The DMControl benchmark: six tasks, two budgets (environment steps).
DMC_TASKS = ('finger-spin', 'cartpole-swingup', 'reacher-easy', 'cheetah-run', 'walker-walk',
             'ball_in_cup-catch')
DMC_BUDGETS = {'100k': 100_000, '500k': 500_000}

_ATARI_NAME = re.compile(r'^[A-Z][A-Za-z0-9]*$')
_DMC_NAME = re.compile(r'^[a-z][a-z0-9_]*-[a-z][a-z0-9_]*$')


# ----------------------------------------------------------------------------------------------
# Paper tables.


def _read_data(name: str) -> list[dict[str, str]]:
    text = importlib.resources.files('psrl_jax.data').joinpath(name).read_text()
    return list(csv.DictReader(io.StringIO(text)))


@functools.lru_cache(maxsize=None)
def _atari_table() -> tuple[tuple[str, ...], dict[str, dict[str, float]]]:
    """(games in file order, column -> game -> value) of psrl_jax/data/atari100k.csv."""
    rows = _read_data('atari100k.csv')
    games = tuple(row['game'] for row in rows)
    columns = [c for c in rows[0] if c != 'game']
    table = {c: {row['game']: float(row[c]) for row in rows} for c in columns}
    return games, table


@functools.lru_cache(maxsize=None)
def _dmc_table() -> dict[str, dict[str, dict[str, tuple[float, float]]]]:
    """budget -> method -> task -> (mean, std) of psrl_jax/data/dmc.csv."""
    table: dict[str, dict[str, dict[str, tuple[float, float]]]] = {}
    for row in _read_data('dmc.csv'):
        by_method = table.setdefault(row['budget'], {})
        by_method.setdefault(row['method'], {})[row['task']] = (
            float(row['mean']), float(row['std']))
    return table


def paper_atari_games() -> tuple[str, ...]:
    """The game column of the packaged Atari table (26 envpool names, file order)."""
    return _atari_table()[0]


def paper_atari_methods() -> tuple[str, ...]:
    """Method columns of the Atari table: Rainbow, SimPLe, DER, OTRainbow, CURL, DrQ, SPR, PSRL."""
    return tuple(c for c in _atari_table()[1] if c not in ('Human', 'Random'))


def paper_atari_scores() -> dict[str, dict[str, float]]:
    """Raw paper scores at 100k steps: method -> game -> score (a fresh dict)."""
    table = _atari_table()[1]
    return {m: dict(table[m]) for m in paper_atari_methods()}


def human_scores() -> dict[str, float]:
    """Human reference score per game (game -> score)."""
    return dict(_atari_table()[1]['Human'])


def random_scores() -> dict[str, float]:
    """Random-policy reference score per game (game -> score)."""
    return dict(_atari_table()[1]['Random'])


def has_human_score(game: str) -> bool:
    """Whether `game` has human and random reference scores (one of the 26 games)."""
    return game in _atari_table()[1]['Human']


def human_normalized_score(game: str, score):
    """(score - random) / (human - random) for `game`.

    Args:
      game: envpool game name, e.g. 'Pong' (one of ATARI_100K_GAMES).
      score: a scalar, or an array of any shape (numpy, or jax, also under jit); lists and
        tuples become float64 numpy arrays.
    Returns:
      Same shape as `score`: a python float for a python scalar.
    Raises:
      ValueError: `game` has no human score (it is not one of the 26 games).
    """
    table = _atari_table()[1]
    if game not in table['Human']:
        raise ValueError(f'no human/random reference score for game {game!r}; known games: '
                         f'{", ".join(paper_atari_games())}')
    human, rand = table['Human'][game], table['Random'][game]
    if isinstance(score, (list, tuple)):
        score = np.asarray(score, dtype=np.float64)
    return (score - rand) / (human - rand)


def paper_atari_hns(method: str, games: Sequence[str] = ATARI_100K_GAMES) -> np.ndarray:
    """Human-normalized paper scores of `method` on `games`: float64 [len(games)]."""
    scores = paper_atari_scores()
    if method not in scores:
        raise ValueError(f'unknown paper method {method!r}; known: '
                         f'{", ".join(paper_atari_methods())}')
    return np.array([human_normalized_score(g, scores[method][g]) for g in games])


def paper_atari_aggregates(
        games: Sequence[str] = ATARI_100K_GAMES) -> dict[str, dict[str, float]]:
    """Paper aggregates over `games`, each method a single run: method -> metric -> value."""
    return {m: aggregate_metrics(paper_atari_hns(m, games)[None])
            for m in paper_atari_methods()}


def _budget_key(budget) -> str:
    if isinstance(budget, str) and budget in DMC_BUDGETS:
        return budget
    for key, steps in DMC_BUDGETS.items():
        if not isinstance(budget, (str, bool)) and budget == steps:
            return key
    raise ValueError(f'unknown DMControl budget {budget!r}; use one of '
                     f'{", ".join(DMC_BUDGETS)} (or {", ".join(map(str, DMC_BUDGETS.values()))})')


def paper_dmc_methods() -> tuple[str, ...]:
    """Methods of the DMControl table, in file order."""
    return tuple(_dmc_table()['100k'])


def paper_dmc_scores(budget) -> dict[str, dict[str, tuple[float, float]]]:
    """Paper DMControl results at `budget` ('100k' | '500k' | 100000 | 500000).

    Returns:
      method -> task -> (mean, std) of the episode return (a fresh dict).
    """
    table = _dmc_table()[_budget_key(budget)]
    return {m: dict(tasks) for m, tasks in table.items()}


def nearest_dmc_budget(total_steps: int) -> str:
    """The paper budget ('100k' or '500k') nearest to `total_steps` (ties go to the smaller)."""
    return min(DMC_BUDGETS, key=lambda k: (abs(DMC_BUDGETS[k] - total_steps), DMC_BUDGETS[k]))


# ----------------------------------------------------------------------------------------------
# Aggregate metrics (rliable).


def _as_score_matrix(hns) -> np.ndarray:
    scores = np.asarray(hns, dtype=np.float64)
    if scores.ndim == 1:
        scores = scores[None]
    if scores.ndim != 2 or scores.size == 0:
        raise ValueError(f'expected scores of shape [runs, games], got shape {scores.shape}')
    if not np.all(np.isfinite(scores)):
        raise ValueError('scores contain NaN or infinite values')
    return scores


def _metric_vector(scores: np.ndarray) -> np.ndarray:
    """The four rliable aggregates of scores [runs, games], in METRICS order: [4]."""
    from rliable import metrics as rly_metrics  # Only reports need rliable; training does not.
    return np.array([
        rly_metrics.aggregate_mean(scores),
        rly_metrics.aggregate_median(scores),
        rly_metrics.aggregate_iqm(scores),
        rly_metrics.aggregate_optimality_gap(scores, gamma=1),
    ])


def aggregate_metrics(hns) -> dict[str, float]:
    """rliable aggregates of human-normalized scores.

    Args:
      hns: [runs, games] (a 1-D array is one run).
    Returns:
      {'mean', 'median', 'iqm', 'optimality_gap'} -> float: mean and median of the per-game
      means over runs, IQM = 25% trimmed mean over all runs x games (scipy trims int(0.25 n)
      values per end, so n = 26 trims 6 and 3 identical runs of 26 trim 19 of 78: the IQM of
      replicated runs is not the single-run IQM), optimality gap = mean(max(1 - x, 0)).
    """
    return dict(zip(METRICS, map(float, _metric_vector(_as_score_matrix(hns)))))


class _SeededRliable:
    """Seeds numpy's global RNG inside the block and restores its previous state after.

    rliable 1.2.0's StratifiedBootstrap draws its indices with np.random.choice (the global
    RNG) and ignores `random_state`, so seeding the global RNG is what makes it repeatable.
    rliable's per-call INFO log lines ('Calculating estimates for ...') are muted meanwhile.
    """

    def __init__(self, seed: int):
        self._seed = seed
        self._saved = None
        self._verbosity = None

    def __enter__(self):
        self._saved = np.random.get_state()
        np.random.seed(self._seed)
        self._verbosity = absl_logging.get_verbosity()
        # absl verbosity: larger is chattier (INFO 0, WARNING -1).
        absl_logging.set_verbosity(min(self._verbosity, absl_logging.WARNING))

    def __exit__(self, *exc):
        np.random.set_state(self._saved)
        absl_logging.set_verbosity(self._verbosity)


def aggregate_with_ci(hns, reps: int = 2000, seed: int = 0,
                      confidence: float = 0.95) -> dict[str, tuple[float, float, float]]:
    """Aggregates with stratified bootstrap percentile intervals (rliable).

    Args:
      hns: [runs, games]; runs are resampled with replacement within each game.
      reps: bootstrap replications (rliable's papers use 50,000; 2,000 is enough for a report).
      seed: the bootstrap seed; the same seed gives the same intervals.
      confidence: interval coverage.
    Returns:
      metric -> (point, low, high) for the METRICS. With one run the interval is the point.
    """
    from rliable import library  # Imports arch and pandas: slow, so only when asked.

    scores = _as_score_matrix(hns)
    with _SeededRliable(seed):
        points, intervals = library.get_interval_estimates(
            {'x': scores}, _metric_vector, reps=reps, confidence_interval_size=confidence)
    point, (low, high) = points['x'], intervals['x']
    return {m: (float(point[i]), float(low[i]), float(high[i])) for i, m in enumerate(METRICS)}


def performance_profiles(score_dict: Mapping[str, np.ndarray], taus: np.ndarray,
                         reps: int = 2000, seed: int = 0):
    """Score distributions (fraction of runs x games with score > tau) with bootstrap CIs.

    Args:
      score_dict: label -> hns [runs, games].
      taus: thresholds [T].
    Returns:
      (profiles label -> [T], cis label -> [2, T]), deterministic for a seed.
    """
    from rliable import library  # Slow import, see aggregate_with_ci.

    scores = {k: _as_score_matrix(v) for k, v in score_dict.items()}
    with _SeededRliable(seed):
        return library.create_performance_profile(scores, np.asarray(taus), reps=reps)


# ----------------------------------------------------------------------------------------------
# Run folders.


@dataclasses.dataclass
class RunResult:
    """One finished run (one seed): its summary.json plus its eval and training curves.

    `eval_curve` and `train_curve` map the columns of eval.csv and metrics.csv to float arrays
    [rows] (empty dicts when the file is absent).
    """
    path: str
    algorithm: str
    env: str
    suite: str
    seed: int
    total_steps: int
    eval_return_mean: float
    eval_return_std: float
    eval_episodes: int
    eval_curve: dict[str, np.ndarray]
    train_curve: dict[str, np.ndarray]


def env_suite(env: str) -> str | None:
    """'atari' for an Atari game name (e.g. 'Pong'), 'dmc' for domain-task (e.g.
    'cartpole-swingup'), None when the name looks like neither."""
    if env in ATARI_100K_GAMES or _ATARI_NAME.match(env):
        return 'atari'
    if _DMC_NAME.match(env):
        return 'dmc'
    return None


def find_summary_files(patterns: Sequence[str]) -> tuple[list[str], list[str]]:
    """Every summary.json at or below the paths matched by the glob `patterns`.

    Returns:
      (sorted unique summary paths, patterns that matched nothing). `checkpoints/` folders
      are not searched.
    """
    found, unmatched = set(), []
    for pattern in patterns:
        matches = glob.glob(os.path.expanduser(pattern), recursive=True)
        if not matches:
            unmatched.append(pattern)
        for match in matches:
            if os.path.isfile(match) and os.path.basename(match) == 'summary.json':
                found.add(os.path.normpath(match))
            elif os.path.isdir(match):
                for root, dirs, files in os.walk(match):
                    dirs[:] = sorted(d for d in dirs if d != 'checkpoints')
                    if 'summary.json' in files:
                        found.add(os.path.normpath(os.path.join(root, 'summary.json')))
    return sorted(found), unmatched


def _read_curve(path: str) -> dict[str, np.ndarray]:
    """Columns of a numeric CSV file -> float arrays [rows]; {} when the file is absent."""
    if not os.path.exists(path):
        return {}
    with open(path, newline='') as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        names = reader.fieldnames or []
    try:
        return {n: np.array([float(r[n]) if r[n] not in ('', None) else np.nan for r in rows])
                for n in names}
    except (TypeError, ValueError) as e:
        raise ValueError(f'{path}: non-numeric value ({e})') from None


def load_run(summary_path: str) -> RunResult:
    """Reads one run folder from its summary.json (and eval.csv, metrics.csv beside it).

    Raises:
      ValueError: the summary is not valid JSON, lacks a required key, has a wrong type, names
        an environment of neither suite, or a CSV beside it is not numeric.
    """
    try:
        with open(summary_path) as f:
            summary = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f'unreadable JSON ({e})') from None
    if not isinstance(summary, dict):
        raise ValueError('not a JSON object')

    def get(key, kind, required=True, default=None):
        if key not in summary or summary[key] is None:
            if required:
                raise ValueError(f'missing key {key!r}')
            return default
        value = summary[key]
        ok = (isinstance(value, str) and value if kind is str else
              isinstance(value, (int, float)) and not isinstance(value, bool))
        if not ok:
            raise ValueError(f'bad value for {key!r}: {value!r}')
        return value

    algorithm, env = get('algorithm', str), get('env', str)
    env = env[:-3] if env.endswith('-v5') else env
    suite = env_suite(env)
    if suite is None:
        raise ValueError(f'env {env!r} is neither an Atari game nor a DMControl domain-task')
    seed, total_steps = get('seed', int), get('total_steps', int)
    ret_mean = get('eval_return_mean', float)
    if not math.isfinite(ret_mean):
        raise ValueError(f'eval_return_mean is not finite: {ret_mean!r}')
    run_dir = os.path.dirname(summary_path)
    return RunResult(
        path=run_dir, algorithm=algorithm, env=env, suite=suite, seed=int(seed),
        total_steps=int(total_steps), eval_return_mean=float(ret_mean),
        eval_return_std=float(get('eval_return_std', float, False, math.nan)),
        eval_episodes=int(get('eval_episodes', int, False, 0)),
        eval_curve=_read_curve(os.path.join(run_dir, 'eval.csv')),
        train_curve=_read_curve(os.path.join(run_dir, 'metrics.csv')))


def load_runs(summary_paths: Sequence[str]) -> tuple[list[RunResult], list[str]]:
    """Loads every run; a malformed one is skipped with a warning naming its file.

    Returns:
      (runs, warnings): one warning line per skipped file or doubtful group.
    """
    runs, warnings = [], []
    for path in summary_paths:
        try:
            runs.append(load_run(path))
        except ValueError as e:
            warnings.append(f'skipping {path}: {e}')
    seen: dict[tuple[str, str, int], str] = {}
    for run in runs:
        key = (run.algorithm, run.env, run.seed)
        if key in seen:
            warnings.append(f'{run.algorithm} {run.env} seed {run.seed} appears twice '
                            f'({seen[key]} and {run.path}); both are counted')
        seen[key] = run.path
    return runs, warnings


def _group(runs: Sequence[RunResult], key) -> dict[Any, list[RunResult]]:
    groups: dict[Any, list[RunResult]] = {}
    for run in runs:
        groups.setdefault(key(run), []).append(run)
    for members in groups.values():
        members.sort(key=lambda r: (r.seed, r.path))
    return groups


def _mean_sd(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof = 1; None for fewer than two values)."""
    if not values:
        return None, None
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), (float(arr.std(ddof=1)) if arr.size > 1 else None)


def _steps_label(members: Sequence[RunResult]) -> str:
    return '/'.join(str(s) for s in sorted({r.total_steps for r in members}))


# ----------------------------------------------------------------------------------------------
# Atari tables.


def atari_per_game_rows(runs: Sequence[RunResult]) -> tuple[list[dict], list[str]]:
    """Per-game table: our mean and sd over seeds beside the paper's PSRL, SPR and DrQ.

    One row per (algorithm, game) for all 26 games (n_seeds = 0 and empty scores when a game has
    no runs) plus any further games run; `sd` is the sample standard deviation over seeds.
    Returns:
      (rows, warnings) - a warning for each group whose seeds ran different total_steps.
    """
    groups = _group([r for r in runs if r.suite == 'atari'], lambda r: (r.algorithm, r.env))
    paper = paper_atari_scores()
    extra = sorted({env for _, env in groups if env not in ATARI_100K_GAMES})
    rows, warnings = [], []
    for algorithm in sorted({a for a, _ in groups}):
        for game in ATARI_100K_GAMES + tuple(extra):
            members = groups.get((algorithm, game), [])
            if (algorithm, game) not in groups and game in extra:
                continue
            mean, sd = _mean_sd([r.eval_return_mean for r in members])
            known = has_human_score(game)
            row = {'algorithm': algorithm, 'game': game, 'n_seeds': len(members),
                   'seeds': ' '.join(str(r.seed) for r in members),
                   'total_steps': _steps_label(members), 'mean': mean, 'sd': sd,
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


@dataclasses.dataclass
class AtariAggregates:
    """Aggregate HNS per algorithm over the games every algorithm ran ('common' scope).

    rows: one dict per (scope, label): scope 'common' (shared games) or 'own' (an algorithm's
      own games, only where they differ from the shared ones); source 'ours' or 'paper';
      n_games, n_runs, partial (fewer than the 26 games), games, and per metric
      `<metric>`, `<metric>_low`, `<metric>_high` (None for the paper's single run).
    common_games: the shared games with a human score.
    scores: label -> hns [runs, common games] of ours and of the paper's PSRL and SPR.
    intervals: label -> metric -> (point, low, high) over the common games.
    notes: sentences for the report (which games, which seeds were left out and why).
    """
    rows: list[dict]
    common_games: tuple[str, ...]
    scores: dict[str, np.ndarray]
    intervals: dict[str, dict[str, tuple[float, float, float]]]
    notes: list[str]


def _hns_matrix(members_by_game: Mapping[str, list[RunResult]], games: Sequence[str],
                algorithm: str, notes: list[str]) -> np.ndarray:
    """hns [runs, games]: the first n seeds of every game, n = the fewest seeds of any game."""
    n_runs = min(len(members_by_game[g]) for g in games)
    for game in games:
        dropped = members_by_game[game][n_runs:]
        if dropped:
            seeds = ', '.join(str(r.seed) for r in dropped)
            notes.append(f'{algorithm} {game}: {len(members_by_game[game])} seeds but only '
                         f'{n_runs} for some game; seed{"s" if len(dropped) > 1 else ""} '
                         f'{seeds} left out of the aggregate (rliable needs equal runs per game)')
    return np.array([[human_normalized_score(g, members_by_game[g][i].eval_return_mean)
                      for g in games] for i in range(n_runs)])


def _aggregate_row(scope, label, source, games, n_runs, estimate) -> dict:
    row = {'scope': scope, 'algorithm': label, 'source': source, 'n_games': len(games),
           'n_runs': n_runs, 'partial': len(games) < len(ATARI_100K_GAMES),
           'games': ' '.join(games)}
    for m in METRICS:
        point, low, high = estimate[m]
        row.update({m: point, f'{m}_low': low, f'{m}_high': high})
    return row


def atari_aggregates(runs: Sequence[RunResult], reps: int = 2000, seed: int = 0,
                     paper_methods: Sequence[str] = ('PSRL', 'SPR')) -> AtariAggregates:
    """Aggregate HNS with 95% stratified bootstrap CIs, per algorithm, next to the paper.

    rliable needs the same games for every run, so the comparison uses only the games that every
    algorithm ran (with a human score); the paper's methods are aggregated over the same games
    (and over all 26, labelled so). Games outside the 26 have no human score and are noted.
    """
    groups = _group([r for r in runs if r.suite == 'atari'], lambda r: (r.algorithm, r.env))
    algorithms = sorted({a for a, _ in groups})
    by_algo = {a: {g: m for (b, g), m in groups.items() if b == a and has_human_score(g)}
               for a in algorithms}
    notes = []
    no_human = sorted({g for _, g in groups if not has_human_score(g)})
    if no_human:
        notes.append(f'no human score, so not aggregated: {", ".join(no_human)}')
    common = tuple(g for g in ATARI_100K_GAMES if all(g in by_algo[a] for a in algorithms))
    rows, scores, intervals = [], {}, {}
    if algorithms and not common:
        notes.append('no game was run by every algorithm: no common aggregate')
    elif algorithms:
        missing = [g for g in ATARI_100K_GAMES if g not in common]
        scope_note = (f'aggregates over the {len(common)} games every algorithm ran '
                      f'({", ".join(algorithms)})')
        if missing:
            scope_note += (f'; PARTIAL, {len(missing)} of {len(ATARI_100K_GAMES)} games left '
                           f'out: {", ".join(missing)}')
        notes.append(scope_note)
        for algorithm in algorithms:
            scores[algorithm] = _hns_matrix(by_algo[algorithm], common, algorithm, notes)
            intervals[algorithm] = aggregate_with_ci(scores[algorithm], reps=reps, seed=seed)
            rows.append(_aggregate_row('common', algorithm, 'ours', common,
                                       len(scores[algorithm]), intervals[algorithm]))
        for method in paper_methods:
            label = f'{method} (paper)'
            scores[label] = paper_atari_hns(method, common)[None]
            point = aggregate_metrics(scores[label])
            intervals[label] = {m: (v, v, v) for m, v in point.items()}
            rows.append(_aggregate_row('common', label, 'paper', common, 1,
                                       {m: (v, None, None) for m, v in point.items()}))
    for algorithm in algorithms:
        own = tuple(g for g in ATARI_100K_GAMES if g in by_algo[algorithm])
        if own and own != common:
            matrix = _hns_matrix(by_algo[algorithm], own, algorithm, notes)
            rows.append(_aggregate_row('own', algorithm, 'ours', own, len(matrix),
                                       aggregate_with_ci(matrix, reps=reps, seed=seed)))
    if any(r['scope'] == 'own' for r in rows) or len(common) < len(ATARI_100K_GAMES):
        full = paper_atari_aggregates()
        for method in paper_methods:
            rows.append(_aggregate_row(
                'all 26', f'{method} (paper)', 'paper', ATARI_100K_GAMES, 1,
                {m: (full[method][m], None, None) for m in METRICS}))
    return AtariAggregates(rows, common, scores, intervals, list(dict.fromkeys(notes)))


# ----------------------------------------------------------------------------------------------
# DMControl table.


def dmc_per_task_rows(runs: Sequence[RunResult]) -> tuple[list[dict], list[str]]:
    """Per-task table: our mean and sd over seeds beside the paper's PSRL and DrQ.

    Runs are grouped by (algorithm, paper budget nearest to total_steps, task); each group lists
    the six benchmark tasks (n_seeds = 0 when missing) and any further tasks run.
    Returns:
      (rows, warnings) - a warning for each group whose seeds ran different total_steps.
    """
    dmc = [r for r in runs if r.suite == 'dmc']
    groups = _group(dmc, lambda r: (r.algorithm, nearest_dmc_budget(r.total_steps), r.env))
    rows, warnings = [], []
    for algorithm, budget in sorted({(a, b) for a, b, _ in groups}):
        paper = paper_dmc_scores(budget)
        extra = sorted({t for a, b, t in groups
                        if (a, b) == (algorithm, budget) and t not in DMC_TASKS})
        for task in DMC_TASKS + tuple(extra):
            members = groups.get((algorithm, budget, task), [])
            mean, sd = _mean_sd([r.eval_return_mean for r in members])
            row = {'algorithm': algorithm, 'budget': budget, 'task': task,
                   'n_seeds': len(members), 'seeds': ' '.join(str(r.seed) for r in members),
                   'total_steps': _steps_label(members), 'mean': mean, 'sd': sd}
            for m in DMC_COMPARE_METHODS:
                ref = paper[m].get(task)
                row[f'paper_{m}_mean'] = ref[0] if ref else None
                row[f'paper_{m}_std'] = ref[1] if ref else None
            rows.append(row)
            if len({r.total_steps for r in members}) > 1:
                warnings.append(f'{algorithm} {task}: seeds ran different total_steps '
                                f'({row["total_steps"]}); all are averaged')
    return rows, warnings


# ----------------------------------------------------------------------------------------------
# Text output.


def fmt_number(value, digits: int) -> str:
    """`value` with `digits` decimals; '-' for None, NaN and infinities."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return '-'
    return f'{value:.{digits}f}'


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub Markdown table; cells are str()-ed, numbers right-aligned."""
    def cell(x):
        return str(x).replace('|', '\\|')
    align = ['---:' if rows and isinstance(rows[0][i], (int, float)) else '---'
             for i in range(len(header))]
    lines = ['| ' + ' | '.join(map(cell, header)) + ' |', '| ' + ' | '.join(align) + ' |']
    lines += ['| ' + ' | '.join(map(cell, row)) + ' |' for row in rows]
    return '\n'.join(lines)


def write_csv(rows: Sequence[Mapping[str, Any]], path: str) -> None:
    """Writes dict rows (keys of the first row as columns; None -> empty cell)."""
    columns = list(rows[0]) if rows else []
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ('' if v is None else v) for k, v in row.items()})


def format_reference() -> str:
    """The paper's own numbers: Atari aggregates per method and the DMControl tables."""
    lines = ['Atari 100k, paper table (26 games, one score per method), human-normalized:',
             f'{"method":<10} {"mean":>7} {"median":>7} {"IQM":>7} {"opt.gap":>7}']
    for method, agg in paper_atari_aggregates().items():
        lines.append(f'{method:<10} ' + ' '.join(f'{agg[m]:>7.3f}' for m in METRICS))
    for budget in DMC_BUDGETS:
        table = paper_dmc_scores(budget)
        methods = list(table)
        lines += ['', f'DMControl {budget} steps, paper table (mean +- std of the return):',
                  f'{"task":<18} ' + ' '.join(f'{m:>10}' for m in methods)]
        for task in DMC_TASKS:
            cells = [f'{table[m][task][0]:.0f}+-{table[m][task][1]:.0f}' for m in methods]
            lines.append(f'{task:<18} ' + ' '.join(f'{c:>10}' for c in cells))
    return '\n'.join(lines)


# ----------------------------------------------------------------------------------------------
# Plots. Learning curves use matplotlib's Figure API (no pyplot state); rliable's interval plot
# makes its figure with pyplot, so save_figure also closes it there.


def mean_curve(curves: Sequence[tuple[np.ndarray, np.ndarray]]):
    """Mean and sd over seeds of (steps [T_i], values [T_i]) curves at the steps all share.

    Returns:
      (steps [T], mean [T], sd [T]) with sd the population sd over seeds (0 for one seed);
      T = 0 when the seeds share no step.
    """
    shared = functools.reduce(np.intersect1d, [np.asarray(s) for s, _ in curves])
    stacked = np.array([[dict(zip(np.asarray(s).tolist(), np.asarray(v).tolist()))[t]
                         for t in shared.tolist()] for s, v in curves]).reshape(len(curves), -1)
    return shared, stacked.mean(axis=0), stacked.std(axis=0)


def _grid(n: int, ncols: int = 4, width: float = 3.6, height: float = 2.6):
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig = matplotlib.figure.Figure(figsize=(width * ncols, height * nrows), layout='constrained')
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes


def _step_axis(ax) -> None:
    """At most five ticks on the step axis, written as 50k, 1.5M."""
    def label(x, _):
        if abs(x) >= 1e6:
            return f'{x / 1e6:g}M'
        return f'{x / 1e3:g}k' if abs(x) >= 1e3 else f'{x:g}'
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(5))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(label))
    ax.set_xlabel('environment step')


def _figure_legend(fig, axes) -> None:
    """One legend above all panels (per-panel legends are slow to place and repeat)."""
    entries = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    labels = sorted(entries, key=lambda k: ('(paper)' in k, k))  # Ours first, paper last.
    if labels:
        fig.legend([entries[k] for k in labels], labels, loc='outside upper center',
                   ncols=min(len(labels), 6), fontsize=9)


def _color(algorithms: Sequence[str], algorithm: str):
    return matplotlib.colormaps['tab10'](sorted(algorithms).index(algorithm) % 10)


def plot_learning_curves(runs: Sequence[RunResult],
                         reference: Mapping[str, float] | None = None,
                         reference_label: str = 'PSRL (paper)') -> matplotlib.figure.Figure:
    """Evaluation return vs environment step, one panel per env, one line per algorithm.

    The line is the mean over seeds (band: +- sd) at the steps every seed evaluated; seeds are
    drawn faintly; one legend above the panels. `reference` (env -> score) adds a dashed line,
    e.g. the paper's PSRL score.
    """
    groups = _group([r for r in runs if r.eval_curve], lambda r: (r.env, r.algorithm))
    envs = sorted({e for e, _ in groups})
    algorithms = sorted({a for _, a in groups})
    fig, axes = _grid(max(1, len(envs)))
    for ax, env in zip(axes, envs):
        for algorithm in algorithms:
            curves = [(r.eval_curve['step'], r.eval_curve['return_mean'])
                      for r in groups.get((env, algorithm), [])
                      if 'step' in r.eval_curve and 'return_mean' in r.eval_curve]
            if not curves:
                continue
            color = _color(algorithms, algorithm)
            for steps, values in curves:
                ax.plot(steps, values, color=color, alpha=0.25, linewidth=0.8)
            steps, mean, sd = mean_curve(curves)
            ax.plot(steps, mean, color=color, marker='.', label=algorithm)
            if len(curves) > 1:
                ax.fill_between(steps, mean - sd, mean + sd, color=color, alpha=0.15)
        if reference and env in reference:
            ax.axhline(reference[env], color='k', linestyle='--', linewidth=1,
                       label=reference_label)
        ax.set_title(env)
        _step_axis(ax)
        ax.set_ylabel('eval return')
    _figure_legend(fig, axes)
    if not envs:
        axes[0].text(0.5, 0.5, 'no eval.csv found', ha='center', va='center')
    return fig


def plot_loss_curves(runs: Sequence[RunResult]) -> matplotlib.figure.Figure:
    """Training losses from metrics.csv: one row per env, one column per `loss*` column,
    one line per algorithm (mean over seeds at shared steps)."""
    runs = [r for r in runs if 'step' in r.train_curve]
    losses = sorted({c for r in runs for c in r.train_curve if c.startswith('loss')})
    groups = _group(runs, lambda r: (r.env, r.algorithm))
    envs = sorted({e for e, _ in groups})
    algorithms = sorted({a for _, a in groups})
    ncols = max(1, len(losses))
    fig, axes = _grid(max(1, len(envs)) * ncols, ncols=ncols, height=2.2)
    axes = axes.reshape(-1, ncols)
    for row, env in zip(axes, envs):
        for ax, loss in zip(row, losses):
            for algorithm in algorithms:
                curves = [(r.train_curve['step'], r.train_curve[loss])
                          for r in groups.get((env, algorithm), []) if loss in r.train_curve]
                if curves:
                    steps, mean, _ = mean_curve(curves)
                    ax.plot(steps, mean, color=_color(algorithms, algorithm), label=algorithm)
            ax.set_title(f'{env}: {loss}', fontsize=9)
            _step_axis(ax)
    _figure_legend(fig, axes.ravel())
    if not envs or not losses:
        axes[0, 0].set_visible(True)
        axes[0, 0].text(0.5, 0.5, 'no losses in metrics.csv', ha='center', va='center')
    return fig


def plot_aggregate_intervals(intervals: Mapping[str, Mapping[str, tuple[float, float, float]]],
                             xlabel: str = 'Human-normalized score'):
    """rliable interval plot: label -> metric -> (point, low, high); one panel per metric."""
    from rliable import plot_utils  # Imports pyplot and seaborn: only when plotting.

    labels = list(intervals)
    points = {k: np.array([intervals[k][m][0] for m in METRICS]) for k in labels}
    cis = {k: np.array([[intervals[k][m][1] for m in METRICS],
                        [intervals[k][m][2] for m in METRICS]]) for k in labels}
    height = max(1.6, 0.5 * len(labels))  # Inches; rliable's default is 0.37 per row.
    fig, axes = plot_utils.plot_interval_estimates(
        points, cis, [METRIC_TITLES[m] for m in METRICS], algorithms=labels, xlabel=xlabel,
        row_height=height / len(labels), xlabel_y_coordinate=0.11 - 0.65 / height)
    for i, ax in enumerate(np.atleast_1d(axes)):  # Keep zero-width (one-run) bars in view.
        lo = min(cis[k][0, i] for k in labels)
        hi = max(cis[k][1, i] for k in labels)
        pad = 0.1 * (hi - lo) if hi > lo else 0.05
        ax.set_xlim(lo - pad, hi + pad)
    return fig


def plot_performance_profiles(score_dict: Mapping[str, np.ndarray], reps: int = 2000,
                              seed: int = 0) -> matplotlib.figure.Figure:
    """Performance profiles (fraction of runs with HNS > tau) with bootstrap bands."""
    from rliable import plot_utils  # Slow import, see plot_aggregate_intervals.

    top = max(float(np.max(v)) for v in score_dict.values())
    taus = np.linspace(0.0, float(np.clip(np.ceil(top), 2.0, 8.0)), 81)
    profiles, cis = performance_profiles(score_dict, taus, reps=reps, seed=seed)
    fig = matplotlib.figure.Figure(figsize=(7, 4.5), layout='constrained')
    ax = fig.subplots()
    plot_utils.plot_performance_profiles(profiles, taus, performance_profile_cis=cis, ax=ax,
                                         xlabel=r'Human-normalized score $(\tau)$')
    ax.legend(handles=ax.get_lines(), fontsize=8)
    return fig


def save_figure(fig, path: str, dpi: int = 100) -> None:
    """Saves `fig` as an image and releases it (also from pyplot, when pyplot made it)."""
    fig.savefig(path, dpi=dpi, bbox_inches='tight')
    if fig.canvas.manager is not None:
        import matplotlib.pyplot as plt  # Only figures pyplot created have a manager.
        plt.close(fig)
