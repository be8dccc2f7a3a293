"""CPU smoke runs of the launchers: every output file of the launcher contract, finite losses,
resuming with a larger --total_steps, and bad input refused in one line without touching a run."""
import csv
import json
import math
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUMMARY_KEYS = {'algorithm', 'env', 'seed', 'total_steps', 'eval_return_mean', 'eval_return_std',
                'eval_episodes', 'human_normalized_score', 'wall_seconds', 'device'}
ATARI = ['--env=Pong', '--learning_starts=200', '--eval_episodes=1', '--log_every=100',
         '--checkpoint_every=150', '--config.replay.batch_size=4', '--config.replay.capacity=1000']
DMC = ['--env=cartpole-swingup', '--learning_starts=1504', '--eval_episodes=1', '--eval_every=1000',
       '--log_every=500', '--config.replay.batch_size=4', '--config.replay.capacity=1000']


def launch(module, *args, timeout=900):
    env = dict(os.environ, MUJOCO_GL=os.environ.get('MUJOCO_GL', 'egl'))
    return subprocess.run([sys.executable, '-m', f'experiments.{module}', *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, env=env)


def read_csv(path):
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


def check_run(workdir, steps, algorithm, env, hns_expected):
    for name in ('config.json', 'metrics.csv', 'eval.csv', 'summary.json'):
        assert os.path.getsize(os.path.join(workdir, name)) > 0, name
    assert os.listdir(os.path.join(workdir, 'checkpoints'))
    assert any(f.startswith('events') for f in os.listdir(os.path.join(workdir, 'tensorboard')))
    metrics = read_csv(os.path.join(workdir, 'metrics.csv'))
    assert [int(r['step']) for r in metrics] == steps
    assert list(metrics[0])[:5] == ['step', 'fps', 'loss_rl', 'loss_sim', 'loss_c']
    learning = [r for r in metrics if float(r['loss_rl']) != 0.0]
    assert learning, 'no learner updates were logged'
    for row in metrics:
        for key, value in row.items():
            if key != 'train_return':
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


@pytest.mark.parametrize('args,needle', [
    (['--env=NotAGame'], 'unknown Atari game'),
    (['--total_steps=0'], '--total_steps must be positive'),
    (['--learning_starts=500', '--total_steps=400'], '--learning_starts=500 must be below'),
    (['--config=experiments/configs/atari.py:nope'], "unknown preset 'nope'"),
    (['--config.psrl.nope=1'], 'unknown config key'),
    (['--config.replay.n_step=1', '--total_steps=400'], 'different config'),
    (['--eval_episodes=0'], '--eval_episodes must be positive'),
    (['--num_seeds=3', '--num_processes=2'], 'must be a multiple of --num_processes'),
    (['--config.replay.capacity=5'], 'replay capacity must exceed'),
])
def test_bad_input_is_one_line_and_leaves_the_run_untouched(atari_run, args, needle):
    workdir, _ = atari_run
    before = {name: os.path.getmtime(os.path.join(workdir, name)) for name in os.listdir(workdir)}
    result = launch('train_atari', *ATARI, f'--workdir={workdir}', *args, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and needle in errors[0], result.stderr[-2000:]
    assert 'Traceback' not in result.stderr
    after = {name: os.path.getmtime(os.path.join(workdir, name)) for name in os.listdir(workdir)}
    assert after == before


def test_dmc_smoke_run_writes_the_contract_files(tmp_path):
    workdir = str(tmp_path / 'cartpole')
    result = launch('train_dmc', *DMC, '--total_steps=2000', f'--workdir={workdir}')
    assert result.returncode == 0, result.stderr[-3000:]
    _, evals, _ = check_run(workdir, [504, 1000, 1504, 2000], 'psrl', 'cartpole-swingup',
                            hns_expected=False)
    assert [int(r['step']) for r in evals] == [1000, 2000]


def test_missing_gl_backend_names_the_debian_packages(tmp_path):
    workdir = tmp_path / 'run'
    env = dict(os.environ, MUJOCO_GL='no-such-backend')
    result = subprocess.run([sys.executable, '-m', 'experiments.train_dmc', f'--workdir={workdir}'],
                            cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert result.returncode == 2 and len(errors) == 1, result.stderr[-2000:]
    assert 'libosmesa6' in errors[0] and 'libegl-mesa0' in errors[0]
    assert not workdir.exists()


def test_non_empty_directory_without_a_run_is_refused(tmp_path):
    (tmp_path / 'notes.txt').write_text('mine')
    result = launch('train_atari', *ATARI, '--total_steps=300', f'--workdir={tmp_path}',
                    timeout=120)
    assert result.returncode == 2 and 'is not empty' in result.stderr
    assert os.listdir(tmp_path) == ['notes.txt']
