"""Face matte in crop space: the 68-landmark hull extended over the forehead, eroded and feathered.

The matte is a continuous function of the landmark positions: it is built from the exact
distance of each pixel centre to the edges of the convex hull, not from a rasterized polygon, so
a sub-pixel move of a landmark moves the matte edge by the same sub-pixel amount. That keeps the
edge from stepping (and flickering) as the tracked points drift.

The feather lies entirely *inside* the hull: the matte is exactly 0 on and outside the extended
hull, rises with a smoothstep over ``feather_px`` after ``erode_px``, and is exactly 1 deeper in.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.composite.config import CompositeConfig
from pipeline.errors import CompositeError, NoFaceError

#: iBUG-68 indices of the eyebrows (left brow 17-21, right brow 22-26).
BROWS = np.arange(17, 27)
#: iBUG-68 index of the chin tip.
CHIN = 8


def check_points(points: np.ndarray, what: str = "points68_crop") -> np.ndarray:
    """Check a 68×2 landmark array and return it as float64.

    Raises:
        CompositeError: wrong shape.
        NoFaceError: NaN or infinite values (an untracked frame).
    """
    pts = np.asarray(points)
    if pts.shape != (68, 2):
        raise CompositeError(
            f"{what} must be 68×2 (iBUG 68 layout, crop pixels), got shape {pts.shape}",
            "pass one frame's landmarks in crop space",
        )
    pts = pts.astype(np.float64)
    if not np.isfinite(pts).all():
        raise NoFaceError(
            f"{what} holds NaN or infinite values, so no matte can be built",
            "build mattes only for frames whose `tracked` flag is set; untracked frames pass "
            "the plate through",
        )
    return pts


def face_outline(points68_crop: np.ndarray, forehead_extension: float) -> np.ndarray:
    """The points whose convex hull is the face region: the 68 landmarks plus a raised brow line.

    The brow line is moved "up" (from the chin towards the brows) by ``forehead_extension`` times
    the chin-to-brow distance; the outer brow points are raised 30% less than the inner ones so
    the top of the hull is rounded like a forehead rather than flat.

    Args:
        points68_crop: 68×2 float, iBUG 68 landmarks in crop pixels.
        forehead_extension: fraction of the chin-to-brow distance, >= 0.

    Returns:
        78×2 float64: the 68 points followed by the 10 raised brow points.
    """
    pts = check_points(points68_crop)
    brows = pts[BROWS]
    brow_mid = brows.mean(axis=0)
    up = brow_mid - pts[CHIN]
    height = float(np.hypot(*up))
    if height < 1e-6:
        raise CompositeError(
            f"chin and brows coincide (chin-to-brow distance {height:.3g} px)",
            "the landmarks are degenerate; check the tracking of this frame",
        )
    up /= height
    side = np.array([-up[1], up[0]])
    lateral = (brows - brow_mid) @ side
    u = lateral / max(float(np.abs(lateral).max()), 1e-6)  # -1 .. 1 across the brows
    lift = forehead_extension * height * (1.0 - 0.3 * u**2)
    return np.vstack([pts, brows + lift[:, None] * up[None, :]])


def hull_inside_distance(outline: np.ndarray, size: int) -> np.ndarray:
    """Signed distance of each pixel centre to the edges of the convex hull of ``outline``.

    For a convex polygon the distance of an inside point to the boundary is the smallest of its
    distances to the edge lines, so it is exact inside and negative outside.

    Args:
        outline: K×2 float, points in crop pixels (pixel centres at integer coordinates).
        size: the crop side in pixels.

    Returns:
        size×size float32: distance in pixels, > 0 inside the hull, <= 0 outside.
    """
    hull = cv2.convexHull(np.asarray(outline, np.float32)).reshape(-1, 2).astype(np.float64)
    if len(hull) < 3:
        raise CompositeError("the landmark hull is degenerate (fewer than 3 distinct corners)")
    a = hull
    e = np.roll(hull, -1, axis=0) - a
    length = np.hypot(e[:, 0], e[:, 1])
    keep = length > 1e-9
    a, e, length = a[keep], e[keep], length[keep]
    n = np.stack([-e[:, 1], e[:, 0]], axis=1) / length[:, None]
    # Point every normal inwards: the centroid of a convex polygon lies inside it.
    centre = hull.mean(axis=0)
    n *= np.where(((centre - a) * n).sum(axis=1) < 0, -1.0, 1.0)[:, None]
    c = (n * a).sum(axis=1)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    d = np.full((size, size), np.inf)
    for k in range(len(n)):
        np.minimum(d, n[k, 0] * xs + n[k, 1] * ys - c[k], out=d)
    return d.astype(np.float32)


def smoothstep(t: np.ndarray) -> np.ndarray:
    """``3t² - 2t³`` of ``t`` clipped to [0, 1]; exactly 0 below 0 and exactly 1 above 1."""
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def feather_distance(distance: np.ndarray, erode_px: float, feather_px: float) -> np.ndarray:
    """Map an inside distance to a matte: 0 up to ``erode_px``, smoothstep over ``feather_px``.

    Args:
        distance: H×W float32, distance in pixels into the region (<= 0 outside).
        erode_px: pixels the matte starts inside the region edge.
        feather_px: width of the ramp in pixels; 0 gives a hard edge.

    Returns:
        H×W float32 in [0, 1]. The largest slope is ``1.5 / feather_px`` per pixel.
    """
    d = np.asarray(distance, np.float32) - np.float32(erode_px)
    if feather_px <= 0:
        return (d > 0).astype(np.float32)
    return smoothstep(d / np.float32(feather_px)).astype(np.float32)


def face_matte(
    points68_crop: np.ndarray,
    crop_size: int,
    cfg: CompositeConfig,
    confidence: float | np.ndarray | None = None,
) -> np.ndarray:
    """Soft face matte in crop space.

    The convex hull of the 68 landmarks and of the brow line raised by ``cfg.forehead_extension``
    of the chin-to-brow distance; eroded by ``cfg.erode_px`` and feathered over ``cfg.feather_px``
    (crop pixels) inwards; multiplied by ``confidence`` where given.

    Args:
        points68_crop: 68×2 float, iBUG 68 landmarks in crop pixels (pixel centres at integer
            coordinates, as ``cv2.warpAffine`` uses).
        crop_size: side of the square crop in pixels.
        cfg: the composite config (``forehead_extension``, ``erode_px``, ``feather_px``).
        confidence: ``None``; a scalar in [0, 1]; or crop_size×crop_size float32 in [0, 1],
            the model's per-pixel confidence or 1 - occlusion, in crop space.

    Returns:
        crop_size×crop_size float32 in [0, 1]: exactly 0 outside the extended hull, exactly 1
        deeper than ``erode_px + feather_px`` inside it (before ``confidence``).

    Raises:
        CompositeError: bad shapes, sizes or confidence values.
        NoFaceError: the points hold NaN (an untracked frame).
    """
    size = check_crop_size(crop_size)
    outline = face_outline(points68_crop, cfg.forehead_extension)
    matte = feather_distance(hull_inside_distance(outline, size), cfg.erode_px, cfg.feather_px)
    if confidence is None:
        return matte
    conf = np.asarray(confidence, np.float32)
    if conf.ndim == 0:
        if not 0.0 <= float(conf) <= 1.0:
            raise CompositeError(f"confidence must lie in [0, 1], got {float(conf)!r}")
        return matte * conf
    if conf.shape != (size, size):
        raise CompositeError(
            f"confidence map must be {size}×{size} (crop space), got shape {conf.shape}",
            "warp the model's confidence or occlusion map into the crop first",
        )
    if not np.isfinite(conf).all() or conf.min() < 0.0 or conf.max() > 1.0:
        raise CompositeError(
            f"confidence map must be finite and in [0, 1], got range "
            f"[{np.nanmin(conf):.3g}, {np.nanmax(conf):.3g}]",
            "clip the model's confidence to [0, 1]",
        )
    return matte * conf


def check_crop_size(crop_size: int) -> int:
    """Return ``crop_size`` as int, or raise CompositeError unless it is an integer >= 8."""
    if isinstance(crop_size, bool) or not isinstance(crop_size, (int, np.integer)) or crop_size < 8:
        raise CompositeError(
            f"crop_size must be an integer of at least 8 pixels, got {crop_size!r}"
        )
    return int(crop_size)
