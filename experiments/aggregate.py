"""Aggregate runs into a report beside the paper's tables.

    python -m experiments.aggregate --runs 'runs/*' --out report/
    python -m experiments.aggregate --runs 'runs/minatar/*/*' --at_step=30000 --out report/
    python -m experiments.aggregate --reference

Finds every summary.json (finished runs) at or below the folders matched by --runs (a glob; repeat
the flag or separate globs by commas), or with --at_step=S every eval.csv, and reads each run at
its final evaluation, or at its evaluation at step S (finished runs and runs still training alike;
those that have not evaluated at S are skipped with a warning), groups runs by algorithm and
suite (a run whose config.json differs from its preset's is named for the difference, e.g. 'psrl
psrl.lambda_c=0.1', and grouped apart from the preset), and writes to --out:
  report.md                    everything below in one page, with the figures;
  atari_per_game.{md,csv}      our mean and sd over seeds per game beside the paper's PSRL, SPR,
                               DrQ, and human-normalized scores (HNS);
  atari_aggregates.{md,csv}    mean, median, IQM, optimality gap of HNS with 95% stratified
                               bootstrap CIs (rliable) beside the paper's PSRL and SPR;
  atari_aggregate_intervals.png, atari_performance_profile.png, atari_learning_curves.png,
  atari_losses.png;
  dmc_per_task.{md,csv}        our mean and sd over seeds beside the paper's PSRL and DrQ at the
                               paper budget (100k or 500k) nearest to total_steps;
  dmc_learning_curves.png, dmc_losses.png;
  minatar_per_game.{md,csv}    mean final return over seeds with its 95% bootstrap CI beside the
                               random policy's and the best constant action's (--minatar_baselines:
                               experiments.baselines' <game>.json files), and where psrl wins, ties
                               or loses against each other algorithm (CIs apart or overlapping);
  minatar_learning_curves.png (the best constant action dashed), minatar_losses.png;
  c_checks.{md,csv}, c_checks.png  for runs with C: its ground-truth checks (c_shift_epe,
                               c_warp_gain, on MinAtar c_object_epe) against zero flow's, at the
                               end of the runs (mean of each seed's last 5 logged values) and
                               over training.
Benchmark games and tasks without runs are listed; aggregates over fewer than the 26 games are
labelled partial. --reference prints the paper's own aggregates and DMControl tables and exits.
Scores, run loading, aggregates and table rows come from psrl_jax.evaluation; the report's text,
figures and files are made here.
"""

import csv
import functools
import importlib
import json
import math
import os
import sys
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use('Agg')

import matplotlib.figure  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from psrl_jax.envs.atari import ATARI_100K_GAMES  # noqa: E402
from psrl_jax.envs.minatar import MINATAR_GAMES  # noqa: E402
from psrl_jax.errors import UsageError  # noqa: E402
from psrl_jax.evaluation import aggregates, runs as run_folders, scores, tables  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_multi_string('runs', [], 'Glob of run folders (repeatable, or comma-separated).')
flags.DEFINE_string('out', 'report', 'Folder for the report (created if absent).')
flags.DEFINE_integer('at_step', 0, 'Compare the runs at their evaluation at this step (eval.csv\'s '
                     'step column), finished or not; 0: at their final evaluation (summary.json).')
flags.DEFINE_bool('reference', False, "Print the paper's aggregates and tables, then exit.")
flags.DEFINE_integer('reps', 2000, 'Bootstrap replications for the confidence intervals.')
flags.DEFINE_integer('seed', 0, 'Seed of the bootstrap (same seed, same intervals).')
flags.DEFINE_string('minatar_baselines', os.path.join('results', 'minatar', 'baselines'),
                    "Folder of experiments.baselines' <game>.json files for the MinAtar table.")


# Display names of the aggregate metrics.
METRIC_TITLES = {'mean': 'Mean', 'median': 'Median', 'iqm': 'IQM',
                 'optimality_gap': 'Optimality gap'}


# ----------------------------------------------------------------------------------------------
# Text and files.


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
    for method, agg in aggregates.paper_atari_aggregates().items():
        lines.append(f'{method:<10} ' + ' '.join(f'{agg[m]:>7.3f}' for m in aggregates.METRICS))
    for budget in scores.DMC_BUDGETS:
        table = scores.paper_dmc_scores(budget)
        methods = list(table)
        lines += ['', f'DMControl {budget} steps, paper table (mean +- std of the return):',
                  f'{"task":<18} ' + ' '.join(f'{m:>10}' for m in methods)]
        for task in scores.DMC_TASKS:
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


def plot_learning_curves(runs: Sequence[run_folders.RunResult],
                         reference: Mapping[str, float] | None = None,
                         reference_label: str = 'PSRL (paper)') -> matplotlib.figure.Figure:
    """Evaluation return vs environment step, one panel per env, one line per algorithm.

    The line is the mean over seeds (band: +- sd) at the steps every seed evaluated; seeds are
    drawn faintly; one legend above the panels. `reference` (env -> score) adds a dashed line,
    e.g. the paper's PSRL score.
    """
    groups = run_folders.group_runs([r for r in runs if r.eval_curve], lambda r: (r.env, r.algorithm))
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


def plot_loss_curves(runs: Sequence[run_folders.RunResult]) -> matplotlib.figure.Figure:
    """Training losses from metrics.csv: one row per env, one column per `loss*` column,
    one line per algorithm (mean over seeds at shared steps)."""
    runs = [r for r in runs if 'step' in r.train_curve]
    losses = sorted({c for r in runs for c in r.train_curve if c.startswith('loss')})
    groups = run_folders.group_runs(runs, lambda r: (r.env, r.algorithm))
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


def plot_correspondence_checks(runs: Sequence[run_folders.RunResult]) -> matplotlib.figure.Figure:
    """C's checks over training, one row per env: the flows' error against a known shift and, on
    MinAtar, against the objects' moves (dashed: zero flow's), and c_warp_gain (dotted: 1, zero
    flow's); one line per algorithm (mean over seeds at shared steps, NaN rows left as gaps)."""
    runs = [r for r in runs if tables.logs_correspondence_checks(r)]
    groups = run_folders.group_runs(runs, lambda r: (r.env, r.algorithm))
    envs = sorted({e for e, _ in groups})
    algorithms = sorted({a for _, a in groups})
    panels = (('c_shift_epe', 'shift error'), ('c_warp_gain', 'warp gain'),
              ('c_object_epe', 'object error'))
    fig, axes = _grid(max(1, len(envs)) * len(panels), ncols=len(panels), height=2.4)
    axes = axes.reshape(-1, len(panels))
    for row, env in zip(axes, envs):
        for ax, (check, title) in zip(row, panels):
            for algorithm in algorithms:
                members = [r for r in groups.get((env, algorithm), []) if check in r.train_curve]
                color = _color(algorithms, algorithm)
                for name, style in ((check, '-'), (f'{check}_zero', '--')):
                    curves = [(r.train_curve['step'], r.train_curve[name]) for r in members
                              if name in r.train_curve]
                    if curves:
                        steps, mean, _ = mean_curve(curves)
                        ax.plot(steps, mean, color=color, linestyle=style,
                                label=algorithm if style == '-' else 'zero flow')
            if check == 'c_warp_gain':
                ax.axhline(1.0, color='k', linestyle=':', linewidth=1)
            ax.set_visible(bool(ax.lines))
            ax.set_title(f'{env}: {title}', fontsize=9)
            _step_axis(ax)
    _figure_legend(fig, axes.ravel())
    return fig


def plot_aggregate_intervals(intervals: Mapping[str, Mapping[str, tuple[float, float, float]]],
                             xlabel: str = 'Human-normalized score'):
    """rliable interval plot: label -> metric -> (point, low, high); one panel per metric."""
    from rliable import plot_utils  # Imports pyplot and seaborn: only when plotting.

    labels = list(intervals)
    points = {k: np.array([intervals[k][m][0] for m in aggregates.METRICS]) for k in labels}
    cis = {k: np.array([[intervals[k][m][1] for m in aggregates.METRICS],
                        [intervals[k][m][2] for m in aggregates.METRICS]]) for k in labels}
    height = max(1.6, 0.5 * len(labels))  # Inches; rliable's default is 0.37 per row.
    fig, axes = plot_utils.plot_interval_estimates(
        points, cis, [METRIC_TITLES[m] for m in aggregates.METRICS], algorithms=labels,
        xlabel=xlabel, row_height=height / len(labels), xlabel_y_coordinate=0.11 - 0.65 / height)
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
    profiles, cis = aggregates.performance_profiles(score_dict, taus, reps=reps, seed=seed)
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


def curve_figures(runs, out: str, suite: str, reference: Mapping[str, float] | None = None,
                  reference_label: str = 'PSRL (paper)') -> list[str]:
    """Writes <suite>_learning_curves.png (`reference`: a dashed line per env) and, when runs have
    a metrics.csv, <suite>_losses.png into `out`; returns the names written."""
    names = [f'{suite}_learning_curves.png']
    save_figure(plot_learning_curves(runs, reference=reference, reference_label=reference_label),
                os.path.join(out, names[0]))
    if any(r.train_curve for r in runs):
        names.append(f'{suite}_losses.png')
        save_figure(plot_loss_curves(runs), os.path.join(out, names[-1]))
    return names


# ----------------------------------------------------------------------------------------------
# The report.


@functools.lru_cache(maxsize=None)
def preset_config(suite: str, preset: str) -> dict | None:
    """The config of a suite's preset as its launcher writes it to config.json (None: no such
    preset), against which a run's switches are named."""
    module = importlib.import_module(f'experiments.configs.{suite}')
    if preset not in module.PRESETS:
        return None
    return json.loads(module.get_config(preset).to_json())


def collect_runs(values: Sequence[str], at_step: int = 0
                 ) -> tuple[list[run_folders.RunResult], list[str]]:
    """Loads the runs under the --runs globs at their final evaluation (`at_step` 0) or at their
    evaluation at `at_step`; raises UsageError when there are none."""
    patterns = [p.strip() for v in values for p in v.split(',') if p.strip()]
    if not patterns:
        raise UsageError("no runs given: pass --runs 'runs/*' (or --reference)")
    name = 'eval.csv' if at_step else 'summary.json'
    paths, unmatched = run_folders.find_run_files(patterns, name)
    warnings = [f'--runs {p!r} matched nothing' for p in unmatched]
    if not paths:
        raise UsageError(f'no runs matched --runs {",".join(patterns)}: '
                         f'no {name} at or below the matched paths')
    runs, load_warnings = run_folders.load_runs(paths, at_step or None, preset_config)
    warnings += load_warnings
    if not runs:
        for line in warnings:
            print(f'warning: {line}', file=sys.stderr)
        raise UsageError(f'none of the {len(paths)} {name} files under '
                         f'{",".join(patterns)} could be read'
                         + (f' at step {at_step}' if at_step else ''))
    return runs, warnings


def _pm(mean, sd, digits: int = 1) -> str:
    if mean is None:
        return '-'
    return fmt_number(mean, digits) + ('' if sd is None else f' ± {fmt_number(sd, digits)}')


def _ci(row, metric) -> str:
    point, low, high = row[metric], row[f'{metric}_low'], row[f'{metric}_high']
    return fmt_number(point, 3) + ('' if low is None else f' [{low:.3f}, {high:.3f}]')


def atari_section(runs, out: str, reps: int, seed: int, evaluation: str = 'the final evaluation'
                  ) -> tuple[str, list[str], list[str]]:
    """Writes the Atari tables and figures; returns (markdown, files written, warnings).
    `evaluation` names the evaluation the scores are from, in the text."""
    files = []
    rows, warnings = tables.atari_per_game_rows(runs)
    path = os.path.join(out, 'atari_per_game.csv')
    write_csv(rows, path)
    files.append(path)

    header = ['Game', 'Seeds', 'Steps', 'Ours (mean ± sd)', 'Ours HNS'] + \
        [f'{m} (paper)' for m in tables.ATARI_COMPARE_METHODS] + \
        [f'HNS {m} (paper)' for m in tables.ATARI_COMPARE_METHODS]
    parts = ['## Atari 100k: per-game scores',
             f'Return of {evaluation} (greedy); mean and sample sd over seeds. '
             'HNS = (score - random) / (human - random).']
    for algorithm in sorted({r['algorithm'] for r in rows}):
        mine = [r for r in rows if r['algorithm'] == algorithm]
        ran = [r for r in mine if r['n_seeds']]
        missing = [r['game'] for r in mine if not r['n_seeds']]
        table = [[r['game'], r['n_seeds'], r['total_steps'], _pm(r['mean'], r['sd']),
                  fmt_number(r['hns'], 3)] +
                 [fmt_number(r[f'paper_{m}'], 1) for m in tables.ATARI_COMPARE_METHODS] +
                 [fmt_number(r[f'paper_hns_{m}'], 3) for m in tables.ATARI_COMPARE_METHODS]
                 for r in ran]
        n_bench = sum(1 for r in ran if r['game'] in ATARI_100K_GAMES)
        parts += [f'### {algorithm} ({n_bench} of {len(ATARI_100K_GAMES)} games)',
                  markdown_table(header, table),
                  f'Missing (no runs): {", ".join(missing) if missing else "none"}.']
    per_game_md = '\n\n'.join(parts)

    summary = aggregates.atari_aggregates(runs, reps=reps, seed=seed)
    path = os.path.join(out, 'atari_aggregates.csv')
    write_csv(summary.rows, path)
    files.append(path)
    header = ['Scope', 'Algorithm', 'Games', 'Runs'] + \
        [f'{METRIC_TITLES[m]} [95% CI]' for m in aggregates.METRICS]
    table = []
    for r in summary.rows:
        scope = r['scope'] + (', partial' if r['partial'] else '')
        table.append([scope, r['algorithm'], r['n_games'], r['n_runs']] +
                     [_ci(r, m) for m in aggregates.METRICS])
    agg_md = '\n\n'.join([
        '## Atari 100k: aggregate human-normalized scores',
        f'rliable stratified bootstrap, {reps} replications, seed {seed}, percentile 95% '
        'intervals. Scope "common": the games every algorithm ran (the paper\'s numbers over '
        'the same games); "own": an algorithm\'s own games; "all 26": the paper over all '
        'games. "partial": fewer than 26 games.',
        markdown_table(header, table) if table else 'No aggregate could be computed.',
        '\n'.join(f'- {n}' for n in summary.notes)])

    figures = []
    if summary.scores:
        for name, fig in (
                ('atari_aggregate_intervals.png', plot_aggregate_intervals(
                    summary.intervals)),
                ('atari_performance_profile.png', plot_performance_profiles(
                    summary.scores, reps=reps, seed=seed))):
            figures.append(name)
            save_figure(fig, os.path.join(out, name))
    figures += curve_figures(runs, out, 'atari', reference=scores.paper_atari_scores()['PSRL'])
    files += [os.path.join(out, f) for f in figures]

    for name, text in (('atari_per_game.md', per_game_md), ('atari_aggregates.md', agg_md)):
        path = os.path.join(out, name)
        with open(path, 'w') as f:
            f.write(text + '\n')
        files.append(path)
    images = '\n\n'.join(f'![{f}]({f})' for f in figures)
    return '\n\n'.join([per_game_md, agg_md, images]), files, warnings


def dmc_section(runs, out: str, evaluation: str = 'the final evaluation'
                ) -> tuple[str, list[str], list[str]]:
    """Writes the DMControl table and figures; returns (markdown, files written, warnings)."""
    files = []
    rows, warnings = tables.dmc_per_task_rows(runs)
    path = os.path.join(out, 'dmc_per_task.csv')
    write_csv(rows, path)
    files.append(path)
    header = ['Task', 'Seeds', 'Steps', 'Ours (mean ± sd)'] + \
        [f'{m} (paper)' for m in tables.DMC_COMPARE_METHODS]
    parts = ['## DMControl: per-task returns',
             f'Return of {evaluation}; mean ± sample sd over seeds, beside the paper at '
             'the budget (100k or 500k environment steps) nearest to the runs\' total_steps.']
    for algorithm, budget in sorted({(r['algorithm'], r['budget']) for r in rows}):
        mine = [r for r in rows if (r['algorithm'], r['budget']) == (algorithm, budget)]
        table = [[r['task'], r['n_seeds'], r['total_steps'], _pm(r['mean'], r['sd'])] +
                 [_pm(r[f'paper_{m}_mean'], r[f'paper_{m}_std'], 0)
                  for m in tables.DMC_COMPARE_METHODS]
                 for r in mine if r['n_seeds']]
        missing = [r['task'] for r in mine if not r['n_seeds']]
        parts += [f'### {algorithm}, compared at the paper\'s {budget} budget',
                  markdown_table(header, table),
                  f'Missing (no runs): {", ".join(missing) if missing else "none"}.']
    text = '\n\n'.join(parts)
    path = os.path.join(out, 'dmc_per_task.md')
    with open(path, 'w') as f:
        f.write(text + '\n')
    files.append(path)

    budgets = {}
    for r in runs:
        budgets.setdefault(r.env, set()).add(scores.nearest_dmc_budget(r.total_steps))
    reference = {env: scores.paper_dmc_scores(b.pop())['PSRL'][env][0]
                 for env, b in budgets.items()
                 if len(b) == 1 and env in scores.DMC_TASKS}
    figures = curve_figures(runs, out, 'dmc', reference=reference)
    files += [os.path.join(out, f) for f in figures]
    images = '\n\n'.join(f'![{f}]({f})' for f in figures)
    return '\n\n'.join([text, images]), files, warnings


def read_baselines(folder: str) -> dict:
    """game -> experiments.baselines' JSON, for every <game>.json in `folder` (none: {})."""
    found = {}
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if name.endswith('.json'):
            with open(os.path.join(folder, name)) as f:
                record = json.load(f)
            found[record['env']] = record
    return found


def verdict_text(verdict: Mapping) -> str:
    """'psrl wins' etc.; an undecided verdict says how many seeds each side has."""
    if verdict['verdict'] != 'undecided':
        return f"{verdict['ours']} {verdict['verdict']}"
    return (f"undecided ({verdict['ours_seeds']} and {verdict['other_seeds']} seeds; "
            f"{tables.MIN_VERDICT_SEEDS} each needed)")


def minatar_section(runs, out: str, baselines: Mapping[str, Mapping], reps: int, seed: int,
                    evaluation: str = 'the final evaluation'
                    ) -> tuple[str, list[str], list[str]]:
    """Writes the MinAtar table and figures; returns (markdown, files written, warnings)."""
    rows, warnings = tables.minatar_per_game_rows(runs, baselines, reps, seed)
    verdicts = tables.minatar_verdicts(rows)
    missing = [g for g in MINATAR_GAMES if g not in {r['game'] for r in rows}]
    files = [os.path.join(out, 'minatar_per_game.csv')]
    write_csv(rows, files[0])
    header = ['Game', 'Algorithm', 'Seeds', 'Steps', 'Return (mean [95% CI])', 'Random',
              'Best constant action']
    table = [[r['game'], r['algorithm'], r['n_seeds'], r['total_steps'],
              f"{fmt_number(r['mean'], 2)} [{fmt_number(r['ci_low'], 2)}, "
              f"{fmt_number(r['ci_high'], 2)}]", fmt_number(r['random'], 2),
              fmt_number(r['best_constant'], 2)] for r in rows]
    parts = ['## MinAtar: per-game returns',
             f'Return of {evaluation}; mean over seeds with a 95% bootstrap confidence '
             'interval (seeds resampled), beside the uniformly random policy and the best constant '
             'action on the same evaluation games (missing: run `python -m experiments.baselines '
             '--env=<game> --out=<folder>/<game>.json`).',
             markdown_table(header, table),
             f'Games without runs: {", ".join(missing) if missing else "none"}.',
             '### PSRL against the others',
             markdown_table(['Game', 'psrl', 'Other', 'Verdict'],
                            [[v['game'], fmt_number(v['ours_mean'], 2),
                              f"{v['other']} {fmt_number(v['other_mean'], 2)}",
                              verdict_text(v)] for v in verdicts])
             if verdicts else 'No psrl run beside another algorithm on the same game.']
    text = '\n\n'.join(parts)
    files.append(os.path.join(out, 'minatar_per_game.md'))
    with open(files[-1], 'w') as f:
        f.write(text + '\n')
    figures = curve_figures(runs, out, 'minatar',
                            reference={game: b['best_constant'] for game, b in baselines.items()},
                            reference_label='best constant action')
    files += [os.path.join(out, f) for f in figures]
    images = '\n\n'.join(f'![{f}]({f})' for f in figures)
    return '\n\n'.join([text, images]), files, warnings


def correspondence_section(runs, out: str) -> tuple[str, list[str]]:
    """Writes the table and figure of C's checks; returns (markdown, files written)."""
    rows = tables.correspondence_rows(runs)
    files = [os.path.join(out, name) for name in ('c_checks.csv', 'c_checks.md', 'c_checks.png')]
    write_csv(rows, files[0])
    table = [[r['suite'], r['env'], r['algorithm'], r['n_seeds'], r['step']] +
             [f"{fmt_number(r[name], 2)} ({fmt_number(r[f'{name}_zero'], 2)})"
              for name in ('c_shift_epe', 'c_object_epe')] + [fmt_number(r['c_warp_gain'], 2)]
             for r in rows]
    text = '\n\n'.join([
        '## C against ground truth',
        "C's checks (psrl_jax.diagnostics) at the end of the runs: each seed's mean over its last "
        f'{tables.CHECK_WINDOW} logged values, averaged over seeds. Errors are in pixels (MinAtar: '
        'cells), zero flow\'s in brackets; c_warp_gain is the photometric error of C\'s flow over '
        'zero flow\'s on consecutive frames. C finds correspondences where its errors lie below '
        'zero flow\'s and c_warp_gain below 1.',
        markdown_table(['Suite', 'Env', 'Algorithm', 'Seeds', 'Step', 'c_shift_epe (zero flow)',
                        'c_object_epe (zero flow)', 'c_warp_gain'], table),
        '![c_checks.png](c_checks.png)'])
    with open(files[1], 'w') as f:
        f.write(text + '\n')
    save_figure(plot_correspondence_checks(runs), files[2])
    return text, files


def write_report(run_globs: Sequence[str], out: str, reps: int = 2000,
                 seed: int = 0, minatar_baselines: str = '', at_step: int = 0) -> dict:
    """Builds the whole report in `out`, from every run's final evaluation (`at_step` 0) or from
    its evaluation at `at_step`.

    Returns:
      {'files': paths written, 'warnings': warning lines, 'runs': number of runs read}.
    Raises:
      UsageError: no runs were given, matched or readable.
    """
    runs, warnings = collect_runs(run_globs, at_step)
    evaluation = f'the evaluation at step {at_step}' if at_step else 'the final evaluation'
    os.makedirs(out, exist_ok=True)
    atari = [r for r in runs if r.suite == 'atari']
    dmc = [r for r in runs if r.suite == 'dmc']
    minatar = [r for r in runs if r.suite == 'minatar']
    sections, files = [], []
    for suite, suite_runs, build in (
            ('Atari 100k', atari, lambda rs: atari_section(rs, out, reps, seed, evaluation)),
            ('DMControl', dmc, lambda rs: dmc_section(rs, out, evaluation)),
            ('MinAtar', minatar, lambda rs: minatar_section(
                rs, out, read_baselines(minatar_baselines), reps, seed, evaluation))):
        if suite_runs:
            text, written, more = build(suite_runs)
            sections.append(text)
            files += written
            warnings += more
        else:
            sections.append(f'## {suite}\n\nNo runs.')
    if any(tables.logs_correspondence_checks(r) for r in runs):
        text, written = correspondence_section(runs, out)
        sections.append(text)
        files += written
    head = (f'# Report\n\n{len(runs)} runs ({len(atari)} Atari, {len(dmc)} DMControl, '
            f'{len(minatar)} MinAtar) '
            f'from --runs {",".join(run_globs)}, each at {evaluation}'
            + (' (runs still training included; those that have not reached it are skipped, '
               'see Warnings).' if at_step else '.'))
    notes = '## Warnings\n\n' + ('\n'.join(f'- {w}' for w in warnings) or 'None.')
    path = os.path.join(out, 'report.md')
    with open(path, 'w') as f:
        f.write('\n\n'.join([head] + sections + [notes]) + '\n')
    files.insert(0, path)
    return {'files': files, 'warnings': warnings, 'runs': len(runs)}


def main(argv):
    try:
        if len(argv) > 1:
            raise UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
        if FLAGS.reference:
            print(format_reference())
            return
        if FLAGS.reps < 1:
            raise UsageError(f'--reps must be positive, got {FLAGS.reps}')
        if FLAGS.at_step < 0:
            raise UsageError(f'--at_step must be >= 0, got {FLAGS.at_step}')
        result = write_report(FLAGS.runs, FLAGS.out, reps=FLAGS.reps, seed=FLAGS.seed,
                              minatar_baselines=FLAGS.minatar_baselines, at_step=FLAGS.at_step)
    except UsageError as e:
        print(f'error: {e}', file=sys.stderr)
        sys.exit(2)
    for line in result['warnings']:
        print(f'warning: {line}', file=sys.stderr)
    print(f'{result["runs"]} runs -> {result["files"][0]} ({len(result["files"])} files)')


if __name__ == '__main__':
    app.run(main)
