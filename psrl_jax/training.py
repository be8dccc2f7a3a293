"""The act/learn loop shared by the Atari and DMControl agents: replay, logging, evaluation, checkpoints.

Read `train` top to bottom. N independent agents (seeds) run side by side: every array in the device
state has a leading seed axis, one environment per seed, and one jitted call per environment step
adds the transition to each seed's replay, runs the learner updates and picks the next actions.
The only host round trip per step is that action.
"""
import csv
import dataclasses
import json
import os
import shutil
import signal
import sys
import time
import zlib
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import flax
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from psrl_jax import replay
from psrl_jax.evaluation import scores as evaluation
from psrl_jax.errors import UsageError


class Agent(NamedTuple):
    """What the loop needs from an agent, as pure single-seed functions (the loop vmaps them).

    name: the preset, reported as summary.json's "algorithm".
    init(key) -> state
    act(state, observations uint8 [B, ...], key, step) -> actions [B]       training policy
    evaluate_act(state, observations, key) -> actions [B]                    evaluation policy
    update(state, batch, weights [B], key) -> (state, priorities [B], metrics dict of scalars)
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
    priority_weight: Callable   # agent step -> importance-sampling exponent beta


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
    the run has no checkpoint.
    """
    frame_shape = tuple(observation_shape[:2]) + (frame_channels,)
    carry = jax.eval_shape(lambda: init_carry(agent, seed_keys(0, num_seeds), frame_shape))
    checkpoints = Checkpoints(workdir, max_to_keep=None)
    step = checkpoints.latest_step() if step is None else step
    if step is None:
        raise UsageError(f'{workdir} has no checkpoint')
    carry, host = checkpoints.restore(step, carry, host_template(agent, num_seeds,
                                                                  observation_shape))
    checkpoints.close()
    return carry, host


def _metric_shapes(agent: Agent, states, buffers) -> Dict[str, Any]:
    single = jax.tree.map(lambda x: x[0], (states, buffers))

    def one_update(state, buffer):
        batch, indices, weights = replay.sample(buffer, agent.replay, jax.random.PRNGKey(0), 1.0)
        return agent.update(state, batch, weights, jax.random.PRNGKey(0))[2]

    return jax.eval_shape(one_update, *single)


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

    def collect(carry, entry, next_observation, step):
        def single(state, buffer, key, entry, observation):
            buffer = replay.add(buffer, config, *entry)
            key, action = act(state, key, observation, step)
            return buffer, key, action

        buffers, keys, actions = jax.vmap(single)(carry.agent, carry.replay, carry.key, entry,
                                                  next_observation)
        return carry.replace(replay=buffers, key=keys), actions, jnp.ones(actions.shape[:1], bool)

    def learn(carry, entry, next_observation, step):
        beta = agent.priority_weight(step)

        def single(state, buffer, key, sums, entry, observation):
            buffer = replay.add(buffer, config, *entry)

            def one_update(inner):
                state, buffer, key, sums = inner
                key, key_sample, key_update = jax.random.split(key, 3)
                batch, indices, weights = replay.sample(buffer, config, key_sample, beta)
                state, priorities, metrics = agent.update(state, batch, weights, key_update)
                if config.priority_exponent > 0:
                    buffer = replay.update_priorities(buffer, config, indices, priorities)
                sums = {k: sums[k] + metrics[k] for k in sums}
                return state, buffer, key, sums

            # Unrolled: XLA:CPU runs the update ~4x slower inside a while loop (fori_loop/scan).
            inner = (state, buffer, key, sums)
            for _ in range(agent.updates_per_step):
                inner = one_update(inner)
            state, buffer, key, sums = inner
            key, action = act(state, key, observation, step)
            return state, buffer, key, sums, action

        states, buffers, keys, sums, actions = jax.vmap(single)(
            carry.agent, carry.replay, carry.key, carry.metric_sums, entry, next_observation)
        carry = carry.replace(agent=states, replay=buffers, key=keys, metric_sums=sums,
                              metric_count=carry.metric_count + agent.updates_per_step)
        return carry, actions, _all_finite((states, sums))

    def first_action(carry, observation, step):
        keys, actions = jax.vmap(lambda s, k, o: act(s, k, o, step))(carry.agent, carry.key,
                                                                      observation)
        return carry.replace(key=keys), actions

    donate = dict(donate_argnums=0)
    return jax.jit(collect, **donate), jax.jit(learn, **donate), jax.jit(first_action, **donate)


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


class RunLogs:
    """metrics.csv, eval.csv and TensorBoard events of each seed; rows survive restarts exactly once."""

    def __init__(self, seed_dirs: Sequence[str], resume_step: int):
        from tensorboardX import SummaryWriter  # pylint: disable=import-outside-toplevel
        self.seed_dirs = list(seed_dirs)
        for directory in self.seed_dirs:
            os.makedirs(directory, exist_ok=True)
            for name in ('metrics.csv', 'eval.csv'):
                _truncate_csv(os.path.join(directory, name), resume_step)
        self.writers = [SummaryWriter(os.path.join(d, 'tensorboard')) for d in self.seed_dirs]

    def write(self, name: str, step: int, rows: Sequence[Dict[str, float]]) -> None:
        for directory, writer, row in zip(self.seed_dirs, self.writers, rows):
            row = {'step': step, **row}
            _append_csv(os.path.join(directory, name), row)
            for key, value in row.items():
                if key != 'step' and np.isfinite(value):
                    writer.add_scalar(f'{name[:-4]}/{key}', value, step)

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


def _append_csv(path: str, row: Dict[str, float]) -> None:
    exists = os.path.exists(path) and os.path.getsize(path) > 0
    with open(path, 'a', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if not exists:
            writer.writeheader()
        writer.writerow(row)


def _truncate_csv(path: str, step: int) -> None:
    """Drops rows logged after `step` (written after the checkpoint being resumed)."""
    if not os.path.exists(path):
        return
    with open(path, newline='') as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    kept = [rows[0]] + [r for r in rows[1:] if r and int(float(r[0])) <= step]
    if len(kept) != len(rows):
        with open(path + '.tmp', 'w', newline='') as f:
            csv.writer(f).writerows(kept)
        os.replace(path + '.tmp', path)


_CHECKSUMS = 'psrl_checksums.json'


def _file_checksums(directory: str) -> Dict[str, str]:
    """CRC32 of every file under a checkpoint directory (but the checksum file itself)."""
    sums = {}
    for folder, _, files in os.walk(directory):
        for name in files:
            if name.startswith(_CHECKSUMS):
                continue
            path = os.path.join(folder, name)
            crc = 0
            with open(path, 'rb') as f:
                for chunk in iter(lambda: f.read(1 << 24), b''):
                    crc = zlib.crc32(chunk, crc)
            sums[os.path.relpath(path, directory)] = f'{crc:08x}'
    return sums


class Checkpoints:
    """Orbax checkpoints of the device carry plus the loop's host counters, under workdir/checkpoints."""

    def __init__(self, workdir: str, max_to_keep: Optional[int]):
        # Synchronous saves: the carry's buffers are donated to the next step right after a save.
        # Each process keeps its own checkpoints (its seeds are independent of the others').
        process = jax.process_index()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=False, enable_async_checkpointing=False,
            multiprocessing_options=ocp.options.MultiprocessingOptions(
                primary_host=process, active_processes={process}))
        name = 'checkpoints' if jax.process_count() == 1 else f'checkpoints/process_{process}'
        self.directory = os.path.abspath(os.path.join(workdir, name))
        os.makedirs(self.directory, exist_ok=True)
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> Optional[int]:
        return self.manager.latest_step()

    def save(self, step: int, carry: Carry, host: Dict[str, np.ndarray], meta: Dict) -> None:
        """Writes checkpoint `step` (atomically, by orbax) and then its file checksums.

        Arrays are saved as host (numpy) copies: they belong to this process only, and restore
        places them on whatever devices the resumed run uses.
        """
        self.manager.save(step, args=ocp.args.Composite(
            carry=ocp.args.StandardSave(jax.device_get(carry)), host=ocp.args.StandardSave(host),
            meta=ocp.args.JsonSave(meta)))
        path = os.path.join(self.directory, str(step), _CHECKSUMS)
        checksums = _file_checksums(os.path.dirname(path))
        with open(path + '.tmp', 'w') as f:
            json.dump(checksums, f)
        os.replace(path + '.tmp', path)

    def _damaged(self, step: int) -> Optional[str]:
        """Why checkpoint `step` fails its checksums, or None (also when it has none yet)."""
        directory = os.path.join(self.directory, str(step))
        try:
            with open(os.path.join(directory, _CHECKSUMS)) as f:
                expected = json.load(f)
        except (OSError, ValueError):
            return None
        actual = _file_checksums(directory)
        changed = sorted(set(expected.items()) ^ set(actual.items()))
        return f'{len(changed)} file(s) changed or missing, e.g. {changed[0][0]}' if changed else None

    def restore(self, step: int, carry: Carry, host: Dict[str, np.ndarray]):
        """(carry, host) of checkpoint `step` as numpy arrays shaped like the templates given."""
        abstract = lambda tree: jax.tree.map(lambda x: np.empty(x.shape, x.dtype), tree)
        restored = self.manager.restore(step, args=ocp.args.Composite(
            carry=ocp.args.StandardRestore(abstract(carry)),
            host=ocp.args.StandardRestore(abstract(host)), meta=ocp.args.JsonRestore()))
        return restored['carry'], restored['host']

    def restore_latest(self, carry: Carry, host: Dict[str, np.ndarray]):
        """The newest readable checkpoint as (carry, host), or None when there is none.

        Unreadable (corrupt) checkpoints are reported on stderr and, once an older one has been
        read, moved to checkpoints_corrupt/ so that the run can write those steps again. When
        none is readable nothing is moved and UsageError is raised.
        """
        steps = sorted(self.manager.all_steps(), reverse=True)
        corrupt = []
        for step in steps:
            reason = self._damaged(step)
            if reason is None:
                try:
                    restored = self.restore(step, carry, host)
                except Exception as err:  # pylint: disable=broad-except
                    reason = f'{type(err).__name__}: {(str(err).strip().splitlines() or [""])[0]}'
            if reason is not None:
                print(f'warning: checkpoint {step} in {self.directory} is unreadable ({reason})',
                      file=sys.stderr, flush=True)
                corrupt.append(step)
                continue
            for bad in corrupt:
                aside = os.path.join(os.path.dirname(self.directory), 'checkpoints_corrupt')
                os.makedirs(aside, exist_ok=True)
                shutil.move(os.path.join(self.directory, str(bad)), os.path.join(aside, str(bad)))
                print(f'warning: moved checkpoint {bad} to {aside}; resuming from step {step}',
                      file=sys.stderr, flush=True)
            if corrupt:
                self.manager.reload()
            return restored
        if corrupt:
            raise UsageError(f'no readable checkpoint in {self.directory} (steps {corrupt} are '
                             f'corrupt): use --overwrite to start the run again')
        return None

    def close(self) -> None:
        self.manager.close()


def device_name() -> str:
    """'<platform>:<device kind>' of the first device: 'cpu:cpu', 'gpu:NVIDIA H100 80GB HBM3'."""
    device = jax.devices()[0]
    return f'{device.platform}:{getattr(device, "device_kind", "")}'.rstrip(':')


def _format_duration(seconds: float) -> str:
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


def seed_sharding(num_seeds: int) -> Optional[NamedSharding]:
    """Shards the seed axis over this process's devices (as many as divide num_seeds), or None."""
    devices = jax.local_devices()
    count = max(d for d in range(1, len(devices) + 1) if num_seeds % d == 0)
    if count == 1:
        return None
    return NamedSharding(Mesh(np.array(devices[:count]), ('seed',)), PartitionSpec('seed'))


def train(agent: Agent, loop: LoopConfig, env, make_eval_env: Callable[[int, int], Any],
          workdir: str) -> List[Dict]:
    """Trains loop.num_seeds agents and writes the run files; resumes from workdir/checkpoints.

    env: a psrl_jax.envs environment with one env per seed (closed on return); make_eval_env(
    num_envs, seed) builds the evaluation environments. Returns the summary dict of every seed
    (also written as summary.json). Raises Stopped after checkpointing when stopped by
    SIGTERM/SIGINT, and TrainingDiverged (without checkpointing) when anything becomes non-finite.
    """
    n = loop.num_seeds
    seed_dirs = loop.seed_dirs(workdir)
    frame_channels = env.frame_channels
    frame_shape = env.observation_shape[:2] + (frame_channels,)
    sharding = seed_sharding(n)
    place = lambda tree: jax.device_put(tree, sharding)   # sharding None: the default device
    collect, learn, first_action = make_step_functions(agent)
    carry = place(init_carry(agent, seed_keys(loop.seed, n), frame_shape))
    checkpoints = Checkpoints(workdir, loop.max_to_keep)

    # Where the run stands: agent steps done, and the host-side state a checkpoint restores.
    total = loop.agent_steps(loop.total_steps)
    learning_starts = max(loop.agent_steps(loop.learning_starts),
                          agent.replay.lookahead + agent.replay.stack + 1)
    host = host_template(agent, n, env.observation_shape)
    try:
        restored = checkpoints.restore_latest(carry, host)
    except UsageError:
        checkpoints.close()
        env.close()
        raise
    if restored is not None:
        carry, host = place(restored[0]), restored[1]
        # The emulator state is not saved: the episode in flight ends here as a truncation.
        truncate = jax.jit(jax.vmap(lambda b, f, a: replay.truncate(b, agent.replay, f, a)))
        final_frames = place(host['observation'][..., -frame_channels:])
        carry = carry.replace(replay=truncate(carry.replay, final_frames, place(host['action'])))
    step = int(host['step'])
    if step > total:
        raise UsageError(f'{workdir} holds a run at step {step * loop.action_repeat}, beyond '
                         f'--total_steps={loop.total_steps}: use a larger --total_steps')
    if step == total:
        print(f'{workdir} is already finished at step {loop.total_steps}', flush=True)
        env.close()
        checkpoints.close()
        return [json.load(open(os.path.join(d, 'summary.json'))) for d in seed_dirs]
    if restored is not None:
        print(f'resuming {workdir} from step {step * loop.action_repeat}', flush=True)
    logs = RunLogs(seed_dirs, step * loop.action_repeat)
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

    def close():
        logs.close()
        checkpoints.close()
        env.close()

    with _StopRequest() as stop:
        while step < total:
            timestep = env.step(actions)
            entry = Entry(observation[..., -frame_channels:], actions, timestep.reward,
                          timestep.terminal, timestep.truncated, timestep.valid, first)
            step_fn = learn if step >= learning_starts else collect
            carry, actions, finite = step_fn(carry, place(entry), place(timestep.observation),
                                             step + 1)
            actions, finite = jax.device_get((actions, finite))   # the one host round trip
            observation, first = timestep.observation, timestep.first
            for k in np.flatnonzero(timestep.game_over):
                game_returns[k].append(float(timestep.game_return[k]))
            step += 1
            if not finite.all():
                close()
                raise TrainingDiverged(_divergence_message(carry, finite, env_steps(step),
                                                           checkpoints.latest_step(), loop))

            if due(loop.log_every):
                fps = (step - interval_start) * loop.action_repeat / (time.time() - interval_time)
                rows = _metric_rows(carry, game_returns, fps)
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
            if due(loop.checkpoint_every) or stop.signal is not None:
                host_now = {'step': np.asarray(step, np.int64),
                            'wall_seconds': np.asarray(wall_offset + time.time() - start_time),
                            'observation': observation, 'first': first, 'action': actions}
                checkpoints.save(step, carry, host_now, {'env_steps': env_steps(step)})
            if stop.signal is not None:
                close()
                raise Stopped(f'stopped by signal {stop.signal} at step {env_steps(step)}; '
                              f'checkpoint saved', stop.signal)
    close()
    wall = wall_offset + time.time() - start_time
    summaries = []
    for k, directory in enumerate(seed_dirs):
        returns = last_eval[k]
        mean = float(np.mean(returns))
        hns = (float(evaluation.human_normalized_score(loop.env, mean))
               if evaluation.has_human_score(loop.env) else None)
        summary = {'algorithm': agent.name, 'env': loop.env, 'seed': loop.seed + k,
                   'total_steps': loop.total_steps, 'eval_return_mean': mean,
                   'eval_return_std': float(np.std(returns)), 'eval_episodes': int(len(returns)),
                   'human_normalized_score': hns, 'wall_seconds': wall, 'device': device_name()}
        with open(os.path.join(directory, 'summary.json'), 'w') as f:
            json.dump(summary, f, indent=2)
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
    print(f'step {env_step}/{total} | {fps:.1f} steps/s | ETA {_format_duration(eta)} | {losses}',
          flush=True)
