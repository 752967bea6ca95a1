"""pipeline.warping.maps: maps at any size, one geometry from mesh and spline, registration."""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.align import CANONICAL_68
from pipeline.warping.maps import compose, rescale_field, sample, warp_map_at
from pipeline.warping.mesh import warp_map
from pipeline.warping.remap import remap
from pipeline.warping.tps import tps_map

S = 128


def _shapes() -> tuple[np.ndarray, np.ndarray]:
    """A source face and a target: the mouth open, the head moved, every point off a little."""
    src = CANONICAL_68 * S
    dst = src + np.random.default_rng(4).normal(0.0, 2.0, src.shape)
    dst[55:60, 1] += 10.0  # the lower lip down
    dst[65:68, 1] += 9.0
    return src, dst + np.array([3.0, -2.0])


def test_at_the_grid_size_it_is_the_mesh_map():
    src, dst = _shapes()
    np.testing.assert_allclose(warp_map_at(src, dst, S), warp_map(src, dst, S), atol=1e-4)


def test_a_bigger_map_from_the_coarse_grid_matches_the_exact_one():
    src, dst = _shapes()
    exact = warp_map(src * 4, dst * 4, 4 * S)
    fast = warp_map_at(src * 4, dst * 4, 4 * S)
    err = np.abs(fast - exact).max(-1)
    assert err.mean() < 0.1 and np.percentile(err, 99) < 1.0  # most of it at the mesh's folds


def test_mesh_and_spline_mixed_as_geometry_draw_a_feature_once():
    """Mixing the two warped *images* draws a thin line twice; mixing the maps, once."""
    src, dst = _shapes()
    mesh, tps = warp_map(src, dst, S), tps_map(src, dst, S)
    # the output pixel where the two warps disagree most along x, inside the face
    gap = np.abs(mesh[..., 0] - tps[..., 0])
    gap[:32], gap[-32:], gap[:, :32], gap[:, -32:] = 0, 0, 0, 0
    y, x = np.unravel_index(np.argmax(gap), gap.shape)
    assert gap[y, x] > 2.0
    img = np.zeros((S, S, 1), np.float32)
    sx = int(round(mesh[y, x, 0]))
    img[:, sx : sx + 1] = 1.0  # a one-pixel vertical line through that point of the source
    two = 0.5 * remap(img, mesh) + 0.5 * remap(img, tps)
    one = sample(img, warp_map_at(src, dst, S, spline=0.5), sharp=False)
    row = slice(max(x - 12, 0), x + 12)
    peaks = lambda r: int(((r[1:-1] > 0.1) & (r[1:-1] >= r[:-2]) & (r[1:-1] > r[2:])).sum())  # noqa: E731
    assert peaks(two[y, row, 0]) == 2  # the line drawn twice, at half strength
    assert peaks(one[y, row, 0]) == 1 and one[y, row, 0].sum() > 0.8


def test_fields_rescale_with_the_crop_convention():
    """A crop of side R is the S crop scaled by R/S about the origin: position x at R is x·S/R
    at S. A field that holds its own S-position comes back as R-position·S/R."""
    ys, xs = np.mgrid[0:S, 0:S].astype(np.float32)
    field = np.dstack([xs, ys])
    big = rescale_field(field, 4 * S)
    yb, xb = np.mgrid[0 : 4 * S, 0 : 4 * S].astype(np.float32)
    inside = xb <= 4 * (S - 1)
    np.testing.assert_allclose(big[..., 0][inside], (xb / 4)[inside], atol=1e-3)
    np.testing.assert_allclose(rescale_field(field, 4 * S, 4.0)[5, 9], [9.0, 5.0], atol=1e-3)


def test_compose_moves_along_the_flow_first():
    ident = np.stack(np.meshgrid(np.arange(S), np.arange(S)), -1).astype(np.float32)
    shift = np.zeros((S, S, 2), np.float32) + np.float32([2.0, 1.0])
    out = compose(ident + np.float32([10.0, 0.0]), shift)
    np.testing.assert_allclose(out[40, 50], [62.0, 41.0], atol=1e-4)


def test_sharp_sampling_keeps_more_detail_than_bilinear():
    rng = np.random.default_rng(1)
    img = cv2.GaussianBlur(rng.random((S, S, 1)).astype(np.float32), (0, 0), 1.0)[..., None]
    ident = np.stack(np.meshgrid(np.arange(S), np.arange(S)), -1).astype(np.float32)
    half = ident + np.float32(0.5)  # half-pixel shift: the worst case for bilinear
    lap = lambda a: float(np.abs(cv2.Laplacian(a[8:-8, 8:-8, 0], cv2.CV_32F)).mean())  # noqa: E731
    assert lap(sample(img, half)) > 1.2 * lap(sample(img, half, sharp=False))
