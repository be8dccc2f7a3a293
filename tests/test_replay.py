"""Tests for psrl_jax.replay against a naive loop-based reference written here from the spec."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from psrl_jax import replay
from psrl_jax.errors import UsageError

ADD = jax.jit(replay.add, static_argnums=1)
GATHER = jax.jit(replay.gather, static_argnums=1)
SAMPLE = jax.jit(replay.sample, static_argnums=1)
MASK = jax.jit(replay.sampleable_mask, static_argnums=1)

# ---------------------------------------------------------------------------------------------
# Streams that follow the training loop's storage convention.


def _frame(shape, game, t):
    """A frame [H, W, c] that encodes its game and global step: pixel (0,0) = game, (0,1) and
    (1,0) = the two low bytes of t, the rest = a pattern by channel."""
    frame = np.zeros(shape, np.uint8)
    frame[...] = (np.arange(shape[-1]) + 17) % 256
    frame[0, 0] = game % 256
    frame[0, 1] = t % 256
    frame[1, 0] = (t // 256) % 256
    return frame


def make_stream(seed, length, frame_shape, action_shape=(), max_episode=8):
    """Entries of an env loop with terminals, truncations, life losses (first=False after the
    pseudo-step) and game resets (first=True), as a dict of numpy arrays [length, ...]."""
    rng = np.random.default_rng(seed)
    entries = []
    game, first_next = 0, True

    def push(**entry):
        t = len(entries)
        if action_shape:
            action = rng.uniform(-1, 1, action_shape).astype(np.float32)
        else:
            action = np.int32(rng.integers(0, 6))
        entries.append(dict(frame=_frame(frame_shape, game, t), action=action, **entry))

    while len(entries) < length:
        episode = int(rng.integers(1, max_episode))
        end = rng.choice(['terminal', 'truncated', 'life'])
        for i in range(episode):
            last = i == episode - 1
            push(reward=np.float32(rng.normal()), terminal=last and end in ('terminal', 'life'),
                 truncated=last and end == 'truncated', valid=True, first=first_next)
            first_next = False
        # envpool's auto-reset pseudo-step: the entry holds the episode's final observation.
        push(reward=np.float32(0.0), terminal=False, truncated=False, valid=False, first=False)
        if end != 'life':
            game += 1
            first_next = True
    entries = entries[:length]
    return {key: np.stack([e[key] for e in entries]) for key in entries[0]}


@functools.partial(jax.jit, static_argnums=0)
def _add_all(config, state, xs):
    def body(s, x):
        return replay.add(s, config, x['frame'], x['action'], x['reward'], x['terminal'],
                          x['truncated'], x['valid'], x['first']), None
    return jax.lax.scan(body, state, xs)[0]


def fill(config, stream, action_shape=(), action_dtype=jnp.int32):
    """A buffer after adding every entry of the stream (jitted scan over `add`)."""
    state = replay.init(config, stream['frame'].shape[1:], action_shape, action_dtype)
    return _add_all(config, state, {k: jnp.asarray(v) for k, v in stream.items()})


# ---------------------------------------------------------------------------------------------
# Naive reference: plain loops over global step numbers.


def ref_stack(stream, t, stack):
    """(global frame indices of o_t oldest first, smallest index used)."""
    s = t
    while s > max(t - stack + 1, 0) and not stream['first'][s]:
        s -= 1
    return [max(u, s) for u in range(t - stack + 1, t + 1)], s


def ref_observation(stream, t, stack):
    indices, _ = ref_stack(stream, t, stack)
    return np.concatenate([stream['frame'][i] for i in indices], axis=-1)


def ref_valid_starts(stream, n, config):
    oldest = max(n - config.capacity, 0)
    lookahead = max(config.n_step, config.horizon)
    starts = []
    for k in range(oldest, n):
        if k + lookahead > n - 1 or not stream['valid'][k]:
            continue
        if ref_stack(stream, k, config.stack)[1] < oldest:
            continue
        starts.append(k)
    return starts


def ref_item(stream, k, config):
    """Every Batch field for global start k, by loops."""
    observation = [ref_observation(stream, k + j, config.stack) for j in range(config.horizon + 1)]
    same, connected = [], True
    for j in range(config.horizon + 1):
        same.append(connected)
        if not stream['valid'][k + j]:
            connected = False
    returns, m, discount = 0.0, config.n_step, config.gamma ** config.n_step
    for i in range(config.n_step):
        returns += config.gamma ** i * float(stream['reward'][k + i])
        if stream['terminal'][k + i]:
            m, discount = i + 1, 0.0
            break
        if stream['truncated'][k + i]:
            m, discount = i + 1, config.gamma ** (i + 1)
            break
    horizon = range(k, k + config.horizon)
    return dict(observation=np.stack(observation),
                action=np.stack([stream['action'][i] for i in horizon]),
                reward=np.array([stream['reward'][i] for i in horizon], np.float32),
                same_episode=np.array(same),
                next_observation=ref_observation(stream, k + m, config.stack),
                returns=returns, discount=discount)


def check_against_reference(batch, starts, stream, config):
    for b, k in enumerate(starts):
        want = ref_item(stream, k, config)
        for name in ('observation', 'next_observation', 'same_episode'):
            np.testing.assert_array_equal(np.asarray(getattr(batch, name)[b]), want[name],
                                          err_msg=f'{name} of start {k}')
        np.testing.assert_array_equal(np.asarray(batch.action[b]), want['action'])
        np.testing.assert_array_equal(np.asarray(batch.reward[b]), want['reward'])
        np.testing.assert_allclose(float(batch.returns[b]), want['returns'], rtol=1e-5,
                                   atol=1e-5, err_msg=f'returns of start {k}')
        np.testing.assert_allclose(float(batch.discount[b]), want['discount'], rtol=1e-6,
                                   err_msg=f'discount of start {k}')


def slots_to_global(slots, n, capacity):
    oldest = max(n - capacity, 0)
    return [oldest + (int(s) - oldest) % capacity for s in slots]


ATARI = replay.ReplayConfig(capacity=48, stack=4, horizon=3, n_step=5, gamma=0.9, batch_size=16,
                            priority_exponent=0.5)
DMC = replay.ReplayConfig(capacity=37, stack=3, horizon=4, n_step=1, gamma=0.99, batch_size=16)

CASES = [  # (config, frame_shape, action_shape, stream length, seed)
    (ATARI, (2, 2, 1), (), 30, 0),      # not wrapped yet
    (ATARI, (2, 2, 1), (), 48, 1),      # exactly full
    (ATARI, (2, 2, 1), (), 131, 2),     # wrapped several times
    (DMC, (2, 2, 3), (2,), 20, 3),
    (DMC, (2, 2, 3), (2,), 100, 4),
]


def _build(config, frame_shape, action_shape, length, seed):
    stream = make_stream(seed, length, frame_shape, action_shape)
    dtype = jnp.float32 if action_shape else jnp.int32
    return stream, fill(config, stream, action_shape, dtype)


@pytest.mark.parametrize('config,frame_shape,action_shape,length,seed', CASES)
def test_every_valid_start_matches_reference(config, frame_shape, action_shape, length, seed):
    stream, state = _build(config, frame_shape, action_shape, length, seed)
    mask = np.asarray(MASK(state, config))
    slots = np.nonzero(mask)[0]
    starts = slots_to_global(slots, length, config.capacity)
    want = ref_valid_starts(stream, length, config)
    assert sorted(starts) == want
    assert int(replay.num_sampleable(state, config)) == len(want) > 0
    batch = jax.jit(replay.gather, static_argnums=1)(state, config, jnp.asarray(slots))
    check_against_reference(batch, starts, stream, config)


@pytest.mark.parametrize('config,frame_shape,action_shape,length,seed', CASES)
def test_sample_draws_only_valid_starts_and_correct_items(config, frame_shape, action_shape,
                                                          length, seed):
    stream, state = _build(config, frame_shape, action_shape, length, seed)
    valid = set(ref_valid_starts(stream, length, config))
    sample = jax.jit(replay.sample, static_argnums=1)
    seen = set()
    for i in range(40):
        batch, slots, weights = sample(state, config, jax.random.key(i), 0.4)
        starts = slots_to_global(np.asarray(slots), length, config.capacity)
        assert set(starts) <= valid
        seen |= set(starts)
        if i < 3:
            check_against_reference(batch, starts, stream, config)
        assert np.all(np.asarray(weights) > 0) and np.isclose(np.max(np.asarray(weights)), 1.0)
    assert seen == valid  # every valid start is reachable


def _game(observation, c):
    """Game ids of the stack slots of observations [..., H, W, stack*c] -> [..., stack]."""
    return np.asarray(observation)[..., 0, 0, ::c]


def _step(observation, c):
    o = np.asarray(observation).astype(np.int64)
    return o[..., 0, 1, ::c] + 256 * o[..., 1, 0, ::c]


@pytest.mark.parametrize('config,frame_shape,action_shape,length,seed', CASES)
def test_no_sample_crosses_a_boundary(config, frame_shape, action_shape, length, seed):
    stream, state = _build(config, frame_shape, action_shape, length, seed)
    c = frame_shape[-1]
    lookahead = max(config.n_step, config.horizon)
    slots = np.nonzero(np.asarray(MASK(state, config)))[0]
    batch = jax.jit(replay.gather, static_argnums=1)(state, config, jnp.asarray(slots))
    starts = np.array(slots_to_global(slots, length, config.capacity))
    oldest = max(length - config.capacity, 0)
    # never a pseudo-step, never too close to the cursor, never an overwritten frame
    assert np.all(stream['valid'][starts])
    assert np.all(starts + lookahead <= length - 1)
    steps = _step(batch.observation, c)  # [B, T, stack]
    assert steps.min() >= oldest
    games = _game(batch.observation, c)  # [B, T, stack]
    same = np.asarray(batch.same_episode)
    for b, k in enumerate(starts):
        # stacks never mix frames of two games
        assert np.all(games[b] == games[b, :, -1:])
        # the stack is the last frames, oldest first, repeated only at a game start
        assert np.all(np.diff(steps[b], axis=-1) >= 0) and np.all(steps[b, :, -1] == k
                                                                   + np.arange(len(same[b])))
        for j in range(len(same[b])):
            crossed = not all(stream['valid'][k:k + j])
            assert same[b, j] == (not crossed)
            if same[b, j]:
                assert games[b, j, -1] == games[b, 0, -1]
        assert np.all(_game(batch.next_observation[b], c) == games[b, 0, -1])


def test_n_step_by_hand():
    """gamma = 0.5, n = 3. Episode A: r 1, 2 then terminal; episode B: r 4, 8 then truncation;
    episode C: r 16, 32, 64, 128, ..."""
    config = replay.ReplayConfig(capacity=16, stack=2, horizon=2, n_step=3, gamma=0.5,
                                 batch_size=4, priority_exponent=1.0)
    rows = [  # reward, terminal, truncated, valid, first
        (1, 0, 0, 1, 1), (2, 1, 0, 1, 0), (0, 0, 0, 0, 0),       # 0-2: A, final obs at 2
        (4, 0, 0, 1, 1), (8, 0, 1, 1, 0), (0, 0, 0, 0, 0),       # 3-5: B, final obs at 5
        (16, 0, 0, 1, 1), (32, 0, 0, 1, 0), (64, 0, 0, 1, 0), (128, 0, 0, 1, 0),
        (256, 0, 0, 1, 0), (512, 0, 0, 1, 0)]
    state = replay.init(config, (1, 1, 1))
    for t, (r, term, trunc, valid, first) in enumerate(rows):
        state = ADD(state, config, np.full((1, 1, 1), 10 + t, np.uint8), t, r, term, trunc,
                    valid, first)
    mask = np.asarray(MASK(state, config))
    assert list(np.nonzero(mask)[0]) == [0, 1, 3, 4, 6, 7, 8]  # 9..11 too close to the cursor
    batch = GATHER(state, config, jnp.array([0, 1, 3, 4, 6, 7]))
    np.testing.assert_allclose(batch.returns, [1 + 0.5 * 2, 2, 4 + 0.5 * 8, 8,
                                               16 + 0.5 * 32 + 0.25 * 64,
                                               32 + 0.5 * 64 + 0.25 * 128])
    # terminal inside the window -> 0; truncation -> gamma^m with m = steps to the end
    np.testing.assert_allclose(batch.discount, [0, 0, 0.25, 0.5, 0.125, 0.125])
    # bootstrap observations (stack 2): o_2 = [f1, f2], o_5 = [f4, f5] (the final obs), o_9, o_10
    np.testing.assert_array_equal(batch.next_observation[:, 0, 0] - 10,
                                  [[1, 2], [1, 2], [4, 5], [4, 5], [8, 9], [9, 10]])
    # o_3 starts a game: [f3, f3]; o_1 is connected to o_0, o_2 (final obs) too, o_3 is not
    np.testing.assert_array_equal(batch.observation[2, 0, 0, 0] - 10, [3, 3])
    np.testing.assert_array_equal(batch.same_episode[:4],
                                  [[1, 1, 1], [1, 1, 0], [1, 1, 1], [1, 1, 0]])
    # the same through `sample`: priority mass only on slot 3 (truncation start)
    state = replay.update_priorities(state, config, jnp.arange(16),
                                     jnp.zeros(16).at[3].set(2.0))
    batch, slots, weights = SAMPLE(state, config, jax.random.key(0), 1.0)
    np.testing.assert_array_equal(slots, [3, 3, 3, 3])
    np.testing.assert_allclose(batch.returns, 8.0)
    np.testing.assert_allclose(batch.discount, 0.25)
    np.testing.assert_allclose(weights, 1.0)


def test_wrapped_stack_history_is_not_used():
    """After wrapping, a start whose stack reaches an overwritten frame is not sampleable."""
    config = replay.ReplayConfig(capacity=10, stack=4, horizon=1, n_step=1, gamma=0.9,
                                 batch_size=2)
    stream = make_stream(0, 25, (2, 2, 1))
    stream['first'][:] = False  # one long game: no restart limits the stack
    stream['first'][0] = True
    stream['valid'][:] = True
    stream['terminal'][:] = False
    stream['truncated'][:] = False
    state = fill(config, stream)
    starts = slots_to_global(np.nonzero(MASK(state, config))[0], 25, 10)
    assert sorted(starts) == list(range(15 + 3, 24))  # oldest 15; stack needs 3 older frames
    # the first entry ever added counts as a game start even without the flag
    stream['first'][0] = False
    state = fill(config, {k: v[:6] for k, v in stream.items()})
    batch = GATHER(state, config, jnp.array([0, 2]))
    np.testing.assert_array_equal(_step(batch.observation[:, 0], 1), [[0, 0, 0, 0], [0, 0, 1, 2]])


# ---------------------------------------------------------------------------------------------
# Priorities.


def test_new_entries_get_max_priority():
    config = replay.ReplayConfig(capacity=8, stack=1, horizon=1, n_step=1, gamma=0.9,
                                 batch_size=2, priority_exponent=0.5)
    stream = make_stream(5, 5, (2, 2, 1))
    state = fill(config, stream)
    np.testing.assert_array_equal(state.priorities[:5], 1.0)  # initial max priority
    state = replay.update_priorities(state, config, jnp.array([0, 1]), jnp.array([3.0, 0.5]))
    np.testing.assert_allclose(state.priorities[:5], [3.0, 0.5, 1, 1, 1])
    assert float(state.max_priority) == 3.0
    state = replay.update_priorities(state, config, jnp.array([2]), jnp.array([2.0]))
    assert float(state.max_priority) == 3.0  # never lowered
    state = ADD(state, config, stream['frame'][0], 1, 0.0, False, False, True, False)
    assert float(state.priorities[5]) == 3.0


def _draw_counts(state, config, draws, beta=0.5):
    keys = jax.random.split(jax.random.key(123), draws)
    slots, weights = jax.jit(jax.vmap(lambda k: replay.sample(state, config, k, beta)[1:]))(keys)
    counts = np.bincount(np.asarray(slots).ravel(), minlength=config.capacity)
    return counts, np.asarray(slots), np.asarray(weights)


@pytest.mark.parametrize('alpha', [0.0, 0.5, 1.0])
def test_sampling_frequencies_and_weights(alpha):
    config = replay.ReplayConfig(capacity=40, stack=2, horizon=1, n_step=2, gamma=0.9,
                                 batch_size=8, priority_exponent=alpha)
    stream = make_stream(7, 57, (2, 2, 1))  # wrapped
    state = fill(config, stream)
    rng = np.random.default_rng(0)
    raw = rng.uniform(0.05, 4.0, config.capacity).astype(np.float32)
    raw[rng.choice(config.capacity, 4, replace=False)] = 0.0
    state = replay.update_priorities(state, config, jnp.arange(config.capacity), raw)
    mask = np.asarray(MASK(state, config))
    q = np.where(mask, raw.astype(np.float64) ** alpha if alpha else 1.0, 0.0)
    p = q / q.sum()
    counts, slots, weights = _draw_counts(state, config, 4000)
    total = counts.sum()
    assert np.all(counts[p == 0] == 0)  # invalid starts and zero priorities never drawn
    support = p > 0
    chi2 = np.sum((counts[support] - total * p[support]) ** 2 / (total * p[support]))
    assert chi2 < stats.chi2.ppf(0.999, support.sum() - 1), chi2
    np.testing.assert_allclose(counts[support] / total, p[support], atol=0.004)
    # w_i = (N P(i))^-beta / max over the batch
    n = mask.sum()
    w = (n * p[slots]) ** -0.5
    np.testing.assert_allclose(weights, w / w.max(axis=1, keepdims=True), rtol=2e-5)


def test_stratified_draw_spreads_a_batch():
    """One draw per mass segment: 30 slots of mass 1 in blocks of 6 and B = 30 put exactly six
    draws in each block, every time (a multinomial draw would clump)."""
    config = replay.ReplayConfig(capacity=36, stack=1, horizon=1, n_step=1, gamma=0.9,
                                 batch_size=30)
    assert config.block_size == 6
    mass = jnp.asarray((np.arange(36) < 30).astype(np.float32))
    for i in range(20):
        slots = np.asarray(replay._stratified_indices(config, mass, jax.random.key(i)))
        np.testing.assert_array_equal(np.bincount(slots // 6, minlength=6), [6, 6, 6, 6, 6, 0])


def test_small_masses_stay_resolvable_next_to_a_large_total():
    """Float32 precision. Block 0 holds 1.5e6 of mass (ulp 0.125), the other 992 slots 0.05 each:
    a flat float32 cumsum gives some of them an empty interval (never drawn), while aiming at the
    middle of each slot's exact interval with the two-level sum draws exactly that slot."""
    config = replay.ReplayConfig(capacity=1024, stack=1, horizon=1, n_step=1, gamma=0.9,
                                 batch_size=1, priority_exponent=1.0)
    size = config.block_size
    assert size == 32
    mass = np.full(1024, 0.05, np.float32)
    mass[:size] = 1.5e6 / size
    flat = np.cumsum(mass, dtype=np.float32)
    assert np.any(np.diff(flat[size - 1:]) == 0)  # a flat cumsum loses some small slots
    slots = np.arange(size, 1024)
    exact = np.cumsum(mass.astype(np.float64))
    total = exact[-1]
    block_start = exact[slots // size * size - 1]
    u_segment = (block_start + 0.5 * size * 0.05) / total  # the middle of the slot's block
    u_inner = (slots % size + 0.5) / size  # the middle of the slot inside its block
    locate = jax.jit(jax.vmap(lambda a, b: replay._locate(config, jnp.asarray(mass), a[None],
                                                          b[None])[0]))
    got = locate(jnp.asarray(u_segment, jnp.float32), jnp.asarray(u_inner, jnp.float32))
    np.testing.assert_array_equal(np.asarray(got), slots)


def test_zero_valid_starts_gives_zero_weights():
    config = replay.ReplayConfig(capacity=8, stack=1, horizon=2, n_step=2, gamma=0.9,
                                 batch_size=4, priority_exponent=0.5)
    state = fill(config, make_stream(0, 2, (2, 2, 1)))
    assert int(replay.num_sampleable(state, config)) == 0
    _, _, weights = SAMPLE(state, config, jax.random.key(0), 0.4)
    np.testing.assert_array_equal(weights, 0.0)


# ---------------------------------------------------------------------------------------------
# jit / vmap, memory, errors.


def _assert_trees_equal(a, b, float_tol=0.0):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        x, y = np.asarray(x), np.asarray(y)
        assert x.shape == y.shape and x.dtype == y.dtype
        if np.issubdtype(x.dtype, np.floating):
            np.testing.assert_allclose(x, y, rtol=float_tol, atol=float_tol)
        else:
            np.testing.assert_array_equal(x, y)


def test_jit_and_vmap_match_unbatched_calls():
    config = ATARI
    streams = [make_stream(s, 70, (2, 2, 1)) for s in (10, 11)]
    states = [fill(config, s) for s in streams]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *states)
    keys = jax.random.split(jax.random.key(3), 2)

    sample = functools.partial(replay.sample, config=config, beta=0.4)
    batched = jax.jit(jax.vmap(lambda s, k: sample(s, key=k)))(stacked, keys)
    unbatched = [jax.jit(lambda s, k: sample(s, key=k))(states[i], keys[i]) for i in range(2)]
    for i in range(2):
        _assert_trees_equal(jax.tree.map(lambda x: x[i], batched), unbatched[i], 1e-6)

    # add and update_priorities under vmap, with per-seed cursors
    entry = [jnp.stack([streams[0]['frame'][0], streams[1]['frame'][1]]), jnp.array([1, 2]),
             jnp.array([0.5, 1.5]), jnp.array([True, False]), jnp.array([False, True]),
             jnp.array([True, True]), jnp.array([False, True])]
    added = jax.jit(jax.vmap(lambda s, *e: replay.add(s, config, *e)))(stacked, *entry)
    for i in range(2):
        one = ADD(states[i], config, *[e[i] for e in entry])
        _assert_trees_equal(jax.tree.map(lambda x: x[i], added), one)
    idx = jnp.array([[0, 5], [7, 5]])
    pri = jnp.array([[2.0, 0.1], [0.3, 9.0]])
    upd = jax.vmap(lambda s, i, p: replay.update_priorities(s, config, i, p))(stacked, idx, pri)
    for i in range(2):
        one = jax.jit(replay.update_priorities, static_argnums=1)(states[i], config, idx[i],
                                                                   pri[i])
        _assert_trees_equal(jax.tree.map(lambda x: x[i], upd), one)


def test_state_can_be_donated():
    """The loop jits `add` with the state donated (in-place writes); every leaf is its own
    buffer, also for a vmapped seed axis."""
    config = replay.ReplayConfig(capacity=8, stack=2, horizon=1, n_step=1, gamma=0.9,
                                 batch_size=2)
    add = jax.jit(replay.add, static_argnums=1, donate_argnums=0)
    frame = np.full((2, 2, 1), 9, np.uint8)
    state = add(replay.init(config, (2, 2, 1)), config, frame, 1, 0.5, False, False, True, True)
    np.testing.assert_array_equal(state.frames[0], frame)
    two = jax.vmap(lambda _: replay.init(config, (2, 2, 1)))(jnp.arange(2))
    two = jax.jit(jax.vmap(lambda s: replay.add(s, config, frame, 1, 0.5, False, False, True,
                                                True)), donate_argnums=0)(two)
    np.testing.assert_array_equal(two.cursor, [1, 1])


def test_memory_of_atari_100k_buffer():
    config = replay.ReplayConfig(capacity=100_000, stack=4, horizon=5, n_step=10, gamma=0.99,
                                 batch_size=32, priority_exponent=0.5)
    shapes = jax.eval_shape(lambda: replay.init(config, (84, 84, 1)))
    leaves = {f.name: getattr(shapes, f.name) for f in dataclasses.fields(shapes)}
    sizes = {k: np.prod(v.shape) * v.dtype.itemsize for k, v in leaves.items()}
    assert shapes.frames.dtype == jnp.uint8
    assert sizes['frames'] == 705_600_000
    assert sum(sizes.values()) < 0.75e9
    assert sum(sizes.values()) - sizes['frames'] < 2e6


@pytest.mark.parametrize('kwargs', [
    dict(capacity=8, stack=4, horizon=3, n_step=5),     # too small for one sample
    dict(horizon=0),                                    # action[:, 0] would not exist
    dict(n_step=0),
    dict(gamma=1.5),
    dict(priority_exponent=-0.5),
    dict(batch_size=2.0),
])
def test_bad_config_raises_usage_error(kwargs):
    base = dict(capacity=64, stack=4, horizon=5, n_step=10, gamma=0.99, batch_size=32)
    with pytest.raises(UsageError) as info:
        replay.ReplayConfig(**{**base, **kwargs})
    assert '\n' not in str(info.value)


def test_bad_inputs_raise_usage_error():
    config = replay.ReplayConfig(capacity=16, stack=2, horizon=1, n_step=1, gamma=0.9,
                                 batch_size=2)
    with pytest.raises(UsageError):
        replay.init(config, (84, 84))
    state = replay.init(config, (2, 2, 1))
    with pytest.raises(UsageError):
        replay.add(state, config, np.zeros((2, 2, 3), np.uint8), 0, 0.0, False, False, True, True)
    with pytest.raises(UsageError):
        replay.add(state, config, np.zeros((2, 2, 1), np.float32), 0, 0.0, False, False, True,
                   True)
    with pytest.raises(UsageError):
        replay.add(state, config, np.zeros((2, 2, 1), np.uint8), 0.5, 0.0, False, False, True,
                   True)
    with pytest.raises(UsageError):
        replay.update_priorities(state, config, jnp.arange(3), jnp.ones(2))
