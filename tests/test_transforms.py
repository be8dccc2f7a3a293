"""Tests for psrl_jax.transforms against the numpy references in numpy_reference.py.

Known answers come from numpy_reference (written from DESIGN.md's contract) and from small cases
worked by hand in the comments below.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import numpy_reference as ref
from jit_checks import check_jit_and_vmap
from psrl_jax import transforms

ATOL = 1e-5

# Jitted entry points: one compile per shape (not one per primitive) keeps the file fast on CPU.
# The jit/vmap tests below check that they agree with the plain calls.
CORRELATION_VOLUME = jax.jit(transforms.correlation_volume, static_argnums=2)
FLOW_FROM_VOLUME = jax.jit(transforms.flow_from_volume, static_argnums=1)
WARP = jax.jit(transforms.warp)
UPSAMPLE_FLOW = jax.jit(transforms.upsample_flow, static_argnums=(1, 2))
RANDOM_SHIFT = jax.jit(transforms.random_shift, static_argnames='pad')
RANDOM_INTENSITY = jax.jit(transforms.random_intensity, static_argnames='scale')
AUGMENT = jax.jit(transforms.augment, static_argnums=2)


def _rng(seed):
    return np.random.default_rng(seed)


def _normal(rng, shape):
    return rng.normal(size=shape).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# displacements and the correlation volume


@pytest.mark.parametrize('r', [1, 2, 3])
def test_displacements_order_matches_reference(r):
    got = np.asarray(transforms.displacements(r))
    assert got.shape == ((2 * r + 1) ** 2, 2)
    np.testing.assert_array_equal(got, ref.displacements(r))


def test_displacements_hand_worked():
    # k = (dy + 1) * 3 + (dx + 1): dy is the slow index, dx the fast one; columns are (dx, dy).
    expected = [[-1, -1], [0, -1], [1, -1], [-1, 0], [0, 0], [1, 0], [-1, 1], [0, 1], [1, 1]]
    np.testing.assert_array_equal(np.asarray(transforms.displacements(1)), expected)


@pytest.mark.parametrize('r, shape', [
    (1, (2, 5, 4, 3)),
    (2, (1, 6, 7, 8)),
    (3, (2, 5, 5, 4)),   # window larger than the map in places: many outside positions
    (2, (1, 15, 14, 3)),  # more than FULL_PRODUCT_POSITIONS positions: the per-row products
    (1, (2, 16, 13, 2)),
])
def test_correlation_volume_matches_reference(r, shape):
    rng = _rng(r)
    z_a, z_b = _normal(rng, shape), _normal(rng, shape)
    got = CORRELATION_VOLUME(jnp.asarray(z_a), jnp.asarray(z_b), r)
    assert got.shape == shape[:3] + ((2 * r + 1) ** 2,)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, ref.correlation_volume(z_a, z_b, r), atol=ATOL, rtol=1e-5)


def _one_hot_grid(height, width, shift=(0, 0)):
    """Features [1, H, W, H*W]: position (y, x) holds one-hot(index of (y - sy, x - sx)), or zeros
    when that source position is outside the grid."""
    sy, sx = shift
    z = np.zeros((1, height, width, height * width), np.float32)
    for y in range(height):
        for x in range(width):
            ys, xs = y - sy, x - sx
            if 0 <= ys < height and 0 <= xs < width:
                z[0, y, x, ys * width + xs] = 1.0
    return z


def test_correlation_of_identical_one_hot_features_peaks_at_zero_displacement():
    z = _one_hot_grid(3, 3)
    got = np.asarray(CORRELATION_VOLUME(jnp.asarray(z), jnp.asarray(z), 1))
    expected = np.zeros((1, 3, 3, 9), np.float32)
    expected[..., 4] = 1.0 / 9.0   # k = 4 is (dx, dy) = (0, 0); every other neighbour differs
    np.testing.assert_allclose(got, expected, atol=1e-7)


def test_correlation_of_shifted_one_hot_features_peaks_at_the_shift():
    # z_b(p) = z_a(p - s) so <z_a(p), z_b(p + d)> = 1 exactly when d = s and p + s is inside.
    height, width, r = 4, 5, 2
    sx, sy = 1, -2
    z_a = _one_hot_grid(height, width)
    z_b = _one_hot_grid(height, width, shift=(sy, sx))
    got = np.asarray(CORRELATION_VOLUME(jnp.asarray(z_a), jnp.asarray(z_b), r))
    k_shift = (sy + r) * (2 * r + 1) + (sx + r)
    expected = np.zeros((1, height, width, (2 * r + 1) ** 2), np.float32)
    for y in range(height):
        for x in range(width):
            if 0 <= y + sy < height and 0 <= x + sx < width:
                expected[0, y, x, k_shift] = 1.0 / (height * width)
    np.testing.assert_allclose(got, expected, atol=1e-7)

    # Soft-argmax with a sharp temperature recovers the shift where it is defined and gives the
    # window's mean (0, 0) where the volume is all zeros (uniform softmax).
    flow = np.asarray(FLOW_FROM_VOLUME(jnp.asarray(got), r, 50.0 * height * width))
    inside = expected[0].sum(-1) > 0
    np.testing.assert_allclose(flow[0][inside], np.tile([sx, sy], (inside.sum(), 1)), atol=1e-5)
    np.testing.assert_allclose(flow[0][~inside], 0.0, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# soft-argmax flow decoding


@pytest.mark.parametrize('r, beta', [(1, 1.0), (2, 3.0), (3, 0.5)])
def test_flow_from_volume_matches_reference(r, beta):
    rng = _rng(10 + r)
    volume = _normal(rng, (2, 4, 3, (2 * r + 1) ** 2))
    got = FLOW_FROM_VOLUME(jnp.asarray(volume), r, beta)
    assert got.shape == (2, 4, 3, 2)
    np.testing.assert_allclose(got, ref.flow_from_volume(volume, r, beta), atol=ATOL, rtol=1e-5)


@pytest.mark.parametrize('r, beta, alpha', [(1, 1.0, 0.5), (2, 3.0, 2.0), (3, 0.5, 0.1)])
def test_flow_from_volume_with_displacement_penalty_matches_reference(r, beta, alpha):
    rng = _rng(20 + r)
    volume = _normal(rng, (2, 4, 3, (2 * r + 1) ** 2))
    valid = rng.uniform(size=(2 * r + 1) ** 2) < 0.7
    valid[(2 * r + 1) ** 2 // 2] = True       # d = 0 is always allowed
    got = transforms.flow_from_volume(jnp.asarray(volume), r, beta, alpha,
                                      valid=jnp.asarray(valid))
    np.testing.assert_allclose(got, ref.flow_from_volume(volume, r, beta, alpha, valid),
                               atol=ATOL, rtol=1e-5)


def test_displacement_penalty_pulls_ties_towards_zero_flow():
    # r = 1, a cell at the left border: dx = -1 is outside. A flat volume (a uniform background)
    # without the prior gives the mean of the six allowed moves, (0.5, 0); with alpha = 2 the
    # weights are 1 (d = 0), e^-2 (three moves with |d|^2 = 1) and e^-4 (two with |d|^2 = 2):
    # dx = (e^-2 + 2 e^-4) / (1 + 3 e^-2 + 2 e^-4).
    volume = jnp.zeros((1, 1, 1, 9))
    valid = jnp.asarray([False, True, True] * 3)
    flat = np.asarray(transforms.flow_from_volume(volume, 1, 1.0, valid=valid))
    np.testing.assert_allclose(flat[0, 0, 0], [0.5, 0.0], atol=1e-6)
    prior = np.asarray(transforms.flow_from_volume(volume, 1, 1.0, 2.0, valid=valid))
    e2, e4 = np.exp(-2.0), np.exp(-4.0)
    np.testing.assert_allclose(prior[0, 0, 0], [(e2 + 2 * e4) / (1 + 3 * e2 + 2 * e4), 0.0],
                               atol=1e-6)


@pytest.mark.parametrize('beta', [1.0, 2.0])
def test_flow_from_volume_hand_worked(beta):
    # r = 1, beta * V = log 2 at k = 5 ((dx, dy) = (1, 0)) and 0 elsewhere: weights 2/10 there and
    # 1/10 on the other eight, whose dx sum to -1 and dy sum to 0 -> flow = (0.2 - 0.1, 0).
    volume = np.zeros((1, 1, 1, 9), np.float32)
    volume[..., 5] = np.log(2.0) / beta
    got = np.asarray(FLOW_FROM_VOLUME(jnp.asarray(volume), 1, beta))
    np.testing.assert_allclose(got[0, 0, 0], [0.1, 0.0], atol=1e-6)


def test_flow_from_volume_uniform_volume_gives_zero_flow():
    volume = np.full((1, 2, 2, 25), 3.0, np.float32)
    got = np.asarray(FLOW_FROM_VOLUME(jnp.asarray(volume), 2, 1.0))
    np.testing.assert_allclose(got, 0.0, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# warp


@pytest.mark.parametrize('shape, flow_scale', [
    ((2, 5, 6, 3), 1.5),
    ((1, 7, 4, 1), 3.0),    # many sample points outside the image
    ((3, 4, 4, 2), 0.3),
])
def test_warp_matches_reference(shape, flow_scale):
    rng = _rng(int(flow_scale * 10))
    image = _normal(rng, shape)
    flow = (flow_scale * _normal(rng, shape[:3] + (2,))).astype(np.float32)
    got = WARP(jnp.asarray(image), jnp.asarray(flow))
    assert got.shape == shape and got.dtype == jnp.float32
    np.testing.assert_allclose(got, ref.warp(image, flow), atol=ATOL, rtol=1e-5)


def _three_by_three():
    return np.arange(1.0, 10.0, dtype=np.float32).reshape(1, 3, 3, 1)   # [[1,2,3],[4,5,6],[7,8,9]]


def _warp_np(image, flow):
    return np.asarray(WARP(jnp.asarray(image), jnp.asarray(flow, jnp.float32)))


def test_warp_half_pixel_right_averages_neighbours():
    # (x + 0.5, y): mean of the pixel and its right neighbour; in the last column the right
    # neighbour is outside and contributes zero, leaving half the pixel.
    flow = np.zeros((1, 3, 3, 2), np.float32)
    flow[..., 0] = 0.5
    expected = np.array([[1.5, 2.5, 1.5], [4.5, 5.5, 3.0], [7.5, 8.5, 4.5]])
    np.testing.assert_allclose(_warp_np(_three_by_three(), flow)[0, ..., 0], expected, atol=1e-6)


def test_warp_integer_flow_shifts_rows_and_zero_fills():
    # dy = -1: out[y] = image[y - 1], and the top row samples outside -> 0.
    flow = np.zeros((1, 3, 3, 2), np.float32)
    flow[..., 1] = -1.0
    expected = np.array([[0, 0, 0], [1, 2, 3], [4, 5, 6]], np.float32)
    np.testing.assert_allclose(_warp_np(_three_by_three(), flow)[0, ..., 0], expected, atol=1e-6)


def test_warp_hand_worked_points():
    flow = np.zeros((1, 3, 3, 2), np.float32)
    # centre (1, 1) samples (0.75, 1.5): 0.125*4 + 0.375*5 + 0.125*7 + 0.375*8 = 6.25
    flow[0, 1, 1] = [-0.25, 0.5]
    # (0, 0) samples (-0.5, 0): half of the left neighbour (outside, 0) + half of pixel 1 = 0.5
    flow[0, 0, 0] = [-0.5, 0.0]
    # (2, 2) samples (12, 12): all four neighbours outside -> 0
    flow[0, 2, 2] = [10.0, 10.0]
    # (y, x) = (2, 0) samples (0.5, 2.5): row 2 (weight .5) and row 3 (outside): .5*(.5*7 + .5*8)
    flow[0, 2, 0] = [0.5, 0.5]
    out = _warp_np(_three_by_three(), flow)[0, ..., 0]
    assert out[1, 1] == pytest.approx(6.25, abs=1e-6)
    assert out[0, 0] == pytest.approx(0.5, abs=1e-6)
    assert out[2, 2] == pytest.approx(0.0, abs=1e-7)
    assert out[2, 0] == pytest.approx(3.75, abs=1e-6)
    # untouched pixels (zero flow) are the identity
    assert out[0, 1] == 2.0 and out[1, 2] == 6.0


def test_warp_gradient_wrt_flow_matches_central_differences():
    with jax.enable_x64(True):
        rng = _rng(7)
        batch, height, width, channels = 2, 6, 7, 3
        image = jnp.asarray(rng.normal(size=(batch, height, width, channels)))
        cotangent = jnp.asarray(rng.normal(size=(batch, height, width, channels)))
        # sample points strictly inside [0, W-1] x [0, H-1], fractional parts in [0.2, 0.8]
        ys, xs = np.meshgrid(np.arange(height), np.arange(width), indexing='ij')
        size = (batch, height, width)
        tx = rng.integers(0, width - 1, size=size) + rng.uniform(0.2, 0.8, size=size)
        ty = rng.integers(0, height - 1, size=size) + rng.uniform(0.2, 0.8, size=size)
        flow = jnp.asarray(np.stack([tx - xs, ty - ys], axis=-1))

        @jax.jit
        def objective(f):
            return jnp.sum(transforms.warp(image, f) * cotangent)

        grad = np.asarray(jax.jit(jax.grad(objective))(flow))
        assert grad.dtype == np.float64
        eps = 1e-4
        numeric = np.zeros(flow.shape)
        flat = np.asarray(flow).copy()
        for idx in np.ndindex(flow.shape):
            plus, minus = flat.copy(), flat.copy()
            plus[idx] += eps
            minus[idx] -= eps
            difference = objective(jnp.asarray(plus)) - objective(jnp.asarray(minus))
            numeric[idx] = difference / (2 * eps)
        np.testing.assert_allclose(grad, numeric, atol=1e-7, rtol=1e-6)
        # and the values themselves agree with the independent reference in float64
        np.testing.assert_allclose(WARP(image, flow),
                                   ref.warp(np.asarray(image), np.asarray(flow)), atol=1e-12)


def test_warp_gradient_wrt_image_is_the_transposed_sampling():
    # warp is linear in the image, so d<warp(I, f), G>/dI[q] = sum_p G(p) * weight of q in sample p,
    # which is the reference applied to one-hot images.
    rng = _rng(8)
    image = _normal(rng, (1, 4, 5, 1))
    flow = (1.2 * _normal(rng, (1, 4, 5, 2))).astype(np.float32)
    cot = _normal(rng, (1, 4, 5, 1))
    grad_fn = jax.jit(jax.grad(lambda i: jnp.sum(transforms.warp(i, jnp.asarray(flow)) * cot)))
    grad = np.asarray(grad_fn(jnp.asarray(image)))
    expected = np.zeros(image.shape)
    for idx in np.ndindex(image.shape):
        basis = np.zeros(image.shape)
        basis[idx] = 1.0
        expected[idx] = np.sum(ref.warp(basis, flow) * cot)
    np.testing.assert_allclose(grad, expected, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# flow up-sampling


@pytest.mark.parametrize('in_hw, out_hw', [((2, 3), (8, 6)), ((5, 7), (12, 9)), ((7, 7), (84, 84))])
def test_reference_resize_is_jax_image_resize_linear(in_hw, out_hw):
    # validates the reference's half-pixel grid and edge clamping against jax.image.resize itself
    flow = _normal(_rng(3), (2,) + in_hw + (2,))
    unscaled = ref.upsample_flow(flow, *out_hw)
    unscaled[..., 0] /= out_hw[1] / in_hw[1]
    unscaled[..., 1] /= out_hw[0] / in_hw[0]
    resized = jax.image.resize(jnp.asarray(flow), (2,) + out_hw + (2,), 'linear')
    np.testing.assert_allclose(resized, unscaled, atol=1e-5)


@pytest.mark.parametrize('in_hw, out_hw', [((2, 3), (8, 6)), ((5, 7), (12, 9)), ((7, 7), (84, 84))])
def test_upsample_flow_matches_reference(in_hw, out_hw):
    flow = _normal(_rng(4), (2,) + in_hw + (2,))
    got = UPSAMPLE_FLOW(jnp.asarray(flow), *out_hw)
    assert got.shape == (2,) + out_hw + (2,)
    np.testing.assert_allclose(got, ref.upsample_flow(flow, *out_hw), atol=1e-4, rtol=1e-5)


def test_upsample_flow_hand_worked():
    # constant (1, 2) on a 2 x 3 grid -> 8 x 6 pixels: dx * 6/3 = 2, dy * 8/2 = 8 everywhere
    flow = np.zeros((1, 2, 3, 2), np.float32)
    flow[..., 0], flow[..., 1] = 1.0, 2.0
    got = np.asarray(UPSAMPLE_FLOW(jnp.asarray(flow), 8, 6))
    np.testing.assert_allclose(got[..., 0], 2.0, atol=1e-6)
    np.testing.assert_allclose(got[..., 1], 8.0, atol=1e-6)
    # one row, dx = [0, 1] -> 4 columns at u = -0.25, 0.25, 0.75, 1.25 (clamped to [0, 1]):
    # [0, 0.25, 0.75, 1] * (4 / 2) = [0, 0.5, 1.5, 2]; dy stays 0 (and height 1 -> 1, scale 1).
    flow = np.zeros((1, 1, 2, 2), np.float32)
    flow[0, 0, :, 0] = [0.0, 1.0]
    got = np.asarray(UPSAMPLE_FLOW(jnp.asarray(flow), 1, 4))
    np.testing.assert_allclose(got[0, 0, :, 0], [0.0, 0.5, 1.5, 2.0], atol=1e-6)
    np.testing.assert_allclose(got[..., 1], 0.0, atol=1e-7)


def test_downsampled_flow_keeps_its_motion_in_the_coarser_cells():
    # C's flows on Atari's early 20x20 map resampled to the final 7x7 one (CAT): a constant move
    # of (4, -2) fine cells is (4 * 7/20, -2 * 7/20) = (1.4, -0.7) coarse cells everywhere; a
    # flow that is a linear ramp in x stays one (the average of a ramp is its centre's value).
    flow = np.zeros((1, 20, 20, 2), np.float32)
    flow[..., 0], flow[..., 1] = 4.0, -2.0
    got = np.asarray(UPSAMPLE_FLOW(jnp.asarray(flow), 7, 7))
    np.testing.assert_allclose(got[..., 0], 1.4, atol=1e-5)
    np.testing.assert_allclose(got[..., 1], -0.7, atol=1e-5)
    flow[..., 0] = np.arange(20, dtype=np.float32)[None, None, :]   # dx = x (fine cells)
    got = np.asarray(UPSAMPLE_FLOW(jnp.asarray(flow), 20, 10))[0, :, 2:8, 0]  # away from edges
    centres = (np.arange(10) * 2 + 0.5)[2:8]                                  # fine-cell centres
    np.testing.assert_allclose(got, np.broadcast_to(centres * 0.5, got.shape), atol=1e-4)


# ---------------------------------------------------------------------------------------------
# jit and vmap agree with the plain call


def test_jit_and_vmap_agree_with_plain_calls():
    rng = _rng(21)
    z_a, z_b = jnp.asarray(_normal(rng, (2, 4, 5, 3))), jnp.asarray(_normal(rng, (2, 4, 5, 3)))
    check_jit_and_vmap(lambda a, b: transforms.correlation_volume(a, b, 2), z_a, z_b)
    volume = jnp.asarray(_normal(rng, (2, 4, 5, 9)))
    check_jit_and_vmap(lambda v: transforms.flow_from_volume(v, 1, 2.0), volume)
    image = jnp.asarray(_normal(rng, (2, 5, 6, 3)))
    flow = jnp.asarray(1.5 * _normal(rng, (2, 5, 6, 2)))
    check_jit_and_vmap(transforms.warp, image, flow)
    small = jnp.asarray(_normal(rng, (2, 3, 4, 2)))
    check_jit_and_vmap(lambda f: transforms.upsample_flow(f, 9, 8), small)


def test_random_augmentations_under_jit_and_vmap():
    images = jnp.asarray(_normal(_rng(22), (3, 6, 6, 2)))
    key = jax.random.PRNGKey(0)
    for fn in (functools.partial(transforms.random_shift, pad=2),
               functools.partial(transforms.random_intensity, scale=0.1)):
        jitted = jax.jit(fn)
        np.testing.assert_allclose(jitted(key, images), fn(key, images), atol=1e-6)
        keys = jax.random.split(key, 2)
        stacked = jnp.stack([images, images[::-1]])
        batched = jax.jit(jax.vmap(fn))(keys, stacked)
        looped = np.stack([jitted(keys[i], stacked[i]) for i in range(2)])
        np.testing.assert_allclose(batched, looped, atol=1e-6)
    aug = jax.jit(transforms.augment, static_argnums=2)
    obs = jnp.asarray(_rng(23).integers(0, 256, size=(2, 3, 8, 8, 3)), jnp.uint8)
    np.testing.assert_allclose(aug(key, obs, ('shift', 'intensity')),
                               transforms.augment(key, obs, ('shift', 'intensity')), atol=1e-6)


# ---------------------------------------------------------------------------------------------
# augmentations


def _match_crop(out, image, pad):
    """The offsets (oy, ox) in [0, 2 pad]^2 where out [H, W, C] equals the edge-padded crop."""
    height, width = image.shape[:2]
    padded = ref.edge_pad(image, pad)
    return [(oy, ox) for oy in range(2 * pad + 1) for ox in range(2 * pad + 1)
            if np.array_equal(out, padded[oy:oy + height, ox:ox + width])]


def _distinct_images(rng, shape, dtype):
    """Images whose pixels are (almost surely) distinct, so a crop pins its offset down."""
    if dtype == np.uint8:
        return rng.integers(0, 256, size=shape).astype(np.uint8)
    return rng.uniform(size=shape).astype(dtype)


@pytest.mark.parametrize('dtype, pad', [(np.uint8, 4), (np.float32, 2)])
def test_random_shift_is_an_edge_padded_crop(dtype, pad):
    rng = _rng(31)
    images = _distinct_images(rng, (12, 9, 8, 2), dtype)
    out = np.asarray(RANDOM_SHIFT(jax.random.PRNGKey(1), jnp.asarray(images), pad=pad))
    assert out.dtype == dtype and out.shape == images.shape
    offsets = []
    for b in range(len(images)):
        matches = _match_crop(out[b], images[b], pad)
        assert matches, f'image {b} is not an edge-padded crop at any offset in [0, {2 * pad}]^2'
        offsets.append(matches[0])
    assert len(set(offsets)) > 1, 'every image got the same offset'


def test_random_shift_covers_the_full_offset_range():
    # 256 images: every extreme offset 0 and 2 * pad of either axis is hit (miss chance ~1e-13).
    pad = 4
    rng = _rng(32)
    images = _distinct_images(rng, (256, 12, 12, 1), np.float32)
    out = np.asarray(RANDOM_SHIFT(jax.random.PRNGKey(2), jnp.asarray(images), pad=pad))
    offsets = np.array([_match_crop(out[b], images[b], pad)[0] for b in range(len(images))])
    assert offsets[:, 0].min() == 0 and offsets[:, 0].max() == 2 * pad
    assert offsets[:, 1].min() == 0 and offsets[:, 1].max() == 2 * pad
    assert np.any(offsets[:, 0] != offsets[:, 1]), 'row and column offsets are not independent'


def test_random_shift_keys():
    images = jnp.asarray(_distinct_images(_rng(33), (8, 10, 10, 3), np.uint8))
    a = RANDOM_SHIFT(jax.random.PRNGKey(5), images)
    b = RANDOM_SHIFT(jax.random.PRNGKey(5), images)
    c = RANDOM_SHIFT(jax.random.PRNGKey(6), images)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def _factors(out, images):
    """Per-image ratio out / images, asserting it is constant within each image.  -> [B]."""
    ratio = (np.asarray(out, np.float64) / np.asarray(images, np.float64)).reshape(len(images), -1)
    np.testing.assert_allclose(ratio, ratio[:, :1] * np.ones_like(ratio), rtol=1e-5)
    return ratio[:, 0]


@pytest.mark.parametrize('scale', [0.05, 0.5])
def test_random_intensity_scales_each_image_by_one_clipped_factor(scale):
    rng = _rng(34)
    images = rng.uniform(0.1, 1.0, size=(512, 3, 4, 2)).astype(np.float32)
    out = RANDOM_INTENSITY(jax.random.PRNGKey(3), jnp.asarray(images), scale=scale)
    assert out.shape == images.shape and out.dtype == jnp.float32
    factors = _factors(out, images)
    assert np.all(factors >= 1 - 2 * scale - 1e-6) and np.all(factors <= 1 + 2 * scale + 1e-6)
    noise = (factors - 1.0) / scale
    assert len(np.unique(np.round(noise, 4))) > 400, 'factors are not drawn per image'
    # clip(N(0, 1), -2, 2): mean 0, std 0.939 (0.088 std error of std is far below the margin), and
    # about 4.6% of draws sit on a bound (23.3 of 512 expected).
    assert abs(noise.mean()) < 0.15
    assert 0.85 < noise.std() < 1.02
    on_bounds = np.sum(np.isclose(np.abs(noise), 2.0, atol=1e-3))
    assert 8 <= on_bounds <= 45


def test_random_intensity_keys():
    images = jnp.asarray(_rng(35).uniform(0.1, 1.0, size=(4, 5, 5, 1)), jnp.float32)
    a = RANDOM_INTENSITY(jax.random.PRNGKey(5), images)
    b = RANDOM_INTENSITY(jax.random.PRNGKey(5), images)
    c = RANDOM_INTENSITY(jax.random.PRNGKey(6), images)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_augment_without_augmentations_converts_and_passes_through():
    obs = _rng(36).integers(0, 256, size=(2, 3, 6, 6, 3)).astype(np.uint8)
    out = AUGMENT(jax.random.PRNGKey(0), jnp.asarray(obs), ())
    assert out.shape == obs.shape and out.dtype == jnp.float32
    np.testing.assert_allclose(out, obs / 255.0, atol=1e-7)
    floats = (obs / 255.0).astype(np.float32)
    out = AUGMENT(jax.random.PRNGKey(0), jnp.asarray(floats), ())
    assert out.dtype == jnp.float32
    np.testing.assert_array_equal(out, floats)


def test_augment_shift_draws_one_offset_per_frame_stack():
    # the same stack repeated over batch and time: after flattening, each copy gets its own offset
    rng = _rng(37)
    stack = rng.integers(0, 256, size=(10, 10, 4)).astype(np.uint8)
    obs = np.broadcast_to(stack, (4, 3, 10, 10, 4)).copy()
    out = np.asarray(AUGMENT(jax.random.PRNGKey(4), jnp.asarray(obs), ('shift',)))
    assert out.shape == obs.shape and out.dtype == np.float32
    scaled = stack / 255.0
    offsets = []
    for i in range(4):
        for t in range(3):
            matches = _match_crop(out[i, t].astype(np.float64), scaled, 4)
            if not matches:   # allow float32 rounding of x / 255
                padded = ref.edge_pad(scaled, 4)
                matches = [(oy, ox) for oy in range(9) for ox in range(9)
                           if np.allclose(out[i, t], padded[oy:oy + 10, ox:ox + 10], atol=1e-6)]
            assert matches, f'stack ({i}, {t}) is not a pad-4 edge crop of the scaled input'
            offsets.append(matches[0])
    assert len(set(offsets)) > 3, 'frame stacks share their shift'
    # both leading axes are flattened: offsets vary along time within a batch entry somewhere
    assert any(len({offsets[3 * i + t] for t in range(3)}) > 1 for i in range(4))


def test_augment_intensity_and_shift_compose():
    rng = _rng(38)
    obs = rng.uniform(0.05, 1.0, size=(3, 2, 8, 8, 3)).astype(np.float32)
    out = np.asarray(AUGMENT(jax.random.PRNGKey(9), jnp.asarray(obs),
                                        ('intensity',)))
    factors = _factors(out.reshape(6, -1), obs.reshape(6, -1))
    assert np.all(np.abs(factors - 1.0) <= 0.1 + 1e-6)
    assert len(np.unique(np.round(factors, 6))) == 6, 'frame stacks share their intensity factor'

    out = np.asarray(AUGMENT(jax.random.PRNGKey(9), jnp.asarray(obs),
                                        ('shift', 'intensity')))
    for i in range(3):
        for t in range(2):
            padded = ref.edge_pad(obs[i, t].astype(np.float64), 4)
            found = False
            for oy in range(9):
                for ox in range(9):
                    ratio = out[i, t] / padded[oy:oy + 8, ox:ox + 8]
                    constant = np.allclose(ratio, ratio.flat[0], rtol=1e-5)
                    if constant and abs(ratio.flat[0] - 1) <= 0.1 + 1e-6:
                        found = True
            assert found, f'stack ({i}, {t}) is not a scaled edge-padded crop'


def test_augment_per_sequence_is_the_frame_stacks_augmented_as_one_image():
    # per 'sequence' = the T stacks side by side in channels, augmented as one image per subsequence
    rng = _rng(39)
    obs = rng.integers(0, 256, size=(3, 4, 12, 12, 2)).astype(np.uint8)
    key = jax.random.PRNGKey(5)
    out = np.asarray(transforms.augment(key, jnp.asarray(obs), ('shift', 'intensity'), 'sequence'))
    side_by_side = np.moveaxis(obs, 1, 3).reshape(3, 12, 12, 8)
    expected = np.asarray(transforms.augment(key, jnp.asarray(side_by_side), ('shift', 'intensity')))
    np.testing.assert_array_equal(out, np.moveaxis(expected.reshape(3, 12, 12, 4, 2), 3, 1))
    with pytest.raises(ValueError):
        transforms.augment(key, jnp.asarray(obs), ('shift',), 'episode')


def test_augment_mixed_shifts_its_first_half_per_subsequence_and_the_rest_per_frame_stack():
    rng = _rng(40)
    obs = _distinct_images(rng, (6, 5, 10, 10, 2), np.float32)   # float frames pass unscaled
    out = np.asarray(transforms.augment(jax.random.PRNGKey(11), jnp.asarray(obs), ('shift',), 'mixed'))
    assert out.shape == obs.shape and out.dtype == np.float32
    offsets = [[_match_crop(out[b, t], obs[b, t], 4) for t in range(5)] for b in range(6)]
    assert all(len(found) == 1 for row in offsets for found in row), 'a stack is not one edge crop'
    one_shift = [len({found[0] for found in row}) == 1 for row in offsets]
    assert one_shift == [True] * 3 + [False] * 3
    assert len({row[0][0] for row in offsets[:3]}) > 1, 'the subsequences share one shift'


def test_augment_unknown_name_raises():
    obs = jnp.zeros((2, 8, 8, 3), jnp.uint8)
    with pytest.raises(ValueError):
        transforms.augment(jax.random.PRNGKey(0), obs, ('shift', 'flip'))


def test_flow_from_volume_only_chooses_valid_displacements():
    volume = np.zeros((1, 1, 1, 9), np.float32)
    volume[..., 0] = 5.0                      # (dx, dy) = (-1, -1) would win ...
    valid = np.ones(9, bool)
    valid[0] = False                          # ... but it is not allowed
    volume[..., 5] = 3.0                      # the best allowed: (dx, dy) = (1, 0)
    flow = np.asarray(transforms.flow_from_volume(jnp.asarray(volume), 1, 100.0,
                                                  valid=jnp.asarray(valid)))
    np.testing.assert_allclose(flow[0, 0, 0], [1.0, 0.0], atol=1e-5)
    unmasked = np.asarray(transforms.flow_from_volume(jnp.asarray(volume), 1, 100.0))
    np.testing.assert_allclose(unmasked[0, 0, 0], [-1.0, -1.0], atol=1e-5)
