"""experiments/aggregate.py: its text and curve helpers, and end to end on hand-made run folders."""

import csv
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `pytest` (not `python -m pytest`) leaves the root off the path.
    sys.path.insert(0, str(ROOT))

from experiments import aggregate  # noqa: E402
from psrl_jax.evaluation import runs as run_folders  # noqa: E402
from psrl_jax.evaluation import tables  # noqa: E402

# (folder under runs/, algorithm, env, seed, total_steps, final eval return)
RUNS = [
    ('psrl_pong/seed_0', 'psrl', 'Pong', 0, 100_000, -10.0),  # --num_seeds layout
    ('psrl_pong/seed_1', 'psrl', 'Pong', 1, 100_000, -6.0),
    ('psrl_breakout_s0', 'psrl', 'Breakout', 0, 100_000, 10.0),  # one folder per seed
    ('psrl_breakout_s1', 'psrl', 'Breakout', 1, 100_000, 16.0),
    ('spr_pong', 'spr', 'Pong', 0, 100_000, -4.0),
    ('spr_breakout/seed_0', 'spr', 'Breakout', 0, 100_000, 20.0),
    ('spr_breakout/seed_1', 'spr', 'Breakout', 1, 100_000, 22.0),
    ('spr_boxing', 'spr', 'Boxing', 0, 100_000, 30.0),
    ('drq_cartpole/seed_0', 'drq', 'cartpole-swingup', 0, 100_000, 800.0),
    ('drq_cartpole/seed_1', 'drq', 'cartpole-swingup', 1, 100_000, 850.0),
    ('drq_walker', 'drq', 'walker-walk', 0, 500_000, 900.0),
]


def hns(game, score):
    human, rand = {'Pong': (14.6, -20.7), 'Breakout': (30.5, 1.7), 'Boxing': (12.1, 0.1)}[game]
    return (score - rand) / (human - rand)


def make_runs(base, runs=RUNS):
    for folder, algorithm, env, seed, steps, ret in runs:
        run = base / folder
        run.mkdir(parents=True)
        (run / 'config.json').write_text('{}')
        summary = {'algorithm': algorithm, 'env': env, 'seed': seed, 'total_steps': steps,
                   'eval_return_mean': ret, 'eval_return_std': 1.0, 'eval_episodes': 10,
                   'human_normalized_score': None, 'wall_seconds': 1.0, 'device': 'cpu'}
        (run / 'summary.json').write_text(json.dumps(summary))
        half = steps // 2
        (run / 'eval.csv').write_text('step,return_mean,return_std,episodes\n'
                                      f'{half},{ret / 2},1.0,10\n{steps},{ret},1.0,10\n')
        (run / 'metrics.csv').write_text('step,fps,loss_rl,loss_sim,loss_c\n'
                                         f'{half},100,1.0,-0.5,0.2\n{steps},100,0.5,-0.9,0.1\n')
    broken = base / 'broken'
    broken.mkdir()
    (broken / 'summary.json').write_text('{"algorithm": "psrl", ')
    return broken / 'summary.json'


def read_csv(path):
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope='module')
def report(tmp_path_factory):
    base = tmp_path_factory.mktemp('runs')
    broken = make_runs(base)
    out = base.parent / 'report'
    result = aggregate.write_report([str(base / 'psrl_*') + ',' + str(base / 'spr_*'),
                                     str(base / 'drq_*'), str(base / 'broken')],
                                    str(out), reps=200, seed=0)
    return out, result, broken, base


def test_reads_every_run_and_warns_about_the_broken_one(report):
    out, result, broken, _ = report
    assert result['runs'] == len(RUNS)
    assert any(str(broken) in w for w in result['warnings'])
    assert str(broken) in (out / 'report.md').read_text()


def test_atari_per_game_numbers(report):
    out = report[0]
    rows = {(r['algorithm'], r['game']): r for r in read_csv(out / 'atari_per_game.csv')}
    pong = rows[('psrl', 'Pong')]
    assert int(pong['n_seeds']) == 2 and pong['seeds'] == '0 1'
    assert float(pong['mean']) == pytest.approx(-8.0)
    assert float(pong['sd']) == pytest.approx(np.sqrt(8.0))  # sample sd of -10, -6
    assert float(pong['hns']) == pytest.approx(hns('Pong', -8.0))
    assert float(pong['paper_PSRL']) == -8.2 and float(pong['paper_SPR']) == -5.9
    assert float(pong['paper_DrQ']) == -8.5
    assert float(pong['paper_hns_PSRL']) == pytest.approx(hns('Pong', -8.2))
    breakout = rows[('psrl', 'Breakout')]
    assert float(breakout['mean']) == pytest.approx(13.0)
    assert float(breakout['sd']) == pytest.approx(np.sqrt(18.0))
    spr_pong = rows[('spr', 'Pong')]
    assert float(spr_pong['mean']) == -4.0 and spr_pong['sd'] == ''  # one seed: no sd
    assert rows[('psrl', 'Alien')]['n_seeds'] == '0' and rows[('psrl', 'Alien')]['mean'] == ''
    assert len(rows) == 2 * 26

    text = (out / 'atari_per_game.md').read_text()
    assert '-8.0 ± 2.8' in text and '13.0 ± 4.2' in text
    psrl_part, spr_part = text.split('### spr')
    psrl_missing = psrl_part.split('Missing (no runs): ')[1]
    assert psrl_missing.startswith('Alien, Amidar, Assault, Asterix, BankHeist, BattleZone, '
                                   'Boxing, ChopperCommand')
    assert 'Pong' not in psrl_missing and 'UpNDown' in psrl_missing
    assert 'Boxing' not in spr_part.split('Missing (no runs): ')[1]


def test_atari_aggregates_over_common_games(report):
    out = report[0]
    rows = {(r['scope'], r['algorithm']): r for r in read_csv(out / 'atari_aggregates.csv')}
    psrl = rows[('common', 'psrl')]
    assert psrl['n_games'] == '2' and psrl['n_runs'] == '2' and psrl['partial'] == 'True'
    assert psrl['games'] == 'Breakout Pong'
    x = np.array([[hns('Breakout', 10.0), hns('Pong', -10.0)],
                  [hns('Breakout', 16.0), hns('Pong', -6.0)]])
    assert float(psrl['mean']) == pytest.approx(x.mean())
    assert float(psrl['median']) == pytest.approx(np.median(x.mean(axis=0)))
    assert float(psrl['iqm']) == pytest.approx(np.sort(x.ravel())[1:3].mean())
    assert float(psrl['optimality_gap']) == pytest.approx(np.maximum(1 - x, 0).mean())
    for m in ('mean', 'median', 'iqm', 'optimality_gap'):
        assert float(psrl[f'{m}_low']) <= float(psrl[m]) <= float(psrl[f'{m}_high'])
    # spr has 1 Pong seed, so one run per game: Breakout seed 1 is left out, and noted.
    spr = rows[('common', 'spr')]
    assert spr['n_runs'] == '1'
    assert float(spr['mean']) == pytest.approx((hns('Breakout', 20.0) + hns('Pong', -4.0)) / 2)
    assert float(spr['mean_low']) == float(spr['mean_high']) == float(spr['mean'])
    # spr's own three games (Boxing too).
    assert rows[('own', 'spr')]['n_games'] == '3'
    paper = rows[('common', 'PSRL (paper)')]
    assert float(paper['mean']) == pytest.approx((hns('Breakout', 17.5) + hns('Pong', -8.2)) / 2)
    assert paper['mean_low'] == ''
    assert float(rows[('all 26', 'PSRL (paper)')]['mean']) == pytest.approx(0.6096, abs=1e-4)
    text = (out / 'atari_aggregates.md').read_text()
    assert 'PARTIAL, 24 of 26 games left out: Alien' in text
    assert 'common, partial' in text
    assert 'spr Breakout: 2 seeds but only 1' in text and 'seed 1 left out' in text


def test_dmc_table_uses_nearest_budget(report):
    out = report[0]
    rows = {(r['budget'], r['task']): r for r in read_csv(out / 'dmc_per_task.csv')}
    cart = rows[('100k', 'cartpole-swingup')]
    assert cart['algorithm'] == 'drq' and cart['n_seeds'] == '2'
    assert float(cart['mean']) == pytest.approx(825.0)
    assert float(cart['sd']) == pytest.approx(np.sqrt(1250.0))
    assert (float(cart['paper_PSRL_mean']), float(cart['paper_PSRL_std'])) == (849.0, 63.0)
    assert (float(cart['paper_DrQ_mean']), float(cart['paper_DrQ_std'])) == (759.0, 92.0)
    walker = rows[('500k', 'walker-walk')]
    assert float(walker['mean']) == 900.0 and float(walker['paper_PSRL_mean']) == 930.0
    assert rows[('100k', 'walker-walk')]['n_seeds'] == '0'
    text = (out / 'dmc_per_task.md').read_text()
    assert "compared at the paper's 100k budget" in text and '825.0 ± 35.4' in text
    assert 'Missing (no runs): finger-spin, reacher-easy, cheetah-run, walker-walk, ' \
           'ball_in_cup-catch.' in text


def test_all_outputs_written(report):
    out, result = report[0], report[1]
    names = ['report.md', 'atari_per_game.md', 'atari_per_game.csv', 'atari_aggregates.md',
             'atari_aggregates.csv', 'dmc_per_task.md', 'dmc_per_task.csv',
             'atari_aggregate_intervals.png', 'atari_performance_profile.png',
             'atari_learning_curves.png', 'atari_losses.png', 'dmc_learning_curves.png',
             'dmc_losses.png']
    for name in names:
        path = out / name
        assert path.stat().st_size > 0, name
        if name.endswith('.png'):
            assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n', name
        assert str(path) in result['files']


def _cli(*args, cwd=ROOT):
    env = dict(os.environ, MPLBACKEND='Agg')
    return subprocess.run([sys.executable, '-m', 'experiments.aggregate', *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, env=env)


def test_cli_writes_report(report, tmp_path):
    base = report[3]
    proc = _cli(f'--runs={base}/*', f'--out={tmp_path}/r', '--reps=50')
    assert proc.returncode == 0, proc.stderr
    assert 'warning: skipping' in proc.stderr and 'broken' in proc.stderr
    assert (tmp_path / 'r' / 'report.md').stat().st_size > 0
    assert (tmp_path / 'r' / 'atari_aggregates.csv').stat().st_size > 0


def test_cli_no_runs_is_a_usage_error(tmp_path):
    for args in ([f'--runs={tmp_path}/nothing_here/*', f'--out={tmp_path}/r'], []):
        proc = _cli(*args)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith('error: ') and 'runs' in lines[0]
        assert 'Traceback' not in proc.stderr
    assert not (tmp_path / 'r').exists()


def test_cli_reference_prints_paper_numbers():
    proc = _cli('--reference')
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    psrl = next(line for line in lines if line.startswith('PSRL '))
    spr = next(line for line in lines if line.startswith('SPR '))
    assert psrl.split()[1:4] == ['0.610', '0.344', '0.339']
    assert spr.split()[1:4] == ['0.703', '0.415', '0.450']
    assert any(line.startswith('finger-spin') and line.split()[-1] == '882+-132'
               for line in lines)
    assert any(line.startswith('finger-spin') and line.split()[-1] == '961+-121'
               for line in lines)


def test_minatar_runs_get_their_own_table(tmp_path):
    make_runs(tmp_path / 'runs', [
        ('rainbow/breakout/seed_0', 'rainbow', 'breakout', 0, 100_000, 4.0),
        ('rainbow/breakout/seed_1', 'rainbow', 'breakout', 1, 100_000, 8.0),
        ('rainbow/freeway', 'rainbow', 'freeway', 0, 100_000, 20.0),
        ('spr/breakout/seed_0', 'spr', 'breakout', 0, 100_000, 6.0),
        ('spr/breakout/seed_1', 'spr', 'breakout', 1, 50_000, 2.0)])
    out = tmp_path / 'report'
    result = aggregate.write_report([str(tmp_path / 'runs' / '*')], str(out), reps=50)
    assert result['runs'] == 5
    rows = read_csv(out / 'minatar_per_game.csv')
    assert [(r['algorithm'], r['game'], r['n_seeds']) for r in rows] == [
        ('rainbow', 'breakout', '2'), ('rainbow', 'freeway', '1'), ('spr', 'breakout', '2')]
    breakout = rows[0]
    assert float(breakout['mean']) == 6.0 and float(breakout['sd']) == pytest.approx(np.sqrt(8.0))
    assert rows[2]['total_steps'] == '50000/100000'
    assert result['warnings'][0].startswith(f'skipping {tmp_path}/runs/broken/summary.json')
    assert result['warnings'][1:] == ['spr breakout: seeds ran different total_steps '
                                      '(50000/100000); all are averaged']
    text = (out / 'minatar_per_game.md').read_text()
    assert '| breakout | rainbow | 2 | 100000 | 6.00 [4.00, 8.00] |' in text
    assert '| freeway | rainbow | 1 | 100000 | 20.00 [20.00, 20.00] |' in text
    assert 'Games without runs: asterix, seaquest, space_invaders.' in text
    report = (out / 'report.md').read_text()
    assert '5 runs (0 Atari, 0 DMControl, 5 MinAtar)' in report
    assert '## Atari 100k\n\nNo runs.' in report and '## MinAtar: per-game returns' in report
    for name in ('minatar_learning_curves.png', 'minatar_losses.png'):
        assert (out / name).read_bytes()[:4] == b'\x89PNG' and str(out / name) in result['files']
    assert not (out / 'atari_per_game.csv').exists() and not (out / 'dmc_per_task.csv').exists()
    assert not (out / 'c_checks.md').exists() and '## C against' not in report


def test_mean_curve_uses_shared_steps():
    steps, mean, sd = aggregate.mean_curve(
        [(np.array([0, 10, 20]), np.array([1.0, 2.0, 3.0])),
         (np.array([0, 10, 20, 30]), np.array([3.0, 4.0, 7.0, 9.0]))])
    np.testing.assert_array_equal(steps, [0, 10, 20])
    np.testing.assert_allclose(mean, [2.0, 3.0, 5.0])
    np.testing.assert_allclose(sd, [1.0, 1.0, 2.0])


def test_markdown_table_and_fmt():
    text = aggregate.markdown_table(['a', 'b'], [['x|y', 1.5]])
    assert text.splitlines() == ['| a | b |', '| --- | ---: |', '| x\\|y | 1.5 |']
    assert aggregate.fmt_number(None, 2) == '-' and aggregate.fmt_number(float('nan'), 2) == '-'
    assert aggregate.fmt_number(0.3385, 3) == '0.339'


MINATAR = {('psrl', 'breakout'): [5.0, 6.0, 7.0, 8.0, 9.0],
           ('rainbow', 'breakout'): [1.0, 1.2, 0.8, 1.1, 0.9],
           ('spr', 'breakout'): [5.5, 6.5, 7.5, 8.5, 6.0],
           ('psrl', 'asterix'): [1.0, 1.1, 0.9],
           ('rainbow', 'asterix'): [3.0, 3.1, 2.9]}


def test_minatar_table_ci_baselines_and_verdicts(tmp_path):
    for (algorithm, game), returns in MINATAR.items():
        for seed, ret in enumerate(returns):
            run = tmp_path / 'runs' / f'{algorithm}_{game}' / f'seed_{seed}'
            run.mkdir(parents=True)
            (run / 'summary.json').write_text(json.dumps(
                {'algorithm': algorithm, 'env': game, 'seed': seed, 'total_steps': 100_000,
                 'eval_return_mean': ret, 'eval_return_std': 1.0, 'eval_episodes': 100,
                 'human_normalized_score': None, 'wall_seconds': 1.0, 'device': 'cpu'}))
            (run / 'eval.csv').write_text('step,return_mean,return_std,episodes\n'
                                          f'50000,{ret / 2},1.0,100\n100000,{ret},1.0,100\n')
    baselines = tmp_path / 'baselines'
    baselines.mkdir()
    (baselines / 'breakout.json').write_text(json.dumps(
        {'env': 'breakout', 'random': 0.62, 'best_constant': 0.46, 'best_constant_action': 0}))
    out = tmp_path / 'report'
    result = aggregate.write_report([str(tmp_path / 'runs' / '*')], str(out), reps=500,
                                    minatar_baselines=str(baselines))
    assert result['runs'] == 21 and not result['warnings']
    rows = {(r['algorithm'], r['game']): r for r in read_csv(out / 'minatar_per_game.csv')}
    assert set(rows) == set(MINATAR)
    for key, returns in MINATAR.items():
        row = rows[key]
        assert int(row['n_seeds']) == len(returns)
        assert [float(x) for x in row['returns'].split()] == returns   # seed order
        assert float(row['mean']) == pytest.approx(np.mean(returns))
        # a percentile bootstrap CI of the mean lies inside the seeds' range, around the mean
        assert min(returns) <= float(row['ci_low']) <= float(row['mean']) <= float(row['ci_high'])
        assert float(row['ci_high']) <= max(returns)
        assert float(row['sd']) == pytest.approx(np.std(returns, ddof=1))
    assert float(rows['psrl', 'breakout']['random']) == 0.62
    assert float(rows['psrl', 'breakout']['best_constant']) == 0.46
    assert rows['psrl', 'asterix']['random'] == ''                  # no baselines file
    text = (out / 'report.md').read_text()
    assert '## MinAtar: per-game returns' in text and '21 runs (0 Atari, 0 DMControl, 21 MinAtar)' in text
    verdicts = [line for line in text.splitlines() if 'psrl wins' in line or 'psrl ties' in line
                or 'psrl loses' in line]
    assert verdicts == ['| asterix | 1.00 | rainbow 3.00 | psrl loses |',
                        '| breakout | 7.00 | rainbow 1.00 | psrl wins |',
                        '| breakout | 7.00 | spr 6.80 | psrl ties |']
    assert (out / 'minatar_learning_curves.png').stat().st_size > 0


def _launcher_run(run, algorithm, env, seed, evals, num_seeds=None, checks=False, config=None):
    """A launcher's run folder: config.json, and eval.csv/metrics.csv rows (step -> return) in it
    or, with num_seeds, in seed_<k>/ (evals: one dict per seed); no summary.json. `checks`: the
    metrics hold C's checks (c_shift_epe = step / 10,000, its zero flow's 1.5, c_warp_gain 0.4).
    `config`: the run's config (default: only its algorithm)."""
    run.mkdir(parents=True)
    (run / 'config.json').write_text(json.dumps(
        {'flags': {'env': env, 'seed': seed, 'num_seeds': num_seeds or 1},
         'config': config or {'algorithm': algorithm}}))
    folders = [run / f'seed_{k}' for k in range(num_seeds)] if num_seeds else [run]
    for folder, rows in zip(folders, evals):
        folder.mkdir(exist_ok=True)
        (folder / 'eval.csv').write_text('step,return_mean,return_std,episodes\n' + ''.join(
            f'{step},{ret},0.5,20\n' for step, ret in rows.items()))
        columns = ',c_shift_epe,c_shift_epe_zero,c_warp_gain' if checks else ''
        (folder / 'metrics.csv').write_text(f'step,loss_rl{columns}\n' + ''.join(
            f'{step},{step / 1000}' + (f',{step / 10000},1.5,0.4' if checks else '') + '\n'
            for step in range(1000, max(rows) + 1, 1000)))


def test_runs_compare_at_a_common_step_while_training(tmp_path):
    runs = tmp_path / 'runs'
    # psrl: seeds 3 and 4 (--seed=3), still training; seed 4 has not reached step 20000.
    _launcher_run(runs / 'psrl' / 'breakout', 'psrl', 'breakout', 3,
                  [{10000: 1.0, 20000: 5.0, 30000: 9.0}, {10000: 2.0}], num_seeds=2, checks=True)
    # rainbow: finished (a summary.json at 30000 is not what --at_step reads), one folder per seed.
    for seed, ret in ((0, 2.0), (1, 4.0)):
        _launcher_run(runs / f'rainbow_s{seed}', 'rainbow', 'breakout', seed,
                      [{10000: ret / 2, 20000: ret, 30000: 3 * ret}])
        (runs / f'rainbow_s{seed}' / 'summary.json').write_text(json.dumps(
            {'algorithm': 'rainbow', 'env': 'breakout', 'seed': seed, 'total_steps': 30000,
             'eval_return_mean': 3 * ret}))
    (runs / 'orphan').mkdir()  # an eval.csv with no config.json
    (runs / 'orphan' / 'eval.csv').write_text('step,return_mean\n20000,100.0\n')

    loaded, warnings = aggregate.collect_runs([str(runs / '*')], at_step=20000)
    by_seed = {(r.algorithm, r.seed): r for r in loaded}
    assert sorted(by_seed) == [('psrl', 3), ('rainbow', 0), ('rainbow', 1)]
    psrl = by_seed['psrl', 3]
    assert (psrl.eval_return_mean, psrl.eval_return_std, psrl.eval_episodes) == (5.0, 0.5, 20)
    assert psrl.total_steps == 20000 and psrl.env == 'breakout' and psrl.suite == 'minatar'
    np.testing.assert_array_equal(psrl.eval_curve['step'], [10000, 20000])  # cut at the step
    np.testing.assert_array_equal(psrl.train_curve['loss_rl'], np.arange(1, 21))
    assert warnings == [
        f'skipping {runs}/orphan/eval.csv: unreadable {runs}/orphan/config.json ([Errno 2] No '
        f"such file or directory: '{runs}/orphan/config.json')",
        f'skipping {runs}/psrl/breakout/seed_1/eval.csv: no evaluation at step 20000 (the last at '
        '10000)']

    out = tmp_path / 'report'
    result = aggregate.write_report([str(runs / '*')], str(out), reps=200, at_step=20000)
    rows = {r['algorithm']: r for r in read_csv(out / 'minatar_per_game.csv')}
    assert (rows['psrl']['n_seeds'], rows['psrl']['total_steps']) == ('1', '20000')
    assert float(rows['rainbow']['mean']) == 3.0 and rows['rainbow']['seeds'] == '0 1'
    report = (out / 'report.md').read_text()
    assert 'each at the evaluation at step 20000 (runs still training included' in report
    assert 'Return of the evaluation at step 20000;' in report
    assert result['warnings'] == warnings
    # C's checks: seed 3's last 5 rows up to step 20000 (c_shift_epe 1.6 .. 2.0); rainbow has no C.
    assert [(r['algorithm'], r['n_seeds'], r['step'], float(r['c_shift_epe']))
            for r in read_csv(out / 'c_checks.csv')] == [('psrl', '1', '20000', 1.8)]
    assert ('| minatar | breakout | psrl | 1 | 20000 | 1.80 (1.50) | - (-) | 0.40 |'
            in (out / 'c_checks.md').read_text())
    assert (out / 'c_checks.png').read_bytes()[:4] == b'\x89PNG' and '## C against' in report
    # Without --at_step only the finished runs count, at their final evaluation.
    final, _ = aggregate.collect_runs([str(runs / '*')])
    assert sorted((r.algorithm, r.eval_return_mean) for r in final) == [
        ('rainbow', 6.0), ('rainbow', 12.0)]


def test_cli_at_step_errors(tmp_path):
    _launcher_run(tmp_path / 'runs' / 'psrl', 'psrl', 'breakout', 0, [{10000: 1.0}])
    for flag, message in (('--at_step=-5', '--at_step must be >= 0, got -5'),
                          ('--at_step=20000', 'could be read at step 20000')):
        proc = _cli(f'--runs={tmp_path}/runs/*', f'--out={tmp_path}/r', flag)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip().splitlines()[-1].startswith('error: ')
        assert message in proc.stderr and 'Traceback' not in proc.stderr
    assert not (tmp_path / 'r').exists()


def test_switches_names_what_differs_from_the_preset():
    config = {'a': 1, 'b': {'c': 'x', 'd': [1, 2], 'e': True, 'f': 0.5}, 'only_run': 3}
    preset = {'a': 1.0, 'b': {'c': 'y', 'd': [1, 3], 'e': False, 'f': 0.5}, 'only_preset': 4}
    assert run_folders.switches(config, preset) == ['b.c=x', 'b.d=1,2', 'b.e=True']
    assert run_folders.switches(preset, preset) == []


def test_single_seed_runs_join_a_multi_seed_run_of_the_same_preset_and_game(tmp_path):
    # A table made seed by seed across sessions: a 2-seed process (seeds 0 and 1) and single-seed
    # runs of seeds 2 and, by mistake, 1 again.
    runs = tmp_path / 'runs'
    _launcher_run(runs / 'psrl' / 'freeway', 'psrl', 'freeway', 0, [{10000: 1.0}, {10000: 3.0}],
                  num_seeds=2)
    _launcher_run(runs / 'psrl' / 'freeway_seed2', 'psrl', 'freeway', 2, [{10000: 8.0}])
    _launcher_run(runs / 'psrl' / 'freeway_seed1', 'psrl', 'freeway', 1, [{10000: 5.0}])
    loaded, warnings = aggregate.collect_runs([str(runs / 'psrl' / '*')], at_step=10000)
    assert sorted((r.algorithm, r.env, r.seed, r.eval_return_mean) for r in loaded) == [
        ('psrl', 'freeway', 0, 1.0), ('psrl', 'freeway', 1, 3.0), ('psrl', 'freeway', 1, 5.0),
        ('psrl', 'freeway', 2, 8.0)]
    assert len(warnings) == 1 and warnings[0].startswith('psrl freeway seed 1 appears twice (')
    assert warnings[0].endswith('); both are counted')
    out = tmp_path / 'report'
    aggregate.write_report([str(runs / 'psrl' / '*')], str(out), reps=200, at_step=10000)
    (row,) = read_csv(out / 'minatar_per_game.csv')
    assert (row['algorithm'], row['game'], row['n_seeds']) == ('psrl', 'freeway', '4')
    assert float(row['mean']) == pytest.approx((1.0 + 3.0 + 5.0 + 8.0) / 4)


def test_runs_with_a_switch_are_grouped_apart_from_their_preset(tmp_path):
    from experiments.configs import minatar  # pylint: disable=import-outside-toplevel
    runs = tmp_path / 'runs'
    preset = json.loads(minatar.get_config('psrl').to_json())
    switched = json.loads(minatar.get_config('psrl').to_json())
    switched['psrl']['lambda_sim'] = 3.0
    switched['agent']['augmentation'] = ['grid_shift', 'intensity']
    del switched['psrl']['horizon']   # a setting the run predates is not a switch
    _launcher_run(runs / 'psrl', 'psrl', 'breakout', 0, [{10000: 2.0}], config=preset)
    _launcher_run(runs / 'switched', 'psrl', 'breakout', 0, [{10000: 4.0}], num_seeds=1,
                  config=switched)
    loaded, warnings = aggregate.collect_runs([str(runs / '*')], at_step=10000)
    assert sorted((r.algorithm, r.eval_return_mean) for r in loaded) == [
        ('psrl', 2.0), ('psrl agent.augmentation=grid_shift,intensity psrl.lambda_sim=3', 4.0)]
    assert warnings == []   # the same seed twice, but not of the same algorithm
    # A switch every run has names none of them (a sweep run with the same override throughout).
    loaded, warnings = aggregate.collect_runs([str(runs / 'switched')], at_step=10000)
    assert [r.algorithm for r in loaded] == ['psrl']
    assert warnings == ['every run differs from its preset in agent.augmentation=grid_shift,'
                        'intensity psrl.lambda_sim=3 (left out of the names)']


def test_settings_an_objective_never_reads_are_not_switches(tmp_path):
    from experiments.configs import minatar  # pylint: disable=import-outside-toplevel
    runs = tmp_path / 'runs'
    old = json.loads(minatar.get_config('rainbow').to_json())
    old['psrl']['lambda_sim'] = 10.0   # rainbow's value before 2026-12-02: it has no L_sim
    with_aat = json.loads(minatar.get_config('rainbow').to_json())
    with_aat['psrl']['aat'] = True
    _launcher_run(runs / 'old', 'rainbow', 'breakout', 0, [{10000: 2.0}], num_seeds=1, config=old)
    _launcher_run(runs / 'aat', 'rainbow', 'breakout', 0, [{10000: 4.0}], num_seeds=1,
                  config=with_aat)
    loaded, warnings = aggregate.collect_runs([str(runs / '*')], at_step=10000)
    assert sorted((r.algorithm, r.eval_return_mean) for r in loaded) == [
        ('rainbow', 2.0), ('rainbow psrl.aat=True', 4.0)]
    assert warnings == []


def test_minatar_verdicts_need_three_seeds_a_side():
    # One seed's CI is a point: 13.65 against 14.90 would read 'loses' although nothing is resolved.
    row = lambda algorithm, n, mean, low, high: {'algorithm': algorithm, 'game': 'breakout',
                                                 'n_seeds': n, 'mean': mean, 'ci_low': low,
                                                 'ci_high': high}
    rows = [row('psrl', 1, 13.65, 13.65, 13.65), row('spr', 1, 14.9, 14.9, 14.9),
            row('rainbow', 5, 14.68, 10.54, 18.28)]
    verdicts = {v['other']: v for v in tables.minatar_verdicts(rows)}
    assert verdicts['spr']['verdict'] == verdicts['rainbow']['verdict'] == 'undecided'
    assert aggregate.verdict_text(verdicts['rainbow']) == 'undecided (1 and 5 seeds; 3 each needed)'
    rows[0] = row('psrl', 3, 5.0, 4.0, 6.0)                           # three seeds, CIs apart
    verdicts = {v['other']: v for v in tables.minatar_verdicts(rows)}
    assert verdicts['spr']['verdict'] == 'undecided'                  # spr still has one
    assert verdicts['rainbow']['verdict'] == 'loses'
    assert aggregate.verdict_text(verdicts['rainbow']) == 'psrl loses'
