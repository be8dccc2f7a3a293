"""Ground truth for the correspondence module C: does it find correspondences inside the agent?

Two checks on replay samples (un-augmented), logged by every run with C (DESIGN.md, "Seeing whether
C works"):
- c_shift_epe: C on two copies of the same observation, each shifted by its own known offset (the
  config's shift: 4 px, or 1 cell on MinAtar grids): mean end-point error in pixels of C's flow,
  up-sampled to the image, against the relative shift, over the pixels both copies show;
  c_shift_epe_zero is zero flow's error on the same pixels.
- c_warp_gain: on consecutive frames I_k, I_{k+1}, the photometric error of the external flow
  c_{k+1->k} = C(z_{k+1}, z_k) divided by zero flow's (below 1: C's warp explains the motion
  better than no motion).
Features are the online encoder's for both inputs.
"""
from typing import Dict

import chex
import jax
import jax.numpy as jnp

from psrl_jax import losses, psrl, transforms


def shift_setting(config: psrl.PSRLConfig):
    """(pad, mode) of the config's shift augmentation (1 cell with zeros for MinAtar grids)."""
    if 'grid_shift' in config.augmentation:
        return 1, 'constant'
    return 4, 'edge'


def _flow_to_image(params, z_a, z_b, height: int, width: int, config: psrl.PSRLConfig):
    flow = psrl.make_modules(config).correspondence.apply(params['correspondence'], z_a, z_b)
    return transforms.upsample_flow(flow, height, width)


def correspondence_checks(params, observations: jnp.ndarray, same_episode: jnp.ndarray,
                          key: chex.PRNGKey, config: psrl.PSRLConfig) -> Dict[str, jnp.ndarray]:
    """c_shift_epe, c_shift_epe_zero and c_warp_gain (scalars) of C with the online `params`.

    observations: uint8 [B, T >= 2, H, W, stack*c] replay samples; same_episode: bool [B, T].
    """
    chex.assert_rank(observations, 5)
    images = transforms.augment(key, observations[:, :2], ())     # float [B, 2, H, W, C]
    batch, _, height, width, _ = images.shape
    encode = lambda x: psrl.encode(params, x[:, None], config)[:, 0]

    # Two shifted copies of o_k: copy(p) = o_k(p + offset - pad), so copy_a(p) = copy_b(p + t)
    # with t = offset_a - offset_b, the flow c_{a->b} that C should find.
    pad, mode = shift_setting(config)
    key_a, key_b = jax.random.split(key)
    offset_a, offset_b = (jax.random.randint(k, (batch, 2), 0, 2 * pad + 1) for k in (key_a, key_b))
    copy_a, copy_b = (transforms.shift(images[:, 0], o, pad, mode) for o in (offset_a, offset_b))
    flow = _flow_to_image(params, encode(copy_a), encode(copy_b), height, width, config)
    true = (offset_a - offset_b)[:, ::-1].astype(jnp.float32)      # (dx, dy) [B, 2]
    rows, cols = jnp.meshgrid(jnp.arange(height), jnp.arange(width), indexing='ij')
    inside = lambda y, x: (y >= 0) & (y < height) & (x >= 0) & (x < width)
    y_a = rows + offset_a[:, 0, None, None]
    x_a = cols + offset_a[:, 1, None, None]
    shown = (inside(y_a - pad, x_a - pad)
             & inside(y_a - offset_b[:, 0, None, None], x_a - offset_b[:, 1, None, None]))
    shown = shown.astype(jnp.float32)
    error = jnp.linalg.norm(flow - true[:, None, None, :], axis=-1)
    zero = jnp.broadcast_to(jnp.linalg.norm(true, axis=-1)[:, None, None], error.shape)
    count = jnp.maximum(shown.sum(), 1.0)

    # The external map of consecutive frames, c_{k+1->k} = C(z_{k+1}, z_k), against zero flow.
    frames = psrl.newest_frames(images, config)
    flow = _flow_to_image(params, encode(images[:, 1]), encode(images[:, 0]), height, width, config)
    mask = same_episode[:, 1].astype(jnp.float32)
    warped = losses.photometric_loss(frames[:, 1], frames[:, 0], flow)
    still = losses.photometric_loss(frames[:, 1], frames[:, 0], jnp.zeros_like(flow))
    return {'c_shift_epe': jnp.sum(shown * error) / count,
            'c_shift_epe_zero': jnp.sum(shown * zero) / count,
            'c_warp_gain': jnp.sum(mask * warped) / jnp.maximum(jnp.sum(mask * still), 1e-12)}
