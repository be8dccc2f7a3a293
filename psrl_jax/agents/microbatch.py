"""Gradients of a batch-mean loss accumulated over equal chunks of the batch (micro-batches).

The learner's memory grows with the batch times the frames PSRL encodes with gradients (M + 1 per
example); accumulating the gradient over chunks gives the same gradient in a fraction of the memory.
"""
from typing import Any, Callable, Dict, Tuple

import jax
import jax.numpy as jnp


def microbatched_grad(loss_fn: Callable, params: Any, data: Any, microbatches: int
                      ) -> Tuple[Any, Any, Dict[str, jnp.ndarray]]:
    """The gradient of loss_fn over `data`, computed `microbatches` examples-chunks at a time.

    loss_fn(params, chunk) -> (loss, (per_example, metrics)): loss is the chunk's sum of
    per-example losses divided by the whole batch size (so the chunks' losses add up to the batch
    mean); per_example: a pytree of [b, ...] arrays; metrics: a dict of means over the chunk.
    data: a pytree of arrays with a leading batch axis B, a multiple of microbatches.
    Returns (grads, per_example [B, ...], metrics averaged over the chunks). With one micro-batch
    it is jax.grad(loss_fn, has_aux=True)(params, data); with more, the chunks run one after the
    other in a lax.scan, so only one chunk's activations are alive at a time.
    """
    grad_fn = jax.grad(loss_fn, has_aux=True)
    if microbatches == 1:
        grads, (per_example, metrics) = grad_fn(params, data)
        return grads, per_example, metrics
    batch = jax.tree.leaves(data)[0].shape[0]
    if batch % microbatches:
        raise ValueError(f'the batch size {batch} is not a multiple of microbatches={microbatches}')
    chunks = jax.tree.map(lambda x: x.reshape((microbatches, -1) + x.shape[1:]), data)

    def accumulate(total, chunk):
        grads, aux = grad_fn(params, chunk)
        return jax.tree.map(jnp.add, total, grads), aux

    grads, (per_example, metrics) = jax.lax.scan(accumulate, jax.tree.map(jnp.zeros_like, params),
                                                 chunks)
    per_example = jax.tree.map(lambda x: x.reshape((batch,) + x.shape[2:]), per_example)
    return grads, per_example, jax.tree.map(lambda m: m.mean(axis=0), metrics)
