"""Laplacian blend: the plate is untouched where the matte is 0, fg where it is solid."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.composite import laplacian_blend
from pipeline.errors import CompositeError


def _disc(h: int, w: int, c: tuple[int, int], r: int, feather: float = 6.0) -> np.ndarray:
    inside = np.zeros((h, w), np.uint8)
    cv2.circle(inside, c, r, 1, -1)
    d = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
    return np.clip(d / feather, 0, 1).astype(np.float32)


def _images(h=96, w=112, c=3, seed=0):
    rng = np.random.default_rng(seed)
    bg = rng.random((h, w, c), dtype=np.float32)
    fg = rng.random((h, w, c), dtype=np.float32) * 2.0 + 0.5
    return fg, bg


def test_smoke_shape_dtype():
    fg, bg = _images()
    m = _disc(96, 112, (56, 48), 30)
    out = laplacian_blend(fg, bg, m, 3)
    assert out.shape == bg.shape and out.dtype == np.float32
    assert out is not bg


@pytest.mark.parametrize("channels", [None, 1, 4])
def test_shapes(channels):
    fg, bg = _images(c=4)
    if channels is None:
        fg, bg = fg[:, :, 0].copy(), bg[:, :, 0].copy()
    else:
        fg, bg = fg[:, :, :channels].copy(), bg[:, :, :channels].copy()
    m = _disc(96, 112, (56, 48), 30)
    out = laplacian_blend(fg, bg, m, 2)
    assert out.shape == bg.shape


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("levels", [0, 2, 5])
def test_outside_matte_is_plate_bit_for_bit(seed, levels):
    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in rng.integers(40, 140, 2))
    fg, bg = _images(h, w, seed=seed)
    m = _disc(h, w, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(4, 60)))
    fg[m == 0] = np.nan  # never read
    out = laplacian_blend(fg, bg, m, levels)
    assert np.array_equal(out[m == 0], bg[m == 0])
    assert np.isfinite(out).all()


def test_solid_interior_is_fg():
    fg, bg = _images(128, 128)
    m = _disc(128, 128, (64, 64), 60)
    out = laplacian_blend(fg, bg, m, 2)
    core = cv2.distanceTransform((m >= 1).astype(np.uint8), cv2.DIST_C, 3) >= 16
    assert core.any()
    np.testing.assert_allclose(out[core], fg[core], atol=1e-5)


def test_levels_zero_is_plain_mix():
    fg, bg = _images()
    m = _disc(96, 112, (56, 48), 30)
    out = laplacian_blend(fg, bg, m, 0)
    np.testing.assert_allclose(out, bg + m[:, :, None] * (fg - bg), atol=1e-6)


def test_low_frequencies_cross_over_wider_and_monotone():
    # A constant offset is pure low frequency: with levels it ramps in deeper inside the matte
    # than the matte itself, without overshoot or a dip (no halo).
    bg = np.full((128, 128, 3), 0.2, np.float32)
    fg = bg + 1.0
    m = _disc(128, 128, (64, 64), 60, feather=8.0)
    ray = slice(4, 64)
    plain = laplacian_blend(fg, bg, m, 0)[64, ray, 0] - 0.2
    multi = laplacian_blend(fg, bg, m, 3)[64, ray, 0] - 0.2
    assert np.all(np.diff(multi) >= -1e-6) and multi.min() >= 0 and multi.max() <= 1 + 1e-6
    assert multi.sum() < plain.sum() - 2.0  # the ramp reaches 1 later
    assert multi[-1] == pytest.approx(1.0, abs=1e-5)


def test_golden_value():
    y, x = np.mgrid[0:48, 0:48].astype(np.float32)
    bg = np.stack([x / 48, y / 48, np.full_like(x, 0.5)], axis=2)
    fg = np.stack([y / 48, np.full_like(x, 0.25), x / 48], axis=2)
    m = _disc(48, 48, (24, 24), 18, feather=5.0)
    out = laplacian_blend(fg, bg, m, 2)
    np.testing.assert_allclose(out[24, 24], fg[24, 24], atol=1e-5)
    np.testing.assert_allclose(out[24, 10], GOLDEN_24_10, atol=1e-5)


GOLDEN_24_10 = [
    0.36042351,
    0.36449695,
    0.34790984,
]  # computed once, checked by eye: between plate and fg


@pytest.mark.parametrize(
    "fg, bg, m, levels",
    [
        (
            np.zeros((8, 8, 3), np.float32),
            np.zeros((8, 9, 3), np.float32),
            np.zeros((8, 9), np.float32),
            2,
        ),
        (
            np.zeros((8, 8, 3), np.float64),
            np.zeros((8, 8, 3), np.float64),
            np.zeros((8, 8), np.float32),
            2,
        ),
        (
            np.zeros((8, 8, 3), np.float32),
            np.zeros((8, 8, 3), np.float32),
            np.zeros((8, 7), np.float32),
            2,
        ),
        (
            np.zeros((8, 8, 3), np.float32),
            np.zeros((8, 8, 3), np.float32),
            np.full((8, 8), 2, np.float32),
            2,
        ),
        (
            np.zeros((8, 8, 3), np.float32),
            np.zeros((8, 8, 3), np.float32),
            np.zeros((8, 8), np.float32),
            -1,
        ),
        (
            np.zeros((8, 8, 5), np.float32),
            np.zeros((8, 8, 5), np.float32),
            np.zeros((8, 8), np.float32),
            1,
        ),
    ],
)
def test_bad_inputs(fg, bg, m, levels):
    with pytest.raises(CompositeError):
        laplacian_blend(fg, bg, m, levels)
