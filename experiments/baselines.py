"""The returns a learning agent must beat: the uniformly random policy and the best constant action.

  python -m experiments.baselines --suite=minatar --env=breakout --episodes=100 \
      --out=results/minatar/baselines/breakout.json

Runs psrl_jax.baselines on the evaluation envs a launch with --seed evaluates on
(training.evaluation_seed). Prints one line; --out saves the result as JSON (with the standard
deviations and every constant action's return).
"""
import json
import os
import sys

from absl import app
from absl import flags
from absl import logging

from experiments import launch
from psrl_jax import baselines, training
from psrl_jax.errors import UsageError

FLAGS = flags.FLAGS
flags.DEFINE_enum('suite', 'minatar', ['atari', 'minatar'], 'Suite (discrete actions only).')
flags.DEFINE_string('env', 'breakout', 'Game of the suite.')
flags.DEFINE_integer('episodes', 100, 'Games per policy.')
flags.DEFINE_integer('seed', 0, 'The run seed whose evaluation envs are played.')
flags.DEFINE_string('out', None, 'JSON file to write the result to.')


def main(_):
    logging.set_verbosity(logging.WARNING)
    try:
        if FLAGS.episodes < 1:
            raise UsageError(f'--episodes must be >= 1, got {FLAGS.episodes}')
        make_env = lambda n, seed: launch.make_eval_env(FLAGS.suite, FLAGS.env, n, seed)
        probe = make_env(1, FLAGS.seed)          # raises UsageError for an unknown game
        num_actions = probe.num_actions
        probe.close()
    except UsageError as err:
        print(f'error: {err}', file=sys.stderr)
        sys.exit(2)
    result = baselines.baseline_returns(make_env, num_actions, FLAGS.episodes,
                                        training.evaluation_seed(FLAGS.seed, FLAGS.episodes))
    result = {'suite': FLAGS.suite, 'env': FLAGS.env, 'seed': FLAGS.seed,
              'device': training.device_name(), **result}
    print(f'{FLAGS.env}: random {result["random"]:.2f}, best constant action '
          f'{result["best_constant_action"]} {result["best_constant"]:.2f} '
          f'(over {FLAGS.episodes} games)')
    if FLAGS.out:
        os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
        with open(FLAGS.out, 'w') as f:
            json.dump(result, f, indent=1)


if __name__ == '__main__':
    app.run(main)
