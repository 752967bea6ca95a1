"""pipeline.tracking.identity: 128-d descriptors on package-shipped portraits."""

from __future__ import annotations

import matplotlib.cbook
import matplotlib.image
import numpy as np
import pytest

from pipeline.demo.synthetic import astronaut
from pipeline.landmarks import get_backend
from pipeline.tracking.identity import (
    SAME_PERSON_DISTANCE,
    chip_descriptor,
    descriptor_distance,
    face_chip,
    face_descriptor,
)


def _hopper() -> np.ndarray:
    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return np.ascontiguousarray(matplotlib.image.imread(path))


@pytest.fixture(scope="module")
def descriptors():
    dlib = get_backend("dlib")
    out = {}
    for name, img in (
        ("astronaut", astronaut()),
        ("astronaut_mirrored", np.ascontiguousarray(astronaut()[:, ::-1])),
        ("hopper", _hopper()),
    ):
        out[name] = face_descriptor(img, dlib.detect(img)[0])
    return out


def test_shape_and_dtype(descriptors):
    d = descriptors["astronaut"]
    assert d.shape == (128,) and d.dtype == np.float32


def test_same_and_different_person(descriptors):
    same = descriptor_distance(descriptors["astronaut"], descriptors["astronaut_mirrored"])
    other = descriptor_distance(descriptors["astronaut"], descriptors["hopper"])
    assert same < SAME_PERSON_DISTANCE < other
    # Golden figures measured with dlib 20 (mirror 0.20, Hopper 0.70), with a little slack.
    assert same == pytest.approx(0.20, abs=0.05)
    assert other == pytest.approx(0.70, abs=0.05)


def test_points_or_detection_agree():
    img = astronaut()
    det = get_backend("dlib").detect(img)[0]
    np.testing.assert_allclose(
        face_descriptor(img, det), face_descriptor(img, det.points), atol=1e-6
    )


def test_chip_path_matches(descriptors):
    img = astronaut()
    chip = face_chip(img, get_backend("dlib").detect(img)[0])
    assert chip.shape == (150, 150, 3) and chip.dtype == np.uint8
    np.testing.assert_allclose(chip_descriptor(chip), descriptors["astronaut"], atol=1e-6)
    with pytest.raises(ValueError, match="150×150×3"):
        chip_descriptor(chip[:100])


def test_bad_inputs():
    img = astronaut()
    with pytest.raises(ValueError, match="68×2"):
        face_descriptor(img, np.zeros((5, 2)))
    with pytest.raises(ValueError, match="uint8"):
        face_descriptor(img.astype(np.float32), np.zeros((68, 2)))
    with pytest.raises(ValueError, match="128"):
        descriptor_distance(np.zeros(127), np.zeros(128))
