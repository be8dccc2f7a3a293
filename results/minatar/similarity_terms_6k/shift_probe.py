"""Made shift_probe.json: how much of a trained agent's projected representation is the augmentation's shift.

    PYTHONPATH=. python results/minatar/similarity_terms_6k/shift_probe.py <root of the 6k runs>

For each run (its last checkpoint, built from its config.json's preset and psrl switches): 401
breakout observations of seed 123 under uniformly random actions; y = phi(psi(conv1x1(E(o)))) as
psrl_objective makes y^{q,*}. cos_y_two_shifts: mean cosine between y of two independent grid
shifts of the same observation (pairs whose draws differ); cos_y_next_frame: between y of
consecutive unshifted observations.
"""
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from experiments import cost, launch, repository
from experiments.configs import minatar as minatar_configs
from psrl_jax import losses, psrl, training, transforms
from psrl_jax.envs.minatar import make_minatar

RUNS = ('psrl', 'no_lc', 'cfg_off', 'lsim1', 'no_l1', 'aug_seq', 'no_cat', 'aat1')


def probe(run_dir: str, observations: jnp.ndarray) -> dict:
    record = json.load(open(os.path.join(run_dir, 'config.json')))['config']
    preset = record['algorithm']
    config = minatar_configs.get_config(preset)
    config.psrl.update(record['psrl'])
    objective = launch.objective(config, cost.SPECS['minatar'], 'minatar')
    agent = cost.build('minatar', preset, objective=dict(record['psrl']))
    carry, _ = training.load_checkpoint(run_dir, agent, 1, (10, 10, 4), 4)
    params = jax.tree.map(lambda x: x[0], carry.agent.params)
    m = psrl.make_modules(objective)

    def project(o):
        z = m.conv1x1.apply(params['conv1x1'], m.encoder.apply(params['encoder'], o))
        return m.predictor.apply(params['predictor'], m.projection.apply(params['projection'], z))

    key_a, key_b = jax.random.split(jax.random.PRNGKey(0))
    a = transforms.augment(key_a, observations, ('grid_shift',))
    b = transforms.augment(key_b, observations, ('grid_shift',))
    differ = ~jnp.all(a == b, axis=(1, 2, 3))
    clean = project(transforms.augment(key_a, observations, ()))
    cosine = lambda u, v: -losses.cosine_similarity_loss(u, v)
    return {'cos_y_two_shifts': round(float(cosine(project(a), project(b))[differ].mean()), 3),
            'cos_y_next_frame': round(float(cosine(clean[:-1], clean[1:]).mean()), 3),
            'pairs': int(differ.sum())}


def main(root: str) -> None:
    env = make_minatar('breakout', 1, 123)
    frames, rng = [env.reset()[0]], np.random.default_rng(0)
    for _ in range(400):
        frames.append(env.step(rng.integers(0, 6, 1)).observation[0])
    observations = jnp.asarray(np.stack(frames))
    out = {'device': training.device_name(), 'commit': repository.git_commit(), 'observations': len(frames),
           'runs': {name: probe(os.path.join(root, name), observations) for name in RUNS
                    if os.path.exists(os.path.join(root, name, 'checkpoints'))}}
    print(json.dumps(out, indent=1))


if __name__ == '__main__':
    main(sys.argv[1])
