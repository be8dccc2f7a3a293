"""Each loss term's share of a trained run's gradient, per parameter group, on its own replay.

  python -m experiments.gradient_shares --workdir=runs/pong [--step=8000] [--batches=4]

Reads the run's config.json, rebuilds its agent as the launcher does, restores a checkpoint (the
latest unless --step) with its replay, and on --batches replay batches sampled as the learner samples
them (the importance exponent of the checkpoint's step) splits the learner's gradient into the RL
loss's (Atari, MinAtar: Rainbow's C51 loss; DMControl: SAC's twin-critic TD loss, whose optimizer
trains the encoder; the actor's own step is not split), lambda_sim L_sim's and lambda_c L_c's
(terms.term_gradients). Prints, per parameter group (encoder, correspondence, q_head or critic, ...),
the mean norm of each term's gradient, and on the encoder the cosine of L_c's gradient with the other
terms' together; the last line is one JSON object, --out also saves it. Adam scales each weight by
the whole gradient's size, so a term whose gradient on a shared weight is a small share of it barely
moves that weight (WORKSPACE_NOTES.md, "C against ground truth"). Bad input prints one line
'error: ...' and exits 2.
"""
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import app
from absl import flags
from absl import logging

from experiments import launch, repository
from experiments.visualize import read_run, run_loop
from psrl_jax import replay, training
from psrl_jax.agents.terms import TERMS, term_gradients
from psrl_jax.errors import UsageError
from psrl_jax.evaluation import runs

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'Run directory of experiments.train_atari, train_minatar or train_dmc.')
flags.DEFINE_integer('step', None, "The checkpoint's agent step (default: the latest).")
flags.DEFINE_integer('batches', 4, 'Replay batches the norms are averaged over.')
flags.DEFINE_integer('seed_index', 0, 'Which agent of a --num_seeds run.')
flags.DEFINE_string('out', None, 'JSON file to write the result to (also printed).')


def shares(workdir: str, step, batches: int, seed_index: int) -> dict:
    """{'step', 'norms': {group: {term: mean norm}}, 'encoder_cos_c_rest', ...} of a run."""
    if batches < 1:
        raise UsageError(f'--batches must be >= 1, got {batches}')
    record = read_run(workdir)
    suite = runs.env_suite(record['flags']['env'])
    num_seeds = int(record['flags'].get('num_seeds', 1))
    if not 0 <= seed_index < num_seeds:
        raise UsageError(f'--seed_index must lie in [0, {num_seeds}), got {seed_index}')
    config = ml_collections.ConfigDict(record['config'])
    env = launch.make_eval_env(suite, record['flags']['env'], 1, int(record['flags']['seed']))
    try:
        loop = run_loop(record, env)
        agent = launch.build_agent(suite, config, env, loop)
        module, agent_config = launch.agent_config(suite, config, env, loop)
        carry, host = training.load_checkpoint(workdir, agent, num_seeds, env.observation_shape,
                                               env.frame_channels, step)
    finally:
        env.close()
    state, buffer = jax.tree.map(lambda x: jnp.asarray(x[seed_index]), (carry.agent, carry.replay))
    beta = np.float32(agent.priority_weight(int(host['step'])))

    @jax.jit
    def measure(state, buffer, key):
        key_sample, key_update = jax.random.split(key)
        batch, _, weights = replay.sample(buffer, agent.replay, key_sample, beta)
        parts = term_gradients(module.gradients, state, batch, weights, key_update, agent_config)
        norms = {group: {term: optax.global_norm(parts[term][group]) for term in TERMS}
                 for group in state.params}
        flat = lambda tree: jnp.concatenate([x.ravel() for x in jax.tree.leaves(tree)])
        c = flat(parts['c']['encoder'])
        rest = flat(parts['rl']['encoder']) + flat(parts['sim']['encoder'])
        cos = c @ rest / jnp.maximum(jnp.linalg.norm(c) * jnp.linalg.norm(rest), 1e-30)
        return norms, cos

    results = [measure(state, buffer, jax.random.PRNGKey(i)) for i in range(batches)]
    mean = lambda values: float(np.mean([float(v) for v in values]))
    return {'workdir': workdir, 'step': int(host['step']), 'batches': batches,
            'updates': int(state.updates),
            'norms': {group: {term: mean([r[0][group][term] for r in results]) for term in TERMS}
                      for group in sorted(state.params)},
            'encoder_cos_c_rest': mean([r[1] for r in results]),
            'rl_loss': module.RL_LOSS,
            'lambda_sim': agent_config.psrl.lambda_sim, 'lambda_c': agent_config.psrl.lambda_c,
            'device': training.device_name(), 'commit': repository.git_commit()}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
    logging.set_verbosity(logging.ERROR)    # orbax logs every read-only restore at INFO and WARNING
    try:
        result = shares(FLAGS.workdir, FLAGS.step, FLAGS.batches, FLAGS.seed_index)
    except UsageError as err:
        print(f'error: {err}', file=sys.stderr)
        sys.exit(2)
    print(f'{result["workdir"]} at agent step {result["step"]} ({result["updates"]} updates), mean '
          f'gradient norms over {result["batches"]} replay batches:')
    rl = f'RL ({result["rl_loss"]})'
    print(f'{"group":16s} {rl:>14s} {"L_sim x lam":>12s} {"L_c x lam":>10s}')
    for group, norms in result['norms'].items():
        print(f'{group:16s} {norms["rl"]:14.3e} {norms["sim"]:12.3e} {norms["c"]:10.3e}')
    print(f'cosine of L_c\'s encoder gradient with the other terms\': '
          f'{result["encoder_cos_c_rest"]:.3f}')
    launch.print_json(result, FLAGS.out)


if __name__ == '__main__':
    app.run(main)
