"""Warp baseline: dense map, image warp, nearest reference, torch remap, bad input, golden."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from scipy.ndimage import map_coordinates

from pipeline.demo.synthetic import astronaut
from pipeline.errors import WarpInputError
from pipeline.inference.retarget import apply_similarity
from pipeline.models.rasterize import rasterize
from pipeline.warping.image import warp_baseline, warp_image
from pipeline.warping.mesh import warp_map
from pipeline.warping.remap import Remap, remap_torch
from pipeline.warping.shapes import nearest_reference, shape_distance
from pipeline.warping.tps import tps_map


def face(size: int, mouth_open: float = 0.0) -> np.ndarray:
    """A synthetic 68-point face: 68×2 float64 crop pixels (iBUG layout, rough)."""

    def ell(cx: float, cy: float, rx: float, ry: float, n: int) -> np.ndarray:
        t = np.pi + np.linspace(0, 2 * np.pi, n, endpoint=False)
        return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1)

    t = np.linspace(np.pi, 0, 17)
    u = np.linspace(0, 1, 5)
    parts = [
        np.stack([0.5 + 0.32 * np.cos(t), 0.45 + 0.38 * np.sin(t)], 1),
        np.stack([0.25 + 0.18 * u, 0.36 - 0.03 * np.sin(np.pi * u)], 1),
        np.stack([0.57 + 0.18 * u, 0.36 - 0.03 * np.sin(np.pi * u)], 1),
        np.stack([np.full(4, 0.5), np.linspace(0.42, 0.58, 4)], 1),
        np.stack([np.linspace(0.44, 0.56, 5), np.full(5, 0.62)], 1),
        ell(0.36, 0.44, 0.06, 0.025, 6),
        ell(0.64, 0.44, 0.06, 0.025, 6),
        ell(0.5, 0.75, 0.12, 0.04 + 0.04 * mouth_open, 12),
        ell(0.5, 0.75, 0.08, 0.005 + 0.035 * mouth_open, 8),
    ]
    return np.concatenate(parts) * size


def portrait(size: int) -> np.ndarray:
    img = cv2.resize(astronaut(), (size, size), interpolation=cv2.INTER_AREA)
    return img.astype(np.float32) / 255.0


def test_identity_map() -> None:
    pts = face(48)
    m = warp_map(pts, pts, 48)
    ys, xs = np.mgrid[0:48, 0:48]
    assert m.shape == (48, 48, 2) and m.dtype == np.float32
    np.testing.assert_allclose(m[..., 0], xs, atol=1e-3)
    np.testing.assert_allclose(m[..., 1], ys, atol=1e-3)


def test_similarity_motion_is_reproduced() -> None:
    """When the target is a rotated+shifted copy of the source, the warp is that similarity."""
    size = 64
    src = face(size)
    rot = cv2.getRotationMatrix2D((32.0, 32.0), 5.0, 1.05)
    rot[:, 2] += (2.0, -1.5)
    dst = apply_similarity(rot, src)
    img = portrait(size)
    got = warp_image(img, src, dst)
    want = cv2.warpAffine(
        img, rot, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    np.testing.assert_allclose(got[8:-8, 8:-8], want[8:-8, 8:-8], atol=2e-3)


def test_landmarks_land_on_target() -> None:
    """Warping a drawing of the source landmarks gives (about) the drawing of the target's."""
    size = 64
    src, dst = face(size), face(size, mouth_open=1.0)
    warped = warp_image(rasterize(src, size), src, dst)
    target = rasterize(dst, size)
    corr = np.corrcoef(warped.ravel(), target.ravel())[0, 1]
    assert corr > 0.85


def test_tps_map_is_the_identity_and_reproduces_a_similarity() -> None:
    size = 48
    pts = face(size)
    m = tps_map(pts, pts, size)
    ys, xs = np.mgrid[0:size, 0:size]
    assert m.shape == (size, size, 2) and m.dtype == np.float32
    np.testing.assert_allclose(m[..., 0], xs, atol=1e-3)
    np.testing.assert_allclose(m[..., 1], ys, atol=1e-3)
    rot = cv2.getRotationMatrix2D((24.0, 24.0), -4.0, 0.95)
    rot[:, 2] += (1.0, 2.0)
    want = apply_similarity(cv2.invertAffineTransform(rot), np.stack([xs, ys], -1).reshape(-1, 2))
    got = tps_map(pts, apply_similarity(rot, pts), size).reshape(-1, 2)
    np.testing.assert_allclose(got, want, atol=1e-3)  # an affine motion is in the spline's span


def test_tps_moves_the_landmarks_like_the_mesh_and_differs_between_them() -> None:
    """Both warps send the target's landmarks to the source's; off the points they differ, and
    ``spline_weight`` blends the two images linearly."""
    size = 64
    src, dst = face(size), face(size, mouth_open=0.4)  # wider, the synthetic lip meets the chin
    pwa, tps = warp_map(src, dst, size), tps_map(src, dst, size)

    def at_targets(m: np.ndarray) -> np.ndarray:  # the map sampled (bilinearly) at ``dst``
        return np.stack([map_coordinates(m[..., c], dst[:, ::-1].T, order=1) for c in (0, 1)], 1)

    assert np.abs(at_targets(tps) - src).max() < 0.3
    assert np.abs(at_targets(pwa) - src).max() < 0.3
    assert np.abs(pwa - tps).max() > 1.0
    img = portrait(size)
    a, b = warp_image(img, src, dst, 0.0), warp_image(img, src, dst, 1.0)
    np.testing.assert_array_equal(a, warp_image(img, src, dst))
    np.testing.assert_allclose(warp_image(img, src, dst, 0.25), 0.75 * a + 0.25 * b, atol=1e-6)
    warped = warp_image(rasterize(src, size), src, dst, 1.0)
    corr = np.corrcoef(warped.ravel(), rasterize(dst, size).ravel())[0, 1]
    assert corr > 0.85
    with pytest.raises(WarpInputError, match="outside 0..1"):
        warp_image(img, src, dst, 1.5)


def test_nearest_reference_and_baseline() -> None:
    size = 64
    refs = np.stack([face(size, 1.0), face(size, 0.0), face(size, 0.5)])
    # a scaled, shifted copy of the closed-mouth face is nearest to reference 1
    target = face(size, 0.05) * 0.9 + 3.0
    assert nearest_reference(refs, target) == 1
    assert shape_distance(refs[1] * 1.3 - 2.0, refs[1]) < 1e-9
    imgs = np.stack([portrait(size)] * 3)
    out, k = warp_baseline(imgs, refs, target)
    assert k == 1 and out.shape == (size, size, 3) and out.dtype == np.float32


def test_remap_torch_matches_cv2() -> None:
    size = 40
    src, dst = face(size), face(size, mouth_open=1.0)
    m = warp_map(src, dst, size)
    img = portrait(size)
    want = cv2.remap(img, m[..., 0], m[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    t_img = torch.from_numpy(img).permute(2, 0, 1)[None]
    got = remap_torch(t_img, torch.from_numpy(m)[None])[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(got, want, atol=1e-3)
    np.testing.assert_array_equal(
        Remap()(t_img, torch.from_numpy(m)[None]).numpy(), got.transpose(2, 0, 1)[None]
    )


def test_bad_input() -> None:
    pts = face(32)
    with pytest.raises(WarpInputError, match="68×2"):
        warp_map(pts[:60], pts, 32)
    bad = pts.copy()
    bad[3] = np.inf
    with pytest.raises(WarpInputError):
        warp_map(pts, bad, 32)
    with pytest.raises(WarpInputError, match="square"):
        warp_image(np.zeros((32, 40, 3), np.float32), pts, pts)
    with pytest.raises(WarpInputError, match="K ≥ 1"):
        nearest_reference(np.zeros((0, 68, 2)), pts)
    with pytest.raises(WarpInputError, match="one 68×2"):
        warp_baseline(np.zeros((2, 32, 32, 3), np.float32), pts[None], pts)


def test_golden_map_value() -> None:
    src, dst = face(64), face(64, mouth_open=1.0)
    m = warp_map(src, dst, 64)
    np.testing.assert_allclose(m[50, 32], GOLDEN_MAP, atol=1e-4)


GOLDEN_MAP = [32.0, 48.25]
