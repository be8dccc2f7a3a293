"""Trains PSRL (or a baseline preset) on a DMControl task from pixels (PlaNet benchmark protocol).

  python -m experiments.train_dmc --env=cartpole-swingup --seed=0 --total_steps=100000 \
      --workdir=runs/cartpole
  python -m experiments.train_dmc --config=experiments/configs/dmc.py:drq --workdir=runs/drq
Steps are environment steps (action repeat counted). The agent is DrQ's SAC
(psrl_jax.agents.sac) with the config's objective on its encoder.
"""
import functools

from absl import app

from experiments import launch
from experiments.configs import dmc as dmc_config
from psrl_jax import host_memory
from psrl_jax.envs.dmc import make_dmc

launch.define_flags(config_file='dmc.py', **dmc_config.LAUNCH_DEFAULTS)


def main(_):
    launch.main('dmc', lambda name, n, seed: make_dmc(name, n, seed),
                functools.partial(launch.make_eval_env, 'dmc'))


if __name__ == '__main__':
    host_memory.restart_with_huge_pages()
    app.run(main, flags_parser=launch.parse_flags)
