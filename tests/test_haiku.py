"""The losses and transforms do not depend on flax: a haiku model's features go through them."""
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from psrl_jax import losses, transforms


def encoder(x):
    """A small haiku conv net: [B, 16, 16, 3] -> [B, 8, 8, 16]."""
    x = jax.nn.relu(hk.Conv2D(16, 3, stride=2)(x))
    return hk.Conv2D(16, 3)(x)


def test_haiku_features_through_the_losses_under_jit_and_grad():
    model = hk.without_apply_rng(hk.transform(encoder))
    key = jax.random.PRNGKey(0)
    frames = jax.random.uniform(key, (2, 3, 16, 16, 3))  # [B, M+2, H, W, c] with M = 1
    params = model.init(key, frames[:, 0])

    def loss(params):
        z = jax.vmap(lambda f: model.apply(params, f), in_axes=1, out_axes=1)(frames)
        volume = transforms.correlation_volume(z[:, 1], z[:, 0], 2)
        coarse = transforms.flow_from_volume(volume, 2, 5.0)
        flows = jnp.stack([transforms.upsample_flow(coarse, 16, 16)] * 2, axis=1)
        l_c = losses.correspondence_loss(frames, flows, flows[:, 0], jnp.ones((2, 3), bool), 0.01)
        z_tr = transforms.warp(z[:, 0], coarse)
        y = lambda t: t.reshape(2, -1)[:, :32]
        l_sim = losses.paired_similarity_loss(y(z_tr), y(z[:, 0]), y(z[:, 1]), z_tr, z[:, 0],
                                              z[:, 1])
        return jnp.mean(l_c + l_sim)

    value, grads = jax.jit(jax.value_and_grad(loss))(params)
    np.testing.assert_allclose(float(value), float(loss(params)), rtol=1e-4)
    norms = [float(jnp.abs(g).sum()) for g in jax.tree.leaves(grads)]
    assert np.isfinite(float(value)) and all(np.isfinite(norms)) and all(n > 0 for n in norms)
