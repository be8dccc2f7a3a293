"""Aggregate metrics of human-normalized scores with stratified bootstrap intervals (rliable).

Atari 100k agents are judged by aggregate HNS (Agarwal et al. 2021): mean, median, interquartile
mean and optimality gap over runs x games, with percentile bootstrap confidence intervals; the
paper's methods are aggregated the same way as single runs.
"""

import dataclasses
from typing import Mapping, Sequence

import numpy as np
from absl import logging as absl_logging

from psrl_jax.envs.atari import ATARI_100K_GAMES
from psrl_jax.evaluation.runs import RunResult, group_runs
from psrl_jax.evaluation.scores import (has_human_score, human_normalized_score, paper_atari_hns,
                                        paper_atari_methods)

# Aggregate metrics, in rliable's order.
METRICS = ('mean', 'median', 'iqm', 'optimality_gap')


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


def paper_atari_aggregates(
        games: Sequence[str] = ATARI_100K_GAMES) -> dict[str, dict[str, float]]:
    """Paper aggregates over `games`, each method a single run: method -> metric -> value."""
    return {m: aggregate_metrics(paper_atari_hns(m, games)[None])
            for m in paper_atari_methods()}



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
    groups = group_runs([r for r in runs if r.suite == 'atari'], lambda r: (r.algorithm, r.env))
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

