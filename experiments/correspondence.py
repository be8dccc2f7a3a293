"""How well C learns correspondences on real frames, by its ground-truth checks, for a config.

  python -m experiments.correspondence --suite=dmc --env=cheetah-run \
      --config=experiments/configs/dmc.py:psrl --config.psrl.correspondence_resolution=0 ...

Plays random actions in one env of the suite (episodes one after the other; samples stay inside
one), trains the encoder and C with Adam on the agent's L_c alone (--objective=lc: psrl.psrl_loss
with CAT, AAT and the L1 terms off: the external maps over the horizon and the internal map, on
frames augmented as the agent augments them) or on PSRL's whole self-supervised objective as the
config sets it (--objective=full: L_sim through CAT and AAT, the L1 terms and lambda_c L_c on the
played actions, no RL loss; so CAT's gradient into C, `cat_flow_gradients`, and `lambda_c` can be
compared; the target is the online network itself, SPR's (the default, as the recorded results), or
with --target_tau an EMA of it, as every suite's psrl preset (Atari's since 2026-12-06)), and reports
C's checks (diagnostics.correspondence_checks: c_shift_epe, c_shift_epe_zero, c_warp_gain;
c_object_epe on MinAtar; with --objective=full also L_sim's y_shift_cos,
diagnostics.similarity_checks) on held-out frames of the same episode before and after training
(--check_every: also along the way, and the objective's terms averaged over the steps since the last
check, the result's "terms"). The last line is one JSON object; --out also saves it.
"""
import dataclasses
import datetime
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app
from absl import flags
from ml_collections import config_flags

from experiments import launch, repository
from psrl_jax import diagnostics, psrl, training
from psrl_jax.errors import UsageError

SUITES = ('atari', 'dmc', 'minatar')
FLAGS = flags.FLAGS
flags.DEFINE_enum('suite', 'dmc', list(SUITES), 'Environment suite.')
flags.DEFINE_string('env', 'cheetah-run', 'Game or task of the suite.')
flags.DEFINE_integer('frames', 96, 'Consecutive frames played (the last quarter is held out).')
flags.DEFINE_integer('warmup', 30, 'Random steps before the frames are taken.')
flags.DEFINE_integer('steps', 300, 'Adam steps on the objective.')
flags.DEFINE_enum('objective', 'lc', ['lc', 'full'],
                  "What is trained: 'lc', the agent's L_c alone; 'full', PSRL's whole "
                  "self-supervised objective as the config sets it.")
flags.DEFINE_integer('check_every', 0, 'Also run the checks every this many steps (0: only before '
                     'and after training); the result\'s "curve" lists them with their step.')
flags.DEFINE_integer('batch_size', 8, 'Subsequences per step.')
flags.DEFINE_float('learning_rate', 3e-3, 'Adam learning rate.')
flags.DEFINE_float('target_tau', 1.0, "The target network's update weight each step: 1, the online "
                   "network itself (SPR's); below 1, an EMA of it (the psrl presets: 0.01).")
flags.DEFINE_integer('seed', 0, 'Seed of the env, the initialisation and the sampling.')
flags.DEFINE_string('out', None, 'JSON file to write the result to (also printed).')
config_flags.DEFINE_config_file('config', None, 'The suite config (file:preset) whose objective '
                                'is trained, e.g. experiments/configs/dmc.py:psrl.')


def play(suite: str, name: str, frames: int, warmup: int, seed: int):
    """uint8 [frames, H, W, C] observations under random actions, their episode numbers [frames]
    (a new one after every episode end; the reset's pseudo-step is dropped), the actions taken at
    them ([frames] int or [frames, A] float; the last one's successor is not kept), and the env."""
    env = launch.make_eval_env(suite, name, 1, seed)
    rng = np.random.default_rng(seed)
    random_action = lambda: (rng.integers(0, env.num_actions, 1) if env.num_actions is not None
                             else rng.uniform(-1, 1, (1, env.action_dim)))
    observations, episodes, actions, episode = [env.reset()[0]], [0], [], 0
    while len(observations) < warmup + frames:
        action = random_action()
        timestep = env.step(action)
        if not timestep.valid[0]:   # the first observation of the next episode
            episode += 1
            observations[-1], episodes[-1] = timestep.observation[0], episode
            continue
        actions.append(action[0])
        observations.append(timestep.observation[0])
        episodes.append(episode)
    actions.append(random_action()[0])
    env.close()
    return (np.stack(observations[warmup:]), np.asarray(episodes[warmup:]),
            np.stack(actions[warmup:]), env)


def subsequences(observations: np.ndarray, episodes: np.ndarray, actions: np.ndarray,
                 length: int):
    """Every window of `length` consecutive observations inside one episode, [n, length, ...], and
    the actions between them, [n, length - 1, ...]."""
    starts = [i for i in range(len(observations) - length + 1)
              if episodes[i] == episodes[i + length - 1]]
    if not starts:
        raise UsageError(f'no {length} consecutive frames inside one episode: use more --frames')
    return (np.stack([observations[i:i + length] for i in starts]),
            np.stack([actions[i:i + length - 1] for i in starts]))


def make_step(objective: psrl.PSRLConfig, optimizer: optax.GradientTransformation, tau: float):
    """One optimizer step on the objective: (params, target, opt_state, batch, key) -> (params, target,
    opt_state, metrics with 'loss'). As in the agent, no gradient reaches the target network, also
    when it is the online network itself (tau = 1: its values, under stop-gradient); after the step
    it moves tau of the way to the new params."""
    def loss_fn(p, target, batch, k):
        loss, metrics = psrl.psrl_loss(p, target, batch, k, objective)
        return loss.mean(), metrics

    def step(p, target, s, batch, k):
        (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, target, batch, k)
        updates, s = optimizer.update(grads, s, p)
        p = optax.apply_updates(p, updates)
        return p, optax.incremental_update(p, target, tau), s, metrics | {'loss': loss}
    return step


def run(config, suite: str, name: str) -> dict:
    observations, episodes, actions, env = play(suite, name, FLAGS.frames, FLAGS.warmup,
                                                FLAGS.seed)
    objective = launch.objective(config, env, suite)
    if FLAGS.objective == 'lc':
        objective = dataclasses.replace(objective, cat=False, aat=False, l1=False)
    length = objective.sequence_length
    split = FLAGS.frames * 3 // 4
    train, train_actions = map(jnp.asarray, subsequences(observations[:split], episodes[:split],
                                                         actions[:split], length))
    held_out = jnp.asarray(subsequences(observations[split:], episodes[split:], actions[split:],
                                        max(length, 2))[0])
    key = jax.random.PRNGKey(FLAGS.seed)
    params = psrl.init_params(key, objective, observations.shape[1:])
    optimizer = optax.adam(FLAGS.learning_rate)
    state = optimizer.init(params)
    tau = FLAGS.target_tau
    train_step = make_step(objective, optimizer, tau)

    @jax.jit
    def step(p, target, s, k):
        k_batch, k_aug = jax.random.split(k)
        index = jax.random.randint(k_batch, (FLAGS.batch_size,), 0, train.shape[0])
        observation = train[index]
        return train_step(p, target, s, psrl.PSRLBatch(observation, train_actions[index],
                                                       jnp.ones(observation.shape[:2], bool)), k_aug)

    same_episode = jnp.ones(held_out.shape[:2], bool)
    object_channel = getattr(env, 'object_channel', None)
    similarity = objective.cat or objective.aat    # --objective=full: L_sim's y_shift_cos too
    checks = jax.jit(lambda p, k: diagnostics.correspondence_checks(
        p, held_out, same_episode, k, objective, object_channel) | (
            diagnostics.similarity_checks(p, held_out, k, objective) if similarity else {}))
    check_key = jax.random.PRNGKey(FLAGS.seed + 1)
    measure = lambda p, steps: {'step': steps} | {k: float(v) for k, v in checks(p, check_key).items()}
    curve = [measure(params, 0)]
    start, losses, seconds, terms, window = time.time(), [], 0.0, [], []
    target = params
    for i in range(FLAGS.steps):
        params, target, state, metrics = step(params, target, state, jax.random.fold_in(key, i))
        window.append({k: float(v) for k, v in metrics.items()})
        losses.append(window[-1]['loss'])
        if i + 1 == FLAGS.steps or (FLAGS.check_every and (i + 1) % FLAGS.check_every == 0):
            seconds += time.time() - start
            curve.append(measure(params, i + 1))
            terms.append({'step': i + 1} | {k: float(np.mean([row[k] for row in window]))
                                            for k in window[0]})
            start, window = time.time(), []
    drop_step = lambda row: {k: v for k, v in row.items() if k != 'step'}
    return {'suite': suite, 'env': name, 'steps': FLAGS.steps, 'frames': FLAGS.frames,
            'objective_trained': FLAGS.objective, 'target_tau': tau,
            'loss_first': losses[0] if losses else None,
            'loss_last': float(np.mean(losses[-20:])) if losses else None,
            'before': drop_step(curve[0]), 'after': drop_step(curve[-1]),
            'curve': curve if FLAGS.check_every else None,
            'terms': terms if FLAGS.check_every else None, 'train_seconds': round(seconds, 1),
            'objective': {k: v for k, v in dataclasses.asdict(objective).items()
                          if not isinstance(v, tuple)} | {'augmentation': objective.augmentation},
            'device': training.device_name(), 'commit': repository.git_commit(),
            'date': datetime.date.today().isoformat()}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
    try:
        if FLAGS.config is None:
            raise UsageError('--config is required, e.g. experiments/configs/dmc.py:psrl')
        for name in ('steps', 'check_every'):
            if FLAGS[name].value < 0:
                raise UsageError(f'--{name} must be >= 0, got {FLAGS[name].value}')
        if not 0 < FLAGS.target_tau <= 1:
            raise UsageError(f'--target_tau must be in (0, 1], got {FLAGS.target_tau}')
        result = run(FLAGS.config, FLAGS.suite, FLAGS.env)
    except UsageError as err:
        print(f'error: {err}', file=sys.stderr)
        sys.exit(2)
    launch.print_json(result, FLAGS.out)


if __name__ == '__main__':
    app.run(main)
