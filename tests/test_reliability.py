"""Resume after SIGKILL and SIGTERM, corrupt checkpoints, and the non-finite guard, on CPU runs.

Each run is the rainbow preset on Pong with tiny settings: metrics rows at 80, 160, 240 and
checkpoints at 120 and 240. A resumed run restarts the episode in flight (envpool cannot save the
emulator), so only the state at the checkpoint step is compared with an uninterrupted run.
"""
import csv
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = ['--config=experiments/configs/atari.py:rainbow', '--env=Pong', '--learning_starts=60',
        '--eval_episodes=1', '--log_every=80', '--checkpoint_every=120',
        '--config.replay.batch_size=4', '--config.replay.capacity=400']
ROWS = [80, 160, 240]


def command(workdir, *extra):
    return [sys.executable, '-m', 'experiments.train_atari', *ARGS, f'--workdir={workdir}',
            '--total_steps=240', *extra]


def run(workdir, *extra, timeout=600):
    return subprocess.run(command(workdir, *extra), cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def rows(workdir, name='metrics.csv'):
    with open(os.path.join(workdir, name), newline='') as f:
        return [int(r['step']) for r in csv.DictReader(f)]


def checkpoint_steps(workdir):
    return sorted(int(d) for d in os.listdir(os.path.join(workdir, 'checkpoints')) if d.isdigit())


def start_and_signal(workdir, signum, after_row):
    """Starts a run and sends `signum` once metrics.csv has a row at step `after_row`."""
    process = subprocess.Popen(command(workdir), cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    while time.time() < deadline and process.poll() is None:
        path = os.path.join(workdir, 'metrics.csv')
        if os.path.exists(path) and after_row in rows(path.rsplit('/', 1)[0]):
            break
        time.sleep(0.2)
    assert process.poll() is None, process.communicate()[1][-3000:]
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=300)
    return process.returncode, stdout, stderr


def saved_carry(workdir, step):
    return ocp.PyTreeCheckpointer().restore(os.path.join(workdir, 'checkpoints', str(step), 'carry'))


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp('uninterrupted') / 'run')
    result = run(workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert rows(workdir) == ROWS and checkpoint_steps(workdir) == [120, 240]
    return workdir


def test_sigkill_then_resume_gives_the_uninterrupted_state_and_rows(uninterrupted, tmp_path):
    workdir = str(tmp_path / 'run')
    code, _, _ = start_and_signal(workdir, signal.SIGKILL, after_row=160)
    assert code == -signal.SIGKILL and checkpoint_steps(workdir) == [120]
    assert rows(workdir) == [80, 160]  # row 160 was written after the checkpoint
    result = run(workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'resuming' in result.stdout and 'from step 120' in result.stdout
    assert rows(workdir) == ROWS and rows(workdir, 'eval.csv') == [240]
    ours, theirs = saved_carry(workdir, 120), saved_carry(uninterrupted, 120)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_sigterm_checkpoints_the_current_step_and_exits(tmp_path):
    workdir = str(tmp_path / 'run')
    code, _, stderr = start_and_signal(workdir, signal.SIGTERM, after_row=80)
    assert code == 128 + signal.SIGTERM, stderr[-3000:]
    assert 'checkpoint saved' in stderr and 'run the same command to resume' in stderr
    assert 'Traceback' not in stderr
    (stopped_at,) = checkpoint_steps(workdir)
    assert 80 <= stopped_at < 240
    result = run(workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f'from step {stopped_at}' in result.stdout
    assert rows(workdir) == ROWS and rows(workdir, 'eval.csv') == [240]


def corrupt(workdir, step):
    """Overwrites the array data files of a checkpoint with garbage of the same size."""
    root = os.path.join(workdir, 'checkpoints', str(step), 'carry')
    for folder, _, files in os.walk(root):
        if os.path.basename(folder) == 'd':
            for name in files:
                path = os.path.join(folder, name)
                size = os.path.getsize(path)
                with open(path, 'wb') as f:
                    f.write(np.random.default_rng(0).bytes(size))


def test_corrupt_latest_checkpoint_is_reported_and_the_previous_one_used(uninterrupted, tmp_path):
    workdir = str(tmp_path / 'run')
    shutil.copytree(uninterrupted, workdir)
    corrupt(workdir, 240)
    result = run(workdir, '--total_steps=320')
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'checkpoint 240' in result.stderr and 'unreadable' in result.stderr
    assert 'from step 120' in result.stdout
    assert os.path.isdir(os.path.join(workdir, 'checkpoints_corrupt', '240'))
    assert rows(workdir) == [80, 160, 240, 320]
    assert checkpoint_steps(workdir) == [120, 240, 320]


def test_no_readable_checkpoint_is_one_error_line_and_moves_nothing(uninterrupted, tmp_path):
    workdir = str(tmp_path / 'run')
    shutil.copytree(uninterrupted, workdir)
    for step in (120, 240):
        corrupt(workdir, step)
    result = run(workdir, '--total_steps=320')
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and 'no readable checkpoint' in errors[0]
    assert 'Traceback' not in result.stderr
    assert checkpoint_steps(workdir) == [120, 240]
    assert not os.path.exists(os.path.join(workdir, 'checkpoints_corrupt'))


def test_non_finite_training_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    workdir = str(tmp_path / 'run')
    # Learning starts after the checkpoint at 120; a huge learning rate overflows the network.
    result = run(workdir, '--learning_starts=130', '--config.agent.learning_rate=1e30')
    assert result.returncode == 3, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1, result.stderr[-3000:]
    assert 'non-finite' in errors[0] and '(seed 0)' in errors[0]
    assert 'last good checkpoint (step 120) is kept' in errors[0]
    step = int(errors[0].split(' at step ')[1].split()[0])
    assert 130 < step < 240
    assert checkpoint_steps(workdir) == [120]
