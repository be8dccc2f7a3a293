"""Device-resident, purely functional replay with n-step returns and subsequence sampling.

Frames are stored once, uint8 [capacity, H, W, c], in a ring buffer; stacked observations
[H, W, stack*c] and subsequences o_k .. o_{k+horizon} are rebuilt by index arithmetic at sample
time (Dopamine's approach), so 100k Atari steps of 84x84x1 take 0.7 GB and sampling runs inside
the jitted learner step.

Storage convention (the training loop calls `add` once per environment step, after the step, for
the observation the action was taken on): entry t holds the newest frame f_t of observation o_t,
the action a_t taken on it, the reward r_t, `terminal` (the transition ended the episode, no
bootstrap), `truncated` (cut by a time limit, bootstrap through it), `valid` (the action took
effect; False for envpool's auto-reset pseudo-step after every episode end) and `first` (the
frame stack restarts here: stack slots before it repeat f_t). After an episode end at t, entry
t+1 holds the episode's final observation (valid=False) and entry t+2 the next episode's first.

Entries are addressed by a global step number g (0 .. num_added-1) stored in slot g % capacity.
Observation o_t is the stack f_{i_{s-1}}, ..., f_{i_0} (oldest first on the channel axis) with
i_0 = t and i_j = i_{j-1} if entry i_{j-1} is first else i_{j-1} - 1; entry 0 counts as first.
o_{k+j} is connected to o_k iff valid[k], ..., valid[k+j-1] are all True.

A start k can be sampled iff valid[k], entries k .. k + max(n_step, horizon) are all stored, and
no frame of o_k's stack has been overwritten by the ring buffer (such starts are excluded rather
than padded). Sampling is stratified proportional prioritized sampling over those starts with
P(i) = p_i**alpha / sum_j p_j**alpha (uniform when alpha = 0), drawn from a two-level (block)
cumulative sum so that float32 keeps small priorities exact at capacity 100k.

All functions are pure and work under `jax.jit` (pass the config as a static argument) and
`jax.vmap` over a leading seed axis of the state. Jit `add` with the state donated
(`donate_argnums`) so that XLA writes the frame in place instead of copying the buffer.
"""

import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from psrl_jax.errors import UsageError


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


@struct.dataclass
class ReplayConfig:
    """Static replay settings (hashable: pass as a static argument to `jax.jit`).

    capacity: number of stored entries (ring buffer size). stack: frames per observation.
    horizon: future observations per sample (T = horizon + 1 observations, horizon actions).
    n_step, gamma: the n-step return. batch_size: B. priority_exponent: alpha (0 -> uniform).
    """

    capacity: int = struct.field(pytree_node=False)
    stack: int = struct.field(pytree_node=False)
    horizon: int = struct.field(pytree_node=False)
    n_step: int = struct.field(pytree_node=False)
    gamma: float = struct.field(pytree_node=False)
    batch_size: int = struct.field(pytree_node=False)
    priority_exponent: float = struct.field(pytree_node=False, default=0.0)

    def __post_init__(self):
        hints = {'horizon': ' (action[:, 0] is the n-step transition action)'}
        for name in ('capacity', 'stack', 'horizon', 'n_step', 'batch_size'):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise UsageError(f'replay {name} must be an integer >= 1, got {value!r}'
                                 f'{hints.get(name, "")}')
        if self.capacity <= self.lookahead + self.stack:
            raise UsageError(f'replay capacity must exceed max(n_step, horizon) + stack = '
                             f'{self.lookahead + self.stack}, got {self.capacity}')
        if not _is_real(self.gamma) or not 0.0 <= self.gamma <= 1.0:
            raise UsageError(f'replay gamma must be a number in [0, 1], got {self.gamma!r}')
        if not _is_real(self.priority_exponent) or not self.priority_exponent >= 0.0:
            raise UsageError(f'replay priority_exponent must be a number >= 0, '
                             f'got {self.priority_exponent!r}')

    @property
    def lookahead(self) -> int:
        """Entries needed after a start k: max(n_step, horizon)."""
        return max(self.n_step, self.horizon)

    @property
    def block_size(self) -> int:
        """Block length of the two-level cumulative sum used for sampling."""
        return math.isqrt(self.capacity - 1) + 1


@struct.dataclass
class ReplayState:
    """The buffer, a pytree (saved by orbax as-is). Shapes for capacity N:

    frames uint8 [N, H, W, c]; actions [N, *action_shape]; rewards float32 [N];
    terminals, truncations, valids, firsts bool [N]; priorities float32 [N] (raw p, alpha is
    applied at sample time); max_priority float32 [] (priority given to new entries);
    cursor int32 [] (next slot to write); num_added int32 [] (entries ever added).
    """

    frames: jax.Array
    actions: jax.Array
    rewards: jax.Array
    terminals: jax.Array
    truncations: jax.Array
    valids: jax.Array
    firsts: jax.Array
    priorities: jax.Array
    max_priority: jax.Array
    cursor: jax.Array
    num_added: jax.Array


@struct.dataclass
class Batch:
    """A sampled batch for starts k (B of them), T = horizon + 1, S = stack.

    observation uint8 [B, T, H, W, S*c]: o_k .. o_{k+horizon} (finite garbage past an episode end).
    action [B, T-1, *action_shape]: a_k .. a_{k+horizon-1} (action[:, 0] is the transition's).
    reward float32 [B, T-1]: r_k .. r_{k+horizon-1}.
    same_episode bool [B, T]: o_{k+j} connected to o_k (j = 0 always True).
    next_observation uint8 [B, H, W, S*c]: o_{k+m}, m = n_step or one past the episode's end.
    returns float32 [B]: sum_{i<m} gamma^i r_{k+i}.
    discount float32 [B]: gamma^m, or 0 if a terminal transition lies within the m steps.
    """

    observation: jax.Array
    action: jax.Array
    reward: jax.Array
    same_episode: jax.Array
    next_observation: jax.Array
    returns: jax.Array
    discount: jax.Array


def init(config: ReplayConfig, frame_shape: Sequence[int], action_shape: Sequence[int] = (),
         action_dtype=jnp.int32) -> ReplayState:
    """An empty buffer for frames uint8 [H, W, c] = frame_shape and actions of action_shape."""
    if not isinstance(config, ReplayConfig):
        raise UsageError(f'replay config must be a ReplayConfig, got {type(config).__name__}')
    frame_shape = tuple(frame_shape)
    if len(frame_shape) != 3 or not all(_is_int(d) and d >= 1 for d in frame_shape):
        raise UsageError(f'replay frame_shape must be (H, W, c) positive ints, got {frame_shape}')
    action_shape = tuple(action_shape)
    if not all(_is_int(d) and d >= 1 for d in action_shape):
        raise UsageError(f'replay action_shape must be positive ints, got {action_shape}')
    n = config.capacity
    # one buffer per field (no shared arrays), so that jit can donate the whole state
    terminals, truncations, valids, firsts = (jnp.zeros((n,), jnp.bool_) for _ in range(4))
    return ReplayState(
        frames=jnp.zeros((n, *frame_shape), jnp.uint8),
        actions=jnp.zeros((n, *action_shape), action_dtype),
        rewards=jnp.zeros((n,), jnp.float32),
        terminals=terminals, truncations=truncations, valids=valids, firsts=firsts,
        priorities=jnp.zeros((n,), jnp.float32),
        max_priority=jnp.ones((), jnp.float32),
        cursor=jnp.zeros((), jnp.int32),
        num_added=jnp.zeros((), jnp.int32))


def add(state: ReplayState, config: ReplayConfig, frame, action, reward, terminal, truncated,
        valid, first) -> ReplayState:
    """Writes one entry at the cursor (see the module docstring for the convention).

    frame uint8 [H, W, c]; action [*action_shape]; reward float32 []; terminal, truncated,
    valid, first bool []. The entry gets priority state.max_priority.
    """
    frame = jnp.asarray(frame)
    if frame.shape != state.frames.shape[1:] or frame.dtype != jnp.uint8:
        raise UsageError(f'replay frame must be uint8 {state.frames.shape[1:]}, '
                         f'got {frame.dtype} {frame.shape}')
    action = jnp.asarray(action)
    wants_float = jnp.issubdtype(state.actions.dtype, jnp.floating)
    if action.shape != state.actions.shape[1:] or (
            jnp.issubdtype(action.dtype, jnp.floating) and not wants_float):
        raise UsageError(f'replay action must be {state.actions.dtype} {state.actions.shape[1:]}, '
                         f'got {action.dtype} {action.shape}')
    slot = state.cursor
    return state.replace(
        frames=state.frames.at[slot].set(frame),
        actions=state.actions.at[slot].set(action.astype(state.actions.dtype)),
        rewards=state.rewards.at[slot].set(jnp.asarray(reward, jnp.float32)),
        terminals=state.terminals.at[slot].set(jnp.asarray(terminal, jnp.bool_)),
        truncations=state.truncations.at[slot].set(jnp.asarray(truncated, jnp.bool_)),
        valids=state.valids.at[slot].set(jnp.asarray(valid, jnp.bool_)),
        firsts=state.firsts.at[slot].set(jnp.asarray(first, jnp.bool_)),
        priorities=state.priorities.at[slot].set(state.max_priority),
        cursor=(slot + 1) % config.capacity,
        num_added=state.num_added + 1)


def truncate(state: ReplayState, config: ReplayConfig, final_frame, action) -> ReplayState:
    """Ends the episode in flight as a time-limit truncation, e.g. when a run is interrupted.

    Marks the last entry truncated (its n-step returns bootstrap through the cut) and stores the
    observation that followed it, final_frame uint8 [H, W, c], as an invalid entry, exactly as an
    environment truncation does. The next entry added should start a new episode (first=True).
    """
    last = (state.cursor - 1) % config.capacity
    state = state.replace(truncations=state.truncations.at[last].set(state.num_added > 0))
    return add(state, config, final_frame, action, 0.0, False, False, False, False)


def _oldest(state: ReplayState, config: ReplayConfig) -> jax.Array:
    """Global index of the oldest stored entry, int32 []."""
    return jnp.maximum(state.num_added - config.capacity, 0)


def global_index(state: ReplayState, config: ReplayConfig, slots) -> jax.Array:
    """Global step numbers of ring slots, int32 [...] (meaningful for stored slots only)."""
    oldest = _oldest(state, config)
    return oldest + (jnp.asarray(slots, jnp.int32) - oldest) % config.capacity


def _stack_indices(state: ReplayState, config: ReplayConfig, t: jax.Array) -> jax.Array:
    """Global indices of the frames of o_t, int32 [..., stack], oldest first."""
    indices = [t]
    for _ in range(config.stack - 1):
        newest = indices[-1]
        is_first = state.firsts[newest % config.capacity] | (newest == 0)
        indices.append(jnp.where(is_first, newest, newest - 1))
    return jnp.stack(indices[::-1], axis=-1)


def _observations(state: ReplayState, config: ReplayConfig, t: jax.Array) -> jax.Array:
    """Stacked observations o_t, uint8 [..., H, W, stack*c], for global indices t [...]."""
    frames = state.frames[_stack_indices(state, config, t) % config.capacity]
    frames = jnp.moveaxis(frames, -4, -2)  # [..., H, W, stack, c]
    return frames.reshape(*frames.shape[:-2], frames.shape[-2] * frames.shape[-1])


def sampleable_mask(state: ReplayState, config: ReplayConfig) -> jax.Array:
    """Which ring slots are valid sample starts, bool [capacity]."""
    starts = global_index(state, config, jnp.arange(config.capacity))
    stack_start = _stack_indices(state, config, starts)[..., 0]
    return ((starts + config.lookahead < state.num_added) & state.valids
            & (stack_start >= _oldest(state, config)))


def num_sampleable(state: ReplayState, config: ReplayConfig) -> jax.Array:
    """How many slots are valid sample starts, int32 []."""
    return jnp.sum(sampleable_mask(state, config), dtype=jnp.int32)


def gather(state: ReplayState, config: ReplayConfig, indices) -> Batch:
    """The batch for sample starts given as ring slots, int32 [B] (assumed sampleable)."""
    starts = global_index(state, config, indices)  # [B]
    capacity = config.capacity
    steps = starts[:, None] + jnp.arange(config.horizon)  # [B, T-1]
    slots = steps % capacity
    connected = jnp.cumsum(~state.valids[slots], axis=1) == 0
    same_episode = jnp.concatenate([jnp.ones_like(connected[:, :1]), connected], axis=1)
    observation = _observations(state, config,
                                starts[:, None] + jnp.arange(config.horizon + 1))

    window = (starts[:, None] + jnp.arange(config.n_step)) % capacity  # [B, n]
    terminal = state.terminals[window]
    done = terminal | state.truncations[window]
    included = (jnp.cumsum(done, axis=1) - done) == 0  # no episode end strictly before i
    m = jnp.sum(included, axis=1, dtype=jnp.int32)
    powers = jnp.asarray(np.power(config.gamma, np.arange(config.n_step)), jnp.float32)
    returns = jnp.sum(jnp.where(included, powers * state.rewards[window], 0.0), axis=1)
    gamma_m = jnp.power(jnp.float32(config.gamma), m.astype(jnp.float32))
    discount = jnp.where(jnp.any(included & terminal, axis=1), 0.0, gamma_m)
    return Batch(
        observation=observation,
        action=state.actions[slots],
        reward=state.rewards[slots],
        same_episode=same_episode,
        next_observation=_observations(state, config, starts + m),
        returns=returns,
        discount=discount.astype(jnp.float32))


def _last_positive(cumulative: jax.Array) -> jax.Array:
    """Index of the last positive-mass entry given a nondecreasing cumsum [..., K]."""
    return jnp.argmax(cumulative, axis=-1).astype(jnp.int32)


def _locate(config: ReplayConfig, mass: jax.Array, u_segment: jax.Array,
            u_inner: jax.Array) -> jax.Array:
    """Slots int32 [B] for uniforms u_segment, u_inner [B] in [0, 1) and mass [capacity] >= 0.

    Draw b lands at (b + u_segment[b]) / B of the total mass (stratified, as rlpyt's sum tree),
    which picks a block of `block_size` slots; u_inner then picks the slot inside that block in
    proportion to its mass. Every cumsum compares values of one block's or the block totals'
    magnitude, so float32 resolves masses block_size times smaller than a flat cumsum does.
    """
    size = config.block_size
    blocks = -(-config.capacity // size)
    padded = jnp.pad(mass, (0, blocks * size - config.capacity)).reshape(blocks, size)
    inner = jnp.cumsum(padded, axis=1)  # [blocks, size]
    block_mass = inner[:, -1]
    outer = jnp.cumsum(block_mass)  # [blocks]
    batch = u_segment.shape[0]
    u = (jnp.arange(batch) + u_segment) * (outer[-1] / batch)
    block = jnp.sum(outer[None, :] <= u[:, None], axis=1, dtype=jnp.int32)
    block = jnp.minimum(block, _last_positive(outer))
    rows = inner[block]  # [B, size]
    r = u_inner * block_mass[block]
    within = jnp.sum(rows <= r[:, None], axis=1, dtype=jnp.int32)
    within = jnp.minimum(within, _last_positive(rows))
    return block * size + within


def _stratified_indices(config: ReplayConfig, mass: jax.Array, key) -> jax.Array:
    """Stratified proportional draw of B slots from nonnegative mass [capacity], int32 [B].

    P(slot i) = mass_i / total for each draw; the B draws are spread over B equal segments of
    the total mass at block granularity (two draws in one block are independent inside it).
    """
    key_segment, key_inner = jax.random.split(key)
    shape = (config.batch_size,)
    return _locate(config, mass, jax.random.uniform(key_segment, shape),
                   jax.random.uniform(key_inner, shape))


def sample(state: ReplayState, config: ReplayConfig, key, beta):
    """Draws B sample starts and their batch.

    Returns (batch, indices int32 [B] ring slots for `update_priorities`, weights float32 [B])
    with importance weights w_i = (N P(i))^-beta / max_batch w, N = number of valid starts.
    With no valid start at all the indices are meaningless and the weights are all zero.
    """
    mask = sampleable_mask(state, config)
    count = jnp.sum(mask, dtype=jnp.int32)
    uniform = mask.astype(jnp.float32)
    if config.priority_exponent == 0.0:
        mass = uniform
    else:
        mass = jnp.where(mask, jnp.power(state.priorities, config.priority_exponent), 0.0)
        mass = jnp.where(jnp.sum(mass) > 0.0, mass, uniform)  # all-zero priorities: uniform
    indices = _stratified_indices(config, mass, key)
    probability = mass[indices] / jnp.sum(mass)
    weights = jnp.power(count * probability, -jnp.asarray(beta, jnp.float32))
    weights = jnp.where(count > 0, weights / jnp.max(weights), 0.0)
    return gather(state, config, indices), indices, weights.astype(jnp.float32)


def update_priorities(state: ReplayState, config: ReplayConfig, indices,
                      priorities) -> ReplayState:
    """Sets raw priorities p >= 0, float32 [B], of ring slots int32 [B]; raises max_priority.

    For a slot repeated in `indices` one of its priorities is kept (XLA scatter order).
    """
    del config  # the signature matches the other functions; nothing here depends on it
    indices = jnp.asarray(indices, jnp.int32)
    priorities = jnp.asarray(priorities, jnp.float32)
    if indices.ndim != 1 or indices.shape != priorities.shape:
        raise UsageError(f'replay update_priorities needs indices and priorities of one shape '
                         f'[B], got {indices.shape} and {priorities.shape}')
    return state.replace(
        priorities=state.priorities.at[indices].set(priorities),
        max_priority=jnp.maximum(state.max_priority, jnp.max(priorities)))
