"""CPU smoke runs of the launchers: every output file of the launcher contract, finite losses,
resuming with a larger --total_steps, and every bad input refused in one line without touching a run
(one table)."""
import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
from typing import NamedTuple, Optional, Sequence

import numpy as np
import pytest

from psrl_jax import run_files
from run_dirs import snapshot

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUMMARY_KEYS = {'algorithm', 'env', 'seed', 'total_steps', 'eval_return_mean', 'eval_return_std',
                'eval_episodes', 'human_normalized_score', 'wall_seconds', 'device', 'device_count'}
ATARI = ['--env=Pong', '--learning_starts=200', '--eval_episodes=1', '--log_every=100',
         '--checkpoint_every=150', '--config.replay.batch_size=4', '--config.replay.capacity=1000']
DMC = ['--env=cartpole-swingup', '--learning_starts=1504', '--eval_episodes=1', '--eval_every=1000',
       '--log_every=500', '--config.replay.batch_size=4', '--config.replay.capacity=1000']


def launch(module, *args, environment=None, timeout=900):
    env = dict(os.environ, MUJOCO_GL=os.environ.get('MUJOCO_GL', 'egl'))
    env.update(environment or {})
    return subprocess.run([sys.executable, '-m', f'experiments.{module}', *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, env=env)


def read_csv(path):
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


def check_run(workdir, steps, algorithm, env, hns_expected):
    for name in ('config.json', 'metrics.csv', 'eval.csv', 'summary.json'):
        assert os.path.getsize(os.path.join(workdir, name)) > 0, name
    with open(os.path.join(workdir, 'config.json')) as f:
        code = json.load(f)['code']         # the commit the run started with (tests run in a checkout)
    head = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=ROOT, capture_output=True, text=True)
    assert code['commit'] == head.stdout.strip() and re.fullmatch('[0-9a-f]{40}', code['commit'])
    assert isinstance(code['dirty'], bool)
    assert os.listdir(os.path.join(workdir, 'checkpoints'))
    assert any(f.startswith('events') for f in os.listdir(os.path.join(workdir, 'tensorboard')))
    metrics = read_csv(os.path.join(workdir, 'metrics.csv'))
    assert [int(r['step']) for r in metrics] == steps
    assert list(metrics[0])[:5] == ['step', 'fps', 'loss_rl', 'loss_sim', 'loss_c']
    learning = [r for r in metrics if float(r['loss_rl']) != 0.0]
    assert learning, 'no learner updates were logged'
    assert ({'c_shift_epe', 'c_shift_epe_zero', 'c_warp_gain', 'y_shift_cos'} <= set(metrics[0])
            or algorithm != 'psrl')
    for row in metrics:
        for key, value in row.items():
            # The diagnostics (C's checks, L_sim's y_shift_cos) start with learning.
            if (key.startswith('c_') or key == 'y_shift_cos') and float(row['loss_rl']) == 0.0:
                assert math.isnan(float(value)), (key, value)
            elif key != 'train_return':
                assert math.isfinite(float(value)), (key, value)
    assert all(float(r['loss_c']) > 0 and float(r['loss_sim']) != 0 for r in learning)
    evals = read_csv(os.path.join(workdir, 'eval.csv'))
    assert list(evals[0]) == ['step', 'return_mean', 'return_std', 'episodes']
    assert int(evals[-1]['step']) == steps[-1] and int(evals[-1]['episodes']) == 1
    with open(os.path.join(workdir, 'summary.json')) as f:
        summary = json.load(f)
    assert set(summary) == SUMMARY_KEYS
    assert summary['algorithm'] == algorithm and summary['env'] == env
    assert summary['total_steps'] == steps[-1] and summary['eval_episodes'] == 1
    assert summary['eval_return_mean'] == pytest.approx(float(evals[-1]['return_mean']))
    assert (summary['human_normalized_score'] is None) == (not hns_expected)
    return metrics, evals, summary


@pytest.fixture(scope='module')
def atari_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp('atari') / 'pong')
    result = launch('train_atari', *ATARI, '--total_steps=300', f'--workdir={workdir}')
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, result


def test_atari_smoke_run_writes_the_contract_files(atari_run):
    workdir, result = atari_run
    _, _, summary = check_run(workdir, [100, 200, 300], 'psrl', 'Pong', hns_expected=True)
    # Pong's human and random scores are 14.6 and -20.7 (the paper's table).
    assert summary['human_normalized_score'] == pytest.approx(
        (summary['eval_return_mean'] + 20.7) / (14.6 + 20.7))
    assert 'results in' in result.stdout and 'steps/s' in result.stdout and 'ETA' in result.stdout
    # The log starts with the device; summary.json names it and how many held the seeds.
    assert re.fullmatch(rf'device: {re.escape(summary["device"])}, 1 seed on 1 of [0-9]+ local '
                        r'devices? \(jax [0-9.]+\)', result.stdout.splitlines()[0])
    assert summary['device_count'] == 1


def test_atari_run_continues_with_more_steps_and_is_idempotent_when_finished(atari_run):
    workdir, _ = atari_run
    result = launch('train_atari', *ATARI, '--total_steps=400', f'--workdir={workdir}')
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'resuming' in result.stdout
    check_run(workdir, [100, 200, 300, 400], 'psrl', 'Pong', hns_expected=True)
    evals = read_csv(os.path.join(workdir, 'eval.csv'))
    assert [int(r['step']) for r in evals] == [300, 400]
    again = launch('train_atari', *ATARI, '--total_steps=400', f'--workdir={workdir}')
    assert again.returncode == 0 and 'already finished' in again.stdout
    assert len(read_csv(os.path.join(workdir, 'metrics.csv'))) == 4


class BadInput(NamedTuple):
    """A launch that must be refused: exit status 2, one `error:` line containing `culprit`, no
    traceback, and its workdir (kind: see bad_input_workdir) left exactly as it was."""
    name: str
    args: Sequence[str]
    culprit: str
    workdir: str = 'run'
    launcher: str = 'train_atari'
    environment: Optional[dict] = None


BAD_INPUTS = [
    BadInput('unknown game', ['--env=NotAGame'], 'unknown Atari game'),
    BadInput('unknown preset', ['--config=experiments/configs/atari.py:nope'],
             "unknown preset 'nope'"),
    BadInput('unknown config key', ['--config.psrl.nope=1'], 'unknown config key'),
    BadInput('not a number', ['--total_steps=many'], '--total_steps=many'),
    BadInput('stray argument', ['extra'], 'unexpected arguments: extra'),
    BadInput('zero steps', ['--total_steps=0'], '--total_steps must be positive'),
    BadInput('zero episodes', ['--eval_episodes=0'], '--eval_episodes must be positive'),
    BadInput('learning after the end', ['--learning_starts=500', '--total_steps=400'],
             '--learning_starts=500 must be below'),
    BadInput('seeds over processes', ['--num_seeds=3', '--num_processes=2'],
             'must be a multiple of --num_processes'),
    BadInput('tiny replay', ['--config.replay.capacity=5'], 'replay capacity must exceed'),
    BadInput('different run', ['--config.replay.n_step=1', '--total_steps=400'],
             'different config'),
    BadInput('fewer steps than done', ['--total_steps=250'], 'beyond --total_steps=250'),
    BadInput('no readable checkpoint', [], 'no readable checkpoint', workdir='corrupt run'),
    BadInput('workdir in use', [], 'is in use by pid {pid} on host', workdir='locked run'),
    BadInput('not a run directory', ['--total_steps=300'], 'is not empty and holds no run',
             workdir='foreign'),
    BadInput('workdir is a file', ['--total_steps=300'], 'it is a file', workdir='file'),
    BadInput('workdir cannot be created', ['--total_steps=300'], 'No such file or directory',
             workdir='under /proc'),
    BadInput('read-only file system', [], 'read-only file system', workdir='read-only run'),
    BadInput('no write permission', [], 'no write permission', workdir='unwritable run'),
    BadInput('no GL backend', [], 'libosmesa6', workdir='new', launcher='train_dmc',
             environment={'MUJOCO_GL': 'no-such-backend'}),
]


def corrupt_checkpoints(workdir):
    """Overwrites every checkpoint's array data with garbage of the same size."""
    for folder, _, files in os.walk(os.path.join(workdir, 'checkpoints')):
        if os.path.basename(folder) == 'd':
            for name in files:
                path = os.path.join(folder, name)
                with open(path, 'r+b') as f:
                    f.write(np.random.default_rng(0).bytes(os.path.getsize(path)))


@pytest.fixture
def bad_input_workdir(request, atari_run, tmp_path, tmpfs):
    """The workdir of a bad-input case: 'run' (the smoke run; 'corrupt run', 'read-only run',
    'unwritable run': copies of it; 'locked run': it, locked by this process), 'foreign' (a folder
    with a file of the user's), 'file', 'under /proc' or 'new' (paths that do not exist)."""
    kind = request.param
    run = atari_run[0]
    if kind in ('run', 'locked run'):
        if kind == 'locked run':
            lock = run_files.WorkdirLock(run, run_files.lock_name(0))
            request.addfinalizer(lock.abandon)
        return run
    if kind == 'corrupt run':
        shutil.copytree(run, tmp_path / 'run')
        corrupt_checkpoints(tmp_path / 'run')
        return tmp_path / 'run'
    if kind == 'read-only run':
        mount = tmpfs.mount(256)
        shutil.copytree(run, mount / 'run')
        tmpfs.read_only(mount)
        return mount / 'run'
    if kind == 'unwritable run':
        if os.geteuid() == 0:
            pytest.skip('root writes to any folder: the read-only file system case stands in')
        shutil.copytree(run, tmp_path / 'run')
        os.chmod(tmp_path / 'run', 0o555)
        request.addfinalizer(lambda: os.chmod(tmp_path / 'run', 0o755))
        return tmp_path / 'run'
    if kind == 'foreign':
        (tmp_path / 'notes.txt').write_text('mine')
        return tmp_path
    if kind == 'file':
        (tmp_path / 'file').write_text('not a folder')
        return tmp_path / 'file'
    return {'under /proc': '/proc/psrl_jax_test', 'new': tmp_path / 'new'}[kind]


@pytest.mark.parametrize('case,bad_input_workdir', [(c, c.workdir) for c in BAD_INPUTS],
                         ids=[c.name for c in BAD_INPUTS], indirect=['bad_input_workdir'])
def test_bad_input_is_one_line_and_leaves_the_workdir_as_it_was(case, bad_input_workdir):
    workdir = str(bad_input_workdir)
    before = snapshot(workdir) if os.path.exists(workdir) else None
    suite = ATARI if case.launcher == 'train_atari' else DMC
    result = launch(case.launcher, *suite, f'--workdir={workdir}', *case.args,
                    environment=case.environment, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1, result.stderr[-2000:]
    assert case.culprit.format(pid=os.getpid()) in errors[0], errors[0]
    assert 'Traceback' not in result.stderr
    if before is None:
        assert not os.path.exists(workdir)
    else:
        assert snapshot(workdir) == before


@pytest.fixture(scope='module')
def dmc_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp('dmc') / 'cartpole')
    result = launch('train_dmc', *DMC, '--total_steps=2000', f'--workdir={workdir}')
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


def test_dmc_smoke_run_writes_the_contract_files(dmc_run):
    _, evals, _ = check_run(dmc_run, [504, 1000, 1504, 2000], 'psrl', 'cartpole-swingup',
                            hns_expected=False)
    assert [int(r['step']) for r in evals] == [1000, 2000]


def test_gradient_shares_splits_a_dmc_runs_critic_gradient(dmc_run):
    """experiments.gradient_shares on SAC (tests/test_visualization.py has it on Rainbow; test_rainbow.py
    checks terms.term_gradients against the objective): which term reaches which module, so crossed
    wires between the terms show. The actor has its own optimizer and is not among the groups."""
    result = launch('gradient_shares', f'--workdir={dmc_run}', '--batches=1', timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record['rl_loss'] == 'critic TD' and record['step'] == 2000 // 8 and record['updates'] > 0
    norms = record['norms']
    assert {'encoder', 'critic', 'correspondence', 'transition'} <= set(norms) and 'actor' not in norms
    rounding = 1e-6 * max(max(n.values()) for n in norms.values())
    assert norms['critic']['rl'] > 0 and max(norms['critic']['sim'], norms['critic']['c']) < rounding
    assert norms['correspondence']['rl'] == 0 and norms['correspondence']['c'] > rounding
    for group in ('conv1x1', 'transition'):      # L_sim's alone (CAT, AAT)
        assert norms[group]['rl'] == 0 and norms[group]['c'] < rounding < norms[group]['sim'], group
    assert min(norms['encoder'].values()) > 0
    assert 'RL (critic TD)' in result.stdout


def test_a_run_from_before_a_new_psrl_setting_resumes_at_its_default(tmp_path):
    # A run started before `correspondence_map` existed has no such key in its config.json: it
    # ran with PSRLConfig's default ('final'), so the same config with 'final' resumes it and
    # one with 'early' is a different run.
    from experiments import launch
    from experiments.configs import minatar
    config = json.loads(minatar.get_config('spr').to_json())
    record = {'flags': {'env': 'breakout', 'seed': 0, 'total_steps': 100}, 'config': config}
    old = json.loads(json.dumps(record))
    del old['config']['psrl']['correspondence_map']
    with open(tmp_path / 'config.json', 'w') as f:
        json.dump(old, f)
    assert launch.check_workdir(str(tmp_path), record, overwrite=False) is False
    record['config']['psrl']['correspondence_map'] = 'early'
    with pytest.raises(launch.UsageError, match='holds a run with a different config'):
        launch.check_workdir(str(tmp_path), record, overwrite=False)
