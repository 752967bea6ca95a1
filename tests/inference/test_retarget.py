"""Cross-identity retargeting: pose and expression move, the target's proportions stay."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.errors import RetargetError
from pipeline.inference.retarget import (
    apply_similarity,
    fit_similarity,
    invert_similarity,
    mean_shape,
    retarget,
)


def face(eye_gap: float = 0.28, mouth_open: float = 0.0, jaw_width: float = 0.32) -> np.ndarray:
    """A synthetic 68-point face in unit coordinates (68×2 float64), parametrised proportions."""

    def ell(cx: float, cy: float, rx: float, ry: float, n: int) -> np.ndarray:
        t = np.pi + np.linspace(0, 2 * np.pi, n, endpoint=False)
        return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1)

    t = np.linspace(np.pi, 0, 17)
    u = np.linspace(0, 1, 5)
    h = eye_gap / 2
    parts = [
        np.stack([0.5 + jaw_width * np.cos(t), 0.45 + 0.38 * np.sin(t)], 1),
        np.stack([0.5 - h - 0.09 + 0.18 * u, 0.36 - 0.03 * np.sin(np.pi * u)], 1),
        np.stack([0.5 + h - 0.09 + 0.18 * u, 0.36 - 0.03 * np.sin(np.pi * u)], 1),
        np.stack([np.full(4, 0.5), np.linspace(0.42, 0.58, 4)], 1),
        np.stack([np.linspace(0.44, 0.56, 5), np.full(5, 0.62)], 1),
        ell(0.5 - h, 0.44, 0.06, 0.025, 6),
        ell(0.5 + h, 0.44, 0.06, 0.025, 6),
        ell(0.5, 0.75, 0.12, 0.04 + 0.04 * mouth_open, 12),
        ell(0.5, 0.75, 0.08, 0.005 + 0.035 * mouth_open, 8),
    ]
    return np.concatenate(parts)


def pose(angle: float, scale: float, tx: float, ty: float) -> np.ndarray:
    m = cv2.getRotationMatrix2D((0.5, 0.5), angle, scale)
    m[:, 2] += (tx, ty)
    return m


def eye_gap_ratio(points: np.ndarray) -> float:
    """Inter-ocular distance over jaw width: a proportion that a similarity keeps."""
    eyes = np.linalg.norm(points[36:42].mean(0) - points[42:48].mean(0))
    return float(eyes / np.linalg.norm(points[0] - points[16]))


def test_fit_similarity_recovers_transform() -> None:
    src = face()
    m = pose(12.0, 1.7, 30.0, -4.0)
    got = fit_similarity(src, apply_similarity(m, src))
    np.testing.assert_allclose(got, m, atol=1e-9)
    np.testing.assert_allclose(
        apply_similarity(invert_similarity(m), apply_similarity(m, src)), src, atol=1e-9
    )


def test_same_identity_is_unchanged() -> None:
    base = face() * 200
    frames = np.stack([apply_similarity(pose(a, 1 + a / 100, a, -a), face(mouth_open=o) * 200)
                       for a, o in [(0, 0), (5, 0.5), (-4, 1.0), (2, 0.2)]])  # fmt: skip
    out = retarget(frames, base, performer_mean=base)
    np.testing.assert_allclose(out, frames, atol=1e-6)


def test_pose_and_expression_transfer_keeps_target_proportions() -> None:
    performer_neutral = face(eye_gap=0.24, jaw_width=0.30) * 300 + 50
    target = face(eye_gap=0.34, jaw_width=0.34) * 90  # other size, other proportions
    poses = [pose(0, 1, 0, 0), pose(8, 1.1, 20, 5), pose(-6, 0.9, -15, 10), pose(-6, 0.9, -15, 10)]
    frames = np.stack([apply_similarity(p, performer_neutral) for p in poses])
    # the performer opens the mouth in the last frame
    frames[2] = apply_similarity(
        poses[2], face(eye_gap=0.24, jaw_width=0.30, mouth_open=1.0) * 300 + 50
    )
    out = retarget(frames, target, performer_mean=performer_neutral)
    assert out.shape == (4, 68, 2)
    want_ratio = eye_gap_ratio(target)
    for f in (0, 1, 3):  # pure head motion: exact
        assert eye_gap_ratio(out[f]) == pytest.approx(want_ratio, rel=1e-6)
    # an open mouth shifts the pose fit a little, and with it the other points
    assert eye_gap_ratio(out[2]) == pytest.approx(want_ratio, rel=2e-3)
    assert eye_gap_ratio(frames[0]) != pytest.approx(want_ratio, rel=0.05)
    # the head pose follows the performer: frame 1 relative to frame 0 is poses[1]
    rel = fit_similarity(out[0], out[1])
    np.testing.assert_allclose(rel[:, :2], poses[1][:, :2], atol=1e-6)
    # the mouth opens by as much as the performer's (frame 3: same pose, mouth closed)
    gap = lambda p: np.linalg.norm(p[66] - p[62])  # noqa: E731
    assert gap(out[2]) - gap(out[3]) == pytest.approx(gap(frames[2]) - gap(frames[3]), rel=1e-3)


def test_default_mean_is_procrustes_mean() -> None:
    shapes = np.stack([apply_similarity(pose(a, 1.0, a, 0), face() * 100) for a in (-5, 0, 5)])
    mean = mean_shape(shapes)
    # the mean of similarity copies is the shape itself, placed like the first frame
    np.testing.assert_allclose(mean, shapes[0], atol=1e-6)
    out = retarget(shapes, face() * 100)
    np.testing.assert_allclose(out, shapes, atol=1e-6)


def test_bad_input() -> None:
    with pytest.raises(RetargetError, match="F×68×2"):
        retarget(np.zeros((68, 2)), face())
    with pytest.raises(RetargetError, match="collapse"):
        fit_similarity(np.zeros((68, 2)), face())
    with pytest.raises(RetargetError, match="N×2"):
        fit_similarity(face(), face()[:10])


def test_golden_value() -> None:
    frames = np.stack([face(mouth_open=0.5) * 100])
    out = retarget(frames, face(eye_gap=0.3) * 50, performer_mean=face() * 100)
    np.testing.assert_allclose(out[0, 62], GOLDEN_62, atol=1e-6)


GOLDEN_62 = [50.0, 72.60478134341838]
