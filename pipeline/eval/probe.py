"""dlib on aligned crops: the face box, re-fitted landmarks and identity descriptors."""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.landmarks import get_backend
from pipeline.tracking.identity import descriptor_distance, face_descriptor


def to_uint8(image: np.ndarray) -> np.ndarray:
    """H×W×3 float 0..1 → uint8 display sRGB."""
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


class FaceProbe:
    """dlib re-fitting and descriptors on aligned crops (upscaled so that dlib sees a big face).

    Args:
        upscale: the crop is resized by this factor before dlib reads it.
    """

    def __init__(self, upscale: int = 2) -> None:

        self.backend = get_backend("dlib", upsample=1)
        self.upscale = upscale

    def _big(self, crop: np.ndarray) -> np.ndarray:

        img = to_uint8(crop)
        s = img.shape[0] * self.upscale
        return cv2.resize(img, (s, s), interpolation=cv2.INTER_CUBIC) if self.upscale > 1 else img

    def box(self, crop: np.ndarray, points: np.ndarray) -> tuple[float, float, float, float]:
        """The face box dlib's detector finds in ``crop`` (nearest to ``points``), crop pixels;
        the landmarks' bounding box when it finds none."""
        big = self._big(crop)
        u = self.upscale
        centre = np.asarray(points, np.float64).mean(0) * u
        dets = self.backend.detect(big)
        if dets:
            d = min(
                dets,
                key=lambda q: np.hypot(
                    (q.box[0] + q.box[2]) / 2 - centre[0], (q.box[1] + q.box[3]) / 2 - centre[1]
                ),
            )
            return tuple(v / u for v in d.box)  # type: ignore[return-value]
        p = np.asarray(points, np.float64)
        x0, y0 = p.min(0)
        x1, y1 = p.max(0)
        return (float(x0), float(y0), float(x1), float(y1))

    def fit(self, crop: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """dlib's 68 points on ``crop`` (H×W×3 float 0..1) inside ``box`` → 68×2 crop pixels."""
        u = self.upscale
        det = self.backend.fit(self._big(crop), tuple(v * u for v in box))
        return np.asarray(det.points, np.float64) / u

    def descriptor(self, crop: np.ndarray, points: np.ndarray) -> np.ndarray:
        """dlib's 128-d descriptor of the face in ``crop`` with landmarks ``points`` (crop px)."""

        return face_descriptor(self._big(crop), np.asarray(points, np.float64) * self.upscale)


def descriptor_distance_(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """:func:`pipeline.tracking.identity.descriptor_distance`, NaN when either descriptor is missing."""

    if a is None or b is None:
        return float("nan")
    return descriptor_distance(a, b)
