"""Temporal smoothing of mattes and parameters; the edge-flicker measure."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.align import CANONICAL_68
from pipeline.composite import CompositeConfig, edge_flicker, face_matte, smooth_over_time
from pipeline.composite.temporal import edge_band, snap_matte, tracked_runs
from pipeline.errors import CompositeError


def test_golden_forward_backward():
    out = smooth_over_time(np.array([0.0, 1.0, 0.0, 0.0]), 0.5)
    # forward 0, .5, .25, .125; backward from the end
    np.testing.assert_allclose(out, [0.171875, 0.34375, 0.1875, 0.125], atol=1e-7)


def test_shape_dtype_and_identity():
    x = np.random.default_rng(0).random((5, 7, 3))
    out = smooth_over_time(x, 0.7)
    assert out.shape == x.shape and out.dtype == np.float32
    np.testing.assert_array_equal(smooth_over_time(x, 0.0), x.astype(np.float32))
    const = np.full((6, 4), 0.25, np.float32)
    np.testing.assert_allclose(smooth_over_time(const, 0.9), const, atol=1e-7)


def test_runs_are_smoothed_separately():
    x = np.array([0, 0, 0, 5, 1, 1, 1], np.float32)
    valid = np.array([1, 1, 1, 0, 1, 1, 1], bool)
    out = smooth_over_time(x, 0.8, valid)
    np.testing.assert_allclose(out, x, atol=1e-6)  # nothing leaks across the gap
    assert tracked_runs(valid) == [(0, 3), (4, 7)]


@pytest.mark.parametrize("strength", [-0.1, 1.0, 2.0])
def test_bad_strength(strength):
    with pytest.raises(CompositeError):
        smooth_over_time(np.zeros((3, 2)), strength)


def test_bad_valid_length():
    with pytest.raises(CompositeError):
        smooth_over_time(np.zeros((3, 2)), 0.5, np.ones(4, bool))


def test_edge_flicker_golden_and_bad():
    m = np.array([[[0.0, 0.5, 1.0]], [[0.0, 1.0, 1.0]], [[0.0, 0.5, 1.0]]], np.float32)
    assert edge_band(m).tolist() == [[False, True, False]]
    assert edge_flicker(m) == pytest.approx(0.5)
    assert edge_flicker(np.zeros((3, 4, 4), np.float32)) == 0.0
    with pytest.raises(CompositeError):
        edge_flicker(np.zeros((1, 4, 4), np.float32))
    with pytest.raises(CompositeError):
        edge_flicker(m, band=np.ones((2, 2), bool))


def test_snap():
    m = snap_matte(np.array([0.0005, 0.5, 0.9995], np.float32))
    assert m.tolist() == [0.0, 0.5, 1.0]


def test_smoothing_reduces_edge_flicker_on_jittery_landmarks():
    # 16 frames of a still face whose crop-space landmarks jitter by 1 px (σ), like a tracker
    # on a real plate. Default strength 0.6 measured 7.8× less flicker on the same edge band;
    # we require 4×.
    rng = np.random.default_rng(1)
    cfg = CompositeConfig()
    pts = CANONICAL_68 * 128 + rng.normal(0.0, 1.0, (16, 68, 2))
    raw = np.stack([face_matte(p, 128, cfg) for p in pts])
    smooth = snap_matte(smooth_over_time(raw, cfg.temporal_matte), cfg.matte_snap)
    band = edge_band(raw)
    ratio = edge_flicker(raw, band) / edge_flicker(smooth, band)
    assert ratio >= 4.0, ratio
    assert edge_flicker(raw) / edge_flicker(smooth) >= 4.0  # each on its own band too


def test_smoothing_does_not_lag_steady_motion():
    # Zero-phase: a face drifting at constant speed keeps its position in the inner frames.
    cfg = CompositeConfig()
    n = 21
    pts = CANONICAL_68[None] * 128 + np.arange(n)[:, None, None] * np.array([0.5, 0.0])
    raw = np.stack([face_matte(p, 128, cfg) for p in pts])
    smooth = smooth_over_time(raw, 0.6)
    xs = np.arange(128, dtype=np.float64)
    cx = lambda m: float((m.sum(0) * xs).sum() / m.sum())  # noqa: E731
    for t in range(6, n - 6):
        assert abs(cx(smooth[t]) - cx(raw[t])) < 0.05
