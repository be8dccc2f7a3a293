"""Tests of psrl_jax.evaluation: paper tables and human-normalized scores (scores), rliable
aggregates (aggregates), run folders (runs) and our runs beside the paper (tables)."""

import csv
import dataclasses
import json
import os

import numpy as np
import pytest
import scipy.stats

from psrl_jax.envs.atari import ATARI_100K_GAMES
from psrl_jax.evaluation import aggregates, runs as run_folders, scores, tables

DATA = os.path.join(os.path.dirname(os.path.dirname(scores.__file__)), 'data')


def _read_csv(name):
    with open(os.path.join(DATA, name), newline='') as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------------------------------
# Paper tables.


def test_atari_games_match_packaged_table():
    games = tuple(row['game'] for row in _read_csv('atari100k.csv'))
    assert len(ATARI_100K_GAMES) == 26
    assert ATARI_100K_GAMES == games == scores.paper_atari_games()


def test_paper_tables_load_as_plain_dicts():
    assert scores.paper_atari_methods() == (
        'Rainbow', 'SimPLe', 'DER', 'OTRainbow', 'CURL', 'DrQ', 'SPR', 'PSRL')
    paper = scores.paper_atari_scores()
    assert paper['PSRL']['Alien'] == 1030.1 and paper['SPR']['UpNDown'] == 28138.5
    assert scores.human_scores()['Pong'] == 14.6 and scores.random_scores()['Pong'] == -20.7
    paper['PSRL']['Alien'] = 0.0  # A caller's edit must not leak into the next call.
    assert scores.paper_atari_scores()['PSRL']['Alien'] == 1030.1
    dmc = scores.paper_dmc_scores('100k')
    assert dmc['PSRL']['finger-spin'] == (882.0, 132.0)
    assert dmc['DrQ']['ball_in_cup-catch'] == (913.0, 53.0)
    assert scores.paper_dmc_scores(500_000)['PSRL']['walker-walk'] == (930.0, 75.0)
    assert set(scores.paper_dmc_scores('500k')['PlaNet']) == set(scores.DMC_TASKS)
    with pytest.raises(ValueError, match='budget'):
        scores.paper_dmc_scores('200k')


def test_paper_reference_aggregates():
    """The paper's PSRL and SPR columns as one run over the 26 games (rliable)."""
    agg = aggregates.paper_atari_aggregates()
    assert [round(agg['PSRL'][m], 3) for m in ('mean', 'median', 'iqm')] == [0.610, 0.344, 0.339]
    assert [round(agg['SPR'][m], 3) for m in ('mean', 'median', 'iqm')] == [0.703, 0.415, 0.450]
    direct = aggregates.aggregate_metrics(scores.paper_atari_hns('PSRL')[None])
    assert direct == pytest.approx(agg['PSRL'])
    # Independent numpy computation from the raw CSV.
    rows = _read_csv('atari100k.csv')
    hns = np.array([(float(r['PSRL']) - float(r['Random'])) /
                    (float(r['Human']) - float(r['Random'])) for r in rows])
    assert agg['PSRL']['mean'] == pytest.approx(hns.mean())
    assert agg['PSRL']['median'] == pytest.approx(np.median(hns))
    middle = np.sort(hns)[6:20]  # 26 games: trim int(0.25 * 26) = 6 from each end.
    assert agg['PSRL']['iqm'] == pytest.approx(middle.mean())
    assert agg['PSRL']['optimality_gap'] == pytest.approx(np.maximum(1 - hns, 0).mean())


# ---------------------------------------------------------------------------------------------
# Human-normalized score.


def test_human_normalized_score_hand_worked():
    # Pong: human 14.6, random -20.7; Breakout: human 30.5, random 1.7.
    assert scores.human_normalized_score('Pong', 14.6) == pytest.approx(1.0)
    assert scores.human_normalized_score('Pong', -20.7) == pytest.approx(0.0)
    assert scores.human_normalized_score('Pong', -3.05) == pytest.approx(0.5)
    assert scores.human_normalized_score('Breakout', 16.1) == pytest.approx(0.5)
    assert isinstance(scores.human_normalized_score('Breakout', 16), float)


def test_human_normalized_score_arrays():
    # Boxing: human 12.1, random 0.1.
    returns = np.array([[0.1, 6.1], [12.1, 24.1]])
    out = scores.human_normalized_score('Boxing', returns)
    assert out.shape == (2, 2)
    np.testing.assert_allclose(out, [[0.0, 0.5], [1.0, 2.0]], atol=1e-12)
    np.testing.assert_allclose(scores.human_normalized_score('Boxing', [0.1, 12.1]), [0.0, 1.0])


def test_human_normalized_score_under_jit():
    import jax
    import jax.numpy as jnp

    fn = jax.jit(lambda s: scores.human_normalized_score('Pong', s))
    np.testing.assert_allclose(fn(jnp.array([14.6, -3.05])), [1.0, 0.5], rtol=1e-5)


def test_unknown_game_has_no_human_score():
    assert scores.has_human_score('Pong') and not scores.has_human_score('SpaceInvaders')
    with pytest.raises(ValueError, match="'SpaceInvaders'"):
        scores.human_normalized_score('SpaceInvaders', 100.0)
    with pytest.raises(ValueError, match='unknown paper method'):
        scores.paper_atari_hns('MuZero')


# ---------------------------------------------------------------------------------------------
# Aggregates.


def test_aggregate_metrics_matches_numpy():
    x = np.random.default_rng(3).uniform(-0.5, 2.0, size=(5, 7))
    agg = aggregates.aggregate_metrics(x)
    assert set(agg) == {'mean', 'median', 'iqm', 'optimality_gap'}
    task_means = x.mean(axis=0)
    assert agg['mean'] == pytest.approx(task_means.mean())
    assert agg['median'] == pytest.approx(np.median(task_means))
    assert agg['iqm'] == pytest.approx(scipy.stats.trim_mean(x.ravel(), 0.25))
    assert agg['iqm'] == pytest.approx(np.sort(x.ravel())[8:27].mean())  # 35 values, cut 8.
    assert agg['optimality_gap'] == pytest.approx(np.mean(np.maximum(1.0 - x, 0.0)))
    # Mean of per-game means differs from the median here, so the test can tell them apart.
    assert abs(agg['mean'] - agg['median']) > 1e-3


def test_aggregate_metrics_input_checks():
    row = np.array([0.2, 0.4, 1.5])
    assert aggregates.aggregate_metrics(row) == aggregates.aggregate_metrics(row[None])
    with pytest.raises(ValueError, match='NaN'):
        aggregates.aggregate_metrics([[0.1, np.nan]])
    with pytest.raises(ValueError, match='shape'):
        aggregates.aggregate_metrics(np.zeros((2, 2, 2)))


def test_aggregate_with_ci_bootstrap():
    x = np.random.default_rng(0).uniform(0.0, 1.5, size=(5, 10))
    before = np.random.get_state()
    est = aggregates.aggregate_with_ci(x, reps=200, seed=7)
    after = np.random.get_state()
    assert before[0] == after[0] and np.array_equal(before[1], after[1])  # RNG restored.
    point = aggregates.aggregate_metrics(x)
    for metric, (p, low, high) in est.items():
        assert p == pytest.approx(point[metric])
        assert low <= p <= high
        assert low < high  # Five distinct runs per game: the interval has width.
    assert aggregates.aggregate_with_ci(x, reps=200, seed=7) == est
    assert aggregates.aggregate_with_ci(x, reps=200, seed=8) != est


def test_aggregate_with_ci_degenerate_cases():
    one_run = np.array([[0.1, 0.5, 2.0]])
    for p, low, high in aggregates.aggregate_with_ci(one_run, reps=200).values():
        assert p == low == high
    same_runs = np.tile(np.array([0.1, 0.5, 2.0]), (4, 1))  # Resampling runs changes nothing.
    for p, low, high in aggregates.aggregate_with_ci(same_runs, reps=200).values():
        assert low == pytest.approx(p) and high == pytest.approx(p)


def test_performance_profiles_match_fractions():
    x = np.random.default_rng(1).uniform(0.0, 2.0, size=(4, 6))
    taus = np.array([0.0, 0.5, 1.0, 1.5])
    profiles, cis = aggregates.performance_profiles({'a': x}, taus, reps=100, seed=0)
    np.testing.assert_allclose(profiles['a'], [(x > t).mean() for t in taus])
    assert cis['a'].shape == (2, 4) and np.all(cis['a'][0] <= cis['a'][1])
    again = aggregates.performance_profiles({'a': x}, taus, reps=100, seed=0)[1]
    np.testing.assert_array_equal(again['a'], cis['a'])


# ---------------------------------------------------------------------------------------------
# Run folders and tables.


def test_suites_and_budgets():
    assert run_folders.env_suite('Pong') == 'atari'
    assert run_folders.env_suite('SpaceInvaders') == 'atari'
    assert run_folders.env_suite('cartpole-swingup') == 'dmc'
    assert run_folders.env_suite('ball_in_cup-catch') == 'dmc'
    assert run_folders.env_suite('breakout') == 'minatar'
    assert run_folders.env_suite('space_invaders') == 'minatar'
    assert run_folders.env_suite('not a name') is None
    assert scores.nearest_dmc_budget(100_000) == '100k'
    assert scores.nearest_dmc_budget(3_000) == '100k'
    assert scores.nearest_dmc_budget(300_000) == '100k'  # A tie goes to the smaller budget.
    assert scores.nearest_dmc_budget(300_001) == '500k'
    assert scores.nearest_dmc_budget(1_000_000) == '500k'


def _write_summary(path, **overrides):
    summary = {'algorithm': 'psrl', 'env': 'Pong', 'seed': 0, 'total_steps': 100000,
               'eval_return_mean': 1.5, 'eval_return_std': 0.5, 'eval_episodes': 100,
               'human_normalized_score': 0.6, 'wall_seconds': 10.0, 'device': 'cpu'}
    summary.update(overrides)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(summary, f)


def test_load_runs_skips_malformed_with_a_warning(tmp_path):
    good = str(tmp_path / 'good' / 'summary.json')
    _write_summary(good, env='Pong-v5')
    with open(tmp_path / 'good' / 'eval.csv', 'w') as f:
        f.write('step,return_mean,return_std,episodes\n5000,-20.0,1.0,10\n100000,1.5,0.5,100\n')
    no_key = str(tmp_path / 'no_key' / 'summary.json')
    _write_summary(no_key, eval_return_mean=None)
    bad_env = str(tmp_path / 'bad_env' / 'summary.json')
    _write_summary(bad_env, env='???')
    not_json = tmp_path / 'not_json' / 'summary.json'
    not_json.parent.mkdir()
    not_json.write_text('{"algorithm": ')
    found, unmatched = run_folders.find_run_files([str(tmp_path / '*'), str(tmp_path / 'nope*')])
    assert len(found) == 4 and unmatched == [str(tmp_path / 'nope*')]
    runs, warnings = run_folders.load_runs(found)
    assert [r.env for r in runs] == ['Pong']  # '-v5' stripped.
    np.testing.assert_array_equal(runs[0].eval_curve['return_mean'], [-20.0, 1.5])
    assert runs[0].train_curve == {}
    assert len(warnings) == 3
    for path, reason in ((no_key, 'eval_return_mean'), (bad_env, '???'),
                         (str(not_json), 'JSON')):
        assert any(path in w and reason in w for w in warnings), (path, warnings)


def _run(algorithm, env, seed, ret, total_steps=100_000):
    return run_folders.RunResult(path=f'runs/{algorithm}_{env}_{seed}', algorithm=algorithm, env=env,
                        suite=run_folders.env_suite(env), seed=seed, total_steps=total_steps,
                        eval_return_mean=ret, eval_return_std=0.0, eval_episodes=100,
                        eval_curve={}, train_curve={})


def test_atari_aggregates_reproduce_the_paper_from_runs():
    """Runs that score the paper's PSRL numbers aggregate to the paper's values."""
    paper = scores.paper_atari_scores()['PSRL']
    runs = [_run('psrl', g, 0, paper[g]) for g in ATARI_100K_GAMES]
    agg = aggregates.atari_aggregates(runs, reps=50, seed=0)
    assert agg.common_games == ATARI_100K_GAMES
    assert [r['scope'] for r in agg.rows] == ['common'] * 3  # No 'own' or 'all 26' rows.
    mine = agg.rows[0]
    assert (mine['algorithm'], mine['n_games'], mine['n_runs'], mine['partial']) == \
        ('psrl', 26, 1, False)
    assert [round(mine[m], 3) for m in ('mean', 'median', 'iqm')] == [0.610, 0.344, 0.339]
    assert not any('PARTIAL' in n for n in agg.notes)

    # Three identical seeds: same mean and median, but rliable's IQM trims int(0.25 * 78) = 19
    # of 78 values per end (24.4%) instead of 6 of 26 (23.1%), so it moves to 0.334.
    runs3 = [_run('psrl', g, s, paper[g]) for g in ATARI_100K_GAMES for s in range(3)]
    mine3 = aggregates.atari_aggregates(runs3, reps=50, seed=0).rows[0]
    assert mine3['n_runs'] == 3
    assert mine3['mean'] == pytest.approx(mine['mean'])
    assert mine3['median'] == pytest.approx(mine['median'])
    hns = np.sort(np.repeat(scores.paper_atari_hns('PSRL'), 3))
    assert mine3['iqm'] == pytest.approx(hns[19:59].mean())
    assert round(mine3['iqm'], 3) == 0.334
    assert mine3['iqm_low'] == pytest.approx(mine3['iqm'])  # Identical seeds: no spread.


def test_games_outside_the_benchmark_are_kept_and_noted():
    runs = [_run('psrl', 'Pong', 0, -8.0), _run('psrl', 'SpaceInvaders', 0, 500.0)]
    rows, warnings = tables.atari_per_game_rows(runs)
    assert warnings == []
    extra = [r for r in rows if r['game'] == 'SpaceInvaders']
    assert len(extra) == 1 and extra[0]['mean'] == 500.0 and extra[0]['hns'] is None
    assert extra[0]['paper_PSRL'] is None
    agg = aggregates.atari_aggregates(runs, reps=50)
    assert agg.common_games == ('Pong',)
    assert any('no human score' in n and 'SpaceInvaders' in n for n in agg.notes)
    assert any(r['scope'] == 'all 26' for r in agg.rows)  # Partial: the full paper row too.


def test_dmc_rows_group_by_budget_and_warn_on_mixed_steps():
    runs = [_run('psrl', 'finger-spin', 0, 800.0, 100_000),
            _run('psrl', 'finger-spin', 1, 900.0, 120_000),
            _run('psrl', 'finger-spin', 2, 990.0, 500_000)]
    rows, warnings = tables.dmc_per_task_rows(runs)
    by_key = {(r['budget'], r['task']): r for r in rows}
    low = by_key[('100k', 'finger-spin')]
    assert low['n_seeds'] == 2 and low['mean'] == 850.0
    assert low['sd'] == pytest.approx(np.std([800.0, 900.0], ddof=1))
    assert low['total_steps'] == '100000/120000' and low['paper_PSRL_mean'] == 882.0
    high = by_key[('500k', 'finger-spin')]
    assert high['n_seeds'] == 1 and high['sd'] is None and high['paper_DrQ_mean'] == 938.0
    assert by_key[('500k', 'walker-walk')]['n_seeds'] == 0
    assert len(rows) == 12
    assert len(warnings) == 1 and 'different total_steps' in warnings[0]


def test_correspondence_rows_average_each_seeds_last_logged_checks():
    def run(algorithm, env, seed, shift, obj=None):
        curve = {'step': np.arange(1, 8) * 1000.0, 'c_shift_epe': np.asarray(shift),
                 'c_shift_epe_zero': np.full(7, 1.4), 'c_warp_gain': np.full(7, 0.5 + seed)}
        if obj is not None:
            curve['c_object_epe'] = np.asarray(obj)
        return dataclasses.replace(_run(algorithm, env, seed, 0.0), train_curve=curve)

    nan = np.nan
    runs = [run('psrl', 'breakout', 0, [nan, 9, 9, 1, 2, 3, 4], [nan, 5, 1, 1, 1, nan, 1]),
            run('psrl', 'breakout', 1, [9, 9, 2, 3, 4, 5, 6], [nan] * 7),
            run('psrl', 'Pong', 0, [nan, 1, 1, 1, 1, 1, 1]),
            _run('rainbow', 'breakout', 0, 3.0)]                       # no C: no row
    rows = tables.correspondence_rows(runs, window=4)
    assert [(r['suite'], r['env'], r['algorithm'], r['n_seeds'], r['step']) for r in rows] == [
        ('atari', 'Pong', 'psrl', 1, 7000), ('minatar', 'breakout', 'psrl', 2, 7000)]
    breakout = rows[1]
    # seed 0: mean(1, 2, 3, 4) = 2.5; seed 1: mean(3, 4, 5, 6) = 4.5
    assert breakout['c_shift_epe'] == pytest.approx(3.5)
    assert breakout['c_shift_epe_zero'] == pytest.approx(1.4)
    assert breakout['c_warp_gain'] == pytest.approx(1.0)
    # the last 4 finite values of seed 0 (1, 1, 1, 1); seed 1 logged none, so it does not count
    assert breakout['c_object_epe'] == pytest.approx(1.0)
    assert breakout['c_object_epe_zero'] is None and rows[0]['c_object_epe'] is None
