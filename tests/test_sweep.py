"""experiments.sweep: the exact commands of a dry run and of the SLURM script, device placement, bad
input in one line, and a real MinAtar sweep (2 games x 2 presets x 2 seeds) stopped by SIGTERM,
resumed with one run failing, then finished with the others skipped."""
import glob
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from run_dirs import snapshot

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from experiments import sweep  # noqa: E402

PY = sys.executable
GRID = ['--suite=minatar', '--envs=breakout,freeway', '--presets=rainbow,spr', '--num_seeds=2']
# Tiny runs: 300 environment steps, learning from step 30, a row of metrics.csv every 10.
RUN_FLAGS = ['--total_steps=300', '--learning_starts=30', '--eval_episodes=1', '--log_every=10',
             '--checkpoint_every=0', '--config.replay.batch_size=4', '--config.replay.capacity=400']
RUNS = [('rainbow', 'breakout'), ('spr', 'breakout'), ('rainbow', 'freeway'), ('spr', 'freeway')]


def environ(**extra):
    env = {k: v for k, v in os.environ.items() if k != 'CUDA_VISIBLE_DEVICES'}
    env.update(extra)
    return env


def run_sweep(*args, env=None, timeout=120):
    return subprocess.run([PY, '-m', 'experiments.sweep', *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=env or environ())


def command(workdir, preset, env, flags=RUN_FLAGS):
    return (f'{PY} -m experiments.train_minatar --config=experiments/configs/minatar.py:{preset} '
            f'--env={env} --num_seeds=2 --workdir={workdir}/{preset}/{env} ' + ' '.join(flags))


def write_summaries(folder, total_steps, seeds=(0, 1)):
    for seed in seeds:
        os.makedirs(os.path.join(folder, f'seed_{seed}'))
        with open(os.path.join(folder, f'seed_{seed}', 'summary.json'), 'w') as f:
            json.dump({'algorithm': 'rainbow', 'env': 'breakout', 'seed': seed,
                       'total_steps': total_steps, 'eval_return_mean': 1.0}, f)


# ------------------------------------------------------------------------ plans, no training

def test_dry_run_prints_the_commands_of_the_runs_to_do(tmp_path):
    write_summaries(tmp_path / 'rainbow' / 'breakout', 300)     # finished
    write_summaries(tmp_path / 'spr' / 'breakout', 200)         # stopped short of 300 steps
    result = run_sweep(*GRID, f'--workdir={tmp_path}', '--dry_run', '--runs_per_device=2',
                       f'--run_flags={" ".join(RUN_FLAGS[:3])}', '--', *RUN_FLAGS[3:],
                       env=environ(CUDA_VISIBLE_DEVICES='3,5'))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        '# 4 runs (minatar, 2 seeds each): 1 finished, 3 to run, 4 at a time on GPUs 3,5 '
        '(2 per GPU)',
        command(tmp_path, 'spr', 'breakout'), command(tmp_path, 'rainbow', 'freeway'),
        command(tmp_path, 'spr', 'freeway')]
    assert sorted(os.listdir(tmp_path)) == ['rainbow', 'spr']   # nothing written


def test_seeds_is_one_process_per_seed_in_its_own_folder(tmp_path):
    finished = tmp_path / 'spr' / 'breakout_seed3'
    os.makedirs(finished)
    (finished / 'summary.json').write_text('{"total_steps": 300}')
    result = run_sweep('--suite=minatar', '--envs=breakout', '--presets=psrl,spr', '--seeds=3,1',
                       f'--workdir={tmp_path}', '--dry_run', '--parallel=2', '--', *RUN_FLAGS)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith('# 4 runs (minatar, one seed each, seeds 3,1): 1 finished, 3 to run, '
                               '2 at a time, no GPU')
    assert lines[1:] == [
        f'{PY} -m experiments.train_minatar --config=experiments/configs/minatar.py:{preset} '
        f'--env=breakout --seed={k} --num_seeds=1 --workdir={tmp_path}/{preset}/breakout_seed{k} '
        + ' '.join(RUN_FLAGS) for preset, k in [('psrl', 3), ('psrl', 1), ('spr', 1)]]   # seed by seed
    runs = sweep.plan('minatar', ['breakout'], ['spr'], 5, str(tmp_path), RUN_FLAGS, [3, 1])
    assert [(r.name, r.seed_dirs, r.num_seeds, r.log) for r in runs] == [
        (f'spr/breakout_seed{k}', [f'{tmp_path}/spr/breakout_seed{k}'], 1,
         f'{tmp_path}/logs/spr/breakout_seed{k}.log') for k in (3, 1)]
    assert runs[0].finished() and not runs[1].finished()


def test_all_is_the_suites_table_and_defaults_come_from_the_launcher(tmp_path):
    result = run_sweep('--suite=atari', '--envs=all', '--presets=psrl,spr', '--num_seeds=5',
                       f'--workdir={tmp_path}', '--dry_run', '--parallel=3')
    lines = result.stdout.splitlines()
    assert lines[0] == '# 52 runs (atari, 5 seeds each): 0 finished, 52 to run, 3 at a time, no GPU'
    assert lines[1] == (f'{PY} -m experiments.train_atari --config=experiments/configs/atari.py:psrl '
                        f'--env=Alien --num_seeds=5 --workdir={tmp_path}/psrl/Alien')
    assert [line.split('--env=')[1].split()[0] for line in lines[1::2]] == list(
        sweep.atari.ATARI_100K_GAMES)
    # A finished 100k run (the launcher's default --total_steps) is skipped.
    os.makedirs(tmp_path / 'dmc')
    for seed in range(5):
        os.makedirs(tmp_path / 'dmc' / 'drq' / 'cheetah-run' / f'seed_{seed}')
        (tmp_path / 'dmc' / 'drq' / 'cheetah-run' / f'seed_{seed}' / 'summary.json').write_text(
            '{"total_steps": 100000}')
    result = run_sweep('--suite=dmc', '--presets=drq', f'--workdir={tmp_path}/dmc', '--dry_run')
    assert result.stdout.splitlines()[0] == ('# 6 runs (dmc, 5 seeds each): 1 finished, 5 to run, '
                                             '1 at a time, no GPU')
    assert [line.split('--env=')[1].split()[0] for line in result.stdout.splitlines()[1:]] == [
        'finger-spin', 'cartpole-swingup', 'reacher-easy', 'walker-walk', 'ball_in_cup-catch']


def test_slurm_writes_one_array_task_per_run_to_do(tmp_path):
    write_summaries(tmp_path / 'rainbow' / 'breakout', 300)
    result = run_sweep(*GRID, f'--workdir={tmp_path}', '--slurm',
                       '--slurm_options=--gres=gpu:1 --time=2:00:00', '--', *RUN_FLAGS)
    assert result.returncode == 0, result.stderr
    script = tmp_path / 'sweep.sbatch'
    assert result.stdout.splitlines() == [
        f'# 3 of 4 runs to do, one array task each; then: python -m experiments.aggregate '
        f'--runs={tmp_path} --out={tmp_path}/report', f'sbatch {script}']
    todo = RUNS[1:]
    assert script.read_text().splitlines() == [
        '#!/bin/bash',
        '# experiments.sweep: 3 runs, one array task each.',
        '#SBATCH --job-name=psrl-sweep',
        '#SBATCH --array=0-2',
        f'#SBATCH --output={tmp_path}/logs/slurm_%A_%a.out',
        '#SBATCH --signal=B:TERM@300',
        '#SBATCH --gres=gpu:1',
        '#SBATCH --time=2:00:00',
        f'cd {ROOT}',
        'case "$SLURM_ARRAY_TASK_ID" in',
        *[f'  {i}) exec {command(tmp_path, p, e)} >> {tmp_path}/logs/{p}/{e}.log 2>&1 ;;'
          for i, (p, e) in enumerate(todo)],
        'esac',
        'echo "no run for array task $SLURM_ARRAY_TASK_ID" >&2',
        'exit 2']
    assert os.path.isdir(tmp_path / 'logs' / 'spr') and os.path.isdir(tmp_path / 'logs' / 'rainbow')


@pytest.mark.parametrize('args, culprit', [
    (['--suite=procgen', '--workdir={w}'], 'unknown --suite=procgen'),
    (['--suite=minatar', '--envs=pong', '--workdir={w}'], "unknown minatar env 'pong'"),
    (['--suite=dmc', '--envs=cartpole-spin', '--workdir={w}'], "unknown dmc env 'cartpole-spin'"),
    (['--suite=atari', '--envs=Pong', '--presets=drq', '--workdir={w}'],
     "unknown atari preset 'drq'"),
    (['--suite=minatar', '--presets=', '--workdir={w}'],
     '--envs and --presets must each name at least one'),
    (['--suite=minatar', '--num_seeds=0', '--workdir={w}'], '--num_seeds must be positive, got 0'),
    (['--suite=minatar', '--runs_per_device=0', '--workdir={w}'],
     '--runs_per_device must be positive, got 0'),
    (['--suite=minatar', '--parallel=-1', '--workdir={w}'], '--parallel must be positive, got -1'),
    (['--suite=minatar', '--workdir={w}', '--', '--env=asterix'], '--env=asterix is set by the sweep'),
    (['--suite=minatar', '--run_flags=--num_seeds=3', '--workdir={w}'],
     '--num_seeds=3 is set by the sweep'),
    (['--suite=minatar', '--seeds=0,1', '--num_seeds=2', '--workdir={w}'],
     '--seeds and --num_seeds exclude each other'),
    (['--suite=minatar', '--seeds=0,-1', '--workdir={w}'],
     "--seeds takes non-negative integers, got '-1'"),
    (['--suite=minatar', '--seeds=one', '--workdir={w}'], "--seeds takes non-negative integers"),
    (['--suite=minatar', '--seeds=2,2', '--workdir={w}'], '--seeds names seed 2 twice'),
    (['--suite=minatar', '--seeds=2', '--workdir={w}', '--', '--seed=5'],
     '--seed=5 is set by the sweep'),
    (['--suite=minatar', '--run_flags=--total_steps=1e5', '--workdir={w}'],
     "--total_steps in the run flags must be an integer, got '1e5'"),
    (['--suite=minatar', 'breakout', '--workdir={w}'], 'unexpected arguments: breakout'),
    (['--suite=minatar', '--num_seeds=two', '--workdir={w}'], 'flag --num_seeds=two'),
    (['--suite=minatar', '--bogus=1', '--workdir={w}'], "Unknown command line flag 'bogus'"),
    (['--suite=minatar'], '--workdir is required'),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, culprit):
    result = run_sweep(*[a.format(w=tmp_path / 'sweep') for a in args])
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: ') and culprit in lines[0], lines
    assert result.stdout == '' and not os.path.exists(tmp_path / 'sweep')


def test_parallel_is_refused_where_there_are_gpus(tmp_path):
    result = run_sweep('--suite=minatar', '--parallel=2', f'--workdir={tmp_path}',
                       env=environ(CUDA_VISIBLE_DEVICES='0,1'))
    assert result.returncode == 2 and result.stderr == (
        'error: --parallel is for machines without GPUs; here 2 GPUs (set CUDA_VISIBLE_DEVICES '
        'to choose them) take --runs_per_device each\n')


def test_device_variables_and_slots():
    assert sweep.slots(['0', '1'], 2, None) == ['0', '0', '1', '1']
    assert sweep.slots([], 1, None) == [None] and sweep.slots([], 1, 3) == [None] * 3
    # Without GPUs: the cores round-robin over the runs, when each run gets at least one.
    assert sweep.slots([], 1, 2, [3, 0, 2, 1]) == [(0, 2), (1, 3)]
    assert sweep.slots([], 1, 3, [0, 1]) == [None] * 3 and sweep.slots([], 1, 1, [0, 1]) == [None]
    assert sweep.slots(['0'], 1, None, [0, 1]) == ['0']
    assert sweep.device_variables((0, 2), 1, {}) == {}
    assert sweep.device_variables(None, 2, {}) == {}
    assert sweep.device_variables('1', 1, {}) == {'CUDA_VISIBLE_DEVICES': '1'}
    assert sweep.device_variables('1', 4, {}) == {'CUDA_VISIBLE_DEVICES': '1',
                                                  'XLA_CLIENT_MEM_FRACTION': '0.225'}
    for name in ('XLA_CLIENT_MEM_FRACTION', 'XLA_PYTHON_CLIENT_MEM_FRACTION'):   # the user's wins
        assert sweep.device_variables('1', 3, {name: '0.5'}) == {'CUDA_VISIBLE_DEVICES': '1'}


def test_a_pinned_run_runs_on_its_cores_only(tmp_path):
    cores = tuple(sorted(os.sched_getaffinity(0)))[:1]
    log = str(tmp_path / 'logs' / 'probe.log')
    # The probe reads its affinity when a launcher would import JAX, after the interpreter starts.
    probe = sweep.Run('probe/cores', [PY, '-c', 'import os, time; time.sleep(0.5); '
                                      'print(sorted(os.sched_getaffinity(0)))'],
                      str(tmp_path), log, [str(tmp_path / 'seed_0')], 10, 1, 1)
    assert sweep.Sweep([probe], [cores], 1, progress_every=60).execute() == 0
    with open(log) as f:
        header, printed = f.read().splitlines()
    assert f'(cpus {cores[0]}) ' in header and printed == str(list(cores))


def test_local_gpus_follow_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '2, 7,GPU-3f2a')
    assert sweep.local_gpus() == ['2', '7', 'GPU-3f2a']
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '')
    assert sweep.local_gpus() == []


# ------------------------------------------------------------------ a real sweep on the CPU

def logs(workdir):
    return {name: snapshot(os.path.join(workdir, 'logs', *name.split('/')) + '.log')
            for name in (f'{p}/{e}' for p, e in RUNS)
            if os.path.exists(os.path.join(workdir, 'logs', *name.split('/')) + '.log')}


def test_sweep_stops_on_sigterm_resumes_reports_a_failure_and_skips_finished_runs(tmp_path):
    workdir = str(tmp_path / 'sweep')
    args = [PY, '-m', 'experiments.sweep', *GRID, f'--workdir={workdir}', '--runs_per_device=2',
            '--progress_every=2', '--', *RUN_FLAGS]
    # Both runs on "GPU 0" (ignored by a CPU jax), each capped at 0.9 / 2 of its memory.
    env = environ(CUDA_VISIBLE_DEVICES='0')

    # 1. SIGTERM as soon as a run logs its first row: the sweep passes it on, runs checkpoint.
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not glob.glob(f'{workdir}/*/*/seed_0/metrics.csv') and time.time() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 128 + signal.SIGTERM, (stdout, stderr)
    lines = stdout.splitlines()
    assert lines[:3] == ['# 4 runs (minatar, 2 seeds each): 0 finished, 4 to run, 2 at a time '
                         'on GPU 0 (2 per GPU)',
                         f'started rainbow/breakout on GPU 0 (log: {workdir}/logs/rainbow/breakout.log)',
                         f'started spr/breakout on GPU 0 (log: {workdir}/logs/spr/breakout.log)']
    assert lines[-1] == 'sweep stopped by signal 15: run the same command to resume'
    assert sorted(logs(workdir)) == ['rainbow/breakout', 'spr/breakout']   # nothing else started
    interrupted = [p for p, e in RUNS[:2]
                   if os.path.exists(f'{workdir}/{p}/breakout/seed_0/metrics.csv')]
    assert interrupted
    for preset in interrupted:
        assert re.search(rf'^stopped {preset}/breakout after \d+m\d\ds \(exit 143\); it resumes '
                         r'from its last checkpoint$', stdout, re.M), stdout
        assert os.listdir(f'{workdir}/{preset}/breakout/checkpoints')
        assert not glob.glob(f'{workdir}/{preset}/breakout/seed_*/summary.json')

    # 2. The same command resumes them; a run whose folder holds a stranger's file fails alone.
    os.makedirs(f'{workdir}/spr/freeway')
    with open(f'{workdir}/spr/freeway/notes.txt', 'w') as f:
        f.write('not a run')
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, (result.stdout, result.stderr)
    out = result.stdout.splitlines()
    assert (f'failed spr/freeway: exit 2: error: {workdir}/spr/freeway is not empty and holds no run '
            f'config.json: use another --workdir, or --overwrite to replace it (log: '
            f'{workdir}/logs/spr/freeway.log)') in out
    assert [line for line in out if line.startswith('finished ')] == [
        line for line in out if re.fullmatch(r'finished (rainbow|spr)/(breakout|freeway) in '
                                             r'\d+m\d\ds', line)]
    assert {line.split()[1] for line in out if line.startswith('finished ')} == {
        'rainbow/breakout', 'spr/breakout', 'rainbow/freeway'}
    progress = [line for line in out if line.startswith('sweep: ')]
    assert all(re.fullmatch(r'sweep: [0-4]/4 runs done, [0-2] running, [01] failed \| '
                            r'[0-9]+\.[0-9] agent steps/s \| ETA (\?|\d+m\d\ds|\d+h\d\dm)', line)
               for line in progress), progress
    assert progress[-1].startswith('sweep: 3/4 runs done, 0 running, 1 failed | 0.0 agent steps/s')
    assert out[-1] == f'report: 6 runs -> {workdir}/report/report.md (5 files)'
    for preset in interrupted:
        with open(f'{workdir}/logs/{preset}/breakout.log') as f:
            assert f'resuming {workdir}/{preset}/breakout from step ' in f.read()
    for preset, game in RUNS[:3]:
        with open(f'{workdir}/logs/{preset}/{game}.log') as f:
            text = f.read().splitlines()
        launches = [i for i, line in enumerate(text) if line.startswith('# ')]
        header = text[launches[-1]]
        assert header.endswith(' CUDA_VISIBLE_DEVICES=0 XLA_CLIENT_MEM_FRACTION=0.45 ' +
                               command(workdir, preset, game)), header
        assert re.fullmatch(r'device: \S+, 2 seeds on 1 of \d+ local devices? \(jax [0-9.]+\)',
                            text[launches[-1] + 1]), text[launches[-1] + 1]
        for seed in (0, 1):
            with open(f'{workdir}/{preset}/{game}/seed_{seed}/summary.json') as f:
                summary = json.load(f)
            assert (summary['algorithm'], summary['env'], summary['seed'],
                    summary['total_steps']) == (preset, game, seed, 300)

    # 3. Rerun: the three finished runs are skipped (their logs untouched), the fourth runs.
    os.remove(f'{workdir}/spr/freeway/notes.txt')
    before = logs(workdir)
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout, result.stderr)
    out = result.stdout.splitlines()
    assert out[:5] == [
        '# 4 runs (minatar, 2 seeds each): 3 finished, 1 to run, 2 at a time on GPU 0 (2 per GPU)',
        *[f'skipping {p}/{e}: finished (300 steps)' for p, e in RUNS[:3]],
        f'started spr/freeway on GPU 0 (log: {workdir}/logs/spr/freeway.log)']
    after = logs(workdir)
    assert {k: after[k] for k in before if k != 'spr/freeway'} == {
        k: v for k, v in before.items() if k != 'spr/freeway'}
    assert out[-1] == f'report: 8 runs -> {workdir}/report/report.md (5 files)'
    with open(f'{workdir}/report/minatar_per_game.md') as f:
        table = f.read()
    for preset in ('rainbow', 'spr'):
        for game in ('breakout', 'freeway'):
            assert f'| {game} | {preset} | 2 | 300 |' in table, table
