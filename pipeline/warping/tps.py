"""The thin-plate spline through the mesh warp's points: the smooth alternative.

It bends the cheeks, forehead and hair where the mesh folds them at triangle edges, and it is
worse where the mesh's straight edges are right.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import RBFInterpolator

from pipeline.warping.mesh import control_points

#: Smoothing of :func:`tps_map`: scipy's ``RBFInterpolator`` adds it to the kernel matrix's
#: diagonal. It keeps the spline solvable when points coincide (a closed mouth's inner lips);
#: on the quality bench's clips 0, 1 and 10 score alike.
TPS_SMOOTHING = 1.0


def tps_map(src_points: np.ndarray, dst_points: np.ndarray, size: int) -> np.ndarray:
    """Dense backward map of the thin-plate spline taking ``src_points`` to ``dst_points``.

    The spline interpolates the same points as :func:`warp_map` (the 68 landmarks and the ring
    of anchors that follow the global similarity), so the two maps agree far from the face.
    Arguments, result and errors are :func:`warp_map`'s.
    """
    dst_all, src_all, _, pix = control_points(src_points, dst_points, size)
    return tps_at(dst_all, src_all, pix).reshape(size, size, 2).astype(np.float32)


def tps_at(dst_all: np.ndarray, src_all: np.ndarray, pix: np.ndarray) -> np.ndarray:
    """The spline through :func:`~pipeline.warping.mesh.control_points`' points, at the P×2
    target positions ``pix`` → P×2 float64 source positions."""
    spline = RBFInterpolator(dst_all, src_all, kernel="thin_plate_spline", smoothing=TPS_SMOOTHING)
    return spline(pix)
