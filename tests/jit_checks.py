"""jit and vmap agree with the plain call: the check the loss and transform tests share."""
import jax
import jax.numpy as jnp
import numpy as np


def check_jit_and_vmap(fn, *args):
    """fn over arrays [B, ...]: jit(fn) == fn, and vmap over an extra leading axis == a loop.

    The vmapped stack pairs each argument with its batch reversed; the loop reuses jit(fn) (same
    shapes, one compile) once it is shown equal to the plain call.
    """
    plain = np.asarray(fn(*args))
    jitted = jax.jit(fn)
    np.testing.assert_allclose(jitted(*args), plain, atol=1e-6, rtol=1e-6)
    stacked = [jnp.stack([a, a[::-1]]) for a in args]
    batched = np.asarray(jax.jit(jax.vmap(fn))(*stacked))
    looped = np.stack([np.asarray(jitted(*[s[i] for s in stacked])) for i in range(2)])
    np.testing.assert_allclose(batched, looped, atol=1e-6, rtol=1e-6)
