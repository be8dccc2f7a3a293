"""Flax (linen) modules: encoders, PSRL's correspondence module C, transition model G, projection psi,
the dueling noisy C51 head for Rainbow, and DrQ's SAC actor and critic.

Inputs are NHWC float32; image observations are scaled to [0, 1] before the encoders.
"""
from typing import Optional, Tuple

import jax
import jax.numpy as jnp
import flax.linen as nn

from psrl_jax.transforms import (correlation_volume, displacements_inside, flow_from_volume,
                                 upsample_flow)


def renormalize(x: jnp.ndarray) -> jnp.ndarray:
    """Per-example min-max scaling to [0, 1] over all non-batch axes (SPR's `renormalize`)."""
    flat = x.reshape(x.shape[0], -1)
    low = flat.min(axis=-1, keepdims=True)
    high = flat.max(axis=-1, keepdims=True)
    return ((flat - low) / (high - low + 1e-5)).reshape(x.shape)


class AtariEncoder(nn.Module):
    """The Nature-DQN convolutions as SPR uses them: [B, 84, 84, 4] -> [B, 7, 7, 64], renormalized;
    early=True: the first convolution's map instead, [B, 20, 20, 32], renormalized."""

    @nn.compact
    def __call__(self, x: jnp.ndarray, early: bool = False) -> jnp.ndarray:
        for features, kernel, stride in ((32, 8, 4), (64, 4, 2), (64, 3, 1)):
            x = nn.relu(nn.Conv(features, (kernel, kernel), (stride, stride), padding='VALID')(x))
            if early:
                break
        return renormalize(x)


class DMCEncoder(nn.Module):
    """DrQ's convolutions (4 x 32 channels, 3x3, strides 2, 1, 1, 1): [B, 84, 84, 9] -> [B, 35, 35, 32]."""

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        for stride in (2, 1, 1, 1):
            x = nn.relu(nn.Conv(32, (3, 3), (stride, stride), padding='VALID')(x))
        return x


class MinAtarEncoder(nn.Module):
    """MinAtar's network (Young & Tian; Revisiting Rainbow): one 3x3 convolution, 16 channels, padded
    so the map keeps the game's 10x10 grid: [B, 10, 10, N] -> [B, 10, 10, 16], renormalized as
    SPR's (and our Atari) encoder: unbounded, the features' scale grew with PSRL's L1 terms until
    they drowned the RL gradient (WORKSPACE_NOTES.md, "MinAtar")."""

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        return renormalize(nn.relu(nn.Conv(16, (3, 3), padding='SAME')(x)))


ENCODERS = {'atari': AtariEncoder, 'dmc': DMCEncoder, 'minatar': MinAtarEncoder}


def _standardize(z: jnp.ndarray) -> jnp.ndarray:
    """Features [B, h, w, C] centred over channels and scaled to unit RMS at every position."""
    z = z - z.mean(axis=-1, keepdims=True)
    return z * jax.lax.rsqrt(jnp.mean(z * z, axis=-1, keepdims=True) + 1e-6)


class CorrespondenceModule(nn.Module):
    """C(z_a, z_b) -> flow c_{a->b} [B, h, w, 2] in cells of the feature grid.

    Soft-argmax over a correlation volume of centred, unit-RMS features (a Pearson correlation in
    [-1, 1]) with a learned inverse temperature beta and a learned prior towards small
    displacements, softmax(beta V - alpha |d|^2), over the displacements that stay inside the map;
    then (refine=True) a small conv net that sees the volume and the coarse flow refines it
    (starting at zero).
    Without the prior, cells that match many others equally well (a uniform background) take the
    mean of their window, which points inwards from every border: an untrained C then moves Atari
    frames by ~15 px where nothing moved (WORKSPACE_NOTES.md).
    """
    max_displacement: int = 3
    hidden: int = 64
    init_inverse_temperature: float = 10.0
    init_displacement_penalty: float = 2.0     # alpha at the start, in cells^-2
    resolution: int = 0                        # side of the grid C matches on; 0: the features'
    refine: bool = True                        # the conv refinement of the soft-argmax flow

    @nn.compact
    def __call__(self, z_a: jnp.ndarray, z_b: jnp.ndarray) -> jnp.ndarray:
        batch, height, width, channels = z_a.shape
        grid = (self.resolution or height, self.resolution or width)
        if grid != (height, width):   # match on a coarser grid (antialiased bilinear resize)
            z_a, z_b = (jax.image.resize(z, (batch,) + grid + (channels,), 'linear')
                        for z in (z_a, z_b))
        # Encoder features are non-negative, so raw cosines are ~1 everywhere; centring them over
        # channels makes the volume discriminative.
        r = self.max_displacement
        volume = correlation_volume(_standardize(z_a), _standardize(z_b), r)
        inside = displacements_inside(*grid, r)
        log_beta = self.param('log_inverse_temperature',
                              nn.initializers.constant(jnp.log(self.init_inverse_temperature)), ())
        log_alpha = self.param('log_displacement_penalty',
                               nn.initializers.constant(jnp.log(self.init_displacement_penalty)),
                               ())
        flow = flow_from_volume(volume, r, jnp.exp(log_beta), jnp.exp(log_alpha), valid=inside)
        if self.refine:
            x = nn.relu(nn.Conv(self.hidden, (3, 3))(jnp.concatenate([volume, flow], axis=-1)))
            x = nn.relu(nn.Conv(self.hidden, (3, 3))(x))
            flow = flow + nn.Conv(2, (3, 3), kernel_init=nn.initializers.zeros)(x)
        return flow if grid == (height, width) else upsample_flow(flow, height, width)


class TransitionModel(nn.Module):
    """G(Z, a) -> next Z, same shape [B, h, w, C]; the action enters as input planes.

    num_actions: one-hot planes for a discrete action [B] (int); None: the action vector [B, A] as planes.
    """
    num_actions: Optional[int]
    hidden: int = 64

    @nn.compact
    def __call__(self, z: jnp.ndarray, action: jnp.ndarray) -> jnp.ndarray:
        if self.num_actions is not None:
            action = jax.nn.one_hot(action, self.num_actions)
        planes = jnp.broadcast_to(action[:, None, None, :], z.shape[:3] + action.shape[-1:])
        x = nn.relu(nn.Conv(self.hidden, (3, 3))(jnp.concatenate([z, planes], axis=-1)))
        x = nn.relu(nn.Conv(self.hidden, (3, 3))(x))
        return nn.Conv(z.shape[-1], (3, 3))(x)


class Conv1x1(nn.Module):
    """The 1x1 convolution that turns features z [B, h, w, C] into representations Z [B, h, w, C]."""

    @nn.compact
    def __call__(self, z: jnp.ndarray) -> jnp.ndarray:
        return nn.Conv(z.shape[-1], (1, 1))(z)


class Projection(nn.Module):
    """psi: a linear projection of the flattened representation, [B, h, w, C] -> [B, dim]."""
    dim: int

    @nn.compact
    def __call__(self, z: jnp.ndarray) -> jnp.ndarray:
        return nn.Dense(self.dim)(z.reshape(z.shape[0], -1))


def _noisy_uniform(bound):
    return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


class NoisyDense(nn.Module):
    """Dense layer with factorised Gaussian parameter noise (Fortunato et al.); noise from rng 'noise'."""
    features: int
    std_init: float = 0.5

    @nn.compact
    def __call__(self, x: jnp.ndarray, noisy: bool) -> jnp.ndarray:
        fan_in = x.shape[-1]
        bound = fan_in ** -0.5
        kernel = self.param('kernel', _noisy_uniform(bound), (fan_in, self.features))
        bias = self.param('bias', _noisy_uniform(bound), (self.features,))
        kernel_sigma = self.param('kernel_sigma', nn.initializers.constant(self.std_init * bound),
                                  (fan_in, self.features))
        bias_sigma = self.param('bias_sigma',
                                nn.initializers.constant(self.std_init * self.features ** -0.5),
                                (self.features,))
        if not noisy:
            return x @ kernel + bias
        key_in, key_out = jax.random.split(self.make_rng('noise'))
        scaled = lambda e: jnp.sign(e) * jnp.sqrt(jnp.abs(e))
        eps_in = scaled(jax.random.normal(key_in, (fan_in,)))
        eps_out = scaled(jax.random.normal(key_out, (self.features,)))
        return x @ (kernel + kernel_sigma * jnp.outer(eps_in, eps_out)) + bias + bias_sigma * eps_out


def scale_gradient(x: jnp.ndarray, scale: float) -> jnp.ndarray:
    """Identity forward; multiplies the gradient by `scale` backward."""
    return x * scale + jax.lax.stop_gradient(x) * (1.0 - scale)


class RainbowHead(nn.Module):
    """Dueling noisy C51 head: features [B, h, w, C] -> atom logits [B, num_actions, num_atoms].

    As SPR: hidden 256 per stream, the dueling streams' shared input gradient scaled by 2**-0.5.
    """
    num_actions: int
    num_atoms: int = 51
    hidden: int = 256
    noisy_std: float = 0.5

    @nn.compact
    def __call__(self, features: jnp.ndarray, noisy: bool = True) -> jnp.ndarray:
        x = scale_gradient(features.reshape(features.shape[0], -1), 2 ** -0.5)
        dense = lambda n: (lambda h: NoisyDense(n, self.noisy_std)(h, noisy))
        advantage = dense(self.num_actions * self.num_atoms)(nn.relu(dense(self.hidden)(x)))
        advantage = advantage.reshape(-1, self.num_actions, self.num_atoms)
        value = dense(self.num_atoms)(nn.relu(dense(self.hidden)(x)))[:, None, :]
        return value + advantage - advantage.mean(axis=1, keepdims=True)


class Trunk(nn.Module):
    """DrQ's trunk: flatten -> Dense(feature_dim) -> LayerNorm -> tanh.  [B, h, w, C] -> [B, feature_dim]."""
    feature_dim: int = 50

    @nn.compact
    def __call__(self, features: jnp.ndarray) -> jnp.ndarray:
        x = nn.Dense(self.feature_dim)(features.reshape(features.shape[0], -1))
        return jnp.tanh(nn.LayerNorm()(x))


def _mlp(x: jnp.ndarray, hidden: int, out: int) -> jnp.ndarray:
    for _ in range(2):
        x = nn.relu(nn.Dense(hidden)(x))
    return nn.Dense(out)(x)


class Critic(nn.Module):
    """SAC double Q: (conv features [B, h, w, C], action [B, A]) -> (q1 [B], q2 [B]); owns its trunk."""
    hidden: int = 1024
    feature_dim: int = 50

    @nn.compact
    def __call__(self, features: jnp.ndarray, action: jnp.ndarray) -> Tuple[jnp.ndarray, jnp.ndarray]:
        x = jnp.concatenate([Trunk(self.feature_dim)(features), action], axis=-1)
        return _mlp(x, self.hidden, 1)[:, 0], _mlp(x, self.hidden, 1)[:, 0]


class Actor(nn.Module):
    """SAC actor on (detached) conv features [B, h, w, C] -> (mean [B, A], log_std [B, A]) of the
    pre-tanh Gaussian; log_std squashed into [log_std_min, log_std_max] as DrQ does."""
    action_dim: int
    hidden: int = 1024
    feature_dim: int = 50
    log_std_min: float = -10.0
    log_std_max: float = 2.0

    @nn.compact
    def __call__(self, features: jnp.ndarray) -> Tuple[jnp.ndarray, jnp.ndarray]:
        out = _mlp(Trunk(self.feature_dim)(features), self.hidden, 2 * self.action_dim)
        mean, log_std = jnp.split(out, 2, axis=-1)
        log_std = self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min) * (jnp.tanh(log_std) + 1)
        return mean, log_std
