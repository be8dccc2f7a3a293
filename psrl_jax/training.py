"""The act/learn loop shared by the Atari and DMControl agents: replay, learning, logging, evaluation.

Read `train` top to bottom. N independent agents (seeds) run side by side: every array in the device
state has a leading seed axis, one environment per seed, and one jitted call per environment step
adds the transition to each seed's replay, runs the learner updates and picks the next actions.
The only host round trip per step is that action.
"""
import contextlib
import dataclasses
import json
import os
import signal
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import flax
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from psrl_jax import replay, run_files
from psrl_jax.checkpoints import Checkpoints
from psrl_jax.evaluation import scores as evaluation
from psrl_jax.errors import UsageError


class Agent(NamedTuple):
    """What the loop needs from an agent, as pure single-seed functions (the loop vmaps them).

    name: the preset, reported as summary.json's "algorithm".
    init(key) -> state
    act(state, observations uint8 [B, ...], key, step) -> actions [B]       training policy
    evaluate_act(state, observations, key) -> actions [B]                    evaluation policy
    update(state, batch, weights [B], key) -> (state, priorities [B], metrics dict of scalars)
    diagnose(state, batch, key) -> dict of scalars, or None: checks logged beside the losses (C's
        ground truth, psrl_jax.diagnostics), on a replay batch at every log step once learning runs
    """
    name: str
    init: Callable
    act: Callable
    evaluate_act: Callable
    update: Callable
    replay: replay.ReplayConfig
    action_shape: Tuple[int, ...]
    action_dtype: Any
    updates_per_step: int
    priority_weight: Callable   # agent step -> importance-sampling exponent beta (on the host)
    update_period: int = 1      # agent steps between learn steps (others only store and act)
    seed_loop: bool = False     # on a CPU, run the seeds' updates one by one (see over_seeds)
    diagnose: Optional[Callable] = None


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    """Counts are environment steps (agent steps x action_repeat), as the benchmarks count them."""
    env: str
    seed: int
    total_steps: int
    learning_starts: int
    eval_episodes: int
    eval_every: int            # 0: only at the end
    log_every: int
    checkpoint_every: int      # 0: only at the end
    num_seeds: int = 1         # seeds trained by this process
    action_repeat: int = 1
    max_to_keep: int = 3
    seed_index: int = 0        # index of this process's first seed among all seeds of the run
    run_seeds: int = 1         # seeds of the whole run (all processes)

    def agent_steps(self, env_steps: int) -> int:
        return -(-env_steps // self.action_repeat)

    def seed_dirs(self, workdir: str) -> List[str]:
        """The run directory of a single seed, else <workdir>/seed_<k> for each of this process's."""
        if self.run_seeds == 1:
            return [workdir]
        return [os.path.join(workdir, f'seed_{self.seed_index + k}') for k in range(self.num_seeds)]


@flax.struct.dataclass
class Carry:
    """Device state, every leaf with a leading seed axis [N, ...]."""
    agent: Any
    replay: replay.ReplayState
    key: jnp.ndarray
    metric_sums: Dict[str, jnp.ndarray]
    metric_count: jnp.ndarray


class Entry(NamedTuple):
    """One replay entry per seed: the newest frame of the observation acted on, and what followed."""
    frame: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    terminal: np.ndarray
    truncated: np.ndarray
    valid: np.ndarray
    first: np.ndarray


def seed_keys(seed: int, num_seeds: int) -> jnp.ndarray:
    """Per-seed root keys [N, 2]: seed k of a group equals a separate run with seed `seed + k`."""
    return jnp.stack([jax.random.PRNGKey(seed + k) for k in range(num_seeds)])


def init_carry(agent: Agent, keys: jnp.ndarray, frame_shape: Sequence[int]) -> Carry:
    """Fresh agents and empty replays for keys [N, 2]."""
    def single(key):
        key_agent, key_loop = jax.random.split(key)
        state = agent.init(key_agent)
        buffer = replay.init(agent.replay, frame_shape, agent.action_shape, agent.action_dtype)
        return state, buffer, key_loop

    states, buffers, loop_keys = jax.jit(jax.vmap(single))(keys)
    metrics = _metric_shapes(agent, states, buffers)
    sums = {name: jnp.zeros((keys.shape[0],), jnp.float32) for name in metrics}
    return Carry(states, buffers, loop_keys, sums, jnp.zeros((keys.shape[0],), jnp.int32))


def host_template(agent: Agent, num_seeds: int, observation_shape: Sequence[int]) -> Dict:
    """The loop's host-side state that a checkpoint holds beside the carry."""
    return {'step': np.zeros((), np.int64), 'wall_seconds': np.zeros((), np.float64),
            'observation': np.zeros((num_seeds,) + tuple(observation_shape), np.uint8),
            'first': np.ones((num_seeds,), bool),
            'action': np.zeros((num_seeds,) + agent.action_shape, agent.action_dtype)}


def load_checkpoint(workdir: str, agent: Agent, num_seeds: int, observation_shape: Sequence[int],
                    frame_channels: int, step: Optional[int] = None):
    """(carry, host) of a run's checkpoint (the latest unless `step`), e.g. to analyse a trained agent.

    The agent must be built from the run's config.json as the launcher does. Raises UsageError when
    the run has no checkpoint, none at `step`, or that one is unreadable.
    """
    frame_shape = tuple(observation_shape[:2]) + (frame_channels,)
    carry = jax.eval_shape(lambda: init_carry(agent, seed_keys(0, num_seeds), frame_shape))
    checkpoints = Checkpoints(workdir, max_to_keep=None, read_only=True)
    try:
        return checkpoints.restore_step(step, carry, host_template(agent, num_seeds,
                                                                   observation_shape))
    finally:
        checkpoints.close()


def _seed_update(agent: Agent) -> Callable:
    """agent.update of one seed, jitted: jit keeps its trace, so the learn step (vmapped or looped
    over seeds) reuses the one that init_carry made for the metrics' shapes, instead of tracing the
    update, the dearest part of the program, a second time."""
    return jax.jit(agent.update)


def _metric_shapes(agent: Agent, states, buffers) -> Dict[str, Any]:
    single = jax.tree.map(lambda x: x[0], (states, buffers))

    def one_update(state, buffer):
        batch, indices, weights = replay.sample(buffer, agent.replay, jax.random.PRNGKey(0),
                                                np.float32(1.0))
        return _seed_update(agent)(state, batch, weights, jax.random.PRNGKey(0))[2]

    return jax.eval_shape(one_update, *single)


def over_seeds(fn: Callable, loop: bool) -> Callable:
    """fn mapped over the leading seed axis of its arguments and outputs: vmapped, or (loop=True,
    on a CPU) a loop over the seeds traced into one program.

    XLA:CPU runs the convolutions of a vmapped update as grouped convolutions: for MinAtar psrl, 5
    seeds, the loop was 2.3x faster per agent step with C's refinement convolutions on, and is as
    fast without them (193 vs 191 ms); for rainbow (one convolution) it is 1.7x slower, slicing and
    restacking the seeds' parameters and optimizer state (WORKSPACE_NOTES.md, "MinAtar").
    """
    if not loop or jax.default_backend() != 'cpu':
        return jax.vmap(fn)

    def looped(*args):
        seeds = jax.tree.leaves(args)[0].shape[0]
        outputs = [fn(*jax.tree.map(lambda x: x[i], args)) for i in range(seeds)]
        return jax.tree.map(lambda *xs: jnp.stack(xs), *outputs)

    return looped


def make_step_functions(agent: Agent):
    """Jitted per-environment-step functions over the seed axis (the carry is donated).

    collect(carry, entry, next_observation, step) -> (carry, actions, finite): store, then act.
    learn(...) -> (carry, actions, finite): store, run agent.updates_per_step updates, then act.
    finite: bool [N], every parameter, optimizer statistic and logged metric of the seed is finite.
    first_action(carry, observation, step) -> (carry, actions).
    """
    config = agent.replay

    def act(state, key, observation, step):
        key, key_act = jax.random.split(key)
        return key, agent.act(state, observation[None], key_act, step)[0]

    update = over_seeds(_seed_update(agent), agent.seed_loop)

    def store(buffers, entry):
        return jax.vmap(lambda buffer, entry: replay.add(buffer, config, *entry))(buffers, entry)

    def collect(carry, entry, next_observation, step):
        buffers = store(carry.replay, entry)
        keys, actions = jax.vmap(lambda s, k, o: act(s, k, o, step))(carry.agent, carry.key,
                                                                      next_observation)
        return carry.replace(replay=buffers, key=keys), actions, jnp.ones(actions.shape[:1], bool)

    def learn(carry, entry, next_observation, step, beta):
        # The replays stay vmapped (updated in place); the updates may loop over the seeds.
        buffers = store(carry.replay, entry)
        states, keys, sums = carry.agent, carry.key, carry.metric_sums
        # Unrolled: XLA:CPU runs the update ~4x slower inside a while loop (fori_loop/scan).
        for _ in range(agent.updates_per_step):
            keys, key_sample, key_update = jnp.moveaxis(jax.vmap(
                lambda k: jax.random.split(k, 3))(keys), 1, 0)
            batch, indices, weights = jax.vmap(
                lambda buffer, k: replay.sample(buffer, config, k, beta))(buffers, key_sample)
            states, priorities, metrics = update(states, batch, weights, key_update)
            if config.priority_exponent > 0:
                buffers = jax.vmap(lambda buffer, i, p: replay.update_priorities(
                    buffer, config, i, p))(buffers, indices, priorities)
            sums = {k: sums[k] + metrics[k] for k in sums}
        keys, actions = jax.vmap(lambda s, k, o: act(s, k, o, step))(states, keys,
                                                                      next_observation)
        carry = carry.replace(agent=states, replay=buffers, key=keys, metric_sums=sums,
                              metric_count=carry.metric_count + agent.updates_per_step)
        return carry, actions, _all_finite((states, sums))

    def first_action(carry, observation, step):
        keys, actions = jax.vmap(lambda s, k, o: act(s, k, o, step))(carry.agent, carry.key,
                                                                      observation)
        return carry.replace(key=keys), actions

    donate = dict(donate_argnums=0)
    learn_compiled = jax.jit(learn, **donate)

    def learn_step(carry, entry, next_observation, step):
        # beta is an argument, not a constant of the program: runs of any length (a run resumed
        # with a larger --total_steps, the tests' short runs) share one compiled learn step.
        return learn_compiled(carry, entry, next_observation, step,
                              np.float32(agent.priority_weight(step)))

    return jax.jit(collect, **donate), learn_step, jax.jit(first_action, **donate)


def make_diagnose(agent: Agent) -> Optional[Callable]:
    """Jitted diagnose(carry, key) -> {name: [N]}: agent.diagnose of each seed on a batch of its
    replay (uniform over its entries), or None when the agent has no diagnose."""
    if agent.diagnose is None:
        return None

    def single(state, buffer, key):
        key_sample, key_check = jax.random.split(key)
        batch, _, _ = replay.sample(buffer, agent.replay, key_sample, 1.0)
        return agent.diagnose(state, batch, key_check)

    return jax.jit(lambda carry, key: jax.vmap(single)(
        carry.agent, carry.replay, jax.random.split(key, carry.key.shape[0])))


def _all_finite(tree) -> jnp.ndarray:
    """Per seed: whether every floating leaf of a seed-batched pytree is finite, bool [N]."""
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]
    return jnp.all(jnp.stack([jnp.isfinite(x).reshape(x.shape[0], -1).all(axis=1)
                              for x in leaves]), axis=0)


def evaluate(agent: Agent, states, env, episodes: int, key: jnp.ndarray) -> np.ndarray:
    """Runs the evaluation policy until each of the N x episodes envs has finished one game.

    env holds N * episodes envs, seed k owning envs [k * episodes, (k + 1) * episodes).
    Returns the raw game returns, float64 [N, episodes].
    """
    num_seeds = env.num_envs // episodes
    policy = jax.jit(jax.vmap(agent.evaluate_act))
    returns = np.full(env.num_envs, np.nan)
    observation = env.reset()
    while np.isnan(returns).any():
        key, key_act = jax.random.split(key)
        grouped = observation.reshape((num_seeds, episodes) + observation.shape[1:])
        actions = policy(states, grouped, jax.random.split(key_act, num_seeds))
        step = env.step(np.asarray(actions).reshape((env.num_envs,) + agent.action_shape))
        done = step.game_over & np.isnan(returns)
        returns[done] = step.game_return[done]
        observation = step.observation
    return returns.reshape(num_seeds, episodes)


def device_name() -> str:
    """'<platform>:<device kind>' of the first device: 'cpu:cpu', 'gpu:NVIDIA H100 80GB HBM3'."""
    device = jax.devices()[0]
    return f'{device.platform}:{getattr(device, "device_kind", "")}'.rstrip(':')


def format_duration(seconds: float) -> str:
    """'42m07s' below an hour, '3h05m' from an hour on."""
    seconds = int(seconds)
    return f'{seconds // 3600}h{seconds // 60 % 60:02d}m' if seconds >= 3600 else \
        f'{seconds // 60}m{seconds % 60:02d}s'


class _StopRequest:
    """Turns SIGTERM/SIGINT into a flag the loop checks, so it can checkpoint and exit cleanly."""

    def __init__(self):
        self.signal = None
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, _frame):
        self.signal = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class TrainingDiverged(RuntimeError):
    """A loss, metric or parameter became non-finite; the last good checkpoint is kept."""


class Stopped(KeyboardInterrupt):
    """SIGTERM/SIGINT arrived; a checkpoint of the current step was written first."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


def seed_devices(num_seeds: int) -> list:
    """This process's devices that hold the seed axis: the first d, d the most that divide
    num_seeds."""
    devices = jax.local_devices()
    return devices[:max(d for d in range(1, len(devices) + 1) if num_seeds % d == 0)]


def seed_sharding(num_seeds: int) -> Optional[NamedSharding]:
    """Shards the seed axis over seed_devices(num_seeds), or None for a single device."""
    devices = seed_devices(num_seeds)
    if len(devices) == 1:
        return None
    return NamedSharding(Mesh(np.array(devices), ('seed',)), PartitionSpec('seed'))


def train(agent: Agent, loop: LoopConfig, env, make_eval_env: Callable[[int, int], Any],
          workdir: str, record: Optional[Dict] = None) -> List[Dict]:
    """Trains loop.num_seeds agents and writes the run files; resumes from workdir's checkpoints.

    env: a psrl_jax.envs environment with one env per seed (closed on return); make_eval_env(
    num_envs, seed) builds the evaluation environments. record: the run's config and flags, written
    as config.json once the checkpoints are known to continue this run (process 0 passes it).
    Returns the summary dict of every seed (also written as summary.json, before the last
    checkpoint). Raises UsageError, having written nothing, when the checkpoints cannot continue
    the run; Stopped after checkpointing when stopped by SIGTERM/SIGINT; TrainingDiverged (without
    checkpointing) when anything becomes non-finite. Out of memory (jax.errors.JaxRuntimeError,
    RESOURCE_EXHAUSTED) or disk space (OSError, run_files.NO_SPACE) propagates as raised, leaving
    the complete checkpoints as they are.
    """
    n = loop.num_seeds
    device_count = len(seed_devices(n))
    print(f'device: {device_name()}, {n} seed{"s" if n > 1 else ""} on {device_count} of '
          f'{jax.local_device_count()} local device{"s" if jax.local_device_count() > 1 else ""} '
          f'(jax {jax.__version__})', flush=True)
    seed_dirs = loop.seed_dirs(workdir)
    frame_channels = env.frame_channels
    frame_shape = env.observation_shape[:2] + (frame_channels,)
    sharding = seed_sharding(n)
    place = lambda tree: jax.device_put(tree, sharding)   # sharding None: the default device
    total = loop.agent_steps(loop.total_steps)
    learning_starts = max(loop.agent_steps(loop.learning_starts),
                          agent.replay.lookahead + agent.replay.stack + 1)

    with contextlib.ExitStack() as cleanup:
        cleanup.callback(env.close)
        checkpoints = Checkpoints(workdir, loop.max_to_keep)
        cleanup.callback(checkpoints.close)

        # Where the run stands: agent steps done, and the host-side state a checkpoint restores.
        template = jax.eval_shape(lambda: init_carry(agent, seed_keys(loop.seed, n), frame_shape))
        host = host_template(agent, n, env.observation_shape)
        restored = checkpoints.restore_latest(template, host)
        step = 0 if restored is None else int(restored[1]['step'])
        if step > total:
            raise UsageError(f'{workdir} holds a run at step {step * loop.action_repeat}, beyond '
                             f'--total_steps={loop.total_steps}: use a larger --total_steps')
        if step == total:
            print(f'{workdir} is already finished at step {loop.total_steps}', flush=True)
            return [json.load(open(os.path.join(d, 'summary.json'))) for d in seed_dirs]
        if record is not None:   # the run goes ahead: its files may change from here on
            run_files.write_json(os.path.join(workdir, 'config.json'), record)
        collect, learn, first_action = make_step_functions(agent)
        diagnose = make_diagnose(agent)
        diagnose_names = (() if diagnose is None else
                          tuple(sorted(jax.eval_shape(diagnose, template, jax.random.PRNGKey(0)))))
        if restored is None:
            carry = place(init_carry(agent, seed_keys(loop.seed, n), frame_shape))
        else:
            carry, host = place(restored[0]), restored[1]
            # The emulator state is not saved: the episode in flight ends here as a truncation.
            truncate = jax.jit(jax.vmap(lambda b, f, a: replay.truncate(b, agent.replay, f, a)))
            final_frames = place(host['observation'][..., -frame_channels:])
            carry = carry.replace(replay=truncate(carry.replay, final_frames,
                                                  place(host['action'])))
            print(f'resuming {workdir} from step {step * loop.action_repeat}', flush=True)
        logs = run_files.RunLogs(seed_dirs, step * loop.action_repeat)
        cleanup.callback(logs.close)
        wall_offset = float(host['wall_seconds'])
        start_time = time.time()
        eval_key = jax.random.PRNGKey(loop.seed + 7919)

        observation, first = env.reset(), np.ones(n, bool)
        carry, actions = first_action(carry, place(observation), step)
        actions = np.asarray(actions)
        game_returns: List[List[float]] = [[] for _ in range(n)]
        interval_start, interval_time = step, time.time()
        last_eval: Optional[np.ndarray] = None

        def env_steps(agent_steps: int) -> int:
            return min(agent_steps * loop.action_repeat, loop.total_steps)

        def due(every: int) -> bool:
            return step == total or (every > 0 and env_steps(step) // every
                                     > env_steps(step - 1) // every)

        stop = cleanup.enter_context(_StopRequest())
        while step < total:
            timestep = env.step(actions)
            entry = Entry(observation[..., -frame_channels:], actions, timestep.reward,
                          timestep.terminal, timestep.truncated, timestep.valid, first)
            learns = step >= learning_starts and (step - learning_starts) % agent.update_period == 0
            step_fn = learn if learns else collect
            carry, actions, finite = step_fn(carry, place(entry), place(timestep.observation),
                                             step + 1)
            actions, finite = jax.device_get((actions, finite))   # the one host round trip
            observation, first = timestep.observation, timestep.first
            for k in np.flatnonzero(timestep.game_over):
                game_returns[k].append(float(timestep.game_return[k]))
            step += 1
            if not finite.all():
                raise TrainingDiverged(_divergence_message(carry, finite, env_steps(step),
                                                           checkpoints.latest_step(), loop))

            if due(loop.log_every):
                fps = (step - interval_start) * loop.action_repeat / (time.time() - interval_time)
                rows = _metric_rows(carry, game_returns, fps)
                if diagnose_names:   # NaN until learning starts (every row has the columns)
                    checks = (jax.device_get(diagnose(carry, jax.random.PRNGKey(step)))
                              if step > learning_starts else {})
                    for k, row in enumerate(rows):
                        row.update({name: float(checks[name][k]) if checks else float('nan')
                                    for name in diagnose_names})
                logs.write('metrics.csv', env_steps(step), rows)
                carry = carry.replace(metric_sums=jax.tree.map(jnp.zeros_like, carry.metric_sums),
                                      metric_count=jnp.zeros_like(carry.metric_count))
                game_returns = [[] for _ in range(n)]
                _print_progress(env_steps(step), loop.total_steps, fps, rows)
                interval_start, interval_time = step, time.time()
            if due(loop.eval_every):
                eval_env = make_eval_env(n * loop.eval_episodes,
                                         evaluation_seed(loop.seed, loop.eval_episodes))
                eval_key, key = jax.random.split(eval_key)
                last_eval = evaluate(agent, carry.agent, eval_env, loop.eval_episodes, key)
                eval_env.close()
                logs.write('eval.csv', env_steps(step), [
                    {'return_mean': float(r.mean()), 'return_std': float(r.std()),
                     'episodes': len(r)} for r in last_eval])
                print(f'eval at {env_steps(step)}: return {last_eval.mean():.2f} '
                      f'(+- {last_eval.std():.2f} over {last_eval.size} episodes)', flush=True)
            if step == total:   # before the last checkpoint, which thus marks a complete run
                summaries = _write_summaries(agent, loop, seed_dirs, last_eval,
                                             wall_offset + time.time() - start_time, device_count)
            if due(loop.checkpoint_every) or stop.signal is not None:
                host_now = {'step': np.asarray(step, np.int64),
                            'wall_seconds': np.asarray(wall_offset + time.time() - start_time),
                            'observation': observation, 'first': first, 'action': actions}
                checkpoints.save(step, carry, host_now, {'env_steps': env_steps(step)})
            if stop.signal is not None:
                raise Stopped(f'stopped by signal {stop.signal} at step {env_steps(step)}; '
                              f'checkpoint saved', stop.signal)
    return summaries


def _write_summaries(agent: Agent, loop: LoopConfig, seed_dirs: Sequence[str],
                     returns: np.ndarray, wall: float, device_count: int) -> List[Dict]:
    """Writes each seed's summary.json from its last evaluation's returns [N, episodes];
    device_count: the devices the seeds were spread over."""
    summaries = []
    for k, directory in enumerate(seed_dirs):
        mean = float(np.mean(returns[k]))
        hns = (float(evaluation.human_normalized_score(loop.env, mean))
               if evaluation.has_human_score(loop.env) else None)
        summary = {'algorithm': agent.name, 'env': loop.env, 'seed': loop.seed + k,
                   'total_steps': loop.total_steps, 'eval_return_mean': mean,
                   'eval_return_std': float(np.std(returns[k])),
                   'eval_episodes': int(len(returns[k])), 'human_normalized_score': hns,
                   'wall_seconds': wall, 'device': device_name(), 'device_count': device_count}
        run_files.write_json(os.path.join(directory, 'summary.json'), summary)
        summaries.append(summary)
    return summaries


def _divergence_message(carry: Carry, finite: np.ndarray, env_step: int,
                        checkpoint: Optional[int], loop: LoopConfig) -> str:
    """Names the seed, step and the non-finite terms (metrics, else parameter groups)."""
    k = int(np.flatnonzero(~finite)[0])
    sums = jax.device_get(carry.metric_sums)
    terms = [name for name, value in sorted(sums.items()) if not np.isfinite(value[k])]
    if not terms:
        params = jax.device_get(jax.tree.map(lambda x: x[k], carry.agent))
        terms = [f'parameter {jax.tree_util.keystr(path)}'
                 for path, x in jax.tree_util.tree_leaves_with_path(params)
                 if np.issubdtype(np.asarray(x).dtype, np.floating) and not np.isfinite(x).all()]
        terms = terms[:3] + ([f'and {len(terms) - 3} more'] if len(terms) > 3 else [])
    kept = ('no checkpoint was written' if checkpoint is None else
            f'the last good checkpoint (step {checkpoint * loop.action_repeat}) is kept')
    return (f'non-finite {", ".join(terms)} at step {env_step} (seed {loop.seed + k}); '
            f'stopped, {kept}')


def evaluation_seed(seed: int, episodes: int) -> int:
    """Seed of the evaluation pool: env j of seed k gets seed + k of a group (matches separate runs)."""
    return 1_000_000 + seed * episodes


def _metric_rows(carry: Carry, game_returns, fps: float) -> List[Dict[str, float]]:
    sums = jax.device_get(carry.metric_sums)
    count = np.maximum(jax.device_get(carry.metric_count), 1)
    rows = []
    for k, returns in enumerate(game_returns):
        row = {'fps': fps}
        for name in ('loss_rl', 'loss_sim', 'loss_c'):
            row[name] = float(sums[name][k] / count[k])
        row.update({name: float(sums[name][k] / count[k]) for name in sorted(sums)
                    if name not in row})
        row['train_return'] = float(np.mean(returns)) if returns else float('nan')
        row['train_games'] = len(returns)
        rows.append(row)
    return rows


def _print_progress(env_step: int, total: int, fps: float, rows) -> None:
    eta = (total - env_step) / max(fps, 1e-9)
    losses = ' '.join(f'{k} {np.mean([r[k] for r in rows]):.4g}'
                      for k in ('loss_rl', 'loss_sim', 'loss_c'))
    # The games that ended in the interval (all seeds); none ended: no return shown.
    returns = [r['train_return'] for r in rows if np.isfinite(r['train_return'])]
    played = f' | train return {np.mean(returns):.2f}' if returns else ''
    print(f'step {env_step}/{total} | {fps:.1f} steps/s | ETA {format_duration(eta)} | {losses}'
          f'{played}', flush=True)
