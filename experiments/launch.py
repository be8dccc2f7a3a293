"""What the Atari and DMControl launchers share: flags, validation, the run directory and its lock,
the call to psrl_jax.training.train, and turning every failure into one line on stderr with an exit
status (EXIT_STATUS)."""
import dataclasses
import functools
import json
import os
import shutil
import signal
import sys
from typing import Callable, NoReturn

import jax
import jax.numpy as jnp
from jax.experimental import multihost_utils
from absl import flags
from absl import logging
from ml_collections import config_flags

from experiments import repository
from psrl_jax import checkpoints, diagnostics, psrl, replay, run_files, training
from psrl_jax.agents import rainbow, sac
from psrl_jax.errors import UsageError

FLAGS = flags.FLAGS

# A GPU's memory is taken as a run needs it, not 75% of it at start (JAX's default), so that several
# runs can share one GPU; a value the caller set is kept. Read when JAX first creates its GPU client.
os.environ.setdefault('XLA_PYTHON_CLIENT_PREALLOCATE', 'false')

# Flags that may change when a run is continued; everything else must match the run on disk.
_RESUMABLE = ('total_steps', 'eval_episodes', 'eval_every', 'log_every', 'checkpoint_every')
# What a launch's exit status says, besides 0 (done) and 128 + signal (stopped, checkpointed).
EXIT_STATUS = {'bad input': 2, 'non-finite training': 3, 'out of memory': 4,
               'out of disk space': 5}


def define_flags(env: str, config_file: str, total_steps: int, learning_starts: int,
                 eval_episodes: int, eval_every: int, checkpoint_every: int) -> None:
    """The common launcher flags (DESIGN.md's launcher contract) with per-suite defaults."""
    flags.DEFINE_string('env', env, 'Environment name.')
    flags.DEFINE_integer('seed', 0, 'Seed of the first agent; agent k of --num_seeds uses seed + k.')
    flags.DEFINE_integer('num_seeds', 1, 'Independent agents trained side by side (vmapped).')
    flags.DEFINE_integer('total_steps', total_steps, 'Environment steps to train for.')
    flags.DEFINE_integer('learning_starts', learning_starts, 'Environment steps before learning.')
    flags.DEFINE_integer('eval_episodes', eval_episodes, 'Evaluation episodes per seed.')
    flags.DEFINE_integer('eval_every', eval_every, 'Evaluate every N steps (0: only at the end).')
    flags.DEFINE_integer('log_every', 1000, 'Write a metrics.csv row every N steps.')
    flags.DEFINE_integer('checkpoint_every', checkpoint_every,
                         'Checkpoint every N steps (0: only at the end).')
    flags.DEFINE_string('workdir', None, 'Run directory (re-running with it resumes).')
    flags.DEFINE_bool('overwrite', False, 'Replace a run in --workdir that has a different config.')
    flags.DEFINE_string('coordinator_address', None,
                        'host:port of process 0: starts jax.distributed, and each process trains '
                        '--num_seeds / --num_processes of the seeds on its own devices.')
    flags.DEFINE_integer('num_processes', 1, 'Processes (hosts) of a distributed run.')
    flags.DEFINE_integer('process_id', 0, 'This process of a distributed run, 0 .. num_processes-1.')
    try:  # ml_collections reads --config overrides from sys.argv here already
        config_flags.DEFINE_config_file(
            'config', os.path.join(os.path.dirname(__file__), 'configs', config_file),
            'ml_collections config file, optionally with a preset: path[:preset].',
            lock_config=True)
    except Exception as err:  # pylint: disable=broad-except
        _flag_error(err)


def parse_flags(argv):
    """absl flag parsing that reports a bad flag, preset, config key or a stray argument in one
    line (exit 2)."""
    try:
        remaining = FLAGS(argv)
        FLAGS.config.to_dict()   # loads the config file and applies the overrides now
    except Exception as err:  # pylint: disable=broad-except
        _flag_error(err)
    if len(remaining) > 1:
        _fail(f'unexpected arguments: {" ".join(remaining[1:])}', 'bad input')
    return remaining


def _flag_error(err: Exception) -> NoReturn:
    """Prints a flag-parsing failure as one line on stderr and exits as bad input (status 2)."""
    if isinstance(err, (AttributeError, KeyError)):   # an unknown --config.<key>
        message = f'unknown config key {err}: see the config file for the valid keys'
    else:
        # Config-file errors arrive wrapped in tracebacks: the last line names the cause.
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        message = lines[-1] if lines else type(err).__name__
    _fail(message, 'bad input')


def loop_config(action_repeat: int) -> training.LoopConfig:
    """Validates the flags; raises UsageError with one line on the first bad value.

    In a distributed run this process gets the seeds process_id * per .. + per - 1 of the run.
    """
    positive = ('total_steps', 'eval_episodes', 'log_every', 'num_seeds', 'num_processes')
    for name in positive:
        if getattr(FLAGS, name) < 1:
            raise UsageError(f'--{name} must be positive, got {getattr(FLAGS, name)}')
    for name in ('seed', 'learning_starts', 'eval_every', 'checkpoint_every'):
        if getattr(FLAGS, name) < 0:
            raise UsageError(f'--{name} must be >= 0, got {getattr(FLAGS, name)}')
    if FLAGS.learning_starts >= FLAGS.total_steps:
        raise UsageError(f'--learning_starts={FLAGS.learning_starts} must be below '
                         f'--total_steps={FLAGS.total_steps}')
    if not FLAGS.workdir:
        raise UsageError('--workdir is required')
    if FLAGS.num_seeds % FLAGS.num_processes:
        raise UsageError(f'--num_seeds={FLAGS.num_seeds} must be a multiple of '
                         f'--num_processes={FLAGS.num_processes}')
    if not 0 <= FLAGS.process_id < FLAGS.num_processes:
        raise UsageError(f'--process_id must lie in 0..{FLAGS.num_processes - 1}')
    per_process = FLAGS.num_seeds // FLAGS.num_processes
    first = FLAGS.process_id * per_process
    return training.LoopConfig(
        env=FLAGS.env, seed=FLAGS.seed + first, total_steps=FLAGS.total_steps,
        learning_starts=FLAGS.learning_starts, eval_episodes=FLAGS.eval_episodes,
        eval_every=FLAGS.eval_every, log_every=FLAGS.log_every,
        checkpoint_every=FLAGS.checkpoint_every, num_seeds=per_process,
        action_repeat=action_repeat, seed_index=first, run_seeds=FLAGS.num_seeds)


def objective(config, env, encoder: str) -> psrl.PSRLConfig:
    """The PSRL objective of a config for an env (its frames, actions and augmentation)."""
    actions = (dict(num_actions=env.num_actions) if env.num_actions is not None
               else dict(action_dim=env.action_dim))
    return psrl.PSRLConfig(encoder=encoder, frame_channels=env.frame_channels,
                           augmentation=tuple(config.agent.augmentation), **actions, **config.psrl)


def agent_settings(config) -> dict:
    """config.agent without the augmentation (which belongs to the objective's config)."""
    return {k: v for k, v in config.agent.items() if k != 'augmentation'}


def assemble_agent(config, module, agent_config, env, loop: training.LoopConfig) -> training.Agent:
    """Binds an agent module's pure functions (rainbow or sac) to its config and the replay.

    The replay holds subsequences of the objective's length; the importance-sampling exponent is
    annealed over the run; objectives with C log its ground-truth checks, those with CAT or AAT
    L_sim's y_shift_cos (psrl_jax.diagnostics).
    """
    objective_config = agent_config.psrl
    steps = loop.agent_steps(loop.total_steps)
    stack = env.observation_shape[-1] // env.frame_channels
    horizon = max(objective_config.sequence_length - 1, 1)
    settings = config.replay
    replay_config = replay.ReplayConfig(
        capacity=settings.capacity, stack=stack, horizon=horizon, n_step=settings.n_step,
        gamma=settings.gamma, batch_size=settings.batch_size,
        priority_exponent=settings.priority_exponent)
    start, end = settings.priority_weight_start, settings.priority_weight_end
    discrete = env.num_actions is not None
    bind = lambda fn: functools.partial(fn, config=agent_config)
    return training.Agent(
        name=config.algorithm,
        init=functools.partial(module.init, config=agent_config,
                               observation_shape=env.observation_shape),
        act=bind(module.act), evaluate_act=bind(module.evaluate_act), update=bind(module.update),
        replay=replay_config, action_shape=() if discrete else (env.action_dim,),
        action_dtype=jnp.int32 if discrete else jnp.float32,
        updates_per_step=config.updates_per_step,
        priority_weight=lambda step: start + (end - start) * min(max(step / steps, 0.0), 1.0),
        update_period=config.update_period, seed_loop=config.seed_loop,
        diagnose=(functools.partial(_diagnose, config=objective_config,
                                    object_channel=getattr(env, 'object_channel', None))
                  if objective_config.enabled else None))


def _diagnose(state, batch, key, config, object_channel):
    """C's ground-truth checks where the objective has C, and L_sim's y_shift_cos where it has
    CAT or AAT (psrl_jax.diagnostics)."""
    key_c, key_sim = jax.random.split(key)
    checks = {}
    if config.uses_flows:
        checks.update(diagnostics.correspondence_checks(
            state.params, batch.observation, batch.same_episode, key_c, config, object_channel))
    if config.cat or config.aat:
        checks.update(diagnostics.similarity_checks(state.params, batch.observation, key_sim,
                                                    config))
    return checks


def make_eval_env(suite: str, name: str, num_envs: int, seed: int):
    """`num_envs` envs of a suite's game or task with the settings the launchers evaluate on (Atari:
    no life-loss resets), env i seeded seed + i; an unknown name raises UsageError."""
    # Each suite's simulator is imported only when asked for.  pylint: disable=import-outside-toplevel
    if suite == 'atari':
        from psrl_jax.envs.atari import make_atari
        return make_atari(name, num_envs, seed, training=False)
    if suite == 'minatar':
        from psrl_jax.envs.minatar import make_minatar
        return make_minatar(name, num_envs, seed)
    from psrl_jax.envs.dmc import make_dmc
    return make_dmc(name, num_envs, seed)


def agent_config(suite: str, config, env, loop: training.LoopConfig):
    """(module, settings) of a suite config's agent, as build_agent makes them: rainbow and its
    RainbowConfig on Atari and MinAtar, sac and its SACConfig on DMControl."""
    if suite in ('atari', 'minatar'):
        return rainbow, rainbow.RainbowConfig(psrl=objective(config, env, suite),
                                              **agent_settings(config))
    return sac, sac.SACConfig(psrl=objective(config, env, 'dmc'),
                              random_steps=loop.agent_steps(loop.learning_starts),
                              **agent_settings(config))


def print_json(result: dict, out) -> None:
    """Prints `result` as one JSON line and, when `out` is set, writes that line to the file `out`
    (its folders made): the last line of the analysis scripts (correspondence, gradient_shares)."""
    line = json.dumps(result)
    if out:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        with open(out, 'w') as f:
            f.write(line + '\n')
    print(line)


def build_agent(suite: str, config, env, loop: training.LoopConfig) -> training.Agent:
    """The agent of a config for an env: SPR's Rainbow on Atari and MinAtar, DrQ's SAC on DMControl."""
    batch, chunks = config.replay.batch_size, config.agent.microbatches
    if chunks < 1 or batch % chunks:
        raise UsageError(f'--config.replay.batch_size={batch} must be a multiple of '
                         f'--config.agent.microbatches={chunks} (a positive integer)')
    return assemble_agent(config, *agent_config(suite, config, env, loop), env, loop)


def run_record() -> dict:
    """The resolved config and flags, as written to config.json, and the code (git commit, and
    whether tracked files differed from it) the run last started or resumed with."""
    names = ('env', 'seed', 'num_seeds', 'num_processes', 'total_steps', 'learning_starts',
             'eval_episodes', 'eval_every', 'log_every', 'checkpoint_every')
    return {'flags': {name: getattr(FLAGS, name) for name in names},
            'config': json.loads(FLAGS.config.to_json()),
            'code': {'commit': repository.git_commit(), 'dirty': repository.git_dirty()}}


def _comparable(record: dict) -> dict:
    """The record without the flags a resume may change. A psrl setting the record lacks (a run
    started before the setting existed) counts as PSRLConfig's default, the behaviour it ran with."""
    config = dict(record['config'])
    if isinstance(config.get('psrl'), dict):
        defaults = {f.name: json.loads(json.dumps(f.default))
                    for f in dataclasses.fields(psrl.PSRLConfig)
                    if f.default is not dataclasses.MISSING}
        config['psrl'] = {**defaults, **config['psrl']}
    return {'flags': {k: v for k, v in record['flags'].items() if k not in _RESUMABLE},
            'config': config}


def check_workdir(workdir: str, record: dict, overwrite: bool) -> bool:
    """Whether a different run in the run directory must be replaced (--overwrite) before this one
    starts; reads only. Raises UsageError when it holds a different run or, not being a run
    directory, is not empty, unless overwrite."""
    path = os.path.join(workdir, 'config.json')
    if os.path.exists(path):
        try:
            with open(path) as f:
                existing = json.load(f)
            same = _comparable(existing) == _comparable(record)
        except (OSError, ValueError, KeyError, TypeError):
            same = False
        if not same and not overwrite:
            raise UsageError(f'{workdir} holds a run with a different config (see its config.json):'
                             f' use another --workdir, or --overwrite to replace it')
        return not same
    held = os.listdir(workdir) if os.path.isdir(workdir) else []
    if any(not run_files.is_lock(name) for name in held) and not overwrite:
        raise UsageError(f'{workdir} is not empty and holds no run config.json: use another '
                         f'--workdir, or --overwrite to replace it')
    return bool(held)


def clear_workdir(workdir: str) -> None:
    """Deletes everything in the run directory but the lock files (this run's processes hold them)."""
    for name in os.listdir(workdir):
        path = os.path.join(workdir, name)
        if run_files.is_lock(name):
            continue
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


def _fail(message: str, status: str) -> NoReturn:
    """Prints one `error:` line on stderr and exits with the status EXIT_STATUS names."""
    print(f'error: {message}', file=sys.stderr)
    sys.exit(EXIT_STATUS[status])


def _kept(workdir: str, action_repeat: int) -> str:
    step = checkpoints.latest_saved_step(workdir)
    if step is None:
        return 'no checkpoint was written yet'
    return f'the last checkpoint (step {step * action_repeat}) is kept'


def main(suite: str, make_env: Callable, make_eval_env: Callable) -> None:
    """The body of a launcher's main(): everything after flag parsing.

    suite: 'atari', 'dmc' or 'minatar'; make_env(name, num_envs, seed) -> env (raises UsageError for an
    unknown name or missing ROMs/GL). Every input is checked before the run directory is locked and
    before anything is written or compiled; a refused launch leaves the run directory as it was.
    """
    if not FLAGS['verbosity'].present:   # orbax logs every save at INFO
        logging.set_verbosity(logging.WARNING)
    lock = None
    try:
        probe = make_env(FLAGS.env, 1, 0)   # validates the name and the system before any writes
        loop = loop_config(probe.action_repeat)
        probe.close()
        env = make_env(FLAGS.env, loop.num_seeds, loop.seed)
        agent = build_agent(suite, FLAGS.config, env, loop)
        record = run_record()
        replace = FLAGS.process_id == 0 and check_workdir(FLAGS.workdir, record, FLAGS.overwrite)
        # One live process per run directory; in a distributed run each process locks what it
        # writes (process 0 the directory and config.json, process p its seeds' files).
        lock = run_files.WorkdirLock(FLAGS.workdir, run_files.lock_name(FLAGS.process_id))
        if replace:
            clear_workdir(FLAGS.workdir)
        if FLAGS.coordinator_address:   # the others wait until process 0 has cleared the workdir
            jax.distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes,
                                       FLAGS.process_id)
            multihost_utils.sync_global_devices('workdir ready')
        summaries = training.train(
            agent, loop, env, lambda n, seed: make_eval_env(FLAGS.env, n, seed), FLAGS.workdir,
            record if FLAGS.process_id == 0 else None)
    except UsageError as err:
        if lock is not None:
            lock.abandon()
        _fail(str(err), 'bad input')
    except training.TrainingDiverged as err:
        _fail(str(err), 'non-finite training')
    except jax.errors.JaxRuntimeError as err:
        if 'RESOURCE_EXHAUSTED' not in str(err):
            raise
        xla = str(err).strip().splitlines()[0][:200]
        _fail(f'out of memory ({xla}) at --config.replay.batch_size='
              f'{FLAGS.config.replay.batch_size}: lower it, or raise --config.agent.microbatches '
              f'(the same gradient in less memory), in a new --workdir or with --overwrite (it '
              f'changes the run); {_kept(FLAGS.workdir, loop.action_repeat)}',
              'out of memory')
    except OSError as err:
        if err.errno not in run_files.NO_SPACE:
            raise
        _fail(f'out of disk space writing {err.filename or FLAGS.workdir} ({err.strerror}): free '
              f'space and run the same command to resume; '
              f'{_kept(FLAGS.workdir, loop.action_repeat)}', 'out of disk space')
    except KeyboardInterrupt as err:
        print(f'{err or "interrupted"}; run the same command to resume', file=sys.stderr)
        sys.exit(128 + getattr(err, 'signum', signal.SIGINT))
    for summary in summaries:
        print(json.dumps(summary))
    where = os.path.abspath(FLAGS.workdir)
    per_seed = 'metrics.csv, eval.csv, summary.json, tensorboard/'
    if FLAGS.num_seeds > 1:
        per_seed = f'seed_<k>/ ({per_seed})'
    print(f'results in {where}: config.json, {per_seed}, checkpoints/')
