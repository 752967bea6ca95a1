"""Laplacian-pyramid (multi-band) blending confined to the matte.

Classic multi-band blending (Burt & Adelson 1983) mixes band ``l`` of the two images with the
matte reduced to level ``l``, so low frequencies cross over a wide zone and fine detail over a
narrow one. Left as is, the reduced mattes reach *outside* the matte, so plate pixels where the
matte is 0 would change. Here the multi-band result is multiplied by the matte once more at full
resolution: band 0 (the finest detail) crosses over exactly along the matte, band ``l`` along
``matte × reduce^l(matte)``, which is wider and lies inside the matte; and wherever the matte is 0
the output is the plate, bit for bit.

The blend works on the difference ``fg - bg`` inside the matte's support, pushed outwards by a
normalized blur so the coarse bands see no artificial step at the support's edge. Foreground
pixels outside the matte (the synthesized crop's background, the black outside a warped crop)
are never read.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.errors import CompositeError

#: A level whose weight peaks below this fraction of the matte's peak is too coarse for it.
_FULL = 1.0 - 1e-4


def level_footprint(level: int) -> int:
    """Pixels (full resolution, chessboard distance) that level ``level`` reaches out and back.

    ``cv2.pyrDown`` and ``cv2.pyrUp`` use a 5-tap kernel: ``l`` reductions reach
    ``2 (2^l - 1)`` full-resolution pixels, ``l`` expansions as far again; ``2^l`` more covers
    the rounding of odd sizes. The region processed around the matte is padded by this.
    """
    return 4 * (2**level - 1) + 2**level


def max_levels_for_radius(radius_px: float, levels: int) -> int:
    """Most pyramid levels (<= ``levels``) whose reduced matte still reaches 1 in a core this big.

    ``l`` reductions average ``2 (2^l - 1)`` pixels each way (plus ``2^l`` for rounding), so the
    level-``l`` matte reaches 1 only where the matte is 1 over a square of that half-width.
    A shot uses one level count for all frames (a count that changed from frame to frame would
    change the edge's look); this picks it from the smallest face of the shot.

    Args:
        radius_px: half-width of the largest axis-aligned square of matte == 1, in plate pixels.
        levels: the configured maximum.

    Returns:
        the level count, from 0 to ``levels``.
    """
    best = 0
    for lv in range(1, max(int(levels), 0) + 1):
        if 2 * (2**lv - 1) + 2**lv <= radius_px:
            best = lv
    return best


def _check(fg: np.ndarray, bg: np.ndarray, matte: np.ndarray, levels: int) -> None:
    if bg.ndim not in (2, 3) or bg.shape[0] < 1 or bg.shape[1] < 1:
        raise CompositeError(f"bg must be H×W or H×W×C, got shape {bg.shape}")
    if bg.ndim == 3 and not 1 <= bg.shape[2] <= 4:
        raise CompositeError(f"bg must have 1 to 4 channels, got {bg.shape[2]}")
    if fg.shape != bg.shape:
        raise CompositeError(
            f"fg and bg must have one shape, got {fg.shape} and {bg.shape}",
            "warp the foreground into the plate (warp_to_plate) before blending",
        )
    if matte.shape != bg.shape[:2]:
        raise CompositeError(f"matte must be {bg.shape[:2]} (H×W of the plate), got {matte.shape}")
    for name, a in (("fg", fg), ("bg", bg), ("matte", matte)):
        if a.dtype != np.float32:
            raise CompositeError(f"{name} must be float32 (scene-linear), got {a.dtype}")
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 0:
        raise CompositeError(f"levels must be an integer >= 0, got {levels!r}")


def _pyramid_weights(matte: np.ndarray, levels: int) -> list[np.ndarray]:
    """Weights per level: 1 for the finest band, then the matte reduced ``l`` times.

    Stops early (fewer levels) when a level's weight no longer reaches the matte's peak: that
    level would otherwise take the face's lowest frequencies partly from the plate even at the
    centre of the face.
    """
    weights = [np.ones(matte.shape, np.float32)]
    peak = float(matte.max())
    w = matte
    for _ in range(levels):
        w = cv2.pyrDown(w)
        if float(w.max()) < _FULL * peak:
            break
        weights.append(w)
    return weights


def _fill_outside(delta: np.ndarray, support: np.ndarray, sigma: float) -> np.ndarray:
    """``delta`` inside ``support``; outside, a normalized Gaussian blur of the inside values."""
    s = support.astype(np.float32)
    num = _ch(cv2.GaussianBlur(delta, (0, 0), sigma))
    den = cv2.GaussianBlur(s, (0, 0), sigma)[:, :, None]
    fill = np.where(den > 1e-8, num / np.maximum(den, 1e-8), 0.0)
    return np.where(support[:, :, None], _ch(delta), fill).astype(np.float32)


def _multiband(delta: np.ndarray, weights: list[np.ndarray]) -> np.ndarray:
    """Collapse the Laplacian bands of ``delta`` (H×W×C), band ``l`` times ``weights[l]``."""
    gauss = [delta]
    for _ in range(1, len(weights)):
        gauss.append(_ch(cv2.pyrDown(gauss[-1])))
    out = weights[-1][:, :, None] * gauss[-1]
    for lv in range(len(weights) - 2, -1, -1):
        h, w = gauss[lv].shape[:2]
        band = gauss[lv] - _ch(cv2.pyrUp(gauss[lv + 1], dstsize=(w, h)))
        out = weights[lv][:, :, None] * band + _ch(cv2.pyrUp(out, dstsize=(w, h)))
    return out


def _ch(a: np.ndarray) -> np.ndarray:
    """View as H×W×C (cv2 drops a channel axis of 1)."""
    return a if a.ndim == 3 else a[:, :, None]


def laplacian_blend(fg: np.ndarray, bg: np.ndarray, matte: np.ndarray, levels: int) -> np.ndarray:
    """Blend ``fg`` over ``bg`` with a Laplacian pyramid confined to the matte.

    ``out = bg + matte × multiband(fg - bg)``, where band ``l`` of the difference is weighted by
    the matte reduced to level ``l`` (band 0 by 1). Where the matte is 0 the result is ``bg`` bit
    for bit. Where the matte is 1 and every level's reduced matte is 1 the result is ``fg`` up to
    float rounding. Levels whose reduced matte never reaches the matte's peak (the face is too
    small for them) are dropped, so the centre of the face always gets all of ``fg``.

    Only the matte's bounding box (plus the pyramid margin) is processed, so the cost follows the
    face's size, not the plate's.

    Args:
        fg: H×W×C float32 (C in 1..4, or H×W), scene-linear ACEScg, the foreground already in
            plate space. Values where the matte is 0 are ignored (may be anything, NaN included).
        bg: H×W×C float32 (same shape), scene-linear ACEScg, the plate.
        matte: H×W float32 in [0, 1], the foreground's coverage.
        levels: the most pyramid levels to use (0 gives a plain ``matte`` mix).

    Returns:
        H×W×C float32, scene-linear ACEScg; a new array.

    Raises:
        CompositeError: mismatched shapes, wrong dtypes, bad ``levels`` or a matte outside [0, 1].
    """
    fg, bg, matte = np.asarray(fg), np.asarray(bg), np.asarray(matte)
    _check(fg, bg, matte, levels)
    if not np.isfinite(matte).all() or float(matte.min()) < 0 or float(matte.max()) > 1:
        raise CompositeError(
            "matte must be finite and in [0, 1]", "clip the matte to [0, 1] before blending"
        )
    support = matte > 0
    out = bg.copy()
    if not support.any():
        return out
    levels = int(levels)
    ys, xs = np.nonzero(support)
    margin = level_footprint(levels) + 2**levels
    h, w = matte.shape
    y0, y1 = max(int(ys.min()) - margin, 0), min(int(ys.max()) + margin + 1, h)
    x0, x1 = max(int(xs.min()) - margin, 0), min(int(xs.max()) + margin + 1, w)
    m = matte[y0:y1, x0:x1]
    sup = support[y0:y1, x0:x1]
    b = _ch(bg[y0:y1, x0:x1])
    delta = np.where(sup[:, :, None], _ch(fg[y0:y1, x0:x1]) - b, 0.0).astype(np.float32)
    weights = _pyramid_weights(m, levels)
    if len(weights) > 1:
        delta = _fill_outside(delta, sup, sigma=float(2 ** (len(weights) - 1)))
    blended = b + m[:, :, None] * _multiband(delta, weights)
    # m is exactly 0 outside the support, so `blended` is already `b` there but for -0.0 and
    # inf * 0; the `where` makes "untouched means bit for bit" unconditional.
    res = np.where(sup[:, :, None], blended, b)
    out[y0:y1, x0:x1] = res if bg.ndim == 3 else res[:, :, 0]
    return out
