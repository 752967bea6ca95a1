"""Colour and light match: gain in linear light, mean/deviation in a Lab-like space."""

from __future__ import annotations

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


@pytest.fixture(scope="module")
def pair(shot):
    """(plate crop S×S×3 linear, matte S×S) of the astronaut's first frame."""
    pc = plate_to_crop(shot.frames[0], shot.inverses[0], shot.crop_size)
    return pc, face_matte(shot.points_crop[0], shot.crop_size, CompositeConfig())


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
