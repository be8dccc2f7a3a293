"""Reference policies that say whether an agent learned: uniformly random and every constant action.

An agent that only found the best constant action (Atari RoadRunner's always-UPLEFT scores 980 while
random scores 11.5) has not learned much; its returns are judged against both. The policies run
through training.evaluate, the code that evaluates the agents, on the same evaluation envs.
"""
from typing import Callable, Dict, NamedTuple, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from psrl_jax import training


class Policy(NamedTuple):
    """What training.evaluate reads from an agent: its evaluation policy and action shape."""
    evaluate_act: Callable
    action_shape: Tuple[int, ...] = ()


def random_policy(num_actions: int) -> Policy:
    """Uniform over num_actions discrete actions: observations [B, ...] -> int32 [B]."""
    return Policy(lambda state, observations, key: jax.random.randint(
        key, observations.shape[:1], 0, num_actions, jnp.int32))


def constant_policy(action: int) -> Policy:
    """Always `action`: observations [B, ...] -> int32 [B]."""
    return Policy(lambda state, observations, key: jnp.full(observations.shape[:1], action,
                                                            jnp.int32))


def baseline_returns(make_eval_env: Callable[[int, int], object], num_actions: int,
                     episodes: int, seed: int) -> Dict:
    """Raw returns of the random policy and of each constant action over `episodes` games.

    make_eval_env(num_envs, seed) builds evaluation envs as the launchers do. Returns {'random':
    mean, 'random_std', 'constant': [mean per action], 'constant_std': [std per action],
    'best_constant_action': a, 'best_constant': mean, 'best_constant_std', 'episodes': episodes}
    (standard deviations over the games).
    """
    def returns(policy: Policy, key: jnp.ndarray) -> np.ndarray:
        env = make_eval_env(episodes, seed)
        try:
            return training.evaluate(policy, jnp.zeros((1,)), env, episodes, key)[0]
        finally:
            env.close()

    keys = jax.random.split(jax.random.PRNGKey(seed), num_actions + 1)
    constant = [returns(constant_policy(a), keys[a + 1]) for a in range(num_actions)]
    random = returns(random_policy(num_actions), keys[0])
    best = int(np.argmax([r.mean() for r in constant]))
    return {'random': float(random.mean()), 'random_std': float(random.std()),
            'constant': [float(r.mean()) for r in constant],
            'constant_std': [float(r.std()) for r in constant],
            'best_constant_action': best, 'best_constant': float(constant[best].mean()),
            'best_constant_std': float(constant[best].std()), 'episodes': episodes}
