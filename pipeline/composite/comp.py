"""Compositing a synthesized face into the plate, frame by frame and over a shot.

Everything is scene-linear ACEScg float32. Per tracked frame: build the face matte in crop space
from the crop-space landmarks, match the synthesized crop's colour and light to the plate (also
in crop space, against the plate warped into the crop), warp crop and matte into the plate with
the frame's crop → image transform, and blend with a Laplacian pyramid confined to the matte.
Over a shot, the crop-space mattes and the colour parameters are smoothed over time (within each
run of tracked frames) before use, so the matte edge does not flicker. Frames whose tracking
failed pass the plate through untouched and are listed in :attr:`CompositeSequence.untouched`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import cv2
import numpy as np

from pipeline.composite.blend import laplacian_blend, level_footprint, max_levels_for_radius
from pipeline.composite.colormatch import get_mode
from pipeline.composite.config import CompositeConfig
from pipeline.composite.matte import check_crop_size, face_matte
from pipeline.composite.temporal import (
    edge_band,
    edge_flicker,
    smooth_over_time,
    snap_matte,
    tracked_runs,
)
from pipeline.errors import CompositeError


class CompositedFrame(NamedTuple):
    """One composited frame.

    Attributes:
        composite: H×W×3 float32, scene-linear ACEScg.
        face_premult: H×W×4 float32, scene-linear ACEScg: the colour-matched synthesized face
            premultiplied by the matte, and the matte (for ``face.R/G/B/A``). All zeros on an
            untouched frame.
        matte: H×W float32 in [0, 1], the face matte in plate space.
    """

    composite: np.ndarray
    face_premult: np.ndarray
    matte: np.ndarray


def _check_matrix(m: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(m, np.float64)
    if a.shape != (2, 3):
        raise CompositeError(f"{what} must be a 2×3 affine matrix, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise CompositeError(
            f"{what} holds NaN or infinite values",
            "composite only frames whose `tracked` flag is set; untracked frames pass through",
        )
    if abs(np.linalg.det(a[:, :2])) < 1e-12:
        raise CompositeError(f"{what} is singular (determinant ~0): {a.tolist()}")
    return a


def _check_size(plate_size: tuple[int, int]) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in plate_size)
    except (TypeError, ValueError):
        raise CompositeError(f"plate_size must be (width, height), got {plate_size!r}") from None
    if w < 1 or h < 1:
        raise CompositeError(f"plate_size must be positive (width, height), got {plate_size!r}")
    return w, h


def _warp(src: np.ndarray, m: np.ndarray, size: tuple[int, int], border: int) -> np.ndarray:
    """``cv2.warpAffine`` (bilinear), area-prefiltered when it shrinks by more than 2×."""
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    if scale < 0.5:
        # Shrink by an area filter first so bilinear sampling does not alias (as align does).
        f = 2.0 * scale
        h, w = src.shape[:2]
        nw, nh = max(2, round(w * f)), max(2, round(h * f))
        src = cv2.resize(src, (nw, nh), interpolation=cv2.INTER_AREA)
        pre_inv = np.array([[w / nw, 0.0, 0.0], [0.0, h / nh, 0.0], [0.0, 0.0, 1.0]])
        m = m @ pre_inv
    chans = 1 if src.ndim == 2 else src.shape[2]
    if chans <= 4:
        out = cv2.warpAffine(src, m, size, flags=cv2.INTER_LINEAR, borderMode=border, borderValue=0)
        return out if src.ndim == 2 or out.ndim == 3 else out[:, :, None]
    parts = [_warp(src[:, :, i : i + 4], m, size, border) for i in range(0, chans, 4)]
    return np.concatenate(parts, axis=2)


def warp_to_plate(
    crop: np.ndarray, inverse_2x3: np.ndarray, plate_size: tuple[int, int]
) -> np.ndarray:
    """Inverse-warp a crop-space image into the plate (bilinear; zeros outside the crop).

    Args:
        crop: S×S×C (or S×S) float32, any colour space (a face crop in scene-linear ACEScg, a
            matte, a confidence map).
        inverse_2x3: 2×3 float, the frame's crop pixel → image pixel transform.
        plate_size: ``(width, height)`` of the plate, as OpenCV orders it.

    Returns:
        height×width×C (or height×width) float32, same colour space as ``crop``.

    Raises:
        CompositeError: bad shapes, a non-finite or singular matrix, or a bad size.
    """
    src = np.asarray(crop)
    if src.ndim not in (2, 3) or src.shape[0] < 2 or src.shape[1] < 2:
        raise CompositeError(f"crop must be S×S or S×S×C, got shape {src.shape}")
    if src.dtype != np.float32:
        raise CompositeError(
            f"crop must be float32, got {src.dtype}", "convert with .astype(np.float32)"
        )
    m = _check_matrix(inverse_2x3, "inverse_2x3")
    return _warp(src, m, _check_size(plate_size), cv2.BORDER_CONSTANT)


def plate_to_crop(plate: np.ndarray, inverse_2x3: np.ndarray, crop_size: int) -> np.ndarray:
    """Warp the plate into crop space (the plate's own aligned crop), bilinear, edges replicated.

    Args:
        plate: H×W×C float32, scene-linear ACEScg.
        inverse_2x3: 2×3 float, the frame's crop pixel → image pixel transform.
        crop_size: the crop side S.

    Returns:
        S×S×C float32, scene-linear ACEScg.

    Raises:
        CompositeError: bad shapes, a non-finite or singular matrix.
    """
    src = np.asarray(plate)
    if src.ndim not in (2, 3) or src.dtype != np.float32:
        raise CompositeError(f"plate must be H×W×C float32, got shape {src.shape} {src.dtype}")
    inv = _check_matrix(inverse_2x3, "inverse_2x3")
    fwd = cv2.invertAffineTransform(inv)
    s = check_crop_size(crop_size)
    return _warp(src, fwd, (s, s), cv2.BORDER_REPLICATE)


def composite_frame(
    plate: np.ndarray,
    crop: np.ndarray,
    points_crop: np.ndarray,
    inverse: np.ndarray,
    cfg: CompositeConfig,
    *,
    matte_crop: np.ndarray | None = None,
    color_params: np.ndarray | None = None,
    levels: int | None = None,
) -> CompositedFrame:
    """Composite one synthesized face crop into one plate frame.

    Args:
        plate: H×W×3 float32, scene-linear ACEScg.
        crop: S×S×3 float32, scene-linear ACEScg, the synthesized aligned face.
        points_crop: 68×2 float, the landmarks the crop was driven by, in crop pixels.
        inverse: 2×3 float, crop pixel → plate pixel.
        cfg: the composite config.
        matte_crop: S×S float32 in [0, 1], a crop-space matte to use instead of building one
            from ``points_crop`` (e.g. the temporally smoothed one).
        color_params: colour-match parameters of ``cfg.color_mode`` to apply instead of
            estimating them (e.g. the temporally smoothed ones).
        levels: pyramid levels, instead of ``cfg.pyramid_levels``.

    Returns:
        the :class:`CompositedFrame`.

    Raises:
        CompositeError: bad shapes, dtypes or values.
        NoFaceError: ``points_crop`` holds NaN (an untracked frame) and no matte was given.
    """
    plate = np.asarray(plate)
    crop = np.asarray(crop)
    if plate.ndim != 3 or plate.shape[2] != 3 or plate.dtype != np.float32:
        raise CompositeError(
            f"plate must be H×W×3 float32 (scene-linear ACEScg), got {plate.shape} {plate.dtype}"
        )
    if (
        crop.ndim != 3
        or crop.shape[2] != 3
        or crop.shape[0] != crop.shape[1]
        or crop.dtype != np.float32
    ):
        raise CompositeError(
            f"crop must be S×S×3 float32 (scene-linear ACEScg), got {crop.shape} {crop.dtype}"
        )
    if not np.isfinite(crop).all():
        raise CompositeError(
            "the synthesized crop holds NaN or infinite values",
            "check the synthesis stage's output for this frame",
        )
    s = crop.shape[0]
    inv = _check_matrix(inverse, "inverse")
    if matte_crop is None:
        matte_crop = face_matte(points_crop, s, cfg)
    elif matte_crop.shape != (s, s) or matte_crop.dtype != np.float32:
        raise CompositeError(
            f"matte_crop must be {s}×{s} float32, got {matte_crop.shape} {matte_crop.dtype}"
        )
    mode = get_mode(cfg.color_mode)
    if color_params is None:
        plate_crop = plate_to_crop(plate, inv, s)
        color_params = mode.estimate(crop, plate_crop, matte_crop, cfg.gain_params())
    matched = mode.apply(crop, color_params)
    levels = cfg.pyramid_levels if levels is None else levels
    h, w = plate.shape[:2]
    comp = plate.copy()
    premult = np.zeros((h, w, 4), np.float32)
    matte = np.zeros((h, w), np.float32)
    roi = _crop_footprint(inv, s, (w, h), pad=level_footprint(levels) + 2**levels)
    if roi is None:  # the crop lands entirely outside the plate
        return CompositedFrame(comp, premult, matte)
    x0, y0, x1, y1 = roi
    # Work on the crop's footprint only (padded by the pyramid's reach), so the cost follows the
    # face's size, not the plate's; the result is the same as on the whole plate.
    shift = inv.copy()
    shift[:, 2] -= (x0, y0)
    face = warp_to_plate(matched, shift, (x1 - x0, y1 - y0))
    m = np.clip(warp_to_plate(matte_crop, shift, (x1 - x0, y1 - y0)), 0.0, 1.0)
    comp[y0:y1, x0:x1] = laplacian_blend(face, plate[y0:y1, x0:x1], m, levels)
    premult[y0:y1, x0:x1, :3] = face * m[:, :, None]
    premult[y0:y1, x0:x1, 3] = m
    matte[y0:y1, x0:x1] = m
    return CompositedFrame(comp, premult, matte)


def _crop_footprint(
    inverse: np.ndarray, crop_size: int, plate_size: tuple[int, int], pad: int
) -> tuple[int, int, int, int] | None:
    """Bounding box ``(x0, y0, x1, y1)`` of the warped crop in the plate, padded and clipped."""
    c = np.array([[0, 0], [crop_size, 0], [0, crop_size], [crop_size, crop_size]], np.float64) - 0.5
    pts = c @ inverse[:, :2].T + inverse[:, 2]
    w, h = plate_size
    x0 = max(int(np.floor(pts[:, 0].min())) - pad - 1, 0)
    y0 = max(int(np.floor(pts[:, 1].min())) - pad - 1, 0)
    x1 = min(int(np.ceil(pts[:, 0].max())) + pad + 2, w)
    y1 = min(int(np.ceil(pts[:, 1].max())) + pad + 2, h)
    if x1 - x0 < 1 or y1 - y0 < 1:
        return None
    return x0, y0, x1, y1


def core_radius(matte_crop: np.ndarray, inverse: np.ndarray) -> float:
    """Half-width, in plate pixels, of the largest axis-aligned square where the matte is 1.

    Measured in crop space (Euclidean inscribed radius of the region of 1s) and scaled by the
    crop → plate scale; divided by √2 so a square of that half-width fits whatever the rotation.

    Args:
        matte_crop: S×S float32 in [0, 1].
        inverse: 2×3 float, crop pixel → plate pixel.
    """
    core = (matte_crop >= 1.0).astype(np.uint8)
    if not core.any():
        return 0.0
    dist = cv2.distanceTransform(np.pad(core, 1), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    scale = float(np.sqrt(abs(np.linalg.det(np.asarray(inverse, np.float64)[:, :2]))))
    return float(dist.max()) * scale / np.sqrt(2.0)


class CompositeSequence:
    """The composite of a shot: iterate it for one :class:`CompositedFrame` per plate frame.

    Construction does the whole-shot pre-pass (mattes, colour statistics, their smoothing and the
    pyramid level count); the frames themselves are composited lazily, one per step, so a long
    shot never holds more than one composited frame. ``frames`` and ``crops`` are each read twice
    per tracked frame (statistics, then compositing); pass lazy sequences for long shots.

    Attributes:
        untouched: indices (into the sequence) of frames passed through untouched, for QC.
        levels: the pyramid level count used for every frame of the shot.
        mattes_crop: N×S×S float32 in [0, 1], the smoothed crop-space mattes (zeros where
            untracked).
        color_params: per-frame colour parameters after smoothing (``None`` where untracked).
        flicker_raw: :func:`edge_flicker` of the crop-space mattes before smoothing.
        flicker_smoothed: the same after smoothing, on the same pixels.
    """

    def __init__(
        self,
        frames: Sequence[np.ndarray],
        crops: Sequence[np.ndarray | None],
        points_crop: np.ndarray,
        inverses: np.ndarray,
        tracked: np.ndarray,
        cfg: CompositeConfig,
    ) -> None:
        self.cfg = cfg.checked()
        self.frames = frames
        self.crops = crops
        n = len(frames)
        self.tracked = np.asarray(tracked, bool)
        self.points = np.asarray(points_crop, np.float64)
        self.inverses = np.asarray(inverses, np.float64)
        for name, arr, shape in (
            ("tracked", self.tracked, (n,)),
            ("points_crop", self.points, (n, 68, 2)),
            ("inverses", self.inverses, (n, 2, 3)),
        ):
            if arr.shape != shape:
                raise CompositeError(
                    f"{name} must have shape {shape} for {n} frames, got {arr.shape}"
                )
        if len(crops) != n:
            raise CompositeError(f"got {n} plate frames but {len(crops)} crops")
        bad = [
            i
            for i in np.nonzero(self.tracked)[0]
            if not (np.isfinite(self.points[i]).all() and np.isfinite(self.inverses[i]).all())
        ]
        if bad:
            raise CompositeError(
                f"{len(bad)} tracked frame(s) have NaN landmarks or transforms: {bad[:10]}",
                "mark those frames untracked, or interpolate their landmarks before compositing",
            )
        self.untouched = [int(i) for i in np.nonzero(~self.tracked)[0]]
        self._mode = get_mode(self.cfg.color_mode)
        self._prepass()

    def __len__(self) -> int:
        return len(self.frames)

    def _crop(self, i: int) -> np.ndarray:
        crop = self.crops[i]
        if crop is None:
            raise CompositeError(f"frame index {i} is tracked but has no synthesized crop")
        return np.asarray(crop)

    def _prepass(self) -> None:
        idx = np.nonzero(self.tracked)[0]
        if len(idx) == 0:
            s = 8
        else:
            s = check_crop_size(int(self._crop(int(idx[0])).shape[0]))
        n = len(self)
        raw = np.zeros((n, s, s), np.float32)
        for i in idx:
            raw[i] = face_matte(self.points[i], s, self.cfg)
        smoothed = snap_matte(
            smooth_over_time(raw, self.cfg.temporal_matte, self.tracked), self.cfg.matte_snap
        )
        smoothed[~self.tracked] = 0.0
        self.mattes_crop = smoothed
        self.flicker_raw, self.flicker_smoothed = _runs_flicker(raw, smoothed, self.tracked)

        params: list[np.ndarray | None] = [None] * n
        gp = self.cfg.gain_params()
        for i in idx:
            crop = self._crop(int(i))
            plate = np.asarray(self.frames[int(i)])
            if plate.ndim != 3 or plate.shape[2] != 3 or plate.dtype != np.float32:
                raise CompositeError(
                    f"plate frame {i} must be H×W×3 float32 (scene-linear ACEScg), "
                    f"got {plate.shape} {plate.dtype}"
                )
            if crop.shape != (s, s, 3) or crop.dtype != np.float32:
                raise CompositeError(
                    f"crop {i} must be {s}×{s}×3 float32 like the first, got {crop.shape} {crop.dtype}"
                )
            plate_crop = plate_to_crop(plate, self.inverses[i], s)
            params[int(i)] = self._mode.estimate(crop, plate_crop, smoothed[i], gp)
        if len(idx):
            stack = np.stack([params[int(i)] for i in idx])
            full = np.zeros((n,) + stack.shape[1:], np.float32)
            full[idx] = stack
            full = smooth_over_time(full, self.cfg.temporal_color, self.tracked)
            for i in idx:
                params[int(i)] = full[i]
        self.color_params = params
        radii = [core_radius(smoothed[i], self.inverses[i]) for i in idx]
        self.levels = max_levels_for_radius(min(radii), self.cfg.pyramid_levels) if radii else 0

    def frame(self, i: int) -> CompositedFrame:
        """The composited frame at index ``i`` (random access, e.g. for a frame-range chunk)."""
        plate = np.asarray(self.frames[i])
        if not self.tracked[i]:
            h, w = plate.shape[:2]
            return CompositedFrame(
                plate.copy(), np.zeros((h, w, 4), np.float32), np.zeros((h, w), np.float32)
            )
        return composite_frame(
            plate,
            self._crop(i),
            self.points[i],
            self.inverses[i],
            self.cfg,
            matte_crop=self.mattes_crop[i],
            color_params=self.color_params[i],
            levels=self.levels,
        )

    def __iter__(self) -> Iterator[CompositedFrame]:
        for i in range(len(self)):
            yield self.frame(i)


def _runs_flicker(
    raw: np.ndarray, smoothed: np.ndarray, tracked: np.ndarray
) -> tuple[float, float]:
    """Edge flicker before and after smoothing over the runs of tracked frames (same band)."""
    tot_r = tot_s = 0.0
    pairs = 0
    for a, b in tracked_runs(tracked):
        if b - a < 2:
            continue
        band = edge_band(raw[a:b])
        k = b - a - 1
        tot_r += edge_flicker(raw[a:b], band) * k
        tot_s += edge_flicker(smoothed[a:b], band) * k
        pairs += k
    return (tot_r / pairs, tot_s / pairs) if pairs else (0.0, 0.0)


def composite_sequence(
    frames: Sequence[np.ndarray],
    crops: Sequence[np.ndarray | None],
    points_crop: np.ndarray,
    inverses: np.ndarray,
    tracked: np.ndarray,
    cfg: CompositeConfig,
) -> CompositeSequence:
    """Composite a shot: one synthesized crop per tracked plate frame.

    Args:
        frames: N plate frames, each H×W×3 float32, scene-linear ACEScg (an array or any lazy
            sequence with ``len`` and indexing).
        crops: N synthesized crops, each S×S×3 float32, scene-linear ACEScg; entries of untracked
            frames are never read (may be ``None``).
        points_crop: N×68×2 float, landmarks in crop pixels (NaN allowed where untracked).
        inverses: N×2×3 float, crop pixel → plate pixel per frame (NaN allowed where untracked).
        tracked: N bool; False frames pass the plate through untouched.
        cfg: the composite config.

    Returns:
        a :class:`CompositeSequence`: iterate it for ``(composite H×W×3, face_premult H×W×4,
        matte H×W)`` per frame; its ``untouched`` lists the frames passed through.

    Raises:
        CompositeError: invalid config, mismatched lengths or shapes, NaN on a tracked frame.
    """
    return CompositeSequence(frames, crops, points_crop, inverses, tracked, cfg)
