"""What every landmark backend returns and provides: :class:`Detection` and
:class:`LandmarkBackend`, with the image check they share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Detection:
    """One face found or fitted in one image.

    Attributes:
        points: 68×2 float32, iBUG 68 layout, (x, y) pixel coordinates of the input image.
        confidence: 0..1. For a detection: the detector's score through a logistic (0.5 at the
            detector's threshold). For a fit in a given box: the backend's own measure, 1.0 where
            it has none (dlib's shape predictor).
        box: ``(x0, y0, x1, y1)`` face box in pixels of the input image.
    """

    points: np.ndarray
    confidence: float
    box: Box


class LandmarkBackend(Protocol):
    """What every landmark backend provides.

    A backend may also offer ``detect_near(image, box) -> list[Detection]``: faces in the
    neighbourhood of ``box`` only, cheaper than :meth:`detect` on large frames. The tracker uses
    it on scheduled keyframes while it still holds the face, and falls back to :meth:`detect`.
    """

    name: str

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Find every face. ``image``: H×W×3 uint8 display sRGB. Returns: detections, any order."""
        ...

    def fit(self, image: np.ndarray, box: Box) -> Detection:
        """Landmarks of the face in ``box`` (used between keyframes). ``image`` as in detect."""
        ...


def check_image(image: np.ndarray) -> np.ndarray:
    """Check an image handed to a backend.

    Args:
        image: H×W×3 uint8 display sRGB (H×W uint8 grey is accepted too).

    Returns:
        the same array, C-contiguous.

    Raises:
        ValueError: wrong dtype or shape, naming what was received.
    """
    img = np.asarray(image)
    if img.dtype != np.uint8 or not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise ValueError(
            f"landmark backends take H×W×3 uint8 display-sRGB images, got {img.dtype} {img.shape}; "
            "convert scene-linear plates to display sRGB uint8 first"
        )
    return np.ascontiguousarray(img)
