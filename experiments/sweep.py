"""A whole table in one command: one training process per (env, preset), over the local devices.

    python -m experiments.sweep --suite=atari --envs=all --presets=psrl,spr --num_seeds=5 \
        --workdir=runs/atari100k
    python -m experiments.sweep --suite=minatar --envs=breakout,freeway --presets=rainbow,spr \
        --workdir=runs/minatar -- --total_steps=50000
    python -m experiments.sweep --suite=minatar --envs=breakout --presets=psrl --seeds=0,1,2,3,4 \
        --parallel=2 --workdir=runs/minatar_single -- --total_steps=100000

Run (preset, env) is `python -m experiments.train_<suite> --config=experiments/configs/<suite>.py:
<preset> --env=<env> --num_seeds=<n> --workdir=<workdir>/<preset>/<env>` followed by the run flags
(--run_flags, then everything after `--`); its seeds are vmapped inside it and its output goes to
<workdir>/logs/<preset>/<env>.log, after a line with the command and the device variables it got.
With --seeds the sweep runs one process per seed instead, seed by seed: run (preset, env, k) is the
same command with --seed=k --num_seeds=1 and --workdir=<workdir>/<preset>/<env>_seed<k>, its log
<workdir>/logs/<preset>/<env>_seed<k>.log. On CPU cores this is the faster placement (one run a core,
no seed loop; WORKSPACE_NOTES.md, "MinAtar"), and experiments.aggregate reads the folders as seeds of
their (preset, env).
Placement: each run gets one GPU (CUDA_VISIBLE_DEVICES's entries, else nvidia-smi's), k =
--runs_per_device runs a GPU, each capped at 0.9/k of its memory (XLA_CLIENT_MEM_FRACTION) unless a
fraction is set already; without GPUs (CPU, a TPU VM), --parallel runs at a time, each pinned to
its share of the CPU cores when there are at least as many cores as runs.
A rerun skips finished runs (every seed's summary.json at the run's total_steps) and resumes the
others from their checkpoints. SIGTERM or SIGINT is passed on to the runs, which checkpoint and
exit; the sweep then exits with 128 + signal. A failed run is reported with its exit status and
error line, the others go on, and the sweep exits 1 at the end. One progress line every
--progress_every seconds: runs done, agent steps/s over all runs and seeds (from the runs'
metrics.csv), ETA. At the end experiments.aggregate writes <workdir>/report/.
--dry_run prints the commands of the runs still to do; --slurm writes <workdir>/sweep.sbatch, a SLURM
array with one task per run still to do (each task runs the same command, its GPU from SLURM), and
prints the sbatch command. Bad input is one `error:` line, exit status 2.
"""
import csv
import dataclasses
import datetime
import glob
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from absl import app
from absl import flags
from absl import logging

from experiments import repository
from experiments.configs import atari as atari_config
from experiments.configs import dmc as dmc_config
from experiments.configs import minatar as minatar_config
from psrl_jax import training
from psrl_jax.envs import atari, dmc, minatar
from psrl_jax.errors import UsageError
from psrl_jax.evaluation.scores import DMC_TASKS

FLAGS = flags.FLAGS
Slot = Union[str, Tuple[int, ...], None]   # a GPU, the CPU cores a run is pinned to, or neither

flags.DEFINE_string('suite', None, 'atari, dmc or minatar.')
flags.DEFINE_list('envs', ['all'], "Games or tasks, or 'all': the suite's table (Atari 100k's 26 "
                  "games, the paper's 6 DMControl tasks, the 5 MinAtar games).")
flags.DEFINE_list('presets', ['psrl'], 'Config presets; one run per env and preset.')
flags.DEFINE_integer('num_seeds', 5, 'Seeds of each run, trained side by side (vmapped) in it.')
flags.DEFINE_list('seeds', [], 'One process per seed instead of --num_seeds: run (preset, env, k) '
                  'trains seed k alone in <workdir>/<preset>/<env>_seed<k>.')
flags.DEFINE_string('workdir', None, 'The sweep folder: <workdir>/<preset>/<env> per run, logs/, '
                    'report/.')
flags.DEFINE_integer('runs_per_device', 1, 'Runs at a time on each GPU.')
flags.DEFINE_integer('parallel', None, 'Runs at a time where there is no GPU (default 1).')
flags.DEFINE_string('run_flags', '', "Launcher flags for every run, e.g. '--total_steps=50000' "
                    '(flags after -- are added to them).')
flags.DEFINE_integer('progress_every', 60, 'Seconds between progress lines.')
flags.DEFINE_bool('dry_run', False, 'Print the commands of the runs still to do, then exit.')
flags.DEFINE_bool('slurm', False, 'Write <workdir>/sweep.sbatch (one array task per run still to '
                  'do) and print the sbatch command instead of running.')
flags.DEFINE_string('slurm_options', '', "sbatch options written into the script, e.g. "
                    "'--gres=gpu:1 --time=12:00:00 --partition=gpu'.")

# Launcher flags the sweep sets itself, so not allowed among the run flags.
OWN_FLAGS = ('env', 'workdir', 'num_seeds', 'config', 'coordinator_address', 'num_processes',
             'process_id')
MEMORY_FRACTION_VARIABLES = ('XLA_CLIENT_MEM_FRACTION', 'XLA_PYTHON_CLIENT_MEM_FRACTION')
POLL_SECONDS = 0.5


@dataclasses.dataclass(frozen=True)
class Suite:
    launcher: str                    # the launcher's module
    config: object                   # its config module (PRESETS, LAUNCH_DEFAULTS)
    table: tuple                     # the envs of --envs=all
    known: Callable[[], tuple]       # every env the launcher takes (may raise UsageError)
    action_repeat: Callable[[str], int]


SUITES = {
    'atari': Suite('experiments.train_atari', atari_config, atari.ATARI_100K_GAMES,
                   atari.atari_games, lambda env: 1),
    'dmc': Suite('experiments.train_dmc', dmc_config, DMC_TASKS, dmc.dmc_tasks,
                 dmc.default_action_repeat),
    'minatar': Suite('experiments.train_minatar', minatar_config, minatar.MINATAR_GAMES,
                     lambda: minatar.MINATAR_GAMES, lambda env: 1),
}


@dataclasses.dataclass
class Run:
    """One launcher process: a preset on an env, all seeds (or one, with --seeds). Steps are
    environment steps."""
    name: str                        # <preset>/<env>, or <preset>/<env>_seed<k>
    command: List[str]
    workdir: str
    log: str
    seed_dirs: List[str]             # where summary.json and metrics.csv go (the launch contract)
    total_steps: int
    action_repeat: int
    num_seeds: int
    process: Optional[subprocess.Popen] = None
    device: Slot = None              # the slot it holds while running
    started: float = 0.0
    log_start: int = 0               # size of the log before this launch

    def finished(self) -> bool:
        """Every seed's summary.json exists and reports at least the run's total_steps."""
        for directory in self.seed_dirs:
            try:
                with open(os.path.join(directory, 'summary.json')) as f:
                    if json.load(f)['total_steps'] < self.total_steps:
                        return False
            except (OSError, ValueError, KeyError, TypeError):
                return False
        return True

    def progress(self) -> tuple:
        """(environment step, agent steps/s of all its seeds) from the last row of the first
        seed's metrics.csv; the rate is 0 until this launch has written a row."""
        path = os.path.join(self.seed_dirs[0], 'metrics.csv')
        try:
            with open(path, newline='') as f:
                rows = list(csv.DictReader(f))
            step, fps = int(rows[-1]['step']), float(rows[-1]['fps'])
            fresh = self.process is not None and os.path.getmtime(path) >= self.started
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            return 0, 0.0
        return step, (fps / self.action_repeat * self.num_seeds if fresh else 0.0)

    def agent_steps_left(self) -> float:
        step = self.total_steps if self.finished() else self.progress()[0]
        return max(self.total_steps - step, 0) / self.action_repeat * self.num_seeds


def _flag_value(args: Sequence[str], name: str) -> Optional[str]:
    """The last value given to --name (or -name) in args, as --name=value or --name value."""
    value = None
    for i, arg in enumerate(args):
        key, eq, given = arg.lstrip('-').partition('=')
        if arg.startswith('-') and key == name:
            value = given if eq else (args[i + 1] if i + 1 < len(args) else '')
    return value


def parse_seeds(values: Sequence[str]) -> List[int]:
    """--seeds's entries as distinct non-negative integers, in the order given. Raises UsageError."""
    seeds = []
    for value in (v.strip() for v in values if v.strip()):
        try:
            seed = int(value)
        except ValueError:
            seed = -1
        if seed < 0:
            raise UsageError(f'--seeds takes non-negative integers, got {value!r}')
        if seed in seeds:
            raise UsageError(f'--seeds names seed {seed} twice')
        seeds.append(seed)
    return seeds


def plan(suite_name: str, envs: Sequence[str], presets: Sequence[str], num_seeds: int,
         workdir: str, run_flags: Sequence[str], seeds: Sequence[int] = ()) -> List[Run]:
    """The runs of a sweep, env by env, each env's presets in the order given; with `seeds` (one
    process per seed, num_seeds unused) each env's seeds in the order given, every preset of a seed
    before the next seed, so the presets gain seeds together. Raises UsageError."""
    if suite_name not in SUITES:
        raise UsageError(f'unknown --suite={suite_name}: choose atari, dmc or minatar')
    suite = SUITES[suite_name]
    envs = list(dict.fromkeys(e.strip() for e in envs if e.strip()))
    presets = list(dict.fromkeys(p.strip() for p in presets if p.strip()))
    if envs == ['all']:
        envs = list(suite.table)
    if not envs or not presets:
        raise UsageError('--envs and --presets must each name at least one')
    unknown = [e for e in envs if e not in suite.table]
    if unknown:
        known = suite.known()
        for env in unknown:
            if env not in known:
                raise UsageError(f'unknown {suite_name} env {env!r}: use one of '
                                 f'{", ".join(known)}, or all')
    for preset in presets:
        if preset not in suite.config.PRESETS:
            raise UsageError(f'unknown {suite_name} preset {preset!r}: use one of '
                             f'{", ".join(suite.config.PRESETS)}')
    if num_seeds < 1:
        raise UsageError(f'--num_seeds must be positive, got {num_seeds}')
    if not workdir:
        raise UsageError('--workdir is required')
    own = OWN_FLAGS + ('seed',) if seeds else OWN_FLAGS
    for arg in run_flags:
        if arg.startswith('-') and arg.lstrip('-').partition('=')[0] in own:
            raise UsageError(f'{arg} is set by the sweep (--envs, --presets, --num_seeds or '
                             f'--seeds, --workdir): take it out of the run flags')
    total_steps = _flag_value(run_flags, 'total_steps')
    try:
        total_steps = int(suite.config.LAUNCH_DEFAULTS['total_steps'] if total_steps is None
                          else total_steps)
    except ValueError:
        raise UsageError(f'--total_steps in the run flags must be an integer, got '
                         f'{total_steps!r}') from None
    workdir = os.path.abspath(workdir)
    runs = []
    for env in envs:
        # (preset, name under <workdir>/<preset>, seed flags, seeds in the process)
        processes = ([(p, f'{env}_seed{k}', [f'--seed={k}', '--num_seeds=1'], 1)
                      for k in seeds for p in presets] if seeds else
                     [(p, env, [f'--num_seeds={num_seeds}'], num_seeds) for p in presets])
        for preset, name, seed_flags, n in processes:
            folder = os.path.join(workdir, preset, name)
            command = [sys.executable, '-m', suite.launcher,
                       f'--config=experiments/configs/{suite_name}.py:{preset}', f'--env={env}',
                       *seed_flags, f'--workdir={folder}', *run_flags]
            seed_dirs = ([folder] if n == 1 else
                         [os.path.join(folder, f'seed_{k}') for k in range(n)])
            runs.append(Run(f'{preset}/{name}', command, folder,
                            os.path.join(workdir, 'logs', preset, f'{name}.log'), seed_dirs,
                            total_steps, suite.action_repeat(env), n))
    return runs


def local_gpus() -> List[str]:
    """GPUs to place runs on: CUDA_VISIBLE_DEVICES's entries when it is set, else the indices
    nvidia-smi lists; none on a machine without NVIDIA GPUs."""
    visible = os.environ.get('CUDA_VISIBLE_DEVICES')
    if visible is not None:
        return [d.strip() for d in visible.split(',') if d.strip() and d.strip() != '-1']
    try:
        out = subprocess.run(['nvidia-smi', '--query-gpu=index', '--format=csv,noheader'],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return []
    return out.stdout.split() if out.returncode == 0 else []


def slots(gpus: Sequence[str], runs_per_device: int, parallel: Optional[int],
          cpus: Sequence[int] = ()) -> List[Slot]:
    """One entry per run that may go at once: its GPU; without GPUs, the CPU cores it is pinned to
    (cpus split round-robin over the --parallel runs, when there are at least as many), else None.

    Pinned, two MinAtar psrl runs on this 2-core machine took 290 ms an agent step each, against
    193 ms for one unpinned run alone: 1.33x the throughput (WORKSPACE_NOTES.md, "MinAtar").
    """
    if runs_per_device < 1:
        raise UsageError(f'--runs_per_device must be positive, got {runs_per_device}')
    if parallel is not None and parallel < 1:
        raise UsageError(f'--parallel must be positive, got {parallel}')
    if gpus and parallel is not None:
        raise UsageError(f'--parallel is for machines without GPUs; here {len(gpus)} GPUs (set '
                         f'CUDA_VISIBLE_DEVICES to choose them) take --runs_per_device each')
    if gpus:
        return [gpu for gpu in gpus for _ in range(runs_per_device)]
    parallel = parallel or 1
    if parallel == 1 or parallel > len(cpus):
        return [None] * parallel
    return [tuple(sorted(cpus)[i::parallel]) for i in range(parallel)]


def device_variables(gpu: Slot, runs_per_device: int,
                     environ: Dict[str, str]) -> Dict[str, str]:
    """What a run's environment gets on top of `environ`: its GPU and, with several runs a GPU,
    the memory fraction 0.9 / runs_per_device unless environ sets one."""
    if not isinstance(gpu, str):
        return {}
    extra = {'CUDA_VISIBLE_DEVICES': gpu}
    if runs_per_device > 1 and not any(v in environ for v in MEMORY_FRACTION_VARIABLES):
        extra['XLA_CLIENT_MEM_FRACTION'] = str(round(0.9 / runs_per_device, 3))
    return extra


def placement(devices: Sequence[Slot], runs_per_device: int) -> str:
    """How many runs go at once, and where, in words."""
    if not isinstance(devices[0], str):
        pinned = (', each pinned to its CPU cores ' + ' | '.join(','.join(map(str, cores))
                                                               for cores in devices)
                  if devices[0] is not None else '')
        return f'{len(devices)} at a time, no GPU{pinned}'
    gpus = list(dict.fromkeys(devices))
    return (f'{len(devices)} at a time on GPU{"s" if len(gpus) > 1 else ""} {",".join(gpus)} '
            f'({runs_per_device} per GPU)')


def slurm_script(runs: Sequence[Run], workdir: str, options: Sequence[str]) -> str:
    """An sbatch array script: task i runs runs[i]'s command, its output appended to its log."""
    lines = ['#!/bin/bash',
             f'# experiments.sweep: {len(runs)} runs, one array task each.',
             '#SBATCH --job-name=psrl-sweep',
             f'#SBATCH --array=0-{len(runs) - 1}',
             f'#SBATCH --output={os.path.join(workdir, "logs", "slurm_%A_%a.out")}',
             '#SBATCH --signal=B:TERM@300',   # time to checkpoint before a time limit
             *[f'#SBATCH {option}' for option in options],
             f'cd {shlex.quote(repository.ROOT)}',
             'case "$SLURM_ARRAY_TASK_ID" in']
    for i, run in enumerate(runs):
        lines.append(f'  {i}) exec {shlex.join(run.command)} >> {shlex.quote(run.log)} 2>&1 ;;')
    lines += ['esac', 'echo "no run for array task $SLURM_ARRAY_TASK_ID" >&2', 'exit 2']
    return '\n'.join(lines) + '\n'


def _log_line(message: str) -> None:
    print(message, flush=True)


def _error_line(run: Run) -> str:
    """The last `error:` line of the run's latest launch in its log, else its last line."""
    try:
        with open(run.log, errors='replace') as f:
            f.seek(run.log_start)
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return 'no log'
    errors = [line for line in lines if line.startswith('error:')]
    return (errors or lines[-1:] or ['no output'])[-1]


class Sweep:
    """Runs the planned runs over the slots; see the module docstring."""

    def __init__(self, runs: Sequence[Run], devices: Sequence[Slot],
                 runs_per_device: int, progress_every: float):
        self.runs = list(runs)
        self.free = list(devices)
        self.runs_per_device = runs_per_device
        self.progress_every = progress_every
        self.running: List[Run] = []
        self.failed: List[Run] = []
        self.done = 0
        self.stop_signal: Optional[int] = None

    def _start(self, run: Run) -> None:
        run.device = self.free.pop(0)
        extra = device_variables(run.device, self.runs_per_device, os.environ)
        os.makedirs(os.path.dirname(run.log), exist_ok=True)
        with open(run.log, 'a') as log:
            run.log_start = log.tell()
            stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
            assignments = ''.join(f'{k}={v} ' for k, v in extra.items())
            cores = run.device if isinstance(run.device, tuple) else None
            if cores:
                assignments += f'(cpus {",".join(map(str, cores))}) '
            log.write(f'# {stamp} {assignments}{shlex.join(run.command)}\n')
            log.flush()
            run.started = time.time()
            run.process = subprocess.Popen(run.command, cwd=repository.ROOT,
                                           env=dict(os.environ, **extra), stdout=log,
                                           stderr=subprocess.STDOUT, start_new_session=True)
            if cores:
                # Set from here, not in a preexec_fn (unsafe in a process with threads, as this
                # one has JAX's): the child's interpreter starts single-threaded and XLA makes
                # its threads, which inherit the affinity, only when it imports JAX.
                os.sched_setaffinity(run.process.pid, cores)
        where = (f' on GPU {run.device}' if isinstance(run.device, str)
                 else f' on CPUs {",".join(map(str, cores))}' if cores else '')
        _log_line(f'started {run.name}{where} (log: {run.log})')
        self.running.append(run)

    def _ended(self, run: Run, status: int) -> None:
        self.running.remove(run)
        self.free.append(run.device)
        took = training.format_duration(time.time() - run.started)
        if status == 0:
            self.done += 1
            _log_line(f'finished {run.name} in {took}')
        elif self.stop_signal is not None and (status < 0 or status == 128 + self.stop_signal):
            _log_line(f'stopped {run.name} after {took} (exit {status}); it resumes from its '
                      f'last checkpoint')
        else:
            self.failed.append(run)
            _log_line(f'failed {run.name}: exit {status}: {_error_line(run)} (log: {run.log})')

    def progress_line(self) -> str:
        rate = sum(run.progress()[1] for run in self.running)
        left = sum(run.agent_steps_left() for run in self.runs if run not in self.failed)
        eta = training.format_duration(left / rate) if rate > 0 else '?'
        return (f'sweep: {self.done}/{len(self.runs)} runs done, {len(self.running)} running, '
                f'{len(self.failed)} failed | {rate:.1f} agent steps/s | ETA {eta}')

    def _on_signal(self, signum, _frame) -> None:
        self.stop_signal = signum
        for run in self.running:   # each run checkpoints and exits
            run.process.send_signal(signum)

    def execute(self) -> int:
        """Runs what is not finished; returns the sweep's exit status before the report (0, 1,
        or 128 + signal)."""
        pending = []
        for run in self.runs:
            if run.finished():
                self.done += 1
                _log_line(f'skipping {run.name}: finished ({run.total_steps} steps)')
            else:
                pending.append(run)
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            last_line = time.time()
            while self.running or (pending and self.stop_signal is None):
                while self.free and pending and self.stop_signal is None:
                    self._start(pending.pop(0))
                time.sleep(POLL_SECONDS)
                for run in list(self.running):
                    status = run.process.poll()
                    if status is not None:
                        self._ended(run, status)
                if time.time() - last_line >= self.progress_every:
                    _log_line(self.progress_line())
                    last_line = time.time()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        _log_line(self.progress_line())
        if self.stop_signal is not None:
            _log_line(f'sweep stopped by signal {self.stop_signal}: run the same command to resume')
            return 128 + self.stop_signal
        return 1 if self.failed else 0


def report(workdir: str) -> bool:
    """experiments.aggregate over every run under workdir, into <workdir>/report; prints its last
    line. Returns whether it succeeded."""
    out = os.path.join(workdir, 'report')
    result = subprocess.run([sys.executable, '-m', 'experiments.aggregate',
                             f'--runs={glob.escape(workdir)}', f'--out={out}'], cwd=repository.ROOT,
                            capture_output=True, text=True)
    lines = (result.stdout if result.returncode == 0 else result.stderr).strip().splitlines()
    _log_line(f'report: {lines[-1] if lines else "no output"}' if result.returncode == 0 else
              f'report failed (exit {result.returncode}): {lines[-1] if lines else "no output"}')
    return result.returncode == 0


def parse_flags(argv: List[str]) -> List[str]:
    """absl parsing of the sweep's own flags (those before `--`); a bad flag or a stray argument is
    one `error:` line, exit 2. Returns [program, *flags after --]."""
    split = argv.index('--') if '--' in argv else len(argv)
    try:
        remaining = FLAGS(argv[:split])
        if len(remaining) > 1:
            raise UsageError(f'unexpected arguments: {" ".join(remaining[1:])} (flags for the runs '
                             f'go after --, or in --run_flags)')
    except (flags.Error, UsageError) as err:
        print(f'error: {err}', file=sys.stderr)
        sys.exit(2)
    return argv[:1] + argv[split + 1:]


def main(argv: List[str]) -> None:
    if not FLAGS['verbosity'].present:   # dm_control logs its GL backend at INFO
        logging.set_verbosity(logging.WARNING)
    try:
        run_flags = shlex.split(FLAGS.run_flags) + argv[1:]
        seeds = parse_seeds(FLAGS.seeds)
        if seeds and FLAGS['num_seeds'].present:
            raise UsageError('--seeds and --num_seeds exclude each other: --seeds runs one process '
                             'per seed')
        runs = plan(FLAGS.suite, FLAGS.envs, FLAGS.presets, FLAGS.num_seeds, FLAGS.workdir,
                    run_flags, seeds)
        devices = slots([] if FLAGS.slurm else local_gpus(), FLAGS.runs_per_device,
                        FLAGS.parallel, sorted(os.sched_getaffinity(0)))
        options = shlex.split(FLAGS.slurm_options)
    except (UsageError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        sys.exit(2)
    workdir = os.path.abspath(FLAGS.workdir)
    todo = [run for run in runs if not run.finished()]
    if FLAGS.slurm:
        if not todo:
            _log_line(f'all {len(runs)} runs are finished: nothing to submit')
            return
        for run in todo:
            os.makedirs(os.path.dirname(run.log), exist_ok=True)
        path = os.path.join(workdir, 'sweep.sbatch')
        with open(path, 'w') as f:
            f.write(slurm_script(todo, workdir, options))
        _log_line(f'# {len(todo)} of {len(runs)} runs to do, one array task each; then: '
                  f'python -m experiments.aggregate --runs={glob.escape(workdir)} '
                  f'--out={os.path.join(workdir, "report")}')
        _log_line(f'sbatch {shlex.quote(path)}')
        return
    each = (f'one seed each, seeds {",".join(map(str, seeds))}' if seeds else
            f'{FLAGS.num_seeds} seeds each')
    header = (f'# {len(runs)} runs ({FLAGS.suite}, {each}): '
              f'{len(runs) - len(todo)} finished, {len(todo)} to run, '
              f'{placement(devices, FLAGS.runs_per_device)}')
    _log_line(header)
    if FLAGS.dry_run:
        for run in todo:
            _log_line(shlex.join(run.command))
        return
    status = Sweep(runs, devices, FLAGS.runs_per_device, FLAGS.progress_every).execute()
    if status in (0, 1) and not report(workdir):
        status = 1
    sys.exit(status)


if __name__ == '__main__':
    app.run(main, flags_parser=parse_flags)
