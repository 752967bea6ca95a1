"""Temporal smoothing of landmark tracks: a Rauch-Tung-Striebel (Kalman) smoother.

Tracking runs offline over a whole shot, so the smoother is non-causal: a forward Kalman pass
with a constant-velocity model and a backward RTS pass. That removes detector jitter without the
lag a causal filter (One-Euro) adds on fast motion, and it fills short gaps (frames without a
measurement) from both sides.

The landmarks are split into a rigid part and a non-rigid part before smoothing:

- **pose**: the similarity ``M_t`` that maps the canonical template (unit square) onto the face,
  as ``(a, b, tx, ty)`` with ``M = [[a, -b, tx], [b, a, ty]]``, in plate pixels;
- **shape**: the landmarks brought into the template's unit square by ``M_t⁻¹``.

Each is smoothed with its own noise figures, so the alignment transform (the pose) is steady
while expressions (the shape) keep their speed. All noise figures are in units of the aligned
crop's side: ``0.002`` is 0.5 px in a 256-px crop, whatever the face size in the plate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from pipeline.align import CANONICAL_68, apply_affine, invert_affine, umeyama


@dataclass(frozen=True)
class SmoothConfig:
    """The ``track.smoothing`` section.

    Attributes:
        method: ``"rts"`` (Kalman + RTS smoother) or ``"none"`` (raw points; gaps still filled
            linearly).
        pose_noise: measurement noise (std) of the pose, in crop sides.
        pose_accel: process noise of the pose, acceleration std per frame², in crop sides.
        shape_noise: measurement noise of each landmark in the template frame, in crop sides.
        shape_accel: process noise of each landmark, in crop sides per frame².
    """

    method: Literal["rts", "none"] = "rts"
    pose_noise: float = 0.004
    pose_accel: float = 0.01
    shape_noise: float = 0.006
    shape_accel: float = 0.004

    def validate(self) -> list[tuple[str, str]]:
        """Problems as ``(key, message)``; empty when valid."""
        return [
            (k, f"got {getattr(self, k)!r}, expected a number > 0")
            for k in ("pose_noise", "pose_accel", "shape_noise", "shape_accel")
            if not getattr(self, k) > 0
        ]


def rts_smooth(z: np.ndarray, noise: float | np.ndarray, accel: float | np.ndarray) -> np.ndarray:
    """Constant-velocity Kalman filter + RTS smoother over independent signals.

    Args:
        z: N×K float, K signals over N frames; a row holding NaN is a frame without measurement.
        noise: measurement noise std, scalar or K.
        accel: process noise (white acceleration) std per frame², scalar or K.

    Returns:
        N×K float64, smoothed; rows without measurement are filled (interpolated between
        measurements, extrapolated at constant velocity beyond them). All NaN when no row has a
        measurement.
    """
    z = np.asarray(z, np.float64)
    if z.ndim != 2:
        raise ValueError(f"rts_smooth takes an N×K array, got shape {z.shape}")
    n, k = z.shape
    seen = np.isfinite(z).all(1)
    if n == 0 or not seen.any():
        return np.full_like(z, np.nan)
    r = np.broadcast_to(np.asarray(noise, np.float64) ** 2, (k,))
    q = np.broadcast_to(np.asarray(accel, np.float64) ** 2, (k,))
    # Discrete white-noise acceleration, dt = 1: Q = q [[1/4, 1/2], [1/2, 1]].
    q00, q01, q11 = q / 4.0, q / 2.0, q
    first = int(np.argmax(seen))
    x0, x1 = z[first].copy(), np.zeros(k)
    p00, p01, p11 = r.copy(), np.zeros(k), np.full(k, 1e6) * np.maximum(r, 1e-12)
    xf = np.empty((n, 2, k))
    pf = np.empty((n, 3, k))
    xp = np.empty((n, 2, k))
    pp = np.empty((n, 3, k))
    for t in range(n):
        if t > first:
            # Predict with F = [[1, 1], [0, 1]].
            x0 = x0 + x1
            n00 = p00 + 2 * p01 + p11 + q00
            n01 = p01 + p11 + q01
            n11 = p11 + q11
            p00, p01, p11 = n00, n01, n11
        xp[t, 0], xp[t, 1] = x0, x1
        pp[t] = p00, p01, p11
        if seen[t] and t >= first:
            s = p00 + r
            g0, g1 = p00 / s, p01 / s
            y = z[t] - x0
            x0 = x0 + g0 * y
            x1 = x1 + g1 * y
            p00, p01, p11 = (1 - g0) * p00, (1 - g0) * p01, p11 - g1 * p01
        xf[t, 0], xf[t, 1] = x0, x1
        pf[t] = p00, p01, p11
    xs = xf.copy()
    for t in range(n - 2, first - 1, -1):
        # C = Pf F^T Pp(t+1)^-1, for 2×2 symmetric matrices.
        a00, a01, a11 = pf[t]
        m00, m01, m10, m11 = a00 + a01, a01, a01 + a11, a11  # Pf F^T
        b00, b01, b11 = pp[t + 1]
        det = b00 * b11 - b01 * b01
        i00, i01, i11 = b11 / det, -b01 / det, b00 / det
        c00, c01 = m00 * i00 + m01 * i01, m00 * i01 + m01 * i11
        c10, c11 = m10 * i00 + m11 * i01, m10 * i01 + m11 * i11
        d0 = xs[t + 1, 0] - xp[t + 1, 0]
        d1 = xs[t + 1, 1] - xp[t + 1, 1]
        xs[t, 0] = xf[t, 0] + c00 * d0 + c01 * d1
        xs[t, 1] = xf[t, 1] + c10 * d0 + c11 * d1
    out = xs[:, 0].copy()
    out[:first] = out[first]
    return out


def pose_and_shape(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split landmarks into pose (template → plate similarity) and shape (template frame).

    Args:
        points: N×68×2 float, plate pixels; NaN rows for frames without a face.

    Returns:
        ``(pose, shape)``: N×4 float64 ``(a, b, tx, ty)`` in pixels and N×68×2 float64 in the
        template's unit square; NaN where the input is.
    """
    pts = np.asarray(points, np.float64)
    pose = np.full((len(pts), 4), np.nan)
    shape = np.full(pts.shape, np.nan)
    for i, p in enumerate(pts):
        if np.isfinite(p).all():
            m = umeyama(CANONICAL_68, p)
            pose[i] = m[0, 0], m[1, 0], m[0, 2], m[1, 2]
            shape[i] = apply_affine(invert_affine(m), p)
    return pose, shape


def pose_matrix(pose: np.ndarray) -> np.ndarray:
    """N×4 ``(a, b, tx, ty)`` → N×2×3 float64 template-unit → plate-pixel matrices."""
    a, b, tx, ty = np.asarray(pose, np.float64).T
    return np.stack([np.stack([a, -b, tx], -1), np.stack([b, a, ty], -1)], 1)


def smooth_track(points: np.ndarray, cfg: SmoothConfig) -> tuple[np.ndarray, np.ndarray]:
    """Smooth one continuous stretch of a landmark track, filling frames without a measurement.

    Call it once per stretch between cuts and long gaps: the model assumes continuous motion.

    Args:
        points: N×68×2 float, plate pixels; NaN rows for frames without a measurement.
        cfg: smoothing settings.

    Returns:
        ``(points, pose)``: N×68×2 float64 smoothed landmarks, and N×2×3 float64 smoothed
        template-unit → plate-pixel similarity matrices (scale by ``1 / crop_size`` for crop
        pixels). All NaN when no frame has a measurement.
    """
    pose, shape = pose_and_shape(points)
    n = len(pose)
    if cfg.method == "none":
        pose_s = _fill_linear(pose)
        shape_s = _fill_linear(shape.reshape(n, -1)).reshape(shape.shape)
    else:
        crop_px = np.nanmedian(np.hypot(pose[:, 0], pose[:, 1])) if np.isfinite(pose).any() else 1
        pose_s = rts_smooth(pose, cfg.pose_noise * crop_px, cfg.pose_accel * crop_px)
        shape_s = rts_smooth(shape.reshape(n, -1), cfg.shape_noise, cfg.shape_accel)
        shape_s = shape_s.reshape(shape.shape)
    mats = pose_matrix(pose_s)
    out = np.einsum("nij,nkj->nki", mats[:, :, :2], shape_s) + mats[:, None, :, 2]
    return out, mats


def _fill_linear(z: np.ndarray) -> np.ndarray:
    """Fill NaN rows of an N×K array by linear interpolation (held constant beyond the ends)."""
    z = np.asarray(z, np.float64).copy()
    seen = np.isfinite(z).all(1)
    if not seen.any():
        return z
    t = np.arange(len(z))
    for j in range(z.shape[1]):
        z[:, j] = np.interp(t, t[seen], z[seen, j])
    return z
