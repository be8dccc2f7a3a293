"""The correspondence module learns: trained self-supervised on shifted frames, it recovers the shift.

Frame b is frame a shifted by a known integer (dx, dy) in [-4, 4]^2 (a different shift per pair),
so the true flow a -> b is (dx, dy) everywhere. C (as the DMControl config builds it) and the DrQ
encoder are trained with Adam on the reconstruction loss only (no flow labels); the mean end-point
error inside the image must fall below half a pixel.
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.configs import dmc
from psrl_jax import losses, networks, transforms

SIZE, BATCH, MAX_SHIFT, STEPS = 48, 8, 4, 400


def textured_frames(key, n):
    """Smooth random images with full contrast, larger than SIZE by the shift margin: [n, S, S, 9]."""
    big = SIZE + 2 * MAX_SHIFT
    noise = jax.random.uniform(key, (n, big + 8, big + 8, 9))
    box = jnp.ones((9, 9)) / 81.0
    blur = jax.vmap(jax.vmap(lambda c: jax.scipy.signal.convolve2d(c, box, mode='valid'),
                             in_axes=-1, out_axes=-1))(noise)
    low = blur.min(axis=(1, 2, 3), keepdims=True)
    high = blur.max(axis=(1, 2, 3), keepdims=True)
    return (blur - low) / (high - low)


def shifted_pairs(key):
    """(a, b, shift [B, 2] as (dx, dy)) with b(p) = a(p - shift), so a(p) = b(p + shift)."""
    key_image, key_shift = jax.random.split(key)
    image = textured_frames(key_image, BATCH)
    shift = jax.random.randint(key_shift, (BATCH, 2), -MAX_SHIFT, MAX_SHIFT + 1)
    crop = lambda im, y, x: jax.lax.dynamic_slice(im, (y, x, 0), (SIZE, SIZE, 9))
    a = jax.vmap(lambda im: crop(im, MAX_SHIFT, MAX_SHIFT))(image)
    b = jax.vmap(lambda im, s: crop(im, MAX_SHIFT - s[1], MAX_SHIFT - s[0]))(image, shift)
    return a, b, shift.astype(jnp.float32)


ENCODER = networks.DMCEncoder()
SETTINGS = dmc.get_config().psrl
MODULE = networks.CorrespondenceModule(SETTINGS.max_displacement, SETTINGS.correspondence_hidden,
                                       init_displacement_penalty=SETTINGS.displacement_penalty)


def flow(params, a, b):
    """c_{a->b} in image pixels, [B, SIZE, SIZE, 2]."""
    z_a = ENCODER.apply(params['encoder'], a)
    z_b = ENCODER.apply(params['encoder'], b)
    return transforms.upsample_flow(MODULE.apply(params['correspondence'], z_a, z_b), SIZE, SIZE)


def end_point_error(params, key):
    a, b, shift = shifted_pairs(key)
    error = jnp.linalg.norm(flow(params, a, b) - shift[:, None, None, :], axis=-1)
    return error[:, 8:-8, 8:-8].mean()  # inside the image, away from the zero-padded border


def test_shift_is_recovered_by_self_supervised_training():
    key = jax.random.PRNGKey(0)
    a, b, _ = shifted_pairs(key)
    z = ENCODER.init(key, a)
    features = ENCODER.apply(z, a)
    params = {'encoder': z, 'correspondence': MODULE.init(key, features, features)}
    optimizer = optax.adam(1e-3)
    opt_state = optimizer.init(params)

    def loss_fn(params, a, b):
        # The newest RGB frame of each 3-frame stack, as in L_r.
        return losses.reconstruction_loss(a[..., -3:], b[..., -3:], flow(params, a, b), 0.01).mean()

    @jax.jit
    def step(params, opt_state, key):
        a, b, _ = shifted_pairs(key)
        grads = jax.grad(loss_fn)(params, a, b)
        updates, opt_state = optimizer.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state

    evaluate = jax.jit(end_point_error)
    held_out = jax.random.PRNGKey(10 ** 6)
    before = float(evaluate(params, held_out))
    for i in range(STEPS):
        params, opt_state = step(params, opt_state, jax.random.PRNGKey(i + 1))
    after = float(evaluate(params, held_out))
    assert before > 2.0, before  # untrained: far from the shift
    assert after < 0.5, after
