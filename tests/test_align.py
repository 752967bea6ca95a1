"""pipeline.align: template, similarity transform, aligned crops of stills."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.align import (
    CANONICAL_68,
    align_image,
    apply_affine,
    similarity_transform,
    umeyama,
)
from pipeline.demo.synthetic import astronaut
from pipeline.errors import NoFaceError
from pipeline.landmarks import get_backend


def _similar(points: np.ndarray, scale: float, deg: float, t: tuple[float, float]) -> np.ndarray:
    a = math.radians(deg)
    r = scale * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return points @ r.T + np.asarray(t)


def test_template_shape_and_symmetry():
    assert CANONICAL_68.shape == (68, 2)
    assert CANONICAL_68.min() >= 0.0 and CANONICAL_68.max() <= 1.0
    # Nose bridge on the vertical midline; eye corners level.
    np.testing.assert_allclose(CANONICAL_68[27:31, 0], 0.5, atol=1e-4)
    assert abs(CANONICAL_68[36, 1] - CANONICAL_68[45, 1]) < 1e-4


def test_similarity_recovers_known_transform():
    pts = _similar(CANONICAL_68 * 256, 0.7, 12.0, (40.0, -15.0))
    fwd, inv = similarity_transform(pts, 256)
    np.testing.assert_allclose(apply_affine(fwd, pts), CANONICAL_68 * 256, atol=1e-6)
    # Golden: the scale of image→crop is 1 / 0.7, the angle -12°.
    assert math.hypot(fwd[0, 0], fwd[1, 0]) == pytest.approx(1 / 0.7, rel=1e-9)
    assert math.degrees(math.atan2(fwd[1, 0], fwd[0, 0])) == pytest.approx(-12.0, abs=1e-9)


@pytest.mark.parametrize("size", [128, 256, 512])
def test_round_trip_is_identity(size):
    rng = np.random.default_rng(1)
    pts = _similar(CANONICAL_68 * 300, 0.9, -7.0, (100.0, 50.0)) + rng.normal(0, 2, (68, 2))
    fwd, inv = similarity_transform(pts, size)
    both = np.vstack([inv, [0, 0, 1]]) @ np.vstack([fwd, [0, 0, 1]])
    np.testing.assert_allclose(both, np.eye(3), atol=1e-9)
    q = rng.uniform(0, 500, (10, 2))
    np.testing.assert_allclose(apply_affine(inv, apply_affine(fwd, q)), q, atol=1e-9)


def test_umeyama_rejects_degenerate():
    with pytest.raises(ValueError, match="coincide"):
        umeyama(np.zeros((68, 2)), CANONICAL_68)


def test_bad_points():
    with pytest.raises(ValueError, match="68×2"):
        similarity_transform(np.zeros((67, 2)), 256)
    pts = CANONICAL_68 * 100
    pts[3, 0] = np.nan
    with pytest.raises(NoFaceError):
        similarity_transform(pts, 256)
    with pytest.raises(ValueError, match="crop size"):
        similarity_transform(CANONICAL_68 * 100, 0)


def test_reference_still_alignment():
    still = astronaut()  # 512² portrait, face about 90 px
    det = get_backend("dlib").detect(still)[0]
    face = align_image(still, det.points, 256)
    assert face.crop.shape == (256, 256, 3) and face.crop.dtype == np.uint8
    assert face.points_in_crop.dtype == np.float32
    # The aligned landmarks sit on the template: mean residual under 4 % of the crop.
    err = np.linalg.norm(face.points_in_crop - CANONICAL_68 * 256, axis=1).mean()
    assert err < 0.04 * 256
    # Re-detecting in the crop finds the face where the template puts it.
    again = get_backend("dlib").detect(face.crop)
    assert len(again) == 1
    np.testing.assert_allclose(again[0].points, face.points_in_crop, atol=6.0)
    # Crop pixels map back to the still through the inverse.
    np.testing.assert_allclose(
        apply_affine(face.inverse, face.points_in_crop), det.points, atol=1e-3
    )


def test_float_image_and_downscale():
    still = astronaut().astype(np.float32) / 255.0
    det = get_backend("dlib").detect(astronaut())[0]
    big = _similar(det.points.astype(np.float64), 1.0, 0.0, (0.0, 0.0))
    face = align_image(still, big, 64)  # scale < 0.5: area pre-filter path
    assert face.crop.shape == (64, 64, 3) and face.crop.dtype == np.float32
    assert 0.0 <= face.crop.min() and face.crop.max() <= 1.0


def test_bad_image():
    with pytest.raises(ValueError, match="H×W"):
        align_image(np.zeros((4,), np.uint8), CANONICAL_68 * 100, 128)
