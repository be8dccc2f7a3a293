"""Resume after SIGKILL and SIGTERM, one live process per workdir, corrupt checkpoints, the
non-finite guard, out of memory and out of disk space, on CPU runs.

Each run is the rainbow preset on Pong with tiny settings: metrics rows at 80, 160, 240 and
checkpoints at 120 and 240. A resumed run restarts the episode in flight (envpool cannot save the
emulator), so only the state at the checkpoint step is compared with an uninterrupted run.
"""
import csv
import errno
import functools
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from psrl_jax import checkpoints, run_files, training
from psrl_jax.evaluation import runs as evaluation_runs
from psrl_jax.envs.atari import make_atari
from run_dirs import snapshot
from test_seeds import AGENT

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


def error_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith('error:')]


def rows(workdir, name='metrics.csv'):
    with open(os.path.join(workdir, name), newline='') as f:
        return [int(r['step']) for r in csv.DictReader(f)]


def checkpoint_steps(workdir):
    return sorted(int(d) for d in os.listdir(os.path.join(workdir, 'checkpoints')) if d.isdigit())


def start_and_signal(workdir, signum, after_row, meanwhile=lambda process: None):
    """Starts a run and, once metrics.csv has a row at step `after_row`, calls meanwhile(process)
    and sends `signum`."""
    process = subprocess.Popen(command(workdir), cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    while time.time() < deadline and process.poll() is None:
        path = os.path.join(workdir, 'metrics.csv')
        if os.path.exists(path) and after_row in rows(path.rsplit('/', 1)[0]):
            break
        time.sleep(0.2)
    assert process.poll() is None, process.communicate()[1][-3000:]
    meanwhile(process)
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
    result = run(workdir)   # the killed run's lock died with it
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'resuming' in result.stdout and 'from step 120' in result.stdout
    assert rows(workdir) == ROWS and rows(workdir, 'eval.csv') == [240]
    ours, theirs = saved_carry(workdir, 120), saved_carry(uninterrupted, 120)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_resume_that_logs_a_new_column_keeps_every_row(tmp_path):
    """Code that logs more (a new check) resuming a run: the header widens, earlier rows read NaN
    in the new column, and the next resume keeps every row (rows under a shorter header used to
    count as cut short and be dropped)."""
    seed_dir = str(tmp_path / 'seed_0')
    logs = run_files.RunLogs([seed_dir], 0)
    for step, a in ((10, 1.0), (20, 2.0)):
        logs.write('metrics.csv', step, [{'a': a, 'b': -a}])
    logs.close()
    logs = run_files.RunLogs([seed_dir], 20)
    logs.write('metrics.csv', 30, [{'a': 3.0, 'b': -3.0, 'c': 7.0}])
    logs.write('metrics.csv', 40, [{'a': 4.0, 'c': 8.0}])
    logs.close()
    run_files.RunLogs([seed_dir], 40).close()
    curve = evaluation_runs._read_curve(os.path.join(seed_dir, 'metrics.csv'))
    assert list(curve) == ['step', 'a', 'b', 'c']
    np.testing.assert_array_equal(curve['step'], [10, 20, 30, 40])
    np.testing.assert_array_equal(curve['a'], [1, 2, 3, 4])
    np.testing.assert_array_equal(curve['b'], [-1, -2, -3, np.nan])
    np.testing.assert_array_equal(curve['c'], [np.nan, np.nan, 7, 8])


def test_sigterm_checkpoints_the_current_step_and_exits(tmp_path):
    workdir = str(tmp_path / 'run')
    second = {}

    def launch_again(process):
        """The same command on the live run (paused meanwhile, so that its files stay still)."""
        process.send_signal(signal.SIGSTOP)
        try:
            second['before'] = snapshot(workdir)
            second['result'] = run(workdir, timeout=300)
            second['after'] = snapshot(workdir)
        finally:
            process.send_signal(signal.SIGCONT)
        second['pid'] = process.pid

    code, _, stderr = start_and_signal(workdir, signal.SIGTERM, after_row=80, meanwhile=launch_again)
    assert code == 128 + signal.SIGTERM, stderr[-3000:]
    assert 'checkpoint saved' in stderr and 'run the same command to resume' in stderr
    assert 'Traceback' not in stderr
    refused = second['result']
    assert refused.returncode == 2, refused.stderr[-3000:]
    (error,) = error_lines(refused.stderr)
    assert f'is in use by pid {second["pid"]} on host {socket.gethostname()}' in error
    assert second['after'] == second['before']
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


def test_non_finite_training_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    workdir = str(tmp_path / 'run')
    # Learning starts after the checkpoint at 120; a huge learning rate overflows the network.
    result = run(workdir, '--learning_starts=130', '--config.agent.learning_rate=1e30')
    assert result.returncode == 3, result.stderr[-3000:]
    errors = error_lines(result.stderr)
    assert len(errors) == 1, result.stderr[-3000:]
    assert 'non-finite' in errors[0] and '(seed 0)' in errors[0]
    assert 'last good checkpoint (step 120) is kept' in errors[0]
    step = int(errors[0].split(' at step ')[1].split()[0])
    assert 130 < step < 240
    assert checkpoint_steps(workdir) == [120]


# Python code that caps the address space at 16 GiB and then runs the rest of its command line: an
# allocation beyond the cap fails at once, as on a device whose memory is full, instead of paging
# this shared machine's memory out. (Not preexec_fn: forking this multithreaded process may hang.)
LIMIT_MEMORY = ('import os, resource, sys; resource.setrlimit(resource.RLIMIT_AS, (16 << 30,) * 2); '
                'os.execv(sys.executable, [sys.executable, *sys.argv[1:]])')


def test_out_of_memory_names_the_batch_size_flag_and_keeps_the_checkpoint(tmp_path):
    workdir = str(tmp_path / 'run')
    # Learning starts after the checkpoint at 120; a batch of 10^7 subsequences needs terabytes.
    launch = command(workdir, '--learning_starts=130', '--config.replay.batch_size=10000000')
    result = subprocess.run([sys.executable, '-c', LIMIT_MEMORY, *launch[1:]], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 4, result.stderr[-3000:]
    errors = error_lines(result.stderr)
    assert len(errors) == 1, result.stderr[-3000:]
    assert 'out of memory (RESOURCE_EXHAUSTED' in errors[0]
    assert 'at --config.replay.batch_size=10000000: lower it' in errors[0]
    assert 'the last checkpoint (step 120) is kept' in errors[0]
    assert 'Traceback' not in result.stderr
    assert checkpoint_steps(workdir) == [120]
    saved_carry(workdir, 120)   # whole: it restores


def test_full_disk_at_start_is_one_line_and_changes_no_run_file(uninterrupted, tmpfs):
    disk = tmpfs.mount(96)   # the run (56 MB) and a little more
    workdir = str(disk / 'run')
    shutil.copytree(uninterrupted, workdir)
    before = snapshot(workdir)
    tmpfs.fill(disk)
    result = run(workdir, '--total_steps=320')
    assert result.returncode == 5, result.stderr[-3000:]
    errors = error_lines(result.stderr)
    assert len(errors) == 1, result.stderr[-3000:]
    assert f'out of disk space writing {workdir}/config.json' in errors[0]
    assert 'the last checkpoint (step 240) is kept' in errors[0]
    assert 'Traceback' not in result.stderr
    after = snapshot(workdir)
    for state in (before, after):
        del state[run_files.lock_name(0)]   # names the launch that holds it
    assert after == before


def test_full_disk_at_a_checkpoint_is_one_line_and_keeps_the_last_one(uninterrupted, tmpfs):
    disk = tmpfs.mount(96)
    workdir = str(disk / 'run')
    shutil.copytree(uninterrupted, workdir)
    kept = snapshot(os.path.join(workdir, 'checkpoints'))
    tmpfs.fill(disk, leave_kb=1024)   # room for the logs and orbax's metadata, not its arrays
    result = run(workdir, '--total_steps=241')
    assert result.returncode == 5, result.stderr[-3000:]
    errors = error_lines(result.stderr)
    assert len(errors) == 1, result.stderr[-3000:]
    assert f'out of disk space writing {workdir}/checkpoints/241 (No space' in errors[0]
    assert 'the last checkpoint (step 240) is kept' in errors[0]
    assert 'Traceback' not in result.stderr, result.stderr[-3000:]
    after = snapshot(os.path.join(workdir, 'checkpoints'))
    assert {k: v for k, v in after.items() if not k.startswith('241.')} == kept


# In-process runs of the tiny agent of test_seeds (compiled once): checkpoints at 20 and 40, metrics
# rows at 30 and 40, the evaluation and summary at 40.
TINY_LOOP = training.LoopConfig(env='Pong', seed=0, total_steps=40, learning_starts=18,
                                eval_episodes=1, eval_every=0, log_every=30, checkpoint_every=20)
TINY_STEP_FUNCTIONS = functools.lru_cache()(training.make_step_functions)


def train_tiny(workdir):
    return training.train(AGENT, TINY_LOOP, make_atari('Pong', 1, 0, training=True),
                          lambda n, seed: make_atari('Pong', n, seed, training=False), workdir)


# Each writer of the loop, when the disk fills just before it writes: what it calls, the write that
# fills the disk, the space left (for orbax's metadata files but not the arrays: tensorstore's error)
# and the file the error names.
WRITERS = {
    'checkpoint': (checkpoints.Checkpoints, 'save', lambda self, step, *_: step == 40, 200,
                   'checkpoints/40'),
    'metrics': (run_files.RunLogs, 'write', lambda self, name, *_: name == 'metrics.csv', 0,
                'metrics.csv'),
    'summary': (run_files, 'write_json', lambda path, _: path.endswith('summary.json'), 0,
                'summary.json'),
}


@pytest.mark.filterwarnings('error::pytest.PytestUnraisableExceptionWarning')
@pytest.mark.parametrize('writer', list(WRITERS))
def test_full_disk_keeps_the_last_checkpoint_and_the_run_resumes(writer, tmpfs, monkeypatch,
                                                                  caplog, capsys):
    monkeypatch.setattr(training, 'make_step_functions', TINY_STEP_FUNCTIONS)
    disk = tmpfs.mount(16)
    workdir = str(disk / 'run')
    owner, name, fills, leave_kb, culprit = WRITERS[writer]
    original, filler = getattr(owner, name), []

    def filling_first(*args):
        if fills(*args) and not filler:
            filler.append(tmpfs.fill(disk, leave_kb))
        return original(*args)

    with monkeypatch.context() as patch:
        patch.setattr(owner, name, filling_first)
        with pytest.raises(OSError) as failure:
            train_tiny(workdir)
    assert filler and failure.value.errno == errno.ENOSPC
    assert failure.value.filename.endswith(culprit), failure.value.filename
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert checkpoints.latest_saved_step(workdir) == 20

    os.remove(filler[0])   # space is back: the same run resumes from its last checkpoint
    (summary,) = train_tiny(workdir)
    assert f'resuming {workdir} from step 20' in capsys.readouterr().out
    assert rows(workdir) == [30, 40] and rows(workdir, 'eval.csv') == [40]
    assert checkpoint_steps(workdir) == [20, 40]
    assert summary['total_steps'] == 40
    assert sorted(os.listdir(workdir)) == ['checkpoints', 'eval.csv', 'metrics.csv',
                                           'summary.json', 'tensorboard']
