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
- c_object_epe (MinAtar): where a channel holds one object (breakout's ball, the player elsewhere:
  envs.minatar.OBJECT_CHANNELS) in both I_k and I_{k+1}, the end-point error in cells of that
  external flow at the object's new cell against its true move back to its old cell;
  c_object_epe_zero is zero flow's (the length of the move).
Features are the online encoder's for both inputs.

One check of L_sim's representations, logged by every run with CAT or AAT:
- y_shift_cos: the cosine between the projected representations y = phi(psi(conv1x1(E(o))))
  (psrl_objective's y^q) of two copies of o_k shifted by their own draws of the config's shift,
  over the samples whose draws differ. 1: y ignores the augmentation's shift; near 0: y is mostly
  the shift (CAT under one shift per frame on MinAtar; WORKSPACE_NOTES.md, "MinAtar").
"""
from typing import Dict, Optional

import chex
import jax
import jax.numpy as jnp

from psrl_jax import losses, psrl, transforms


def shift_setting(config: psrl.PSRLConfig):
    """(pad, mode) of the config's shift augmentation (1 cell with zeros for MinAtar grids)."""
    if 'grid_shift' in config.augmentation:
        return 1, 'constant'
    return 4, 'edge'


def shifted_copies(key: chex.PRNGKey, images: jnp.ndarray, config: psrl.PSRLConfig):
    """Two copies of images [B, H, W, C], each shifted by its own draw of the config's shift:
    ((copy_a, copy_b), (offset_a, offset_b)), offsets int [B, 2] (dy, dx) in [0, 2 pad]."""
    pad, mode = shift_setting(config)
    key_a, key_b = jax.random.split(key)
    offsets = tuple(jax.random.randint(k, (images.shape[0], 2), 0, 2 * pad + 1)
                    for k in (key_a, key_b))
    return tuple(transforms.shift(images, o, pad, mode) for o in offsets), offsets


def _flow_to_image(params, z_a, z_b, height: int, width: int, config: psrl.PSRLConfig):
    flow = psrl.make_modules(config).correspondence.apply(params['correspondence'], z_a, z_b)
    return transforms.upsample_flow(flow, height, width)


def correspondence_checks(params, observations: jnp.ndarray, same_episode: jnp.ndarray,
                          key: chex.PRNGKey, config: psrl.PSRLConfig,
                          object_channel: Optional[int] = None) -> Dict[str, jnp.ndarray]:
    """c_shift_epe, c_shift_epe_zero and c_warp_gain (scalars) of C with the online `params`, and
    with `object_channel` (a channel of the newest frame) c_object_epe and c_object_epe_zero.

    observations: uint8 [B, T >= 2, H, W, stack*c] replay samples; same_episode: bool [B, T].
    """
    chex.assert_rank(observations, 5)
    images = transforms.augment(key, observations[:, :2], ())     # float [B, 2, H, W, C]
    height, width = images.shape[2:4]
    encode = lambda x: psrl.encode(params, x[:, None], config, config.early_map)[:, 0]

    # Two shifted copies of o_k: copy(p) = o_k(p + offset - pad), so copy_a(p) = copy_b(p + t)
    # with t = offset_a - offset_b, the flow c_{a->b} that C should find.
    pad, _ = shift_setting(config)
    (copy_a, copy_b), (offset_a, offset_b) = shifted_copies(key, images[:, 0], config)
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
    checks = {'c_shift_epe': jnp.sum(shown * error) / count,
              'c_shift_epe_zero': jnp.sum(shown * zero) / count,
              'c_warp_gain': jnp.sum(mask * warped) / jnp.maximum(jnp.sum(mask * still), 1e-12)}
    if object_channel is not None:
        checks.update(object_flow_errors(frames[..., object_channel], flow, mask))
    return checks


def object_flow_errors(objects: jnp.ndarray, flow: jnp.ndarray,
                       mask: jnp.ndarray) -> Dict[str, jnp.ndarray]:
    """End-point errors of the external flow c_{k+1->k} at a single object's cell.

    objects: [B, 2, H, W] one channel of I_k and I_{k+1} (the object's cells > 0.5); flow: [B, H, W, 2]
    (dx, dy) in cells; mask: [B] (I_{k+1} in I_k's episode). Samples count where the channel holds
    exactly one cell in both frames. Returns c_object_epe (NaN where no sample counts) and
    c_object_epe_zero.
    """
    batch, _, height, width = objects.shape
    cells = (objects > 0.5).reshape(batch, 2, height * width)
    single = jnp.all(cells.sum(axis=-1) == 1, axis=1) & (mask > 0)
    where = jnp.argmax(cells, axis=-1)                                   # [B, 2] flat index
    y, x = where // width, where % width
    true = jnp.stack([x[:, 0] - x[:, 1], y[:, 0] - y[:, 1]], axis=-1).astype(jnp.float32)
    found = flow[jnp.arange(batch), y[:, 1], x[:, 1]]                    # [B, 2]
    weight = single.astype(jnp.float32)
    count = weight.sum()
    mean = lambda e: jnp.where(count > 0, jnp.sum(weight * e) / jnp.maximum(count, 1.0), jnp.nan)
    return {'c_object_epe': mean(jnp.linalg.norm(found - true, axis=-1)),
            'c_object_epe_zero': mean(jnp.linalg.norm(true, axis=-1))}


def similarity_checks(params, observations: jnp.ndarray, key: chex.PRNGKey,
                      config: psrl.PSRLConfig) -> Dict[str, jnp.ndarray]:
    """y_shift_cos (a scalar; NaN when no sample's two draws differ) with the online `params`.

    observations: uint8 [B, T >= 1, H, W, stack*c] replay samples (o_k = observations[:, 0]).
    """
    chex.assert_rank(observations, 5)
    images = transforms.augment(key, observations[:, 0], ())       # float [B, H, W, C]
    copies, offsets = shifted_copies(key, images, config)
    m = psrl.make_modules(config)
    apply = lambda name, x: getattr(m, name).apply(params[name], x)

    def project(x):
        z = psrl.encode(params, x[:, None], config)[:, 0]
        return apply('predictor', apply('projection', apply('conv1x1', z)))

    y_a, y_b = map(project, copies)
    differ = jnp.any(offsets[0] != offsets[1], axis=-1).astype(jnp.float32)
    count = differ.sum()
    cosine = -losses.cosine_similarity_loss(y_a, y_b)
    return {'y_shift_cos': jnp.where(count > 0, jnp.sum(differ * cosine) / jnp.maximum(count, 1.0),
                                     jnp.nan)}
