"""128-d face identity descriptors: dlib's ``dlib_face_recognition_resnet_model_v1``.

Used to lock tracking onto the performer to replace. The L2 distance between two descriptors is
below 0.6 for the same person (below about 0.3 across sessions in practice) and about 0.9 between
different people. Cosine similarity is not informative for this model (about 0.98 for anyone).
One descriptor costs about 0.13 s on one core, so the tracker computes them only when it
(re)acquires a face.
"""

from __future__ import annotations

import functools
from typing import Any

import dlib
import numpy as np

from pipeline.landmarks.base import Detection, check_image
from pipeline.landmarks.dlib_backend import FACE_RECOGNITION_RESNET, model_path

#: L2 distance below which two descriptors are taken to be the same person.
SAME_PERSON_DISTANCE = 0.6
#: dlib's aligned face chip: side in pixels and padding around the landmarks.
CHIP_SIZE = 150
CHIP_PADDING = 0.25


@functools.cache
def _recognizer() -> Any:

    return dlib.face_recognition_model_v1(str(model_path(FACE_RECOGNITION_RESNET)))


def face_chip(image: np.ndarray, detection_or_points: Detection | np.ndarray) -> np.ndarray:
    """The 150² aligned face chip the descriptor network reads (about 0.5 ms).

    Keeping the chip instead of the descriptor defers the 0.13-s network run until it is needed.

    Args:
        image: H×W×3 uint8 display sRGB.
        detection_or_points: a :class:`Detection`, or 68×2 float iBUG-68 landmarks in pixels.

    Returns:
        150×150×3 uint8 display sRGB.

    Raises:
        ValueError: wrong image or landmark shape, or landmarks with NaN.
    """

    img = check_image(image)
    if img.ndim != 3:
        raise ValueError(f"face descriptors need an H×W×3 RGB image, got shape {img.shape}")
    pts = (
        detection_or_points.points
        if isinstance(detection_or_points, Detection)
        else detection_or_points
    )
    pts = np.asarray(pts, np.float64)
    if pts.shape != (68, 2) or not np.isfinite(pts).all():
        raise ValueError(f"face descriptors need 68×2 finite landmarks, got shape {pts.shape}")
    x0, y0 = np.floor(pts.min(0)).astype(int)
    x1, y1 = np.ceil(pts.max(0)).astype(int)
    shape = dlib.full_object_detection(
        dlib.rectangle(int(x0), int(y0), int(x1), int(y1)),
        [dlib.point(round(x), round(y)) for x, y in pts],
    )
    return np.asarray(dlib.get_face_chip(img, shape, CHIP_SIZE, CHIP_PADDING), np.uint8)


def chip_descriptor(chip: np.ndarray) -> np.ndarray:
    """Descriptor of a face chip from :func:`face_chip`.

    Args:
        chip: 150×150×3 uint8 display sRGB.

    Returns:
        128 float32.

    Raises:
        ValueError: the chip has another shape or dtype.
    """
    chip = np.ascontiguousarray(chip)
    if chip.shape != (CHIP_SIZE, CHIP_SIZE, 3) or chip.dtype != np.uint8:
        raise ValueError(f"a face chip is 150×150×3 uint8, got {chip.dtype} {chip.shape}")
    return np.asarray(_recognizer().compute_face_descriptor(chip), np.float32)


def face_descriptor(image: np.ndarray, detection_or_points: Detection | np.ndarray) -> np.ndarray:
    """The identity descriptor of one face (about 0.13 s on one core).

    Args:
        image: H×W×3 uint8 display sRGB.
        detection_or_points: a :class:`Detection`, or 68×2 float iBUG-68 landmarks in pixels.

    Returns:
        128 float32.

    Raises:
        ValueError: wrong image or landmark shape, or landmarks with NaN.
    """
    return chip_descriptor(face_chip(image, detection_or_points))


def descriptor_distance(a: np.ndarray, b: np.ndarray) -> float:
    """L2 distance between two 128-d descriptors; below 0.6 means the same person.

    Raises:
        ValueError: a descriptor is not 128 finite values.
    """
    a = np.asarray(a, np.float64).reshape(-1)
    b = np.asarray(b, np.float64).reshape(-1)
    if (
        a.shape != (128,)
        or b.shape != (128,)
        or not (np.isfinite(a).all() and np.isfinite(b).all())
    ):
        raise ValueError(
            f"descriptors must be 128 finite values each, got shapes {a.shape} and {b.shape}"
        )
    return float(np.linalg.norm(a - b))
