"""Pictures of a trained run's correspondence module C on real frames of its environment.

  python -m experiments.visualize --workdir runs/pong [--out runs/pong/visualize]

Reads the run's config.json, rebuilds its agent as the launcher does (launch.build_agent, the
suite told by the env name), restores the latest checkpoint, plays random actions in
the run's environment and writes PNGs to --out (default <workdir>/visualize/):
  frames.png    the consecutive frames I_k (newest frame of each observation)
  flows.png     the external flows c^ext_{k+1->k} = C(z^t_{k+1}, z^q_k), up-sampled to pixels,
                in the Middlebury colours (hue = direction, saturation = magnitude)
  warped.png    warp(I_k, c^ext_{k+1->k}) next to its target I_{k+1}, and their difference
  overview.png  all of it, one row per pair, titled with C's ground-truth checks on these frames
                (diagnostics.correspondence_checks: c_shift_epe against zero flow's, c_warp_gain,
                and on MinAtar c_object_epe), which are also printed
Bad input (no run, no checkpoint, a preset without C) prints one line 'error: ...' and exits 2.
"""
import json
import os
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import app
from absl import flags
from absl import logging

from experiments import launch
from psrl_jax import diagnostics, training, visualization
from psrl_jax.errors import UsageError
from psrl_jax.evaluation import runs

# Our own flag set, apart from the launchers' (which define --workdir too).
_FLAGS = flags.FlagValues()
flags.DEFINE_string('workdir', None, 'Run directory written by experiments.train_atari or '
                    'experiments.train_dmc (holds config.json and checkpoints/).',
                    flag_values=_FLAGS)
flags.DEFINE_string('out', None, 'Folder for the PNGs (default: <workdir>/visualize).',
                    flag_values=_FLAGS)
flags.DEFINE_integer('pairs', 4, 'Consecutive frame pairs to show.', flag_values=_FLAGS)
flags.DEFINE_integer('warmup', 60, 'Random agent steps before the frames are taken.',
                     flag_values=_FLAGS)
flags.DEFINE_integer('seed_index', 0, 'Which agent of a --num_seeds run to show.',
                     flag_values=_FLAGS)
flags.DEFINE_integer('dpi', 100, 'Resolution of the PNGs.', flag_values=_FLAGS)


def read_run(workdir: str) -> dict:
    """The run's config.json ({'flags', 'config'}); UsageError when there is no readable one."""
    if not workdir:
        raise UsageError('--workdir is required: the folder of a run made by '
                         'experiments.train_atari or experiments.train_dmc')
    path = os.path.join(workdir, 'config.json')
    if not os.path.isfile(path):
        raise UsageError(f'{workdir} holds no config.json: pass the --workdir of a run made by '
                         f'experiments.train_atari or experiments.train_dmc')
    try:
        with open(path) as f:
            record = json.load(f)
        record['flags']['env'], record['config']['psrl']   # pylint: disable=pointless-statement
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UsageError(f'{path} is not a run config written by the launchers ({err})') from None
    return record


def run_loop(record: dict, env) -> training.LoopConfig:
    """The run's loop settings, from its flags."""
    run_flags = record['flags']
    return training.LoopConfig(
        env=run_flags['env'], seed=run_flags['seed'], total_steps=run_flags['total_steps'],
        learning_starts=run_flags['learning_starts'], eval_episodes=run_flags['eval_episodes'],
        eval_every=run_flags['eval_every'], log_every=run_flags['log_every'],
        checkpoint_every=run_flags['checkpoint_every'], num_seeds=run_flags['num_seeds'],
        action_repeat=env.action_repeat)


def rebuild_agent(record: dict, suite: str, env) -> training.Agent:
    """The run's agent, built as its launcher does from the resolved config."""
    return launch.build_agent(suite, ml_collections.ConfigDict(record['config']), env,
                              run_loop(record, env))


def consecutive_observations(env, count: int, warmup: int, seed: int) -> np.ndarray:
    """`count` consecutive observations of one episode under uniform random actions, after
    `warmup` steps: uint8 [count, H, W, stack*c]."""
    rng = np.random.default_rng(seed)

    def random_action():
        if env.num_actions is not None:
            return rng.integers(0, env.num_actions, size=1).astype(np.int32)
        return rng.uniform(-1.0, 1.0, size=(1, env.action_dim))

    sequence = [env.reset()[0]]
    steps = 0
    while steps < warmup or len(sequence) < count:
        timestep = env.step(random_action())
        steps += 1
        if not timestep.valid[0] or timestep.first[0]:
            sequence = []            # a new episode: start the window again
        sequence.append(timestep.observation[0])
        if steps > warmup + 100 * count:
            raise UsageError(f'{count} consecutive steps of one episode could not be collected')
    return np.stack(sequence[-count:])


def visualize(workdir: str, out: str, pairs: int, warmup: int, seed_index: int,
              dpi: int = 100) -> dict:
    """Writes the PNGs; returns {'png': paths, 'step', 'photometric', 'photometric_zero_flow',
    'flow_magnitude'} (means over the pairs, frames in [0, 1], flow in pixels)."""
    if pairs < 1 or warmup < 0:
        raise UsageError(f'--pairs must be >= 1 and --warmup >= 0, got {pairs} and {warmup}')
    record = read_run(workdir)
    env_name = record['flags']['env']
    suite = runs.env_suite(env_name)
    if suite is None:
        raise UsageError(f'{workdir}/config.json names an env of no suite: {env_name!r}')
    settings = record['config']['psrl']
    if not (settings.get('correspondence') or settings.get('cat')):
        raise UsageError(f'the run in {workdir} (preset {record["config"].get("algorithm")!r}) has '
                         f'no correspondence module C: visualize a psrl run or an ablation with C')
    if int(record['flags'].get('num_processes', 1)) > 1:
        raise UsageError(f'the run in {workdir} was trained by several processes: visualize reads '
                         f'single-process runs (their checkpoints/ folder)')
    num_seeds = int(record['flags'].get('num_seeds', 1))
    if not 0 <= seed_index < num_seeds:
        raise UsageError(f'--seed_index must lie in [0, {num_seeds}), got {seed_index}')

    checkpoints = os.path.join(workdir, 'checkpoints')
    if not (os.path.isdir(checkpoints) and os.listdir(checkpoints)):
        raise UsageError(f'{workdir} has no checkpoint: train the run (or let it reach a '
                         f'checkpoint) first')
    seed = int(record['flags']['seed'])
    env = launch.make_eval_env(suite, env_name, 1, seed)
    try:
        agent = rebuild_agent(record, suite, env)
        objective = launch.objective(ml_collections.ConfigDict(record['config']), env, suite)
        carry, host = training.load_checkpoint(workdir, agent, num_seeds, env.observation_shape,
                                               env.frame_channels)
        observations = consecutive_observations(env, pairs + 1, warmup, seed)
    finally:
        env.close()
    state = jax.tree.map(lambda x: x[seed_index], carry.agent)
    online = state.params
    target = getattr(state, 'target_params', None)
    target = online if target is None else target    # SPR's tau = 0: the target is the online net

    @jax.jit
    def compute(online, target, observations):
        x = observations.astype(jnp.float32) / 255.0
        cells = visualization.external_flows(online, target, x, objective)
        frames = x[..., -objective.frame_channels:]
        warped, pixels = visualization.warp_previous(frames, cells)
        return frames, warped, pixels

    frames, warped, pixels = (np.asarray(a) for a in compute(online, target, observations))
    pairs_of = np.stack([observations[:-1], observations[1:]], axis=1)      # [pairs, 2, ...]
    checks = jax.jit(diagnostics.correspondence_checks, static_argnums=(4, 5))(
        online, pairs_of, np.ones(pairs_of.shape[:2], bool), jax.random.PRNGKey(seed), objective,
        getattr(env, 'object_channel', None))
    checks = {k: float(v) for k, v in checks.items()}
    step = min(int(host['step']) * env.action_repeat, int(record['flags']['total_steps']))
    titles = [f'k={k}' for k in range(pairs)]
    out = out or os.path.join(workdir, 'visualize')
    os.makedirs(out, exist_ok=True)
    name = f'{record["config"].get("algorithm", "")} {env_name}, step {step}'
    figures = {
        'frames.png': visualization.frames_figure(frames, [f'I_{k}' for k in range(pairs + 1)]),
        'flows.png': visualization.flows_figure(pixels, titles=[f'c_{k + 1}->{k}'
                                                                for k in range(pairs)]),
        'warped.png': visualization.warp_figure(frames[:-1], warped, frames[1:], titles),
        'overview.png': visualization.correspondence_figure(
            frames[:-1], frames[1:], pixels, warped, titles=titles,
            suptitle=f'{name}: external flows of C on real frames\n{describe_checks(checks)}'),
    }
    paths = []
    for filename, fig in figures.items():
        paths.append(os.path.join(out, filename))
        visualization.save_png(fig, paths[-1], dpi)
    return {'png': paths, 'step': step, 'checks': checks,
            'photometric': float(np.abs(frames[1:] - warped).mean()),
            'photometric_zero_flow': float(np.abs(frames[1:] - frames[:-1]).mean()),
            'flow_magnitude': float(np.linalg.norm(pixels, axis=-1).mean())}


def describe_checks(checks: dict) -> str:
    """C's ground-truth checks in one line (pixels; MinAtar: cells)."""
    text = (f'c_shift_epe {checks["c_shift_epe"]:.2f} (zero flow {checks["c_shift_epe_zero"]:.2f}), '
            f'c_warp_gain {checks["c_warp_gain"]:.2f}')
    if 'c_object_epe' in checks:
        text += (f', c_object_epe {checks["c_object_epe"]:.2f} '
                 f'(zero flow {checks["c_object_epe_zero"]:.2f})')
    return text


def parse_flags(argv):
    """Parses our flags (bad ones: one line 'error: ...', exit 2); absl's own keep defaults."""
    try:
        remaining = _FLAGS(argv)
    except flags.Error as err:
        print(f'error: {err}', file=sys.stderr)
        sys.exit(2)
    flags.FLAGS(remaining[:1])
    return remaining


def main(argv):
    if len(argv) > 1:
        print(f'error: unexpected arguments: {" ".join(argv[1:])}', file=sys.stderr)
        sys.exit(2)
    logging.set_verbosity(logging.WARNING)    # orbax logs every restore at INFO
    try:
        result = visualize(_FLAGS.workdir, _FLAGS.out, _FLAGS.pairs, _FLAGS.warmup,
                           _FLAGS.seed_index, _FLAGS.dpi)
    except UsageError as err:
        print(f'error: {err}', file=sys.stderr)
        sys.exit(2)
    print(f'checkpoint at step {result["step"]}: photometric error '
          f'{result["photometric"]:.4f} with C\'s flows, {result["photometric_zero_flow"]:.4f} '
          f'with zero flow; mean flow {result["flow_magnitude"]:.2f} px')
    print(describe_checks(result['checks']))
    for path in result['png']:
        print(path)


if __name__ == '__main__':
    app.run(main, flags_parser=parse_flags)
