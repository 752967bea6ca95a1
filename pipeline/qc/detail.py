"""How much of the plate's fine detail the delivered face carries: mean |Laplacian of Gaussian|
(σ = 1 plate pixel) of luma over the plate face's landmark hull, delivered over plate."""

from __future__ import annotations

import cv2
import numpy as np

#: AP1 (ACEScg) luminance weights.
_Y = np.array([0.2722287, 0.6740818, 0.0536895], np.float32)


def hull_mask(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """H×W bool: the convex hull of 68×2 plate-pixel landmarks."""
    mask = np.zeros(shape, np.uint8)
    hull = cv2.convexHull(np.asarray(points, np.float32)).round().astype(np.int32)
    cv2.fillConvexPoly(mask, hull, 1)
    return mask.astype(bool)


def _log(luma: np.ndarray) -> np.ndarray:
    return np.abs(cv2.Laplacian(cv2.GaussianBlur(luma, (0, 0), 1.0), cv2.CV_32F))


def detail_ratio(delivered: np.ndarray, plate: np.ndarray, points: np.ndarray) -> float:
    """Fine detail of ``delivered`` over ``plate`` in the landmark hull (1: as much).

    Args:
        delivered: H×W×3 float32, scene-linear ACEScg, the delivered frame.
        plate: H×W×3 float32, scene-linear ACEScg, the plate frame.
        points: 68×2 float, the plate face's landmarks in plate pixels.

    Returns:
        the ratio, measured on a perceptual luma (the square root of linear luminance) over the
        hull's bounding box; NaN when the hull is empty or the plate has no detail there.
    """
    pts = np.asarray(points, np.float64)
    if not np.isfinite(pts).all():
        return float("nan")
    h, w = plate.shape[:2]
    x0, y0 = np.maximum(np.floor(pts.min(0)).astype(int) - 4, 0)
    x1, y1 = np.minimum(np.ceil(pts.max(0)).astype(int) + 5, (w, h))
    if x1 <= x0 or y1 <= y0:
        return float("nan")
    box = (slice(y0, y1), slice(x0, x1))
    mask = hull_mask(pts - (x0, y0), (y1 - y0, x1 - x0))
    luma = lambda a: np.sqrt(np.maximum(a[box] @ _Y, 0.0)).astype(np.float32)  # noqa: E731
    ref = float(_log(luma(plate))[mask].mean()) if mask.any() else 0.0
    if ref <= 1e-9:
        return float("nan")
    return float(_log(luma(delivered))[mask].mean()) / ref
