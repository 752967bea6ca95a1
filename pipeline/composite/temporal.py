"""Temporal consistency: smoothing per-frame mattes and colour parameters over time.

A matte built independently per frame follows every twitch of the tracked landmarks, and its edge
flickers: the most common complaint about face-replacement tools. The smoother here is a
zero-phase (forward then backward) exponential filter run separately over each run of tracked
frames, so it neither lags the motion nor blends across a tracking gap.
"""

from __future__ import annotations

import numpy as np

from pipeline.errors import CompositeError


def tracked_runs(valid: np.ndarray) -> list[tuple[int, int]]:
    """The runs of consecutive True values, as half-open ``(start, stop)`` index pairs.

    Args:
        valid: N bool.
    """
    v = np.asarray(valid, bool).astype(np.int8)
    edges = np.diff(np.concatenate([[0], v, [0]]))
    starts = np.nonzero(edges == 1)[0]
    stops = np.nonzero(edges == -1)[0]
    return [(int(a), int(b)) for a, b in zip(starts, stops, strict=True)]


def smooth_over_time(
    values: np.ndarray, strength: float, valid: np.ndarray | None = None
) -> np.ndarray:
    """Zero-phase exponential smoothing along axis 0, within each run of valid frames.

    Each run is filtered forward (``y[t] = a x[t] + (1 - a) y[t-1]``, ``a = 1 - strength``,
    starting from its first value) and then backward the same way. Frames outside every run are
    returned unchanged.

    Args:
        values: N×... float (mattes N×H×W, colour parameters N×K, points N×68×2), any space;
            smoothing is linear, so use it on quantities that average meaningfully (linear-light
            gains, mattes, log-space statistics).
        strength: 0 (no smoothing) to < 1 (very strong); the time constant is about
            ``1 / (1 - strength)`` frames each way.
        valid: N bool, frames to smooth (e.g. ``tracked``); all when omitted.

    Returns:
        float32 array of the same shape.

    Raises:
        CompositeError: ``strength`` outside [0, 1), or ``valid`` of the wrong length.
    """
    x = np.asarray(values, np.float32)
    if x.ndim < 1:
        raise CompositeError(f"values must have a frame axis, got a scalar {values!r}")
    if not 0.0 <= float(strength) < 1.0:
        raise CompositeError(
            f"temporal smoothing strength must be in [0, 1), got {strength!r}",
            "use 0 for none, 0.5 for light, 0.8 for strong smoothing",
        )
    n = x.shape[0]
    ok = np.ones(n, bool) if valid is None else np.asarray(valid, bool)
    if ok.shape != (n,):
        raise CompositeError(f"valid must be N={n} bools, got shape {ok.shape}")
    out = x.copy()
    a = np.float32(1.0 - strength)
    b = np.float32(strength)
    if strength == 0.0:
        return out
    for start, stop in tracked_runs(ok):
        for t in range(start + 1, stop):
            out[t] = a * x[t] + b * out[t - 1]
        for t in range(stop - 2, start - 1, -1):
            out[t] = a * out[t] + b * out[t + 1]
    return out


def snap_matte(matte: np.ndarray, eps: float = 1e-3) -> np.ndarray:
    """Set matte values within ``eps`` of 0 or 1 to exactly 0 or 1.

    Smoothing spreads tiny non-zero values over every frame of a run; snapping them back keeps
    the region the comp may touch as small as the matte really is, and the face's centre at
    exactly 1. The largest step this can introduce is ``eps``.

    Args:
        matte: ...×H×W float32 in [0, 1].

    Returns:
        float32 array of the same shape.
    """
    m = np.asarray(matte, np.float32).copy()
    m[m < eps] = 0.0
    m[m > 1.0 - eps] = 1.0
    return m


def edge_band(mattes: np.ndarray, eps: float = 1e-3) -> np.ndarray:
    """Pixels where the matte is an edge at some point: neither always 0 nor always 1.

    Args:
        mattes: N×H×W float32 in [0, 1].

    Returns:
        H×W bool.
    """
    m = np.asarray(mattes, np.float32)
    return (m.max(axis=0) > eps) & (m.min(axis=0) < 1.0 - eps)


def edge_flicker(mattes: np.ndarray, band: np.ndarray | None = None) -> float:
    """Mean absolute frame-to-frame change of the matte over its edge band.

    0 means a still edge. It is a matte-space measure: use crop-space mattes to measure the
    matte's own flicker, plate-space mattes to include the motion of the head.

    Args:
        mattes: N×H×W float32 in [0, 1], N >= 2, consecutive frames.
        band: H×W bool, the pixels to measure; :func:`edge_band` of ``mattes`` when omitted. Pass
            one band to compare two versions of a sequence on the same pixels.

    Returns:
        the mean of ``|m[t+1] - m[t]|`` over the band and over t; 0.0 for an empty band.

    Raises:
        CompositeError: fewer than 2 frames or a band of the wrong shape.
    """
    m = np.asarray(mattes, np.float32)
    if m.ndim != 3 or m.shape[0] < 2:
        raise CompositeError(f"edge_flicker needs N×H×W mattes with N >= 2, got shape {m.shape}")
    b = edge_band(m) if band is None else np.asarray(band, bool)
    if b.shape != m.shape[1:]:
        raise CompositeError(f"band must be {m.shape[1:]} (H×W), got {b.shape}")
    if not b.any():
        return 0.0
    return float(np.abs(np.diff(m[:, b], axis=0)).mean())
