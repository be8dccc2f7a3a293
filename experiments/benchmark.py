"""Speed and cost benchmark: the jitted learner step per preset (Atari and DMControl), XLA's memory
and arithmetic of every preset's update, Atari env steps/s and training-loop steps/s.

    python -m experiments.benchmark            # full measurement
    python -m experiments.benchmark --quick    # fewer repeats, loop steps and replay warm-up

Everything is measured in one process on one machine, with agents built exactly as the launchers
build them (launch.build_agent on configs/<suite>.py:get_config(preset)):
  1. <preset>_step_ms: median wall time of one jitted `rainbow.update` (state donated, as in the
     loop) on a replay.Batch of B Pong-shaped uint8 observations [B, T, 84, 84, 4], T = the
     preset's replay subsequence length, after compilation, each call ended by block_until_ready;
  2. env_steps_per_s: make_atari(env, num_envs=1, training=True) stepped with random actions
     (the saved file adds a batched figure, env_steps_per_s_batched, with --batched_envs envs);
  3. loop_steps_per_s: agent steps/s of the training loop for --loop_preset (default psrl) after
     learning starts: env step, then training.make_step_functions' learn (replay add, the agent's
     updates per step, acting) and the host round trip, as training.train runs it, compilation
     excluded. The replay is first filled past --learning_starts with `collect` (--quick: 200);
  4. dmc_<preset>_step_ms: as 1. for the DMControl presets of --dmc_presets (drq_step_ms for drq),
     agents built as launch.build_agent('dmc', ...) builds them for cartpole-swingup-shaped
     batches [B, T, 84, 84, 9], B = --dmc_batch_size (the config's 512; --quick 64), micro-batched
     in the config's chunks (psrl: 128 examples a chunk, so batch 64 runs in one piece);
  5. cost: XLA's accounting of each update of --cost_presets at the config's own batch, compiled
     and not run (experiments.cost.update_cost: temp_gb, gflops, gbytes, batch, microbatches);
  6. minatar_steps_per_s: as 3. (agent steps/s of the loop after learning starts) for each preset
     of --minatar_presets on --minatar_env with --minatar_seeds seeds in one process, as
     `train_minatar --num_seeds` runs them (details.minatar adds the minutes a 100k-step run takes
     at that rate).
Progress goes to stdout; the last line is one JSON object with exactly the keys of SUMMARY_KEYS.
The same object plus commit, flags, jax version, timestamp, the timing samples and details
(compile times, the loop's env/device split, load average) is saved under
--out/<device-slug>_<UTC timestamp>.json. Presets missing from --presets and --dmc_presets report
null.
Launcher flags used here: --env, --seed, --learning_starts; the other training flags are refused.
"""
import datetime
import json
import os
import re
import sys
import time
from typing import Callable, Dict, List, Optional

import jax
import numpy as np
from absl import app
from absl import flags

from experiments import cost, launch, repository
from experiments import train_atari  # noqa: F401  defines the Atari launcher's flags (--env ...)
from experiments.configs import atari as atari_configs
from experiments.configs import minatar as minatar_configs
from psrl_jax import host_memory, training
from psrl_jax.envs.atari import make_atari
from psrl_jax.envs.minatar import make_minatar
from psrl_jax.errors import UsageError

FLAGS = flags.FLAGS

SUMMARY_KEYS = ('device', 'rainbow_step_ms', 'spr_step_ms', 'psrl_step_ms', 'psrl_over_spr',
                'env_steps_per_s', 'loop_steps_per_s', 'dmc_batch_size', 'drq_step_ms',
                'dmc_spr_step_ms', 'dmc_psrl_step_ms', 'dmc_psrl_over_drq', 'cost',
                'minatar_steps_per_s')
# (full, --quick) defaults of the flags left unset.
DEFAULTS = {'repeats': (20, 3), 'loop_steps': (100, 5), 'env_steps': (2000, 300)}
DMC_BATCH = (None, 64)   # None: the config's batch (512)
QUICK_LEARNING_STARTS = 200   # --quick fills less replay unless --learning_starts is given
# Launcher flags that mean nothing to the benchmark.
TRAINING_ONLY = ('num_seeds', 'total_steps', 'eval_episodes', 'eval_every', 'log_every',
                 'checkpoint_every', 'workdir', 'overwrite', 'config')

flags.DEFINE_bool('quick', False, 'Fewer repeats, env and loop steps, a smaller replay warm-up.')
flags.DEFINE_list('presets', ['rainbow', 'spr', 'psrl'], 'Atari presets whose update to time.')
flags.DEFINE_integer('batch_size', None, "Replay batch size B (default: the config's, 32).")
flags.DEFINE_integer('repeats', None, 'Timed learner steps per preset (default 20; --quick 3).')
flags.DEFINE_integer('loop_steps', None, 'Timed training-loop steps (default 100; --quick 5).')
flags.DEFINE_integer('env_steps', None, 'Timed env steps (default 2000; --quick 300).')
flags.DEFINE_integer('batched_envs', 8, 'Envs of the batched env figure (0: skip it).')
flags.DEFINE_string('loop_preset', 'psrl', 'Preset of the training-loop measurement.')
flags.DEFINE_string('out', os.path.join('results', 'benchmarks'), 'Folder for the JSON record.')
flags.DEFINE_list('dmc_presets', ['drq', 'spr', 'psrl'], 'DMControl presets whose update to time.')
flags.DEFINE_integer('dmc_batch_size', None,
                     "Batch of the timed DMControl updates (default: the config's 512; --quick 64).")
flags.DEFINE_list('minatar_presets', ['rainbow', 'spr', 'psrl'],
                  'MinAtar presets whose training loop to time (none: skip).')
flags.DEFINE_string('minatar_env', 'breakout', 'MinAtar game of the MinAtar loop measurement.')
flags.DEFINE_integer('minatar_seeds', 5, 'Seeds trained side by side in the MinAtar measurement.')
flags.DEFINE_list('cost_presets', ['all'],
                  "suite:preset updates whose XLA cost to report ('all': every preset of both "
                  "suites; 'none': skip).")


# ------------------------------------------------------------------------------------- helpers

def device_slug(name: str) -> str:
    """A file-name form of a device name: 'gpu:NVIDIA H100 80GB' -> 'gpu-nvidia-h100-80gb'."""
    return re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-') or 'device'


def _sig(x: float, digits: int = 4) -> float:
    """x rounded to `digits` significant digits (for the printed and saved rates)."""
    return float(f'{x:.{digits}g}')


def _load() -> Optional[float]:
    """The 1-minute load average, or None where the OS has none."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _log(message: str) -> None:
    print(message, flush=True)


def build_agent(preset: str, env, batch_size: Optional[int], learning_starts: int,
                seed: int) -> training.Agent:
    """The agent the Atari launcher builds for `preset` (batch size overridden when given)."""
    config = atari_configs.get_config(preset)
    if batch_size is not None:
        config.replay.batch_size = batch_size
    loop = training.LoopConfig(env=env.game, seed=seed, total_steps=100_000,
                               learning_starts=learning_starts, eval_episodes=1, eval_every=0,
                               log_every=1000, checkpoint_every=0)
    return launch.build_agent('atari', config, env, loop)


# 1. the learner step: experiments.cost.synthetic_batch and measure_learner_step (cost defines no
# flags, so that it imports anywhere).

# ------------------------------------------------------------------------- 2. the environment

def measure_env(game: str, num_envs: int, steps: int, seed: int) -> Dict:
    """Agent steps/s (summed over envs) of make_atari(game, num_envs, training=True) under
    uniformly random actions, after 10 untimed steps. Returns {'steps_per_s', 'seconds'}."""
    env = make_atari(game, num_envs, seed, training=True)
    rng = np.random.default_rng(seed)
    try:
        env.reset()
        for _ in range(10):
            env.step(rng.integers(0, env.num_actions, num_envs))
        actions = rng.integers(0, env.num_actions, (steps, num_envs))
        start = time.perf_counter()
        for action in actions:
            env.step(action)
        seconds = time.perf_counter() - start
    finally:
        env.close()
    return {'steps_per_s': steps * num_envs / seconds, 'seconds': round(seconds, 3)}


# --------------------------------------------------------------------------- 3. the whole loop

class LoopDriver:
    """The body of training.train's loop, one seed per env of `env`, without logging, evaluation
    or files."""

    def __init__(self, agent: training.Agent, env, seed: int):
        self.env = env
        self.channels = env.frame_channels
        self.collect, self.learn, first_action = training.make_step_functions(agent)
        frame_shape = env.observation_shape[:2] + (self.channels,)
        self.carry = training.init_carry(agent, training.seed_keys(seed, env.num_envs), frame_shape)
        self.observation, self.first = env.reset(), np.ones(env.num_envs, bool)
        self.carry, actions = first_action(self.carry, self.observation, 0)
        self.actions = np.asarray(actions)
        self.step = 0
        self.finite = True       # every step so far left parameters and metrics finite
        self.env_seconds = 0.0   # time spent in env.step since the last reset_clock()

    def advance(self, step_fn: Callable) -> None:
        """One agent step: env step, then step_fn (store [+ learn] + act) and the host fetch."""
        start = time.perf_counter()
        timestep = self.env.step(self.actions)
        self.env_seconds += time.perf_counter() - start
        entry = training.Entry(self.observation[..., -self.channels:], self.actions,
                               timestep.reward, timestep.terminal, timestep.truncated,
                               timestep.valid, self.first)
        self.carry, actions, finite = step_fn(self.carry, entry, timestep.observation,
                                              self.step + 1)
        actions, finite = jax.device_get((actions, finite))   # the loop's one host round trip
        self.actions = np.asarray(actions)
        self.finite &= bool(np.all(finite))
        self.observation, self.first = timestep.observation, timestep.first
        self.step += 1

    def reset_clock(self) -> None:
        self.env_seconds = 0.0


def measure_loop(agent: training.Agent, env, learning_starts: int, steps: int,
                 seed: int) -> Dict:
    """Training-loop agent steps/s after learning starts, compilation excluded.

    Fills the replay with `collect` up to max(learning_starts, lookahead + stack + 1) agent steps
    (as training.train), runs one untimed `learn` step (compilation), then times `steps` learn
    steps up to block_until_ready of the carry. Returns steps_per_s plus the split of the timed
    wall time into env.step and the rest (learn call, host round trip), compile and fill times,
    cpu_over_wall (this process's CPU time / wall time over the timed steps) and finite (every
    step's parameters and metrics stayed finite).
    """
    start = time.perf_counter()
    driver = LoopDriver(agent, env, seed)
    init_s = time.perf_counter() - start
    fill = max(learning_starts, agent.replay.lookahead + agent.replay.stack + 1)
    start = time.perf_counter()
    driver.advance(driver.collect)
    jax.block_until_ready(driver.carry)
    collect_compile_s = time.perf_counter() - start
    start = time.perf_counter()
    while driver.step < fill:
        driver.advance(driver.collect)
    jax.block_until_ready(driver.carry)
    fill_s = time.perf_counter() - start
    fill_rate = (fill - 1) / fill_s if fill > 1 else float('nan')
    start = time.perf_counter()
    driver.advance(driver.learn)
    jax.block_until_ready(driver.carry)
    learn_compile_s = time.perf_counter() - start

    driver.reset_clock()
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(steps):
        driver.advance(driver.learn)
    jax.block_until_ready(driver.carry)
    seconds = time.perf_counter() - start
    cpu_over_wall = (time.process_time() - cpu_start) / seconds
    return {'steps_per_s': steps / seconds, 'steps': steps, 'seconds': round(seconds, 6),
            'env_seconds': round(driver.env_seconds, 6),
            'learn_and_round_trip_seconds': round(seconds - driver.env_seconds, 6),
            'init_s': round(init_s, 3), 'collect_compile_s': round(collect_compile_s, 3),
            'learn_compile_s': round(learn_compile_s, 3), 'fill_steps': fill,
            'fill_steps_per_s': _sig(fill_rate), 'updates_per_step': agent.updates_per_step,
            'replay_capacity': agent.replay.capacity, 'cpu_over_wall': round(cpu_over_wall, 3),
            'finite': driver.finite}


def measure_minatar_loop(preset: str, settings: Dict) -> Dict:
    """measure_loop for a MinAtar preset, settings['minatar_seeds'] seeds in one process (the
    agent train_minatar builds), plus minutes_per_100k (100k agent steps at that rate)."""
    seeds, seed = settings['minatar_seeds'], settings['seed']
    env = make_minatar(settings['minatar_env'], seeds, seed)
    loop = training.LoopConfig(env=settings['minatar_env'], seed=seed, total_steps=100_000,
                               learning_starts=settings['learning_starts'], eval_episodes=1,
                               eval_every=0, log_every=1000, checkpoint_every=0, num_seeds=seeds,
                               run_seeds=seeds)
    agent = launch.build_agent('minatar', minatar_configs.get_config(preset), env, loop)
    result = measure_loop(agent, env, settings['learning_starts'], settings['loop_steps'], seed)
    env.close()
    return {**result, 'seeds': seeds, 'env': settings['minatar_env'],
            'minutes_per_100k': round(100_000 / result['steps_per_s'] / 60, 1)}


# ------------------------------------------------------------------------------------ the run

def resolve_flags() -> Dict:
    """The benchmark's settings from the flags; raises UsageError on the first bad value."""
    given = [f'--{name}' for name in TRAINING_ONLY if FLAGS[name].present]
    given += [arg.split('=')[0] for arg in sys.argv[1:] if arg.startswith('--config.')]
    if given:
        raise UsageError(f'{given[0]} is a training flag; the benchmark takes --quick --presets '
                         f'--batch_size --repeats --loop_steps --env_steps --batched_envs '
                         f'--loop_preset --dmc_presets --dmc_batch_size --cost_presets --minatar_presets '
                         f'--minatar_env --minatar_seeds --out '
                         f'--env --seed --learning_starts')
    presets = [p.strip() for p in FLAGS.presets if p.strip()]
    if not presets:
        raise UsageError('--presets is empty: name at least one of ' +
                         ', '.join(atari_configs.PRESETS))
    for preset in presets + [FLAGS.loop_preset]:
        if preset not in atari_configs.PRESETS:
            raise UsageError(f'unknown preset {preset!r}: choose from '
                             f'{", ".join(atari_configs.PRESETS)}')
    learning_starts = (QUICK_LEARNING_STARTS if FLAGS.quick and not FLAGS['learning_starts'].present
                       else FLAGS.learning_starts)
    dmc_presets = [p.strip() for p in FLAGS.dmc_presets if p.strip()]
    for preset in dmc_presets:
        if preset not in cost.CONFIGS['dmc'].PRESETS:
            raise UsageError(f'unknown DMControl preset {preset!r}: choose from '
                             f'{", ".join(cost.CONFIGS["dmc"].PRESETS)}')
    minatar_presets = [p.strip() for p in FLAGS.minatar_presets if p.strip()]
    minatar_presets = [] if minatar_presets == ['none'] else minatar_presets
    for preset in minatar_presets:
        if preset not in minatar_configs.PRESETS:
            raise UsageError(f'unknown MinAtar preset {preset!r}: choose from '
                             f'{", ".join(minatar_configs.PRESETS)} (or none)')
    if FLAGS.minatar_seeds < 1:
        raise UsageError(f'--minatar_seeds must be positive, got {FLAGS.minatar_seeds}')
    if minatar_presets:   # an unknown game raises UsageError; without presets the game is unused
        make_minatar(FLAGS.minatar_env, 1, 0).close()
    cost_presets = [p.strip() for p in FLAGS.cost_presets if p.strip()]
    if cost_presets == ['all']:
        cost_presets = [f'{suite}:{p}' for suite, c in cost.CONFIGS.items() for p in c.PRESETS]
    elif cost_presets == ['none']:
        cost_presets = []
    for entry in cost_presets:
        suite, _, preset = entry.partition(':')
        if suite not in cost.CONFIGS or preset not in cost.CONFIGS[suite].PRESETS:
            raise UsageError(f'--cost_presets entry {entry!r} is not suite:preset with suite in '
                             f'{", ".join(cost.CONFIGS)} and one of its presets (or all, none)')
    dmc_batch = FLAGS.dmc_batch_size
    if dmc_batch is None:
        dmc_batch = DMC_BATCH[1] if FLAGS.quick else DMC_BATCH[0]
    if dmc_batch is not None:
        chunks = max(cost.CONFIGS['dmc'].get_config(p).agent.microbatches for p in dmc_presets)
        if dmc_batch < 1 or dmc_batch % chunks:
            raise UsageError(f'--dmc_batch_size must be a positive multiple of {chunks} (the '
                             f'micro-batches of the DMControl presets), got {dmc_batch}')
    settings = {'quick': FLAGS.quick, 'presets': list(dict.fromkeys(presets)),
                'dmc_presets': list(dict.fromkeys(dmc_presets)),
                'dmc_batch_size': (cost.CONFIGS['dmc'].get_config().replay.batch_size
                                   if dmc_batch is None else dmc_batch),
                'cost_presets': list(dict.fromkeys(cost_presets)),
                'minatar_presets': list(dict.fromkeys(minatar_presets)),
                'minatar_env': FLAGS.minatar_env, 'minatar_seeds': FLAGS.minatar_seeds,
                'loop_preset': FLAGS.loop_preset, 'env': FLAGS.env, 'seed': FLAGS.seed,
                'learning_starts': learning_starts, 'batched_envs': FLAGS.batched_envs,
                'out': FLAGS.out}
    for name, (full, quick) in DEFAULTS.items():
        value = getattr(FLAGS, name)
        settings[name] = (quick if FLAGS.quick else full) if value is None else value
        if settings[name] < 1:
            raise UsageError(f'--{name} must be positive, got {settings[name]}')
    batch_size = FLAGS.batch_size
    if batch_size is not None and batch_size < 1:
        raise UsageError(f'--batch_size must be positive, got {batch_size}')
    settings['batch_size'] = (atari_configs.get_config().replay.batch_size if batch_size is None
                              else batch_size)
    for name in ('seed', 'learning_starts', 'batched_envs'):
        if settings[name] < 0:
            raise UsageError(f'--{name} must be >= 0, got {settings[name]}')
    return settings


def run(settings: Dict) -> Dict:
    """Runs the three measurements; returns the record saved to disk (summary keys first)."""
    started, load_start = time.time(), _load()
    seed, game, batch_size = settings['seed'], settings['env'], settings['batch_size']
    device = training.device_name()
    _log(f'benchmark on {device} (jax {jax.__version__}), batch {batch_size}, '
         f'{"quick" if settings["quick"] else "full"}')
    env = make_atari(game, 1, seed, training=True)

    steps: Dict[str, Dict] = {}
    for preset in settings['presets']:
        agent = build_agent(preset, env, batch_size, settings['learning_starts'], seed)
        batch = cost.synthetic_batch(agent, env.observation_shape, env.num_actions, seed)
        result = cost.measure_learner_step(agent, batch, settings['repeats'], seed)
        result['sequence_length'] = int(batch.observation.shape[1])
        steps[preset] = result
        _log(f'learner step {preset}: {result["median_ms"]:.1f} ms (median of '
             f'{settings["repeats"]}, T={result["sequence_length"]}, compile '
             f'{result["compile_s"]:.1f} s)')

    dmc_steps: Dict[str, Dict] = {}
    spec = cost.SPECS['dmc']
    for preset in settings['dmc_presets']:
        agent = cost.build('dmc', preset, settings['dmc_batch_size'])
        batch = cost.synthetic_batch(agent, spec.observation_shape, None, seed)
        result = cost.measure_learner_step(agent, batch, settings['repeats'], seed)
        dmc_steps[preset] = result
        _log(f'DMControl learner step {preset}: {result["median_ms"]:.1f} ms (median of '
             f'{settings["repeats"]}, batch {settings["dmc_batch_size"]}, compile '
             f'{result["compile_s"]:.1f} s)')

    costs: Dict[str, Dict[str, Dict]] = {}
    for entry in settings['cost_presets']:
        suite, _, preset = entry.partition(':')
        costs.setdefault(suite, {})[preset] = cost.update_cost(suite, preset)
        _log(f'XLA cost {suite} {preset}: {costs[suite][preset]}')

    env_single = measure_env(game, 1, settings['env_steps'], seed)
    _log(f'env: {env_single["steps_per_s"]:.0f} steps/s (1 env)')
    env_batched = None
    if settings['batched_envs'] > 0:
        env_batched = measure_env(game, settings['batched_envs'],
                                  max(settings['env_steps'] // settings['batched_envs'], 10), seed)
        _log(f'env: {env_batched["steps_per_s"]:.0f} steps/s ({settings["batched_envs"]} envs)')

    agent = build_agent(settings['loop_preset'], env, batch_size, settings['learning_starts'],
                        seed)
    loop = measure_loop(agent, env, settings['learning_starts'], settings['loop_steps'], seed)
    env.close()
    _log(f'loop ({settings["loop_preset"]}): {loop["steps_per_s"]:.3g} steps/s over '
         f'{loop["steps"]} steps ({loop["env_seconds"]:.2f} s of {loop["seconds"]:.2f} s in '
         f'env.step; learn compile {loop["learn_compile_s"]:.1f} s)')

    minatar: Dict[str, Dict] = {}
    for preset in settings['minatar_presets']:
        minatar[preset] = measure_minatar_loop(preset, settings)
        _log(f'MinAtar loop ({preset}, {settings["minatar_env"]}, {settings["minatar_seeds"]} '
             f'seeds): {minatar[preset]["steps_per_s"]:.3g} agent steps/s '
             f'({minatar[preset]["minutes_per_100k"]:.0f} min per 100k steps)')

    if settings['loop_preset'] in steps:   # a loop step over its updates timed alone
        isolated = loop['updates_per_step'] * steps[settings['loop_preset']]['median_ms'] / 1000
        loop['step_over_isolated_updates'] = round(1 / loop['steps_per_s'] / isolated, 3)
    step_ms = lambda p: round(steps[p]['median_ms'], 3) if p in steps else None
    ratio = (round(steps['psrl']['median_ms'] / steps['spr']['median_ms'], 4)
             if 'psrl' in steps and 'spr' in steps else None)
    dmc_ms = lambda p: round(dmc_steps[p]['median_ms'], 3) if p in dmc_steps else None
    dmc_ratio = (round(dmc_steps['psrl']['median_ms'] / dmc_steps['drq']['median_ms'], 4)
                 if 'psrl' in dmc_steps and 'drq' in dmc_steps else None)
    summary = {'device': device, 'rainbow_step_ms': step_ms('rainbow'),
               'spr_step_ms': step_ms('spr'), 'psrl_step_ms': step_ms('psrl'),
               'psrl_over_spr': ratio, 'env_steps_per_s': _sig(env_single['steps_per_s']),
               'loop_steps_per_s': _sig(loop['steps_per_s']),
               'dmc_batch_size': settings['dmc_batch_size'], 'drq_step_ms': dmc_ms('drq'),
               'dmc_spr_step_ms': dmc_ms('spr'), 'dmc_psrl_step_ms': dmc_ms('psrl'),
               'dmc_psrl_over_drq': dmc_ratio, 'cost': costs,
               'minatar_steps_per_s': {p: _sig(r['steps_per_s']) for p, r in minatar.items()}}
    now = datetime.datetime.now(datetime.timezone.utc)
    details = {
        'step_ms': {p: round(r['median_ms'], 3) for p, r in steps.items()},
        'compile_s': {p: r['compile_s'] for p, r in steps.items()},
        'sequence_length': {p: r['sequence_length'] for p, r in steps.items()},
        # CPU time / wall time of the timed calls: below the cores XLA can use, other
        # processes (or waiting on an accelerator) took the rest.
        'cpu_over_wall': {p: r['cpu_over_wall'] for p, r in steps.items()},
        'dmc_compile_s': {p: r['compile_s'] for p, r in dmc_steps.items()},
        # micro-batches of each timed DMControl update: the config's chunk size kept at the timed
        # batch (experiments.cost.chunks; 64 runs in one piece)
        'dmc_microbatches': {p: cost.chunks('dmc', p, settings['dmc_batch_size'])
                             for p in dmc_steps},
        'dmc_cpu_over_wall': {p: r['cpu_over_wall'] for p, r in dmc_steps.items()},
        'env_steps_per_s_batched': (None if env_batched is None
                                    else _sig(env_batched['steps_per_s'])),
        'loop': loop, 'minatar': minatar, 'cpu_count': os.cpu_count(),
        # Other processes on the machine slow every figure down: the 1-minute load average.
        'load_average_1min': {'start': load_start, 'end': _load()},
        'wall_seconds': round(time.time() - started, 1),
    }
    return {**summary, 'commit': repository.git_commit(), 'dirty': repository.git_dirty(),
            'flags': settings, 'jax_version': jax.__version__,
            'timestamp': now.strftime('%Y-%m-%dT%H:%M:%SZ'),
            'step_ms_samples': {p: r['samples_ms'] for p, r in steps.items()},
            'dmc_step_ms_samples': {p: r['samples_ms'] for p, r in dmc_steps.items()},
            'details': details}


def save(record: Dict, out: str) -> str:
    """Writes the record to out/<device-slug>_<UTC timestamp>.json; returns the path."""
    os.makedirs(out, exist_ok=True)
    stamp = record['timestamp'].replace('-', '').replace(':', '')
    path = os.path.join(out, f'{device_slug(record["device"])}_{stamp}.json')
    with open(path + '.tmp', 'w') as f:
        json.dump(record, f, indent=2)
    os.replace(path + '.tmp', path)
    return path


def main(argv: List[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
    try:
        settings = resolve_flags()
        record = run(settings)
        path = save(record, settings['out'])
    except UsageError as err:
        print(f'error: {err}', file=sys.stderr)
        sys.exit(2)
    _log(f'saved {path}')
    print(json.dumps({k: record[k] for k in SUMMARY_KEYS}), flush=True)


if __name__ == '__main__':
    host_memory.restart_with_huge_pages()     # as the launchers run
    app.run(main)
