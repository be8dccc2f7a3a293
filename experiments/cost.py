"""XLA's own accounting of a preset's learner update, compiled and never run.

    update_cost('dmc', 'psrl') -> {'batch': 512, 'microbatches': 4, 'temp_gb': ..., 'gflops': ...,
                                   'gbytes': ...}

temp_gb: `compile().memory_analysis()` temporaries of the update as the config builds it; gflops and
gbytes: `compile().cost_analysis()` flops and bytes accessed of the same update with the gradient in
one piece (microbatches = 1): XLA counts the body of a loop once, so the micro-batched program would
show a fraction of its arithmetic. Agents are built as the launchers build them, for the environment
shapes of SPECS (Pong; cartpole-swingup; breakout), with synthetic shapes only: no environment is made.
"""
import time
import types
from typing import Dict, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from experiments import launch, repository
from experiments.configs import atari as atari_configs
from experiments.configs import dmc as dmc_configs
from experiments.configs import minatar as minatar_configs
from psrl_jax import replay, training

CONFIGS = {'atari': atari_configs, 'dmc': dmc_configs, 'minatar': minatar_configs}
# What launch.build_agent reads from an environment.
SPECS = {
    'atari': types.SimpleNamespace(game='Pong', observation_shape=(84, 84, 4), num_actions=6,
                                   action_dim=None, frame_channels=1),
    'dmc': types.SimpleNamespace(game='cartpole-swingup', observation_shape=(84, 84, 9),
                                 num_actions=None, action_dim=1, frame_channels=3),
    'minatar': types.SimpleNamespace(game='breakout', observation_shape=(10, 10, 4),
                                     num_actions=6, action_dim=None, frame_channels=4),
}


def build(suite: str, preset: str, batch_size: Optional[int] = None,
          microbatches: Optional[int] = None, objective: Optional[Dict] = None) -> training.Agent:
    """The agent a launcher builds for `preset` of `suite`, with optional batch/micro-batch overrides
    and psrl settings (`objective`, e.g. {'cat': False}).

    A smaller batch_size without microbatches keeps the config's chunk size (DMControl psrl: 512 in
    4 chunks of 128, so 64 in one piece): XLA:CPU runs the micro-batch loop ~3.8x slower than the
    same update in one piece (WORKSPACE_NOTES.md, "PSRL's cost").
    """
    config = CONFIGS[suite].get_config(preset)
    config.psrl.update(objective or {})
    if batch_size is not None:
        config.replay.batch_size = batch_size
    config.agent.microbatches = (chunks(suite, preset, batch_size) if microbatches is None
                                 else microbatches)
    spec = SPECS[suite]
    loop = training.LoopConfig(env=spec.game, seed=0, total_steps=100_000, learning_starts=1000,
                               eval_episodes=1, eval_every=0, log_every=1000, checkpoint_every=0)
    return launch.build_agent(suite, config, spec, loop)


def chunks(suite: str, preset: str, batch_size: Optional[int] = None) -> int:
    """The micro-batches `build` gives a preset at batch_size: the config's at its own batch;
    batch_size / the config's chunk size where that divides, one piece below one chunk."""
    agent = CONFIGS[suite].get_config(preset)
    chunk = agent.replay.batch_size // agent.agent.microbatches
    if batch_size is None or batch_size == agent.replay.batch_size:
        return int(agent.agent.microbatches)
    if batch_size <= chunk:
        return 1
    return batch_size // chunk if batch_size % chunk == 0 else int(agent.agent.microbatches)


def batch_shapes(agent: training.Agent, spec) -> replay.Batch:
    """The abstract replay.Batch the agent's replay samples (B = batch size, T = horizon + 1)."""
    b, t = agent.replay.batch_size, agent.replay.horizon + 1
    shape = lambda *s, dtype=jnp.float32: jax.ShapeDtypeStruct(s, dtype)
    return replay.Batch(
        observation=shape(b, t, *spec.observation_shape, dtype=jnp.uint8),
        action=shape(b, t - 1, *agent.action_shape, dtype=agent.action_dtype),
        reward=shape(b, t - 1), same_episode=shape(b, t, dtype=jnp.bool_),
        next_observation=shape(b, *spec.observation_shape, dtype=jnp.uint8),
        returns=shape(b), discount=shape(b))


def synthetic_batch(agent: training.Agent, observation_shape: Sequence[int],
                    num_actions: Optional[int], seed: int) -> replay.Batch:
    """A replay.Batch shaped as the agent's replay samples it: B = batch size, T = horizon + 1.

    observation uint8 [B, T, *observation_shape], next_observation uint8 (uniform pixels), action
    int32 [B, T-1] below num_actions, or uniform float32 [B, T-1, A] in [-1, 1] when num_actions
    is None; reward, returns, discount float32, same_episode all True.
    """
    config = agent.replay
    b, t = config.batch_size, config.horizon + 1
    rng = np.random.default_rng(seed)
    pixels = lambda *shape: jnp.asarray(rng.integers(0, 256, shape, dtype=np.uint8))
    actions = (rng.integers(0, num_actions, (b, t - 1)) if num_actions is not None
               else rng.uniform(-1.0, 1.0, (b, t - 1) + agent.action_shape))
    return replay.Batch(
        observation=pixels(b, t, *observation_shape),
        action=jnp.asarray(actions, agent.action_dtype),
        reward=jnp.asarray(rng.choice([-1.0, 0.0, 1.0], (b, t - 1)), jnp.float32),
        same_episode=jnp.ones((b, t), bool),
        next_observation=pixels(b, *observation_shape),
        returns=jnp.asarray(rng.uniform(-1.0, 1.0, b), jnp.float32),
        discount=jnp.full((b,), config.gamma ** config.n_step, jnp.float32))


def measure_learner_step(agent: training.Agent, batch: replay.Batch, repeats: int,
                         seed: int) -> Dict:
    """Times the jitted agent.update (state donated) on one batch.

    Returns {'compile_s': first call (compile + run), 'samples_ms': [repeats] wall times of the
    following calls, each ended by block_until_ready, after one untimed warm-up call,
    'median_ms', 'cpu_over_wall': this process's CPU time / wall time over the timed calls}.
    """
    update = jax.jit(agent.update, donate_argnums=0)
    state = jax.jit(agent.init)(jax.random.PRNGKey(seed))
    weights = jnp.ones((agent.replay.batch_size,), jnp.float32)
    key = jax.random.PRNGKey(seed + 1)
    jax.block_until_ready((state, batch))

    def call(i):
        nonlocal state
        start = time.perf_counter()
        state, priorities, metrics = update(state, batch, weights, jax.random.fold_in(key, i))
        jax.block_until_ready((state, priorities, metrics))
        return time.perf_counter() - start

    compile_s = call(0)
    call(1)
    cpu_start = time.process_time()
    samples = [1000.0 * call(i + 2) for i in range(repeats)]
    cpu_over_wall = (time.process_time() - cpu_start) / (sum(samples) / 1000.0)
    return {'compile_s': round(compile_s, 3), 'samples_ms': [round(s, 3) for s in samples],
            'median_ms': float(np.median(samples)), 'cpu_over_wall': round(cpu_over_wall, 3)}


def compiled_update(agent: training.Agent, spec):
    """agent.update lowered and compiled for its replay's batch shapes (nothing runs)."""
    state = jax.eval_shape(agent.init, jax.random.PRNGKey(0))
    weights = jax.ShapeDtypeStruct((agent.replay.batch_size,), jnp.float32)
    return jax.jit(agent.update).lower(state, batch_shapes(agent, spec), weights,
                                       jax.random.PRNGKey(0)).compile()


def update_cost(suite: str, preset: str, batch_size: Optional[int] = None) -> Dict:
    """{'batch', 'microbatches', 'temp_gb', 'gflops', 'gbytes'} of a preset's update (see above)."""
    spec = SPECS[suite]
    microbatches = chunks(suite, preset, batch_size)
    compiled = compiled_update(build(suite, preset, batch_size), spec)
    whole = (compiled if microbatches == 1
             else compiled_update(build(suite, preset, batch_size, microbatches=1), spec))
    cost = whole.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    batch = CONFIGS[suite].get_config(preset).replay.batch_size if batch_size is None else batch_size
    return {'batch': batch, 'microbatches': microbatches,
            'temp_gb': round(compiled.memory_analysis().temp_size_in_bytes / 1e9, 4),
            'gflops': round(cost['flops'] / 1e9, 3),
            'gbytes': round(cost['bytes accessed'] / 1e9, 4)}


# Objective switches whose cost `components` measures: what a part of the config's psrl update
# costs (the update without it subtracted from the full one) or, for parts the config leaves
# out, what adding it would cost (marked 'adds').
COMPONENTS = (
    ('L_c (image-resolution warps, photometric, smoothness; internal map)',
     dict(correspondence=False, internal=False)),
    ('internal map (one more C, one more L_r)', dict(internal=False)),
    ("C's refinement convolutions", dict(correspondence_refinement=False)),
    ("C's refinement convolutions (adds)", dict(correspondence_refinement=True)),
    ('CAT (feature warp, psi, phi)', dict(cat=False)),
    ('AAT (G, psi, phi)', dict(aat=False)),
    ('encoder gradients through z^q_{k+1..k+M}', dict(query_gradients='first')),
    ('encoder gradients through z^q_{k+1..k+M} (adds)', dict(query_gradients='all')),
    ('L1 terms', dict(l1=False)),
)


def components(suite: str, batch_size: Optional[int] = None, repeats: int = 0) -> list:
    """The psrl update's cost, then the part of it each switch of COMPONENTS removes, and the
    baselines' updates: rows {'what', 'temp_gb', 'gflops', 'gbytes'} (forward and backward inside
    the jitted update; micro-batches as `chunks` gives them for temp_gb, one piece for the rest).

    repeats > 0 also runs each update (as the config builds it, on a synthetic batch) and adds
    'ms', the median of `repeats` timed calls (measure_learner_step), plus
    a row for the micro-batch loop where the config has one (its update in one piece, timed).
    """
    spec = SPECS[suite]

    def milliseconds(agent):
        batch = synthetic_batch(agent, spec.observation_shape, spec.num_actions, 0)
        return measure_learner_step(agent, batch, repeats, 0)['median_ms']

    def measure(preset, **objective):
        agent = build(suite, preset, batch_size, objective=objective)
        memory = compiled_update(agent, spec)
        whole = (memory if chunks(suite, preset, batch_size) == 1
                 else compiled_update(build(suite, preset, batch_size, 1, objective), spec))
        cost = whole.cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        return (memory.memory_analysis().temp_size_in_bytes / 1e9, cost['flops'] / 1e9,
                cost['bytes accessed'] / 1e9) + ((milliseconds(agent),) if repeats else ())

    keys = ('temp_gb', 'gflops', 'gbytes', 'ms')
    full = measure('psrl')
    rows = [{'what': 'psrl update', **dict(zip(keys, full))}]
    default = CONFIGS[suite].get_config('psrl')
    loop_chunks = chunks(suite, 'psrl', batch_size)
    if repeats and loop_chunks > 1:
        whole = milliseconds(build(suite, 'psrl', batch_size, 1))
        rows.append({'what': f'micro-batch loop ({loop_chunks} chunks; time only)',
                     'temp_gb': 0.0, 'gflops': 0.0, 'gbytes': 0.0,
                     'ms': round(full[3] - whole, 1)})
    for what, switches in COMPONENTS:
        if all(default.psrl[k] == v for k, v in switches.items()):
            continue                     # the config has it this way: nothing to remove or add
        variant = measure('psrl', **switches)
        sign = -1 if what.endswith('(adds)') else 1
        rows.append({'what': what, **{k: round(sign * (f - v), 4) for k, f, v in
                                      zip(keys, full, variant)}})
    for preset in [p for p in ('spr', 'rainbow', 'drq') if p in CONFIGS[suite].PRESETS]:
        rows.append({'what': f'{preset} update', **dict(zip(keys, measure(preset)))})
    return rows


if __name__ == '__main__':
    import json, sys   # pylint: disable=multiple-imports
    # python -m experiments.cost [suite] [batch] [repeats]: the table, then one JSON line.
    suite = sys.argv[1] if len(sys.argv) > 1 else 'atari'
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else None
    repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    table = components(suite, batch, repeats)
    timed = ' ms |' if repeats else ''
    print(f'| {suite} (batch {batch or CONFIGS[suite].get_config().replay.batch_size}) | temp GB '
          f'| GFLOP | GB accessed |{timed}\n| --- | --- | --- | --- |{" --- |" if repeats else ""}')
    for row in table:
        print(f"| {row['what']} | {row['temp_gb']:.3f} | {row['gflops']:.2f} | {row['gbytes']:.3f} |"
              + (f" {row['ms']:.0f} |" if repeats else ''))
    print(json.dumps({'suite': suite, 'batch': batch, 'repeats': repeats,
                      'device': training.device_name(), 'commit': repository.git_commit(),
                      'rows': table}))
