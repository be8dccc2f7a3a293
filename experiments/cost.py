"""XLA's own accounting of a preset's learner update, compiled and never run.

    update_cost('dmc', 'psrl') -> {'batch': 512, 'microbatches': 4, 'temp_gb': ..., 'gflops': ...,
                                   'gbytes': ...}

temp_gb: `compile().memory_analysis()` temporaries of the update as the config builds it; gflops and
gbytes: `compile().cost_analysis()` flops and bytes accessed of the same update with the gradient in
one piece (microbatches = 1): XLA counts the body of a loop once, so the micro-batched program would
show a fraction of its arithmetic. Agents are built as the launchers build them, for the environment
shapes of SPECS (Pong; cartpole-swingup; breakout), with synthetic shapes only: no environment is made.
"""
import types
from typing import Dict, Optional

import jax
import jax.numpy as jnp

from experiments import launch
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
          microbatches: Optional[int] = None) -> training.Agent:
    """The agent a launcher builds for `preset` of `suite`, with optional batch/micro-batch overrides."""
    config = CONFIGS[suite].get_config(preset)
    if batch_size is not None:
        config.replay.batch_size = batch_size
    if microbatches is not None:
        config.agent.microbatches = microbatches
    spec = SPECS[suite]
    loop = training.LoopConfig(env=spec.game, seed=0, total_steps=100_000, learning_starts=1000,
                               eval_episodes=1, eval_every=0, log_every=1000, checkpoint_every=0)
    return launch.build_agent(suite, config, spec, loop)


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


def compiled_update(agent: training.Agent, spec):
    """agent.update lowered and compiled for its replay's batch shapes (nothing runs)."""
    state = jax.eval_shape(agent.init, jax.random.PRNGKey(0))
    weights = jax.ShapeDtypeStruct((agent.replay.batch_size,), jnp.float32)
    return jax.jit(agent.update).lower(state, batch_shapes(agent, spec), weights,
                                       jax.random.PRNGKey(0)).compile()


def update_cost(suite: str, preset: str, batch_size: Optional[int] = None) -> Dict:
    """{'batch', 'microbatches', 'temp_gb', 'gflops', 'gbytes'} of a preset's update (see above)."""
    spec = SPECS[suite]
    microbatches = int(CONFIGS[suite].get_config(preset).agent.microbatches)
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


def components(suite: str, batch_size: Optional[int] = None) -> list:
    """The psrl update's cost, then the part of it each switch of COMPONENTS removes, and the
    baselines' updates: rows {'what', 'temp_gb', 'gflops', 'gbytes'} (forward and backward inside
    the jitted update; micro-batches as the config has them for temp_gb, one piece for the rest)."""
    def measure(preset, **objective):
        config = CONFIGS[suite].get_config(preset)
        config.psrl.update(objective)
        if batch_size is not None:
            config.replay.batch_size = batch_size
        spec = SPECS[suite]
        loop = training.LoopConfig(env=spec.game, seed=0, total_steps=100_000,
                                   learning_starts=1000, eval_episodes=1, eval_every=0,
                                   log_every=1000, checkpoint_every=0)
        memory = compiled_update(launch.build_agent(suite, config, spec, loop), spec)
        config.agent.microbatches = 1
        cost = compiled_update(launch.build_agent(suite, config, spec, loop), spec).cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        return (memory.memory_analysis().temp_size_in_bytes / 1e9, cost['flops'] / 1e9,
                cost['bytes accessed'] / 1e9)

    full = measure('psrl')
    rows = [{'what': 'psrl update', 'temp_gb': full[0], 'gflops': full[1], 'gbytes': full[2]}]
    default = CONFIGS[suite].get_config('psrl').psrl
    for what, switches in COMPONENTS:
        if all(default[k] == v for k, v in switches.items()):
            continue                     # the config has it this way: nothing to remove or add
        variant = measure('psrl', **switches)
        sign = -1 if what.endswith('(adds)') else 1
        rows.append({'what': what, **{k: round(sign * (f - v), 4) for k, f, v in
                                      zip(('temp_gb', 'gflops', 'gbytes'), full, variant)}})
    for preset in [p for p in ('spr', 'rainbow', 'drq') if p in CONFIGS[suite].PRESETS]:
        temp, flops, traffic = measure(preset)
        rows.append({'what': f'{preset} update', 'temp_gb': temp, 'gflops': flops,
                     'gbytes': traffic})
    return rows


if __name__ == '__main__':
    import json, sys   # pylint: disable=multiple-imports
    suite = sys.argv[1] if len(sys.argv) > 1 else 'atari'
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else None
    table = components(suite, batch)
    print(f'| {suite} (batch {batch or CONFIGS[suite].get_config().replay.batch_size}) | temp GB '
          f'| GFLOP | GB accessed |\n| --- | --- | --- | --- |')
    for row in table:
        print(f"| {row['what']} | {row['temp_gb']:.3f} | {row['gflops']:.2f} | {row['gbytes']:.3f} |")
    print(json.dumps({'suite': suite, 'batch': batch, 'device': training.device_name(),
                      'commit': launch.git_commit(), 'rows': table}))
