"""Face matte: coverage of the face, forehead extension, smooth feathering, bad inputs."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from pipeline.align import CANONICAL_68
from pipeline.composite import CompositeConfig, face_matte
from pipeline.composite.matte import face_outline, hull_inside_distance
from pipeline.errors import CompositeError, NoFaceError

S = 128
CFG = CompositeConfig(erode_px=2.0, feather_px=8.0)  # the edge inside the hull; forehead 0.3


def _points() -> np.ndarray:
    return CANONICAL_68 * S


def test_smoke_shape_dtype_range():
    m = face_matte(_points(), S, CFG)
    assert m.shape == (S, S) and m.dtype == np.float32
    assert m.min() == 0.0 and m.max() == 1.0


def test_golden_values():
    m = face_matte(CANONICAL_68 * 64, 64, CFG)
    np.testing.assert_allclose(
        m[[10, 14, 18, 32, 50, 52], 32], [0.0, 0.025916, 0.642334, 1.0, 0.04903, 0.0], atol=1e-5
    )
    np.testing.assert_allclose(m[32, [12, 14, 16, 18, 32]], [0, 0, 0, 0.049048, 1.0], atol=1e-5)


def test_covers_the_face():
    # At a 256-px crop (the farm-256 profile). erode_px and feather_px are crop pixels, so at
    # 128 px the feather band is relatively twice as wide (63% of the hull solid, 91% covered).
    S = 256
    pts = CANONICAL_68 * S
    m = face_matte(pts, S, CFG)
    # Eyes, nose, mouth and the inner brows sit in the solid part of the matte; the outer brow
    # ends lie within erode + feather of the temple edge of the hull, so they are only covered.
    solid = np.r_[19:25, 27:68]
    vals = map_coordinates(m, [pts[solid, 1], pts[solid, 0]], order=1)
    assert vals.min() >= 0.99, vals.min()
    ends = map_coordinates(m, [pts[[17, 26], 1], pts[[17, 26], 0]], order=1)
    assert ends.min() > 0.0
    # The landmark hull (without the forehead) is solid except for the feather band along the
    # jaw: every pixel deeper than erode + feather inside the extended hull is exactly 1, and
    # that is most of the hull.
    hull = np.zeros((S, S), np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(pts.astype(np.float32)).astype(np.int32), 1)
    hull = hull.astype(bool)
    depth = hull_inside_distance(face_outline(pts, CFG.forehead_extension), S)
    deep = hull & (depth >= CFG.erode_px + CFG.feather_px)
    assert (m[deep] == 1.0).all()
    assert (m[hull] >= 0.99).mean() >= 0.80  # 0.813 measured; the rest is the jaw's feather
    assert (m[hull] > 0).mean() >= 0.95  # 0.956 measured; the rest is the erosion


def test_zero_outside_extended_hull():
    pts = _points()
    outline = face_outline(pts, CFG.forehead_extension)
    m = face_matte(pts, S, CFG)
    hull = cv2.convexHull(outline.astype(np.float32))
    ys, xs = np.nonzero(m > 0)
    inside = [
        cv2.pointPolygonTest(hull, (float(x), float(y)), False) >= 0
        for x, y in zip(xs, ys, strict=True)
    ]
    assert all(inside)


def test_forehead_extension():
    pts = _points()
    brow_mid = pts[17:27].mean(0)
    height = brow_mid[1] - pts[8][1]  # negative: up is -y
    probe = brow_mid + np.array([0.0, 0.12 * height])  # 12% of the face height above the brows
    with_ext = face_matte(pts, S, CFG)
    without = face_matte(pts, S, replace(CFG, forehead_extension=0.0))
    v = lambda m: float(map_coordinates(m, [[probe[1]], [probe[0]]], order=1)[0])  # noqa: E731
    assert v(with_ext) >= 0.99
    assert v(without) == 0.0


def test_feather_is_smooth_and_monotone():
    pts = _points()
    m = face_matte(pts, S, CFG)
    gy, gx = np.gradient(m.astype(np.float64))
    # smoothstep over feather_px: the steepest slope is 1.5 / feather_px per pixel; no hard step
    assert np.hypot(gx, gy).max() <= 1.5 / CFG.feather_px + 0.02
    centre = pts[27:36].mean(0)  # the nose, deep inside
    r = np.linspace(0, S / 2, 400)
    for ang in np.linspace(0, 2 * np.pi, 48, endpoint=False):
        xs, ys = centre[0] + r * np.cos(ang), centre[1] + r * np.sin(ang)
        prof = map_coordinates(m, [ys, xs], order=1, mode="constant")
        assert np.all(np.diff(prof) <= 1e-6), ang
        assert prof[0] == 1.0 and prof[-1] == 0.0


def test_subpixel_motion_moves_matte_continuously():
    # Built from exact distances, not a rasterized polygon: a 0.1 px shift changes each pixel by
    # at most slope × 0.1, so the edge cannot jump a whole pixel.
    pts = _points()
    a = face_matte(pts, S, CFG)
    b = face_matte(pts + np.array([0.1, 0.0]), S, CFG)
    assert 0 < np.abs(a - b).max() <= 1.5 / CFG.feather_px * 0.1 + 1e-5


def test_confidence_scalar_and_map():
    pts = _points()
    m = face_matte(pts, S, CFG)
    np.testing.assert_allclose(face_matte(pts, S, CFG, confidence=0.5), 0.5 * m)
    conf = np.ones((S, S), np.float32)
    conf[:, : S // 2] = 0.0  # left half occluded
    mc = face_matte(pts, S, CFG, confidence=conf)
    assert (mc[:, : S // 2] == 0).all() and np.array_equal(mc[:, S // 2 :], m[:, S // 2 :])


def test_hard_edge_when_feather_zero():
    m = face_matte(_points(), S, CompositeConfig(feather_px=0.0))
    assert set(np.unique(m).tolist()) == {0.0, 1.0}


@pytest.mark.parametrize(
    "points, size, conf, err",
    [
        (np.zeros((67, 2)), S, None, CompositeError),
        (np.full((68, 2), np.nan), S, None, NoFaceError),
        (CANONICAL_68 * S, 4, None, CompositeError),
        (CANONICAL_68 * S, 12.5, None, CompositeError),
        (CANONICAL_68 * S, S, 1.5, CompositeError),
        (CANONICAL_68 * S, S, np.ones((S, S + 1), np.float32), CompositeError),
        (CANONICAL_68 * S, S, np.full((S, S), 2.0, np.float32), CompositeError),
        (np.zeros((68, 2)), S, None, CompositeError),
    ],
)
def test_bad_inputs(points, size, conf, err):
    with pytest.raises(err):
        face_matte(points, size, CFG, confidence=conf)


def test_the_default_matte_covers_the_whole_hull_and_fades_outside_it():
    """The shipped matte: 1 over the whole landmark hull (forehead included), a soft edge that
    lies outside it and ends within ``-erode_px``."""
    cfg = CompositeConfig()
    assert cfg.erode_px < 0 and cfg.feather_px > 0
    pts = _points()
    m = face_matte(pts, S, cfg)
    d = hull_inside_distance(face_outline(pts, cfg.forehead_extension), S)
    assert (m[d >= 0] == 1.0).all()  # every pixel of the (extended) hull
    assert (m[d < cfg.erode_px] == 0.0).all()  # nothing further out than the edge
    band = (d < 0) & (d > cfg.erode_px)
    assert 0.0 < m[band].mean() < 1.0


def test_distances_scale_with_the_crop():
    """The config's distances are pixels of a 128-px crop: at 512 px the same face gives the
    same matte, four times as finely sampled."""
    cfg = CompositeConfig()
    small = face_matte(_points(), S, cfg.at_size(S))
    big = face_matte(_points() * 4, 4 * S, cfg.at_size(4 * S))
    down = cv2.resize(big, (S, S), interpolation=cv2.INTER_AREA)
    assert np.abs(down - small).mean() < 0.01
