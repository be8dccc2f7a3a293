"""Trains PSRL (or a baseline preset) on one MinAtar game: the CPU proving ground.

  python -m experiments.train_minatar --env=breakout --num_seeds=5 --workdir=runs/breakout
  python -m experiments.train_minatar --config=experiments/configs/minatar.py:rainbow --workdir=...
The agent is SPR's data-efficient Rainbow (psrl_jax.agents.rainbow) with MinAtar's network and the
config's objective; games: asterix, breakout, freeway, seaquest, space_invaders.
"""
import functools

from absl import app

from experiments import launch
from experiments.configs import minatar as minatar_config
from psrl_jax import host_memory
from psrl_jax.envs.minatar import make_minatar

launch.define_flags(config_file='minatar.py', **minatar_config.LAUNCH_DEFAULTS)


def main(_):
    launch.main('minatar', lambda name, n, seed: make_minatar(name, n, seed),
                functools.partial(launch.make_eval_env, 'minatar'))


if __name__ == '__main__':
    host_memory.restart_with_huge_pages()
    app.run(main, flags_parser=launch.parse_flags)
