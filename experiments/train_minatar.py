"""Trains PSRL (or a baseline preset) on one MinAtar game: the CPU proving ground.

  python -m experiments.train_minatar --env=breakout --num_seeds=5 --workdir=runs/breakout
  python -m experiments.train_minatar --config=experiments/configs/minatar.py:rainbow --workdir=...
The agent is SPR's data-efficient Rainbow (psrl_jax.agents.rainbow) with MinAtar's network and the
config's objective; games: asterix, breakout, freeway, seaquest, space_invaders.
"""
from absl import app

from experiments import launch
from psrl_jax.envs.minatar import make_minatar

launch.define_flags(env='breakout', config_file='minatar.py', total_steps=100_000,
                    learning_starts=1000, eval_episodes=100, eval_every=10_000,
                    checkpoint_every=25_000)


def main(_):
    launch.main('minatar', lambda name, n, seed: make_minatar(name, n, seed),
                lambda name, n, seed: make_minatar(name, n, seed))


if __name__ == '__main__':
    app.run(main, flags_parser=launch.parse_flags)
