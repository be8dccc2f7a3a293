"""Tests for psrl_jax.losses against the numpy references in numpy_reference.py.

Known answers come from numpy_reference (written from DESIGN.md's contract), from analytic gradients
and finite differences, and from small cases worked by hand in the comments below.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import numpy_reference as ref
from jit_checks import check_jit_and_vmap
from psrl_jax import losses

ATOL = 1e-5

# Jitted entry points: one compile per shape (not one per primitive) keeps the file fast on CPU.
# test_jit_and_vmap_agree_with_plain_calls checks that they agree with the plain calls.
PHOTOMETRIC = jax.jit(losses.photometric_loss)
SMOOTHNESS = jax.jit(losses.smoothness_loss)
RECONSTRUCTION = jax.jit(losses.reconstruction_loss)
CORRESPONDENCE_TERMS = jax.jit(losses.correspondence_terms)
CORRESPONDENCE = jax.jit(losses.correspondence_loss)
PAIRED_SIMILARITY = jax.jit(losses.paired_similarity_loss)
PAIRED_SIMILARITY_TERMS = jax.jit(losses.paired_similarity_terms)


def _rng(seed):
    return np.random.default_rng(seed)


def _normal(rng, shape, scale=1.0):
    return (scale * rng.normal(size=shape)).astype(np.float32)


def _translated_frames(num_frames, height, width, channels, velocity, seed):
    """Frames [1, T, H, W, c] of an object moving by velocity = (vx, vy) pixels per frame:
    I_j(p) = O(p - j v), with O zero outside a central block so nothing leaves the canvas."""
    rng = _rng(seed)
    vx, vy = velocity
    frames = np.zeros((1, num_frames, height, width, channels), np.float32)
    block = rng.uniform(0.2, 1.0, size=(4, 4, channels)).astype(np.float32)
    y0, x0 = 3, 3
    for j in range(num_frames):
        ys, xs = y0 + j * vy, x0 + j * vx
        frames[0, j, ys:ys + 4, xs:xs + 4] = block
    return frames


def _constant_flow(shape, dx, dy):
    flow = np.zeros(shape + (2,), np.float32)
    flow[..., 0], flow[..., 1] = dx, dy
    return flow


# ---------------------------------------------------------------------------------------------
# photometric, smoothness and reconstruction losses


@pytest.mark.parametrize('shape, flow_scale', [((2, 5, 6, 3), 1.5), ((3, 8, 4, 1), 3.0)])
def test_photometric_loss_matches_reference(shape, flow_scale):
    rng = _rng(1)
    a, b = _normal(rng, shape), _normal(rng, shape)
    flow = _normal(rng, shape[:3] + (2,), flow_scale)
    got = PHOTOMETRIC(jnp.asarray(a), jnp.asarray(b), jnp.asarray(flow))
    assert got.shape == (shape[0],)
    np.testing.assert_allclose(got, ref.photometric_loss(a, b, flow), atol=ATOL, rtol=1e-5)


@pytest.mark.parametrize('dx, dy', [(1, -2), (-2, 0), (0, 1)])
def test_photometric_loss_vanishes_at_the_true_integer_flow(dx, dy):
    # I_b random inside a 2-pixel zero border; I_a(p) = I_b(p + d) (zero where p + d is outside),
    # so |I_a - warp(I_b, d)| = 0 at every pixel, while zero flow leaves a clear residual.
    rng = _rng(2)
    height, width = 9, 10
    image_b = np.zeros((1, height, width, 2), np.float32)
    image_b[0, 2:-2, 2:-2] = rng.uniform(0.1, 1.0, size=(height - 4, width - 4, 2))
    image_a = np.zeros_like(image_b)
    for y in range(height):
        for x in range(width):
            if 0 <= y + dy < height and 0 <= x + dx < width:
                image_a[0, y, x] = image_b[0, y + dy, x + dx]
    true = PHOTOMETRIC(jnp.asarray(image_a), jnp.asarray(image_b),
                                   jnp.asarray(_constant_flow((1, height, width), dx, dy)))
    zero = PHOTOMETRIC(jnp.asarray(image_a), jnp.asarray(image_b),
                                   jnp.zeros((1, height, width, 2)))
    assert float(true[0]) < 1e-6
    assert float(zero[0]) > 0.1
    # a half-pixel error in the flow already costs something
    half = PHOTOMETRIC(jnp.asarray(image_a), jnp.asarray(image_b),
                                   jnp.asarray(_constant_flow((1, height, width), dx + 0.5, dy)))
    assert float(half[0]) > 0.02


@pytest.mark.parametrize('shape', [(2, 5, 6, 2), (1, 2, 9, 2), (3, 7, 3, 2)])
def test_smoothness_loss_matches_reference(shape):
    flow = _normal(_rng(3), shape)
    got = SMOOTHNESS(jnp.asarray(flow))
    assert got.shape == (shape[0],)
    np.testing.assert_allclose(got, ref.smoothness_loss(flow), atol=ATOL, rtol=1e-5)


def test_smoothness_loss_hand_worked():
    # dx = a x + b y, dy = 0: the row differences are |b| on channel 0 and 0 on channel 1, mean
    # |b| / 2; the column differences mean |a| / 2 -> (|a| + |b|) / 2. A constant flow costs 0.
    a, b = 0.6, -1.4
    ys, xs = np.meshgrid(np.arange(5), np.arange(7), indexing='ij')
    flow = np.zeros((2, 5, 7, 2), np.float32)
    flow[0, ..., 0] = a * xs + b * ys
    flow[1] = [3.0, -2.0]
    got = np.asarray(SMOOTHNESS(jnp.asarray(flow)))
    np.testing.assert_allclose(got, [(abs(a) + abs(b)) / 2, 0.0], atol=1e-6)


@pytest.mark.parametrize('weight', [0.0, 0.3])
def test_reconstruction_loss_matches_reference(weight):
    rng = _rng(4)
    a, b = _normal(rng, (2, 6, 5, 3)), _normal(rng, (2, 6, 5, 3))
    flow = _normal(rng, (2, 6, 5, 2), 2.0)
    got = RECONSTRUCTION(jnp.asarray(a), jnp.asarray(b), jnp.asarray(flow), weight)
    np.testing.assert_allclose(got, ref.reconstruction_loss(a, b, flow, weight), atol=ATOL,
                               rtol=1e-5)
    if weight:
        photometric = ref.photometric_loss(a, b, flow)
        assert np.all(np.asarray(got) > photometric + 0.1 * weight)


# ---------------------------------------------------------------------------------------------
# correspondence loss


def _correspondence_inputs(seed, batch=3, m=2, height=6, width=5, channels=2):
    rng = _rng(seed)
    frames = _normal(rng, (batch, m + 2, height, width, channels))
    external = _normal(rng, (batch, m + 1, height, width, 2), 1.5)
    internal = _normal(rng, (batch, height, width, 2), 1.5)
    return frames, external, internal


@pytest.mark.parametrize('m, weight', [(1, 0.0), (2, 0.5), (4, 0.1)])
def test_correspondence_terms_match_reference(m, weight):
    frames, external, internal = _correspondence_inputs(m, m=m)
    same = np.ones((3, m + 2), bool)
    same[1, m + 1:] = False          # leaves the episode before the last frame
    same[2, 2:] = False               # leaves after frame 1: also drops the internal map if m >= 2
    got = CORRESPONDENCE_TERMS(jnp.asarray(frames), jnp.asarray(external),
                                      jnp.asarray(internal), jnp.asarray(same), weight)
    expected = ref.correspondence_terms(frames, external, internal, same, weight)
    assert set(got) == {'external', 'internal'}
    for name in ('external', 'internal'):
        assert got[name].shape == (3,)
        np.testing.assert_allclose(got[name], expected[name], atol=1e-4, rtol=1e-5)
    total = CORRESPONDENCE(jnp.asarray(frames), jnp.asarray(external),
                                       jnp.asarray(internal), jnp.asarray(same), weight)
    np.testing.assert_allclose(total, expected['external'] + expected['internal'], atol=1e-4,
                               rtol=1e-5)


def test_correspondence_masking_drops_exactly_the_right_maps():
    # Row j of the batch has same_episode[:, j] = False only. External map i pairs frames i and
    # i + 1 and is masked by column i + 1, so row j loses map j - 1 (nothing for j = 0); the
    # internal map (frames 0 and M) is masked by column M only.
    m, weight = 3, 0.2
    frames, external, internal = _correspondence_inputs(5, batch=1, m=m)
    rows = m + 2
    frames = np.repeat(frames, rows, axis=0)
    external = np.repeat(external, rows, axis=0)
    internal = np.repeat(internal, rows, axis=0)
    same = ~np.eye(rows, dtype=bool)
    got = CORRESPONDENCE_TERMS(jnp.asarray(frames), jnp.asarray(external),
                                      jnp.asarray(internal), jnp.asarray(same), weight)
    per_map = [ref.reconstruction_loss(frames[:1, i + 1], frames[:1, i], external[:1, i], weight)[0]
               for i in range(m + 1)]
    full_internal = ref.reconstruction_loss(frames[:1, 0], frames[:1, m], internal[:1], weight)[0]
    assert min(per_map) > 0.1 and full_internal > 0.1
    for j in range(rows):
        kept = [per_map[i] for i in range(m + 1) if i + 1 != j]
        assert float(got['external'][j]) == pytest.approx(sum(kept), abs=1e-4), j
        expected_internal = 0.0 if j == m else full_internal
        assert float(got['internal'][j]) == pytest.approx(expected_internal, abs=1e-4), j
    # nothing in the episode: everything is masked
    none = CORRESPONDENCE(jnp.asarray(frames[:1]), jnp.asarray(external[:1]),
                                      jnp.asarray(internal[:1]),
                                      jnp.asarray(np.array([[True] + [False] * (m + 1)])), weight)
    assert float(none[0]) == 0.0


def test_correspondence_internal_none():
    frames, external, _ = _correspondence_inputs(6)
    same = np.ones((3, 4), bool)
    got = CORRESPONDENCE_TERMS(jnp.asarray(frames), jnp.asarray(external), None,
                                      jnp.asarray(same), 0.1)
    np.testing.assert_array_equal(got['internal'], np.zeros(3))
    expected = ref.correspondence_terms(frames, external, None, same, 0.1)
    np.testing.assert_allclose(got['external'], expected['external'], atol=1e-4, rtol=1e-5)
    total = CORRESPONDENCE(jnp.asarray(frames), jnp.asarray(external), None,
                                       jnp.asarray(same), 0.1)
    np.testing.assert_allclose(total, expected['external'], atol=1e-4, rtol=1e-5)


def test_correspondence_directions_on_a_moving_object():
    # I_j(p) = O(p - j v): I_{j+1}(p) = I_j(p - v), so the external map c_{j+1 -> j} = -v, and
    # I_k(p) = I_{k+M}(p + M v), so the internal map c_{k -> k+M} = M v. Both give zero loss;
    # the opposite signs do not.
    m, height, width = 2, 14, 14
    vx, vy = 1, 2
    frames = _translated_frames(m + 2, height, width, 3, (vx, vy), seed=7)
    external = np.stack([_constant_flow((height, width), -vx, -vy)] * (m + 1))[None]
    internal = _constant_flow((1, height, width), m * vx, m * vy)
    same = np.ones((1, m + 2), bool)
    right = CORRESPONDENCE_TERMS(jnp.asarray(frames), jnp.asarray(external),
                                        jnp.asarray(internal), jnp.asarray(same), 1.0)
    assert float(right['external'][0]) < 1e-6 and float(right['internal'][0]) < 1e-6
    wrong = CORRESPONDENCE_TERMS(jnp.asarray(frames), jnp.asarray(-external),
                                        jnp.asarray(-internal), jnp.asarray(same), 1.0)
    assert float(wrong['external'][0]) > 0.05 and float(wrong['internal'][0]) > 0.02


# ---------------------------------------------------------------------------------------------
# cosine, l1 and the paired similarity loss


@pytest.mark.parametrize('shape', [(4, 16), (2, 3, 4, 5), (1, 1)])
def test_cosine_and_l1_match_reference(shape):
    rng = _rng(8)
    y1, y2 = _normal(rng, shape), _normal(rng, shape)
    cos = losses.cosine_similarity_loss(jnp.asarray(y1), jnp.asarray(y2))
    assert cos.shape == (shape[0],)
    np.testing.assert_allclose(cos, ref.cosine_similarity_loss(y1, y2), atol=ATOL, rtol=1e-5)
    l1 = losses.l1_loss(jnp.asarray(y1), jnp.asarray(y2))
    assert l1.shape == (shape[0],)
    np.testing.assert_allclose(l1, ref.l1_loss(y1, y2), atol=ATOL, rtol=1e-5)


def test_cosine_hand_worked_and_floor():
    y1 = np.array([[1.0, 0.0], [3.0, 4.0], [1.0, 1.0], [2.0, 0.0]], np.float32)
    y2 = np.array([[1.0, 0.0], [-3.0, -4.0], [1.0, -1.0], [1.0, 1.0]], np.float32)
    got = np.asarray(losses.cosine_similarity_loss(jnp.asarray(y1), jnp.asarray(y2)))
    np.testing.assert_allclose(got, [-1.0, 1.0, 0.0, -1.0 / np.sqrt(2.0)], atol=1e-6)
    # below the floor the norm counts as 1e-6: -<y1, y2> / (1e-6 |y2|) = -0.01 for y1 = 1e-8 y2/|y2|
    tiny = np.array([[1e-8, 0.0]], np.float32)
    got = losses.cosine_similarity_loss(jnp.asarray(tiny), jnp.asarray([[5.0, 0.0]]))
    assert float(got[0]) == pytest.approx(-0.01, rel=1e-3)


def test_cosine_of_a_zero_vector_is_finite_with_finite_gradient():
    zero = jnp.zeros((2, 5))
    other = jnp.asarray(_normal(_rng(9), (2, 5)))
    for a, b in ((zero, other), (other, zero), (zero, zero)):
        value = losses.cosine_similarity_loss(a, b)
        np.testing.assert_array_equal(value, np.zeros(2))
        grads = jax.grad(lambda p, q: jnp.sum(losses.cosine_similarity_loss(p, q)),
                         argnums=(0, 1))(a, b)
        for g in grads:
            assert np.all(np.isfinite(np.asarray(g))), 'NaN/inf gradient at a zero vector'
    # with the norm floored, at y1 = 0: d/dy1 (-<y1, y2> / (1e-6 |y2|)) = -y2 / (1e-6 |y2|)
    grad = jax.grad(lambda p: jnp.sum(losses.cosine_similarity_loss(p, other)))(zero)
    expected = -np.asarray(other) / (1e-6 * np.linalg.norm(np.asarray(other), axis=1,
                                                            keepdims=True))
    np.testing.assert_allclose(grad, expected, rtol=1e-3)
    # and through the paired loss, whose target side is stop-gradient
    grads = jax.grad(lambda y: jnp.sum(PAIRED_SIMILARITY(y, None, other, None, None,
                                                                     None)))(zero)
    assert np.all(np.isfinite(np.asarray(grads)))


def _paired_inputs(seed, batch=3, dim=6, rep=(3, 3, 4)):
    rng = _rng(seed)
    ys = [_normal(rng, (batch, dim)) for _ in range(3)]
    zs = [_normal(rng, (batch,) + rep) for _ in range(3)]
    return ys + zs   # y_tr, y_pr, y_t, z_tr, z_pr, z_t


_NAMES = ('y_tr', 'y_pr', 'y_t', 'z_tr', 'z_pr', 'z_t')

# (drop tr pair, drop pr pair, drop all z): the ablations of paired_similarity_terms
_ABLATIONS = [c for c in itertools.product([False, True], repeat=3) if not (c[0] and c[1])]


def _ablate(args, drop_tr, drop_pr, drop_z):
    args = list(args)
    if drop_tr:
        args[0] = args[3] = None
    if drop_pr:
        args[1] = args[4] = None
    if drop_z:
        args[3] = args[4] = args[5] = None
    return args


def _reference_terms(args):
    y_tr, y_pr, y_t, z_tr, z_pr, z_t = args
    terms = []
    for y in (y_tr, y_pr):
        if y is not None:
            terms.append(ref.cosine_similarity_loss(y, y_t))
    for z in (z_tr, z_pr):
        if z is not None and z_t is not None:
            terms.append(ref.l1_loss(z, z_t))
    return terms


@pytest.mark.parametrize('drop_tr, drop_pr, drop_z', _ABLATIONS)
def test_paired_similarity_matches_reference(drop_tr, drop_pr, drop_z):
    args = _ablate(_paired_inputs(10), drop_tr, drop_pr, drop_z)
    jargs = [None if a is None else jnp.asarray(a) for a in args]
    total = PAIRED_SIMILARITY(*jargs)
    assert total.shape == (3,)
    np.testing.assert_allclose(total, ref.paired_similarity_loss(*args), atol=ATOL, rtol=1e-5)
    terms = PAIRED_SIMILARITY_TERMS(*jargs)
    expected = _reference_terms(args)
    assert len(terms) == len(expected), sorted(terms)
    np.testing.assert_allclose(sum(terms.values()), total, atol=ATOL)
    unmatched = list(terms.values())
    for term in expected:   # each reference term appears once among the returned values
        hits = [i for i, v in enumerate(unmatched) if np.allclose(v, term, atol=ATOL)]
        assert hits, 'a reference term is missing from paired_similarity_terms'
        unmatched.pop(hits[0])


def _numeric_gradient(fn, x, eps=1e-6):
    x = np.asarray(x, np.float64)
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[idx] += eps
        minus[idx] -= eps
        grad[idx] = (fn(plus) - fn(minus)) / (2 * eps)
    return grad


@pytest.mark.parametrize('drop_tr, drop_pr, drop_z', [(False, False, False), (True, False, False),
                                                      (False, True, True)])
def test_paired_similarity_gradients(drop_tr, drop_pr, drop_z):
    args = _ablate(_paired_inputs(11), drop_tr, drop_pr, drop_z)
    present = [i for i, a in enumerate(args) if a is not None]

    def total(*present_args):
        full = list(args)
        for i, a in zip(present, present_args):
            full[i] = a
        return jnp.sum(PAIRED_SIMILARITY(*full))

    grads = jax.jit(jax.grad(total, argnums=tuple(range(len(present)))))(
        *[jnp.asarray(args[i]) for i in present])
    grads = dict(zip(present, [np.asarray(g) for g in grads]))
    # targets: exactly zero
    assert np.all(grads[2] == 0.0), 'gradient flows into y_t'
    if 5 in grads:
        assert np.all(grads[5] == 0.0), 'gradient flows into z_t'
    for i in present:
        if i in (2, 5):
            continue
        if i in (3, 4):
            # d/dz mean |z - z_t| = sign(z - z_t) / N per example (the sum is over examples)
            n = np.prod(args[i].shape[1:])
            expected = np.sign(args[i] - args[5]) / n
        else:
            def reference_total(x, i=i):
                full = list(args)
                full[i] = x
                return np.sum(ref.paired_similarity_loss(*full))
            expected = _numeric_gradient(reference_total, args[i])
        np.testing.assert_allclose(grads[i], expected, atol=2e-5, rtol=1e-4, err_msg=_NAMES[i])


# ---------------------------------------------------------------------------------------------
# jit and vmap agree with the plain call


def test_jit_and_vmap_agree_with_plain_calls():
    rng = _rng(12)
    a, b = jnp.asarray(_normal(rng, (2, 5, 4, 3))), jnp.asarray(_normal(rng, (2, 5, 4, 3)))
    flow = jnp.asarray(_normal(rng, (2, 5, 4, 2), 1.5))
    check_jit_and_vmap(losses.photometric_loss, a, b, flow)
    check_jit_and_vmap(losses.smoothness_loss, flow)
    check_jit_and_vmap(lambda p, q, f: losses.reconstruction_loss(p, q, f, 0.3), a, b, flow)
    check_jit_and_vmap(losses.cosine_similarity_loss, a, b)
    check_jit_and_vmap(losses.l1_loss, a, b)
    check_jit_and_vmap(losses.paired_similarity_loss,
                       *[jnp.asarray(x) for x in _paired_inputs(13, batch=2)])
    frames, external, internal = [jnp.asarray(x) for x in _correspondence_inputs(14, batch=2)]
    same = jnp.asarray(np.array([[True, True, True, False], [True, True, True, True]]))
    check_jit_and_vmap(lambda f, e, i, s: losses.correspondence_loss(f, e, i, s, 0.2),
                       frames, external, internal, same)
    check_jit_and_vmap(lambda f, e, s: losses.correspondence_loss(f, e, None, s, 0.2),
                       frames, external, same)
