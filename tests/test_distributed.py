"""--coordinator_address starts jax.distributed: two CPU processes each train their half of the
seeds on their own devices, write their seed folders, keep their own checkpoints and lock them."""
import json
import os
import socket
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(('localhost', 0))
        return s.getsockname()[1]


def test_two_processes_split_the_seeds(tmp_path):
    workdir = tmp_path / 'run'
    args = ['--config=experiments/configs/atari.py:rainbow', '--env=Pong', '--learning_starts=60',
            '--eval_episodes=1', '--log_every=80', '--checkpoint_every=80',
            '--config.replay.batch_size=4', '--config.replay.capacity=400', '--total_steps=160',
            '--num_seeds=4', '--num_processes=2', f'--coordinator_address=localhost:{free_port()}',
            f'--workdir={workdir}']
    processes = [subprocess.Popen([sys.executable, '-m', 'experiments.train_atari', *args,
                                   f'--process_id={p}'], cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for p in (0, 1)]
    outputs = [p.communicate(timeout=900) for p in processes]
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
    for k in range(4):
        with open(workdir / f'seed_{k}' / 'summary.json') as f:
            summary = json.load(f)
        assert summary['seed'] == k and summary['total_steps'] == 160
    for p in (0, 1):
        steps = sorted(os.listdir(workdir / 'checkpoints' / f'process_{p}'))
        assert steps == ['160', '80']
    # Each process locked what it writes: process 0 the run directory, process 1 its own part.
    for process, lock in zip(processes, ('run.lock', 'process_1.lock')):
        assert (workdir / lock).read_text().startswith(f'pid {process.pid} on host')
    # Each process reports only its own seeds.
    printed = [[json.loads(line)['seed'] for line in out.splitlines() if line.startswith('{')]
               for out, _ in outputs]
    assert printed == [[0, 1], [2, 3]]
