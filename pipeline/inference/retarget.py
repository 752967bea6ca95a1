"""Cross-identity retargeting: the performer's pose and expression on the target's face shape.

When the plate performer is not the target identity, driving G with the performer's own landmarks
would give the synthesized face the performer's proportions. Instead, per frame:

1. fit the similarity ``S_f`` (Procrustes) that takes the performer's mean shape ``P̄`` to the
   frame's landmarks ``P_f``: that is the head pose;
2. the expression is what is left, a delta in the mean shape's frame: ``δ_f = S_f⁻¹(P_f) − P̄``;
3. align the target's mean shape ``T̄`` to ``P̄`` by Procrustes, ``T̃ = A(T̄)``, so it has the
   performer's size and placement, then apply ``S_f(T̃ + δ_f)``.

So the output keeps the target's proportions (eye spacing, jaw, nose length) and moves like the
performer. Points are (x, y) pixel coordinates in any frame, 68 iBUG points.
"""

from __future__ import annotations

import numpy as np

from pipeline.errors import RetargetError


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama, no reflection) taking ``src`` onto ``dst``.

    Args:
        src: N×2 float points.
        dst: N×2 float points, same N.

    Returns:
        2×3 float64 matrix ``M`` with ``dst ≈ src @ M[:, :2].T + M[:, 2]``.

    Raises:
        RetargetError: shapes differ, or ``src`` collapses to a point.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2:
        raise RetargetError(
            f"similarity fit needs two N×2 arrays, got {src.shape} and {dst.shape}",
            "pass matching landmark sets",
        )
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var = (s * s).sum() / len(src)
    if var < 1e-12:
        raise RetargetError("source points collapse to a single point", "check the landmarks")
    cov = d.T @ s / len(src)  # 2×2
    u, sig, vt = np.linalg.svd(cov)
    fix = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        fix[1, 1] = -1.0
    rot = u @ fix @ vt
    scale = float(np.trace(np.diag(sig) @ fix) / var)
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - m[:, :2] @ mu_s
    return m


def apply_similarity(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2×3 matrix to N×2 points → N×2 float64."""
    return np.asarray(points, np.float64) @ m[:, :2].T + m[:, 2]


def invert_similarity(m: np.ndarray) -> np.ndarray:
    """Inverse of a 2×3 similarity (or any invertible affine) matrix."""
    a = np.linalg.inv(m[:, :2])
    return np.concatenate([a, -(a @ m[:, 2])[:, None]], axis=1)


def retarget(
    performer: np.ndarray,
    target_mean: np.ndarray,
    performer_mean: np.ndarray | None = None,
    expression_scale: float = 1.0,
) -> np.ndarray:
    """Transfer the performer's head pose and expression onto the target's face shape.

    Args:
        performer: F×68×2 float, the performer's landmarks per frame, plate pixel coordinates.
        target_mean: 68×2 float, the target's mean (neutral) shape, any coordinates.
        performer_mean: 68×2 float, the performer's mean shape; by default the Procrustes mean
            of ``performer``.
        expression_scale: multiplies the expression deltas (1 = as performed).

    Returns:
        F×68×2 float64 landmarks in plate pixel coordinates with the target's proportions.

    Raises:
        RetargetError: wrong shapes.
    """
    performer = np.asarray(performer, np.float64)
    target_mean = np.asarray(target_mean, np.float64)
    if performer.ndim != 3 or performer.shape[1:] != (68, 2) or target_mean.shape != (68, 2):
        raise RetargetError(
            f"retarget needs F×68×2 performer and 68×2 target shapes, got {performer.shape} "
            f"and {target_mean.shape}",
            "pass 68-point iBUG landmarks",
        )
    mean = mean_shape(performer) if performer_mean is None else np.asarray(performer_mean)
    target_on_mean = apply_similarity(fit_similarity(target_mean, mean), target_mean)
    out = np.empty_like(performer)
    for f, pts in enumerate(performer):
        pose = fit_similarity(mean, pts)  # mean shape → this frame
        delta = apply_similarity(invert_similarity(pose), pts) - mean  # 68×2, mean's frame
        out[f] = apply_similarity(pose, target_on_mean + expression_scale * delta)
    return out


def mean_shape(shapes: np.ndarray, iterations: int = 5) -> np.ndarray:
    """Generalised Procrustes mean of F×68×2 shapes, placed like the first frame.

    Returns:
        68×2 float64.
    """
    shapes = np.asarray(shapes, np.float64)
    mean = shapes[0].copy()
    for _ in range(iterations):
        aligned = np.stack([apply_similarity(fit_similarity(s, mean), s) for s in shapes])
        new = aligned.mean(0)
        new = apply_similarity(fit_similarity(new, shapes[0]), new)
        if np.abs(new - mean).max() < 1e-9:
            return new
        mean = new
    return mean
