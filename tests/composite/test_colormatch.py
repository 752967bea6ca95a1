"""Colour and light match: gain in linear light, mean/deviation in a Lab-like space."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.composite import CompositeConfig, color_match, face_matte
from pipeline.composite.colormatch import (
    MODES,
    GainParams,
    apply_gain,
    estimate_gain,
    lab_to_linear,
    linear_to_lab,
)
from pipeline.composite.comp import plate_to_crop
from pipeline.errors import CompositeError

#: The 128-px composite's matte (its edge inside the hull), which these tests were written for.
INSIDE = CompositeConfig(erode_px=2.0, feather_px=8.0)


@pytest.fixture(scope="module")
def pair(shot):
    """(plate crop S×S×3 linear, matte S×S) of the astronaut's first frame."""
    pc = plate_to_crop(shot.frames[0], shot.inverses[0], shot.crop_size)
    return pc, face_matte(shot.points_crop[0], shot.crop_size, INSIDE)


def test_lab_golden_and_round_trip():
    lab = linear_to_lab(np.array([[1.0, 1.0, 1.0], [0.18, 0.18, 0.18]], np.float32))
    np.testing.assert_allclose(lab, [[100, 0, 0], [49.496, 0, 0]], atol=2e-3)
    x = np.array([[-0.1, 2.0, 5.0], [0.01, 0.5, 0.02], [30.0, 0.0, 1.0]], np.float32)
    np.testing.assert_allclose(lab_to_linear(linear_to_lab(x)), x, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "mode, shape", [("linear_gain", (32, 32, 3)), ("lab_stats", (4, 3)), ("none", (0,))]
)
def test_smoke_and_param_shapes(pair, mode, shape):
    pc, m = pair
    out, p = color_match(pc, pc, m, mode)
    assert out.shape == pc.shape and out.dtype == np.float32
    assert p.shape == shape
    np.testing.assert_allclose(out, pc, atol=2e-5)  # already matched: nothing changes


def test_linear_gain_undoes_a_colour_gain_exactly(pair):
    pc, m = pair
    face = pc * np.float32([1.4, 0.9, 0.6])
    out, gain = color_match(face, pc, m, "linear_gain")
    np.testing.assert_allclose(
        gain, np.broadcast_to(1 / np.float32([1.4, 0.9, 0.6]), gain.shape), rtol=1e-4
    )
    core = m >= 1
    np.testing.assert_allclose(out[core], pc[core], rtol=1e-4, atol=1e-6)


def test_linear_gain_follows_soft_shading(pair):
    # Light falling off across the face (0.7 → 1.3 left to right): the low-frequency gain takes
    # most of it out (3.4× less error measured; 2.5× required).
    pc, m = pair
    face = pc * np.linspace(0.7, 1.3, pc.shape[1], dtype=np.float32)[None, :, None]
    out, _ = color_match(face, pc, m, "linear_gain")
    core = m >= 1
    before = np.abs(face - pc)[core].mean()
    assert np.abs(out - pc)[core].mean() * 2.5 <= before


def test_lab_stats_brings_gain_and_offset_back(pair):
    pc, m = pair
    core = m >= 1
    for face, need in ((pc * np.float32([1.4, 0.9, 0.6]), 8.0), (pc * 1.2 + 0.01, 40.0)):
        out, stats = color_match(face, pc, m, "lab_stats")
        assert stats.shape == (4, 3)
        ratio = np.abs(face - pc)[core].mean() / np.abs(out - pc)[core].mean()
        assert ratio >= need, ratio  # measured 10.7× and 79×


def test_gain_is_clamped(pair):
    pc, m = pair
    gain = estimate_gain(pc * 100.0, pc, m, GainParams(gain_min=0.25, gain_max=4.0))
    assert gain.min() == pytest.approx(0.25)
    out = apply_gain(pc, np.full((4, 4, 3), 2.0, np.float32))
    np.testing.assert_allclose(out, pc * 2.0, rtol=1e-6)


def test_bad_inputs(pair):
    pc, m = pair
    with pytest.raises(CompositeError):
        color_match(pc, pc[:-1], m)
    with pytest.raises(CompositeError):
        color_match(pc, pc, np.zeros_like(m))  # empty matte
    with pytest.raises(CompositeError):
        color_match(pc.astype(np.float64), pc, m)
    with pytest.raises(CompositeError):
        color_match(pc, pc, m, "histogram")
    with pytest.raises(CompositeError):
        MODES["lab_stats"].apply(pc, np.zeros((3, 3), np.float32))


def test_keep_tone_takes_the_plates_light_but_not_its_colour(pair):
    """Another actor: the plate's shading and exposure, the face's own mean colour."""
    pc, m = pair
    face = pc * np.float32([0.6, 0.8, 1.0])  # the face's own (cooler) tone
    shade = np.linspace(0.7, 1.3, pc.shape[1], dtype=np.float32)[None, :, None]
    plate = pc * shade  # the plate: the same face, lit from one side
    full = estimate_gain(face, plate, m, GainParams(sigma_px=4.0, grid=64))
    keep = estimate_gain(face, plate, m, GainParams(sigma_px=4.0, grid=64, keep_tone=True))
    w = cv2.resize(m, (64, 64), interpolation=cv2.INTER_AREA)
    mean = lambda g: (g * w[..., None]).reshape(-1, 3).sum(0)  # noqa: E731
    f, k = mean(full), mean(keep)
    assert f[0] / f[2] > 1.5  # the full match undoes the face's tone ...
    assert abs(k[0] / k[2] - 1.0) < 0.05  # ... keeping it leaves it
    # both keep the plate's left-to-right light, across the face
    cols = np.nonzero(w.max(0) > 0.9)[0]
    left, right = cols[: len(cols) // 4], cols[-len(cols) // 4 :]
    for g in (full, keep):
        lum = g.mean(-1)
        core = w > 0.9
        assert lum[:, right][core[:, right]].mean() > 1.1 * lum[:, left][core[:, left]].mean()
