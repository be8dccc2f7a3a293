"""Trains PSRL (or a baseline preset) on one Atari game under the Atari 100k protocol.

  python -m experiments.train_atari --env=Pong --seed=0 --total_steps=100000 --workdir=runs/pong
  python -m experiments.train_atari --config=experiments/configs/atari.py:spr --workdir=runs/spr
The agent is SPR's data-efficient Rainbow (psrl_jax.agents.rainbow) with the config's objective.
"""
import functools

from absl import app

from experiments import launch
from experiments.configs import atari as atari_config
from psrl_jax import host_memory
from psrl_jax.envs.atari import make_atari

launch.define_flags(config_file='atari.py', **atari_config.LAUNCH_DEFAULTS)


def main(_):
    launch.main('atari', lambda name, n, seed: make_atari(name, n, seed, training=True),
                functools.partial(launch.make_eval_env, 'atari'))


if __name__ == '__main__':
    host_memory.restart_with_huge_pages()
    app.run(main, flags_parser=launch.parse_flags)
