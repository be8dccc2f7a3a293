"""Pure array transforms of PSRL: correlation volume, flow decoding, warping, flow up-sampling, augmentation.

Arrays are NHWC float32 unless stated. A flow has flow[..., 0] = dx (columns) and flow[..., 1] = dy (rows),
in pixels of the grid it lives on. Nothing here imports from the package.
"""
from typing import Optional, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np


def displacements(max_displacement: int) -> jnp.ndarray:
    """The (dx, dy) of every correlation-volume channel k = (dy + r)(2r + 1) + (dx + r): [(2r+1)**2, 2]."""
    r = max_displacement
    dy, dx = jnp.meshgrid(jnp.arange(-r, r + 1), jnp.arange(-r, r + 1), indexing='ij')
    return jnp.stack([dx.ravel(), dy.ravel()], axis=-1).astype(jnp.float32)


def displacements_inside(height: int, width: int, max_displacement: int) -> np.ndarray:
    """Which displacements keep p + d inside an H x W map: numpy bool [H, W, (2r+1)**2] (static)."""
    r = max_displacement
    y, x = np.meshgrid(np.arange(height), np.arange(width), indexing='ij')
    dy, dx = (d.ravel() for d in np.meshgrid(np.arange(-r, r + 1), np.arange(-r, r + 1), indexing='ij'))
    return ((0 <= x[..., None] + dx) & (x[..., None] + dx < width)
            & (0 <= y[..., None] + dy) & (y[..., None] + dy < height))


# Maps up to this many positions take correlation_volume's one full product: the per-row products
# are [W, C] x [C, W] matrices too small to run fast. Forward and backward on this CPU, gathered
# full product against per-row products: MinAtar's 10x10 (16 channels, r = 2) 2.7x faster,
# Atari's 7x7 (64, r = 3) 1.4x, 14x14 (32, r = 2) 1.4x, DMControl's 18x18 (32, r = 2) 1.15x slower.
FULL_PRODUCT_POSITIONS = 196


def correlation_volume(z_a: jnp.ndarray, z_b: jnp.ndarray, max_displacement: int) -> jnp.ndarray:
    """V[b, y, x, k] = <z_a[b, y, x], z_b[b, y + dy, x + dx]> / C over a (2r+1)**2 window.

    z_a, z_b: [B, H, W, C]; positions outside z_b count as zeros. Returns [B, H, W, (2r+1)**2] with
    k = (dy + r)(2r + 1) + (dx + r).

    Computed as matrix products: on maps of at most FULL_PRODUCT_POSITIONS positions (MinAtar's
    10x10, Atari's 7x7), one product of every position with every other ([HW, C] x [C, HW]) whose
    window entries are gathered with constant indices; on larger maps one product per row offset
    dy, row y of z_a against row y + dy of z_b ([W, C] x [C, W]), its window entries kept by a
    constant 0/1 matrix. A product per displacement, the direct form, makes XLA:CPU materialise a
    shifted copy of z_b per displacement, (2r+1)**2 times the features (WORKSPACE_NOTES.md, "PSRL's
    cost").
    """
    chex.assert_rank(z_a, 4)
    chex.assert_equal_shape((z_a, z_b))
    r = max_displacement
    batch, height, width, channels = z_a.shape
    if height * width <= FULL_PRODUCT_POSITIONS:
        dy, dx = np.divmod(np.arange((2 * r + 1) ** 2), 2 * r + 1)
        offset = (dy - r) * width + (dx - r)          # position p + d is p + offset, row-major
        inside = displacements_inside(height, width, r).reshape(height * width, -1)  # [HW, K]
        p = np.arange(height * width)[:, None]
        index = (p * height * width + np.where(inside, p + offset, 0)).reshape(-1)
        flat = lambda z: z.reshape(batch, height * width, channels)
        products = jnp.einsum('bpc,bqc->bpq', flat(z_a), flat(z_b))                # [B, HW, HW]
        volume = jnp.where(inside.reshape(-1), jnp.take(products.reshape(batch, -1), index, axis=1),
                           0.0)
        return volume.reshape(batch, height, width, -1) / channels
    rows = jnp.pad(z_b, ((0, 0), (r, r), (0, 0), (0, 0)))
    x = np.arange(width)
    select = (x[None, :, None] == x[:, None, None] + np.arange(-r, r + 1)).astype(np.float32)
    slices = []
    for offset in range(2 * r + 1):   # row offset dy = offset - r
        products = jnp.einsum('byic,byjc->byij', z_a, rows[:, offset:offset + height])  # [B,H,W,W]
        slices.append(jnp.einsum('byij,ijd->byid', products, select))                 # [B,H,W,2r+1]
    return jnp.stack(slices, axis=-2).reshape(batch, height, width, -1) / channels


def flow_from_volume(volume: jnp.ndarray, max_displacement: int, inverse_temperature=1.0,
                     displacement_penalty=0.0, valid: Optional[jnp.ndarray] = None) -> jnp.ndarray:
    """Soft-argmax decoding: the expected (dx, dy) under softmax(beta * V - alpha * |d|^2).

    volume: [B, H, W, (2r+1)**2]; beta = inverse_temperature; alpha = displacement_penalty, a
    Gaussian prior towards small displacements (in cells^-2) that breaks ties between equally good
    matches (a uniform background) in favour of no motion; valid: optional bool mask broadcastable
    to the volume, the displacements the softmax may choose (e.g. those that stay inside the map).
    Returns a flow [B, H, W, 2] in cells of the volume's grid. Differentiable.
    """
    chex.assert_rank(volume, 4)
    moves = displacements(max_displacement)
    logits = inverse_temperature * volume - displacement_penalty * jnp.sum(moves * moves, axis=-1)
    if valid is not None:
        logits = jnp.where(valid, logits, -1e9)
    return jax.nn.softmax(logits, axis=-1) @ moves


def warp(image: jnp.ndarray, flow: jnp.ndarray) -> jnp.ndarray:
    """Bilinear backward warp: out[b, y, x] = image[b] sampled at (x + dx, y + dy).

    image: [B, H, W, C], flow: [B, H, W, 2] in pixels. Each of the four neighbours that lies outside the
    image contributes zero. Returns [B, H, W, C].
    """
    chex.assert_rank((image, flow), 4)
    chex.assert_equal_shape_prefix((image, flow), 3)
    batch, height, width, channels = image.shape
    rows, cols = jnp.meshgrid(jnp.arange(height), jnp.arange(width), indexing='ij')
    x = cols + flow[..., 0]
    y = rows + flow[..., 1]
    x0, y0 = jnp.floor(x), jnp.floor(y)
    wx, wy = (x - x0)[..., None], (y - y0)[..., None]
    flat = image.reshape(batch, height * width, channels)

    def tap(yi, xi):
        inside = (xi >= 0) & (xi <= width - 1) & (yi >= 0) & (yi <= height - 1)
        index = (jnp.clip(yi, 0, height - 1) * width + jnp.clip(xi, 0, width - 1)).astype(jnp.int32)
        values = jnp.take_along_axis(flat, index.reshape(batch, -1, 1), axis=1)
        return values.reshape(batch, height, width, channels) * inside[..., None]

    return ((1 - wx) * (1 - wy) * tap(y0, x0) + wx * (1 - wy) * tap(y0, x0 + 1)
            + (1 - wx) * wy * tap(y0 + 1, x0) + wx * wy * tap(y0 + 1, x0 + 1))


def upsample_flow(flow: jnp.ndarray, height: int, width: int) -> jnp.ndarray:
    """Bilinear up-sampling of a flow [B, h, w, 2] to [B, height, width, 2], rescaled to the new pixels
    (down-sampling, e.g. C's early-map flows to the final map for CAT, averages as jax.image.resize).

    Half-pixel-centred grids: a displacement of one cell of the h x w grid is height / h pixels (rows) and
    width / w pixels (columns).
    """
    chex.assert_rank(flow, 4)
    batch, h, w, _ = flow.shape
    resized = jax.image.resize(flow, (batch, height, width, 2), method='linear')
    return resized * jnp.array([width / w, height / h], dtype=flow.dtype)


def shift(images: jnp.ndarray, offsets: jnp.ndarray, pad: int, mode: str = 'edge') -> jnp.ndarray:
    """Pads each image by `pad` pixels and crops it back at its offset.

    images: [B, H, W, C] (any dtype); offsets: int [B, 2] (row, column) in 0..2 pad, so out[b, y, x]
    = image[b, y + oy - pad, x + ox - pad] (outside the image: the border, mode 'edge', as DrQ and
    SPR, or zeros, mode 'constant'). Returns [B, H, W, C] of the same dtype.
    """
    chex.assert_rank(images, 4)
    batch, height, width, channels = images.shape
    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode=mode)
    crop = lambda image, o: jax.lax.dynamic_slice(image, (o[0], o[1], 0), (height, width, channels))
    return jax.vmap(crop)(padded, offsets)


def random_shift(key: chex.PRNGKey, images: jnp.ndarray, pad: int = 4,
                 mode: str = 'edge') -> jnp.ndarray:
    """`shift` by a uniformly random offset per image. images: [B, H, W, C] (any dtype)."""
    offsets = jax.random.randint(key, (images.shape[0], 2), 0, 2 * pad + 1)
    return shift(images, offsets, pad, mode)


def random_intensity(key: chex.PRNGKey, images: jnp.ndarray, scale: float = 0.05) -> jnp.ndarray:
    """Scales each image by 1 + scale * clip(N(0, 1), -2, 2) (SPR's intensity augmentation).

    images: float [B, ...]; one factor per image.
    """
    noise = jnp.clip(jax.random.normal(key, (images.shape[0],)), -2.0, 2.0)
    factor = 1.0 + scale * noise
    return images * factor.reshape((-1,) + (1,) * (images.ndim - 1))


AUGMENT_PER = ('frame', 'sequence', 'mixed')   # augment's draws: per frame stack, per subsequence


def augment(key: chex.PRNGKey, observations: jnp.ndarray, augmentations: Sequence[str],
            per: str = 'frame') -> jnp.ndarray:
    """Observations [..., H, W, C] (uint8, or float in [0, 1]) -> float32 in [0, 1], augmented.

    augmentations: names applied in order, from 'shift' (pad 4, replicate), 'grid_shift' (pad 1 with
    zeros: a whole-cell move of a MinAtar grid, whose border cells are game objects, not background
    to replicate) and 'intensity' (scale 0.05).
    per: 'frame': leading axes (batch, time) are flattened so every frame stack gets its own draw, as
    SPR does; 'sequence': observations [B, T, H, W, C] get one draw per subsequence b, shared by its
    T frame stacks (the relative shift between them is zero); 'mixed': the first B // 2
    subsequences per 'sequence', the rest per 'frame' (C sees motion alone and shifted motion).
    """
    if per not in AUGMENT_PER:
        raise ValueError(f'per must be one of {AUGMENT_PER}, got {per!r}')
    if per == 'mixed':
        chex.assert_rank(observations, 5)
        half = observations.shape[0] // 2
        key_sequence, key_frame = jax.random.split(key)
        return jnp.concatenate([augment(key_sequence, observations[:half], augmentations, 'sequence'),
                                augment(key_frame, observations[half:], augmentations, 'frame')])
    if per == 'sequence':
        chex.assert_rank(observations, 5)
        batch, steps, height, width, channels = observations.shape
        stacked = jnp.moveaxis(observations, 1, 3).reshape(batch, height, width, steps * channels)
        images = augment(key, stacked, augmentations).reshape(batch, height, width, steps, channels)
        return jnp.moveaxis(images, 3, 1)
    lead, frame_shape = observations.shape[:-3], observations.shape[-3:]
    images = observations.reshape((-1,) + frame_shape)

    def to_unit_float(x):
        return x.astype(jnp.float32) / 255.0 if x.dtype == jnp.uint8 else x.astype(jnp.float32)

    keys = jax.random.split(key, len(augmentations)) if augmentations else []
    for name, k in zip(augmentations, keys):
        if name == 'shift':   # a crop commutes with the conversion: shift the (smaller) raw frames
            images = random_shift(k, images)
        elif name == 'grid_shift':
            images = random_shift(k, images, pad=1, mode='constant')
        elif name == 'intensity':
            images = random_intensity(k, to_unit_float(images))
        else:
            raise ValueError(f'unknown augmentation {name!r}: use shift, grid_shift or intensity')
    images = to_unit_float(images)
    return images.reshape(lead + frame_shape)
