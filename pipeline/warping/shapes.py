"""Landmark shapes: the 68×2 check, the scale-free shape distance, the nearest reference."""

from __future__ import annotations

import numpy as np

from pipeline.errors import WarpInputError
from pipeline.inference.retarget import apply_similarity, fit_similarity


def check_points(points: np.ndarray, name: str) -> np.ndarray:
    points = np.asarray(points, np.float64)
    if points.shape != (68, 2) or not np.all(np.isfinite(points)):
        raise WarpInputError(
            f"{name} landmarks have shape {points.shape} or are not finite",
            "pass 68×2 (x, y) crop pixel coordinates",
        )
    return points


def shape_distance(a: np.ndarray, b: np.ndarray) -> float:
    """RMS distance between two 68-point shapes after similarity-aligning ``a`` onto ``b``,
    divided by ``b``'s RMS radius (scale-free)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    aligned = apply_similarity(fit_similarity(a, b), a)
    radius = np.sqrt(((b - b.mean(0)) ** 2).sum(1).mean())
    return float(np.sqrt(((aligned - b) ** 2).sum(1).mean()) / max(radius, 1e-9))


def nearest_reference(ref_points: np.ndarray, target_points: np.ndarray) -> int:
    """Index of the reference whose landmark shape is nearest the target's.

    Args:
        ref_points: K×68×2 float, reference landmarks.
        target_points: 68×2 float.

    Raises:
        WarpInputError: no references, or wrong shapes.
    """
    ref_points = np.asarray(ref_points, np.float64)
    if ref_points.ndim != 3 or ref_points.shape[0] == 0 or ref_points.shape[1:] != (68, 2):
        raise WarpInputError(
            f"references have landmark shape {ref_points.shape}, expected K×68×2 with K ≥ 1",
            "pass at least one reference with its 68 points",
        )
    target = check_points(target_points, "target")
    return int(np.argmin([shape_distance(p, target) for p in ref_points]))
