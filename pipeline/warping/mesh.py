"""The piecewise-affine warp over a Delaunay mesh of the target's 68 points plus a ring of
anchors outside the crop.

The anchors follow the global similarity between the two shapes, so hair, neck and background
move with the head. The dense map is computed in numpy/scipy.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import Delaunay

from pipeline.inference.retarget import apply_similarity, fit_similarity
from pipeline.warping.shapes import check_points


def _anchors(size: int, per_side: int = 5) -> np.ndarray:
    """Ring of points on a square half a crop outside the image: (4·per_side)×2 float64."""
    lo, hi = -0.5 * size, 1.5 * size
    t = np.linspace(lo, hi, per_side + 1)
    ring = [(x, y) for x in t for y in t if x in (lo, hi) or y in (lo, hi)]
    return np.asarray(ring, np.float64)


def control_points(
    src_points: np.ndarray, dst_points: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What both warps interpolate: ``(dst_all, src_all, glob, pix)``.

    ``dst_all``/``src_all`` are the 68 landmarks plus the anchor ring, (68 + A)×2 float64, in
    the target's and the source's crop pixels. ``glob`` is the 2×3 similarity from the target to
    the source, and ``pix`` is the P×2 grid of output pixel centres (P = size²).

    Raises:
        WarpInputError: wrong shapes or non-finite points.
    """
    src = check_points(src_points, "source")
    dst = check_points(dst_points, "target")
    glob = fit_similarity(dst, src)  # target frame → source frame
    anchors = _anchors(size)
    ys, xs = np.mgrid[0:size, 0:size]
    pix = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64)  # P×2
    dst_all = np.concatenate([dst, anchors])
    return dst_all, np.concatenate([src, apply_similarity(glob, anchors)]), glob, pix


def mesh_at(
    dst_all: np.ndarray, src_all: np.ndarray, glob: np.ndarray, pix: np.ndarray
) -> np.ndarray:
    """The piecewise-affine warp through :func:`control_points`' points, at the P×2 target
    positions ``pix`` → P×2 float64 source positions (the similarity outside the mesh)."""
    # QJ joggles coincident points (a closed mouth's inner lip) so every point is a vertex.
    tri = Delaunay(dst_all, qhull_options="QJ")
    simplex = tri.find_simplex(pix)  # P, −1 outside the hull
    inside = simplex >= 0
    s = np.where(inside, simplex, 0)
    trans = tri.transform[s]  # P×3×2
    b01 = np.einsum("pij,pj->pi", trans[:, :2], pix - trans[:, 2])  # P×2
    bary = np.concatenate([b01, 1.0 - b01.sum(1, keepdims=True)], 1)  # P×3
    verts = tri.simplices[s]  # P×3
    mapped = (bary[..., None] * src_all[verts]).sum(1)  # P×2
    return np.where(inside[:, None], mapped, apply_similarity(glob, pix))


def warp_map(src_points: np.ndarray, dst_points: np.ndarray, size: int) -> np.ndarray:
    """Dense backward map of the piecewise-affine warp taking ``src_points`` to ``dst_points``.

    Args:
        src_points: 68×2 float, landmarks of the source image, crop pixels.
        dst_points: 68×2 float, target landmarks, crop pixels.
        size: crop side.

    Returns:
        size×size×2 float32: for each output pixel, the (x, y) to sample in the source.

    Raises:
        WarpInputError: wrong shapes or non-finite points.
    """
    dst_all, src_all, glob, pix = control_points(src_points, dst_points, size)
    return mesh_at(dst_all, src_all, glob, pix).reshape(size, size, 2).astype(np.float32)
