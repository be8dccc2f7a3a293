"""Each loss term's part of an agent's gradient (experiments.gradient_shares)."""
import dataclasses
from typing import Any, Callable, Dict

import chex
import jax
import jax.numpy as jnp

TERMS = ('rl', 'sim', 'c')


def term_gradients(gradients: Callable, state, batch, weights: jnp.ndarray, key: chex.PRNGKey,
                   config) -> Dict[str, Any]:
    """An agent's learner gradient split by term: {'rl', 'sim', 'c'}, the RL loss's (rainbow: C51;
    sac: the twin critics' TD), lambda_sim L_sim's and lambda_c L_c's, each a pytree like the
    params; they add up to the gradient the learner steps along.

    gradients: rainbow.gradients or sac.gradients, (state, batch, weights, key, config) -> (grads,
    ...). The loss is linear in lambda_sim and lambda_c, so with the same batch and key the 'c' part
    is the gradient less the one with lambda_c = 0, and 'sim' that one less the one with lambda_sim
    = 0 too.
    """
    without = lambda **zero: dataclasses.replace(config, psrl=dataclasses.replace(config.psrl, **zero))
    full, no_c, rl = (gradients(state, batch, weights, key, c)[0] for c in (
        config, without(lambda_c=0.0), without(lambda_c=0.0, lambda_sim=0.0)))
    return {'rl': rl, 'sim': jax.tree.map(jnp.subtract, no_c, rl),
            'c': jax.tree.map(jnp.subtract, full, no_c)}
