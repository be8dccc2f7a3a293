"""Trains PSRL (or a baseline preset) on a DMControl task from pixels (PlaNet benchmark protocol).

  python -m experiments.train_dmc --env=cartpole-swingup --seed=0 --total_steps=100000 \
      --workdir=runs/cartpole
  python -m experiments.train_dmc --config=experiments/configs/dmc.py:drq --workdir=runs/drq
Steps are environment steps (action repeat counted). The agent is DrQ's SAC
(psrl_jax.agents.sac) with the config's objective on its encoder.
"""
from absl import app

from experiments import launch
from psrl_jax.envs.dmc import make_dmc

launch.define_flags(env='cartpole-swingup', config_file='dmc.py', total_steps=100_000,
                    learning_starts=1000, eval_episodes=10, eval_every=10_000,
                    checkpoint_every=50_000)


def main(_):
    launch.main('dmc', lambda name, n, seed: make_dmc(name, n, seed),
                lambda name, n, seed: make_dmc(name, n, seed))


if __name__ == '__main__':
    app.run(main, flags_parser=launch.parse_flags)
