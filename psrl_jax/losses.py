"""PSRL's loss terms as pure functions of arrays (no network code, usable with flax, haiku or plain jax).

Arrays are NHWC float32; every loss returns per-example values of shape [B] unless stated. Flows are in
pixels with flow[..., 0] = dx and flow[..., 1] = dy (see transforms.warp).
"""
from typing import Dict, Optional

import chex
import jax
import jax.numpy as jnp

from psrl_jax.transforms import warp

_EPSILON = 1e-6


def _mean_over_examples(x: jnp.ndarray) -> jnp.ndarray:
    return jnp.mean(x.reshape(x.shape[0], -1), axis=-1)


def photometric_loss(image_a: jnp.ndarray, image_b: jnp.ndarray, flow: jnp.ndarray) -> jnp.ndarray:
    """mean_{H, W, C} |I_a(p) - I_b(p + c_{a->b}(p))|.  images [B, H, W, C], flow [B, H, W, 2] -> [B]."""
    chex.assert_equal_shape((image_a, image_b))
    return _mean_over_examples(jnp.abs(image_a - warp(image_b, flow)))


def smoothness_loss(flow: jnp.ndarray) -> jnp.ndarray:
    """First-order smoothness: mean |d flow / dy| + mean |d flow / dx|.  flow [B, H, W, 2] -> [B]."""
    chex.assert_rank(flow, 4)
    return (_mean_over_examples(jnp.abs(flow[:, 1:] - flow[:, :-1]))
            + _mean_over_examples(jnp.abs(flow[:, :, 1:] - flow[:, :, :-1])))


def reconstruction_loss(image_a: jnp.ndarray, image_b: jnp.ndarray, flow: jnp.ndarray,
                        smoothness_weight: float) -> jnp.ndarray:
    """L_r(c_{a->b}) = photometric(I_a, I_b, c) + w_reg * smoothness(c).  -> [B]."""
    return photometric_loss(image_a, image_b, flow) + smoothness_weight * smoothness_loss(flow)


def correspondence_terms(frames: jnp.ndarray, external_flows: jnp.ndarray,
                         internal_flow: Optional[jnp.ndarray], same_episode: jnp.ndarray,
                         smoothness_weight: float) -> Dict[str, jnp.ndarray]:
    """The two parts of L_c, masked to pairs inside one episode.

    frames: [B, M+2, H, W, c], I_{k}..I_{k+M+1} (the newest frame of each observation).
    external_flows: [B, M+1, H, W, 2], c^ext_{k+i+1 -> k+i} for i = 0..M.
    internal_flow: [B, H, W, 2], c^int_{k -> k+M}, or None (the "no internal map" ablation).
    same_episode: bool [B, M+2], frame j belongs to the episode of frame 0.
    Returns {'external': sum_i L_r(c^ext_i) [B], 'internal': L_r(c^int) [B] (zeros when None)}.
    """
    chex.assert_rank((frames, external_flows, same_episode), (5, 5, 2))
    horizon = external_flows.shape[1]  # M + 1
    chex.assert_axis_dimension(frames, 1, horizon + 1)
    chex.assert_axis_dimension(same_episode, 1, horizon + 1)
    merge = lambda x: x.reshape((-1,) + x.shape[2:])
    later, earlier = frames[:, 1:], frames[:, :-1]
    external = reconstruction_loss(merge(later), merge(earlier), merge(external_flows),
                                   smoothness_weight).reshape(-1, horizon)
    mask = same_episode.astype(jnp.float32)
    terms = {'external': jnp.sum(external * mask[:, 1:], axis=1)}
    if internal_flow is None:
        terms['internal'] = jnp.zeros(frames.shape[0], jnp.float32)
    else:
        last = horizon - 1  # k + M
        terms['internal'] = mask[:, last] * reconstruction_loss(
            frames[:, 0], frames[:, last], internal_flow, smoothness_weight)
    return terms


def correspondence_loss(frames, external_flows, internal_flow, same_episode,
                        smoothness_weight: float) -> jnp.ndarray:
    """L_c = L_r(c^int_{k->k+M}) + sum_{i=0..M} L_r(c^ext_{k+i+1->k+i}); see correspondence_terms. -> [B]."""
    terms = correspondence_terms(frames, external_flows, internal_flow, same_episode, smoothness_weight)
    return terms['external'] + terms['internal']


def cosine_similarity_loss(y1: jnp.ndarray, y2: jnp.ndarray) -> jnp.ndarray:
    """L_s = -<y1, y2> / (|y1| |y2|) over all non-batch axes (norms floored at 1e-6).  -> [B]."""
    chex.assert_equal_shape((y1, y2))
    y1 = y1.reshape(y1.shape[0], -1)
    y2 = y2.reshape(y2.shape[0], -1)
    # sqrt(max(|y|^2, eps^2)) floors the norm with a finite gradient even at y = 0.
    norm = lambda y: jnp.sqrt(jnp.maximum(jnp.sum(y * y, axis=-1), _EPSILON ** 2))
    return -jnp.sum(y1 * y2, axis=-1) / (norm(y1) * norm(y2))


def l1_loss(z1: jnp.ndarray, z2: jnp.ndarray) -> jnp.ndarray:
    """mean |z1 - z2| over all non-batch axes.  -> [B]."""
    chex.assert_equal_shape((z1, z2))
    return _mean_over_examples(jnp.abs(z1 - z2))


def paired_similarity_terms(y_tr, y_pr, y_t, z_tr, z_pr, z_t) -> Dict[str, jnp.ndarray]:
    """The four terms of L_sim, each [B]; targets y_t and z_t are stop-gradient.

    y_*: [B, D] projected/predicted vectors, z_*: [B, h, w, C] representations Z. The transformed (tr)
    pair or the predicted (pr) pair may be None (the no-CAT / no-AAT ablations); z_tr, z_pr and z_t may
    all be None (the no-L1 ablation). Absent terms are left out of the dict.
    """
    y_t = jax.lax.stop_gradient(y_t)
    terms = {}
    for name, y in (('cos_tr', y_tr), ('cos_pr', y_pr)):
        if y is not None:
            terms[name] = cosine_similarity_loss(y, y_t)
    if z_t is not None:
        z_t = jax.lax.stop_gradient(z_t)
        for name, z in (('l1_tr', z_tr), ('l1_pr', z_pr)):
            if z is not None:
                terms[name] = l1_loss(z, z_t)
    return terms


def paired_similarity_loss(y_tr, y_pr, y_t, z_tr, z_pr, z_t) -> jnp.ndarray:
    """L_sim = L_s(y_tr, y_t) + L_s(y_pr, y_t) + L1(z_tr, z_t) + L1(z_pr, z_t); targets stop-gradient.

    Shapes as in paired_similarity_terms. -> [B].
    """
    return sum(paired_similarity_terms(y_tr, y_pr, y_t, z_tr, z_pr, z_t).values())
