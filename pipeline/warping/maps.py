"""Backward pixel maps at any size, for the render at the plate's resolution.

A map gives, for each output pixel, the (x, y) to sample in a source image. Here the mesh and
the spline are mixed as *geometry* (one map, so one image: no feature drawn twice), evaluated
on a coarse grid and interpolated (the warps are smooth between landmarks, and a 1024-px map
costs what a 128-px one does), and maps are composed with optical flows to register one warp
onto another's geometry.

Coordinates: pixel centres at integer positions, and a crop of side S and one of side R of the
same alignment differ by the factor R/S about the origin (as :func:`pipeline.align.align_image`
and the crop transforms make them).
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.errors import WarpInputError
from pipeline.warping.mesh import control_points, mesh_at
from pipeline.warping.tps import tps_at

#: Samples per side of the coarse grid a map is evaluated on before interpolation.
GRID = 128


def warp_map_at(
    src_points: np.ndarray,
    dst_points: np.ndarray,
    size: int,
    spline: float = 0.0,
    grid: int = GRID,
) -> np.ndarray:
    """The backward map taking ``src_points`` to ``dst_points``: ``1 − spline`` of the
    piecewise-affine map plus ``spline`` of the thin-plate spline's, one geometry.

    Args:
        src_points: 68×2 float, the source's landmarks in its own pixels (any scale).
        dst_points: 68×2 float, the target landmarks in output pixels.
        size: the output side R.
        spline: 0..1, the spline's share of the geometry.
        grid: samples per side before interpolation (at most ``size``).

    Returns:
        R×R×2 float32 source positions.

    Raises:
        WarpInputError: bad landmarks or a weight outside 0..1.
    """
    if not 0.0 <= spline <= 1.0:
        raise WarpInputError(f"spline weight {spline} is outside 0..1", "pass 0..1")
    n = int(min(size, grid))
    dst_all, src_all, glob, _ = control_points(src_points, dst_points, size)
    t = np.linspace(0.0, size - 1.0, n)
    xs, ys = np.meshgrid(t, t)
    pix = np.stack([xs.ravel(), ys.ravel()], 1)
    m = np.zeros((n * n, 2))
    if spline < 1.0:
        m += (1.0 - spline) * mesh_at(dst_all, src_all, glob, pix)
    if spline > 0.0:
        m += spline * tps_at(dst_all, src_all, pix)
    coarse = m.reshape(n, n, 2).astype(np.float32)
    return coarse if n == size else _from_grid(coarse, size)


def _from_grid(values: np.ndarray, size: int) -> np.ndarray:
    """n×n×C values sampled at ``linspace(0, size − 1, n)`` → size×size×C (bilinear)."""
    n = values.shape[0]
    t = (np.arange(size, dtype=np.float32) * np.float32((n - 1) / (size - 1))).astype(np.float32)
    mx, my = np.meshgrid(t, t)
    out = cv2.remap(values, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(size, size, values.shape[2])


def rescale_field(field: np.ndarray, size: int, value_scale: float = 1.0) -> np.ndarray:
    """A field over an S-pixel crop at another crop size R of the same alignment.

    Args:
        field: S×S×C float32 (a flow, a colour correction …) at S-crop pixels.
        size: R.
        value_scale: multiplies the values (R/S for a flow in pixels, 1 for colours).

    Returns:
        R×R×C float32: at R-pixel ``i`` the field's bilinear value at S-position ``i·S/R``.
    """
    s = field.shape[0]
    t = (np.arange(size, dtype=np.float64) * (s / size)).astype(np.float32)
    mx, my = np.meshgrid(t, t)
    out = cv2.remap(np.ascontiguousarray(field, np.float32), mx, my, cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
    out = out.reshape(size, size, -1)
    return out * np.float32(value_scale) if value_scale != 1.0 else out


def compose(pixel_map: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``pixel_map`` sampled at ``x + flow(x)``: first move along the flow, then through the map.

    Args:
        pixel_map: R×R×2 float32 source positions.
        flow: R×R×2 float32 displacements in output pixels.

    Returns:
        R×R×2 float32.
    """
    r = flow.shape[0]
    grid = np.stack(np.meshgrid(np.arange(r), np.arange(r)), -1).astype(np.float32)
    pos = grid + flow
    out = cv2.remap(pixel_map, pos[..., 0], pos[..., 1], cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
    return out.reshape(pixel_map.shape)


def sample(image: np.ndarray, pixel_map: np.ndarray, sharp: bool = True) -> np.ndarray:
    """``image`` (H×W×C float32, any colour space) resampled through an R×R×2 map → R×R×C,
    border pixels repeated: bicubic (``sharp``: keeps the fine detail bilinear softens; may
    overshoot a little at edges) or bilinear."""
    mode = cv2.INTER_CUBIC if sharp else cv2.INTER_LINEAR
    out = cv2.remap(np.ascontiguousarray(image, np.float32), pixel_map[..., 0], pixel_map[..., 1],
                    mode, borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
    return out.reshape(pixel_map.shape[:2] + image.shape[2:])
