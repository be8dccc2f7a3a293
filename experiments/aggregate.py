"""Aggregate finished runs into a report beside the paper's tables.

    python -m experiments.aggregate --runs 'runs/*' --out report/
    python -m experiments.aggregate --reference

Finds every summary.json at or below the folders matched by --runs (a glob; repeat the flag or
separate globs by commas), groups runs by algorithm and suite, and writes to --out:
  report.md                    everything below in one page, with the figures;
  atari_per_game.{md,csv}      our mean and sd over seeds per game beside the paper's PSRL, SPR,
                               DrQ, and human-normalized scores (HNS);
  atari_aggregates.{md,csv}    mean, median, IQM, optimality gap of HNS with 95% stratified
                               bootstrap CIs (rliable) beside the paper's PSRL and SPR;
  atari_aggregate_intervals.png, atari_performance_profile.png, atari_learning_curves.png,
  atari_losses.png;
  dmc_per_task.{md,csv}        our mean and sd over seeds beside the paper's PSRL and DrQ at the
                               paper budget (100k or 500k) nearest to total_steps;
  dmc_learning_curves.png, dmc_losses.png.
Benchmark games and tasks without runs are listed; aggregates over fewer than the 26 games are
labelled partial. --reference prints the paper's own aggregates and DMControl tables and exits.
The tables, metrics and plots live in psrl_jax.evaluation; this file only orchestrates them.
"""

import os
import sys
from typing import Sequence

import matplotlib

matplotlib.use('Agg')

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from psrl_jax import evaluation as ev  # noqa: E402
from psrl_jax.errors import UsageError  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_multi_string('runs', [], 'Glob of run folders (repeatable, or comma-separated).')
flags.DEFINE_string('out', 'report', 'Folder for the report (created if absent).')
flags.DEFINE_bool('reference', False, "Print the paper's aggregates and tables, then exit.")
flags.DEFINE_integer('reps', 2000, 'Bootstrap replications for the confidence intervals.')
flags.DEFINE_integer('seed', 0, 'Seed of the bootstrap (same seed, same intervals).')


def collect_runs(values: Sequence[str]) -> tuple[list[ev.RunResult], list[str]]:
    """Loads the runs under the --runs globs; raises UsageError when there are none."""
    patterns = [p.strip() for v in values for p in v.split(',') if p.strip()]
    if not patterns:
        raise UsageError("no runs given: pass --runs 'runs/*' (or --reference)")
    summaries, unmatched = ev.find_summary_files(patterns)
    warnings = [f'--runs {p!r} matched nothing' for p in unmatched]
    if not summaries:
        raise UsageError(f'no runs matched --runs {",".join(patterns)}: '
                         'no summary.json at or below the matched paths')
    runs, load_warnings = ev.load_runs(summaries)
    warnings += load_warnings
    if not runs:
        for line in warnings:
            print(f'warning: {line}', file=sys.stderr)
        raise UsageError(f'none of the {len(summaries)} summary.json files under '
                         f'{",".join(patterns)} could be read')
    return runs, warnings


def _pm(mean, sd, digits: int = 1) -> str:
    if mean is None:
        return '-'
    return ev.fmt_number(mean, digits) + ('' if sd is None else f' ± {ev.fmt_number(sd, digits)}')


def _ci(row, metric) -> str:
    point, low, high = row[metric], row[f'{metric}_low'], row[f'{metric}_high']
    return ev.fmt_number(point, 3) + ('' if low is None else f' [{low:.3f}, {high:.3f}]')


def atari_section(runs, out: str, reps: int, seed: int) -> tuple[str, list[str], list[str]]:
    """Writes the Atari tables and figures; returns (markdown, files written, warnings)."""
    files = []
    rows, warnings = ev.atari_per_game_rows(runs)
    path = os.path.join(out, 'atari_per_game.csv')
    ev.write_csv(rows, path)
    files.append(path)

    header = ['Game', 'Seeds', 'Steps', 'Ours (mean ± sd)', 'Ours HNS'] + \
        [f'{m} (paper)' for m in ev.ATARI_COMPARE_METHODS] + \
        [f'HNS {m} (paper)' for m in ev.ATARI_COMPARE_METHODS]
    parts = ['## Atari 100k: per-game scores',
             'Return of the final greedy evaluation; mean and sample sd over seeds. '
             'HNS = (score - random) / (human - random).']
    for algorithm in sorted({r['algorithm'] for r in rows}):
        mine = [r for r in rows if r['algorithm'] == algorithm]
        ran = [r for r in mine if r['n_seeds']]
        missing = [r['game'] for r in mine if not r['n_seeds']]
        table = [[r['game'], r['n_seeds'], r['total_steps'], _pm(r['mean'], r['sd']),
                  ev.fmt_number(r['hns'], 3)] +
                 [ev.fmt_number(r[f'paper_{m}'], 1) for m in ev.ATARI_COMPARE_METHODS] +
                 [ev.fmt_number(r[f'paper_hns_{m}'], 3) for m in ev.ATARI_COMPARE_METHODS]
                 for r in ran]
        n_bench = sum(1 for r in ran if r['game'] in ev.ATARI_100K_GAMES)
        parts += [f'### {algorithm} ({n_bench} of {len(ev.ATARI_100K_GAMES)} games)',
                  ev.markdown_table(header, table),
                  f'Missing (no runs): {", ".join(missing) if missing else "none"}.']
    per_game_md = '\n\n'.join(parts)

    aggregates = ev.atari_aggregates(runs, reps=reps, seed=seed)
    path = os.path.join(out, 'atari_aggregates.csv')
    ev.write_csv(aggregates.rows, path)
    files.append(path)
    header = ['Scope', 'Algorithm', 'Games', 'Runs'] + \
        [f'{ev.METRIC_TITLES[m]} [95% CI]' for m in ev.METRICS]
    table = []
    for r in aggregates.rows:
        scope = r['scope'] + (', partial' if r['partial'] else '')
        table.append([scope, r['algorithm'], r['n_games'], r['n_runs']] +
                     [_ci(r, m) for m in ev.METRICS])
    agg_md = '\n\n'.join([
        '## Atari 100k: aggregate human-normalized scores',
        f'rliable stratified bootstrap, {reps} replications, seed {seed}, percentile 95% '
        'intervals. Scope "common": the games every algorithm ran (the paper\'s numbers over '
        'the same games); "own": an algorithm\'s own games; "all 26": the paper over all '
        'games. "partial": fewer than 26 games.',
        ev.markdown_table(header, table) if table else 'No aggregate could be computed.',
        '\n'.join(f'- {n}' for n in aggregates.notes)])

    figures = []
    if aggregates.scores:
        for name, fig in (
                ('atari_aggregate_intervals.png', ev.plot_aggregate_intervals(
                    aggregates.intervals)),
                ('atari_performance_profile.png', ev.plot_performance_profiles(
                    aggregates.scores, reps=reps, seed=seed))):
            figures.append(name)
            ev.save_figure(fig, os.path.join(out, name))
    psrl = ev.paper_atari_scores()['PSRL']
    figures.append('atari_learning_curves.png')
    ev.save_figure(ev.plot_learning_curves(runs, reference=psrl),
                   os.path.join(out, figures[-1]))
    if any(r.train_curve for r in runs):
        figures.append('atari_losses.png')
        ev.save_figure(ev.plot_loss_curves(runs), os.path.join(out, figures[-1]))
    files += [os.path.join(out, f) for f in figures]

    for name, text in (('atari_per_game.md', per_game_md), ('atari_aggregates.md', agg_md)):
        path = os.path.join(out, name)
        with open(path, 'w') as f:
            f.write(text + '\n')
        files.append(path)
    images = '\n\n'.join(f'![{f}]({f})' for f in figures)
    return '\n\n'.join([per_game_md, agg_md, images]), files, warnings


def dmc_section(runs, out: str) -> tuple[str, list[str], list[str]]:
    """Writes the DMControl table and figures; returns (markdown, files written, warnings)."""
    files = []
    rows, warnings = ev.dmc_per_task_rows(runs)
    path = os.path.join(out, 'dmc_per_task.csv')
    ev.write_csv(rows, path)
    files.append(path)
    header = ['Task', 'Seeds', 'Steps', 'Ours (mean ± sd)'] + \
        [f'{m} (paper)' for m in ev.DMC_COMPARE_METHODS]
    parts = ['## DMControl: per-task returns',
             'Return of the final evaluation; mean ± sample sd over seeds, beside the paper at '
             'the budget (100k or 500k environment steps) nearest to the runs\' total_steps.']
    for algorithm, budget in sorted({(r['algorithm'], r['budget']) for r in rows}):
        mine = [r for r in rows if (r['algorithm'], r['budget']) == (algorithm, budget)]
        table = [[r['task'], r['n_seeds'], r['total_steps'], _pm(r['mean'], r['sd'])] +
                 [_pm(r[f'paper_{m}_mean'], r[f'paper_{m}_std'], 0)
                  for m in ev.DMC_COMPARE_METHODS]
                 for r in mine if r['n_seeds']]
        missing = [r['task'] for r in mine if not r['n_seeds']]
        parts += [f'### {algorithm}, compared at the paper\'s {budget} budget',
                  ev.markdown_table(header, table),
                  f'Missing (no runs): {", ".join(missing) if missing else "none"}.']
    text = '\n\n'.join(parts)
    path = os.path.join(out, 'dmc_per_task.md')
    with open(path, 'w') as f:
        f.write(text + '\n')
    files.append(path)

    budgets = {}
    for r in runs:
        budgets.setdefault(r.env, set()).add(ev.nearest_dmc_budget(r.total_steps))
    reference = {env: ev.paper_dmc_scores(b.pop())['PSRL'][env][0]
                 for env, b in budgets.items()
                 if len(b) == 1 and env in ev.DMC_TASKS}
    figures = ['dmc_learning_curves.png']
    ev.save_figure(ev.plot_learning_curves(runs, reference=reference),
                   os.path.join(out, figures[-1]))
    if any(r.train_curve for r in runs):
        figures.append('dmc_losses.png')
        ev.save_figure(ev.plot_loss_curves(runs), os.path.join(out, figures[-1]))
    files += [os.path.join(out, f) for f in figures]
    images = '\n\n'.join(f'![{f}]({f})' for f in figures)
    return '\n\n'.join([text, images]), files, warnings


def write_report(run_globs: Sequence[str], out: str, reps: int = 2000,
                 seed: int = 0) -> dict:
    """Builds the whole report in `out`.

    Returns:
      {'files': paths written, 'warnings': warning lines, 'runs': number of runs read}.
    Raises:
      UsageError: no runs were given, matched or readable.
    """
    runs, warnings = collect_runs(run_globs)
    os.makedirs(out, exist_ok=True)
    atari = [r for r in runs if r.suite == 'atari']
    dmc = [r for r in runs if r.suite == 'dmc']
    sections, files = [], []
    for suite, suite_runs, build in (
            ('Atari 100k', atari, lambda rs: atari_section(rs, out, reps, seed)),
            ('DMControl', dmc, lambda rs: dmc_section(rs, out))):
        if suite_runs:
            text, written, more = build(suite_runs)
            sections.append(text)
            files += written
            warnings += more
        else:
            sections.append(f'## {suite}\n\nNo runs.')
    head = (f'# Report\n\n{len(runs)} runs ({len(atari)} Atari, {len(dmc)} DMControl) '
            f'from --runs {",".join(run_globs)}.')
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
            print(ev.format_reference())
            return
        if FLAGS.reps < 1:
            raise UsageError(f'--reps must be positive, got {FLAGS.reps}')
        result = write_report(FLAGS.runs, FLAGS.out, reps=FLAGS.reps, seed=FLAGS.seed)
    except UsageError as e:
        print(f'error: {e}', file=sys.stderr)
        sys.exit(2)
    for line in result['warnings']:
        print(f'warning: {line}', file=sys.stderr)
    print(f'{result["runs"]} runs -> {result["files"][0]} ({len(result["files"])} files)')


if __name__ == '__main__':
    app.run(main)
