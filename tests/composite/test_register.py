"""pipeline.composite.register: the face moved the last pixels onto the plate's face."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.composite.register import register_to_plate, sharpness_match, soften
from pipeline.warping.maps import sample


def _texture(size: int) -> np.ndarray:
    """S×S×3 float32 scene-linear: smooth blobs with edges, something flow can lock onto."""
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    img = np.zeros((size, size, 3), np.float32) + 0.1
    for _ in range(40):
        cx, cy, r = rng.uniform(0, size, 2).tolist() + [rng.uniform(4, 16)]
        img += (((xs - cx) ** 2 + (ys - cy) ** 2) < r * r)[..., None] * rng.uniform(0, 0.3, 3)
    return img.astype(np.float32)


def test_a_shifted_face_is_moved_back_onto_the_plate():
    plate = _texture(192)
    grid = np.stack(np.meshgrid(np.arange(192), np.arange(192)), -1).astype(np.float32)
    face = sample(plate, grid + np.float32([2.5, -1.5]), sharp=False)  # features 2-3 px off
    inner = (slice(24, -24), slice(24, -24))
    before = np.abs(face - plate)[inner].mean()
    after = np.abs(register_to_plate(face, plate, 1.0, 2.0) - plate)[inner].mean()
    assert after < 0.35 * before, (before, after)
    # half strength moves it about half way; zero strength leaves it alone
    half = np.abs(register_to_plate(face, plate, 0.5, 2.0) - plate)[inner].mean()
    assert after < half < before
    assert register_to_plate(face, plate, 0.0, 2.0) is face


def test_a_face_sharper_than_the_plate_is_softened_to_match_it():
    """One blur per shot brings a sharp photo's detail down to a soft plate's; a face already
    softer than the plate is left alone. Measured at the plate's scale."""
    sharp = _texture(128) + np.random.default_rng(3).normal(0, 0.03, (128, 128, 3)).astype(
        np.float32
    )
    soft_plate = cv2.GaussianBlur(sharp, (0, 0), 1.2)
    hull = np.zeros((128, 128), bool)
    hull[16:-16, 16:-16] = True
    sigma, before = sharpness_match([sharp], [soft_plate], [hull])
    assert before > 1.5 and 0.6 <= sigma <= 2.0
    after = sharpness_match([soften(sharp, sigma)], [soft_plate], [hull])[1]
    assert 0.7 < after <= 1.0
    assert sharpness_match([soft_plate], [sharp], [hull])[0] == 0.0  # softer: untouched
    # at another scale (a crop twice the plate's pixels) the blur doubles with it
    big = cv2.resize(sharp, (256, 256), interpolation=cv2.INTER_CUBIC)
    big_plate = cv2.resize(soft_plate, (256, 256), interpolation=cv2.INTER_CUBIC)
    big_hull = cv2.resize(hull.astype(np.uint8), (256, 256)) > 0
    assert sharpness_match([big], [big_plate], [big_hull], 0.5)[0] == pytest.approx(2 * sigma)
