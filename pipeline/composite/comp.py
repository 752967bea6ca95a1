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
from pipeline.composite.matte import check_crop_size, face_matte, hull_inside_distance
from pipeline.composite.register import register_to_plate, sharpness_match, soften
from pipeline.composite.temporal import (
    edge_band,
    edge_flicker,
    smooth_over_time,
    snap_matte,
    tracked_runs,
)
from pipeline.errors import CompositeError
from pipeline.warping.maps import rescale_field


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
    soften_px: float = 0.0,
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
        soften_px: blur of the crop (crop pixels) that matches its sharpness to the plate's
            (:func:`pipeline.composite.register.sharpness_match`); 0 is none.

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
    cfg_s = cfg.at_size(s)
    if matte_crop is None:
        matte_crop = face_matte(points_crop, s, cfg_s)
    elif (
        matte_crop.ndim != 2
        or matte_crop.shape[0] != matte_crop.shape[1]
        or matte_crop.dtype not in (np.float32, np.float16)
    ):
        raise CompositeError(
            f"matte_crop must be M×M float32, got {matte_crop.shape} {matte_crop.dtype}"
        )
    matte_crop = matte_at(matte_crop, s)
    mode = get_mode(cfg.color_mode)
    if cfg.register > 0 or color_params is None:
        plate_crop = plate_to_crop(plate, inv, s)
        crop = register_to_plate(crop, plate_crop, cfg.register, cfg_s.register_blur_px)
    crop = soften(crop, soften_px)
    if color_params is None:
        color_params = mode.estimate(crop, plate_crop, matte_crop, cfg_s.gain_params())
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


def matte_at(matte: np.ndarray, size: int) -> np.ndarray:
    """A crop-space matte (M×M) at crop side ``size`` (bilinear, same alignment), float32 in
    [0, 1]."""
    m = np.asarray(matte, np.float32)
    if m.shape[0] == size:
        return m
    return np.clip(rescale_field(m[:, :, None], size)[:, :, 0], 0.0, 1.0)


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
        mattes_crop: N×M×M float16 in [0, 1], the smoothed crop-space mattes at the matte size
            M = min(S, ``cfg.matte_size``) (zeros where untracked).
        color_params: per-frame colour parameters after smoothing (``None`` where untracked).
        flicker_raw: :func:`edge_flicker` of the crop-space mattes before smoothing.
        flicker_smoothed: the same after smoothing, on the same pixels.
        soften_px: the blur that matches the faces' sharpness to the plate's (crop pixels).
        detail_before: the faces' detail over the plate's before that blur (median).
    """

    def __init__(
        self,
        frames: Sequence[np.ndarray],
        crops: Sequence[np.ndarray | None],
        points_crop: np.ndarray,
        inverses: np.ndarray,
        tracked: np.ndarray,
        cfg: CompositeConfig,
        matte_points: np.ndarray | None = None,
        other_actor: np.ndarray | None = None,
    ) -> None:
        self.cfg = cfg.checked()
        self.frames = frames
        self.crops = crops
        n = len(frames)
        self.tracked = np.asarray(tracked, bool)
        self.points = np.asarray(points_crop, np.float64)
        self.inverses = np.asarray(inverses, np.float64)
        self.matte_points = None if matte_points is None else np.asarray(matte_points, np.float64)
        self.other_actor = (
            np.zeros(n, bool) if other_actor is None else np.asarray(other_actor, bool)
        )
        checks = [
            ("tracked", self.tracked, (n,)),
            ("points_crop", self.points, (n, 68, 2)),
            ("inverses", self.inverses, (n, 2, 3)),
            ("other_actor", self.other_actor, (n,)),
        ]
        if self.matte_points is not None:
            checks.append(("matte_points", self.matte_points, (n, 68, 2)))
        for name, arr, shape in checks:
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

    def _mattes(self, idx: np.ndarray, s: int) -> np.ndarray:
        """N×M×M float32 raw crop-space mattes at the matte size M: the driving landmarks'
        matte, and the plate performer's where given (their union: the whole plate face is
        covered even when the actor's face shape is smaller)."""
        m = min(s, self.cfg.matte_size)
        cfg_m = self.cfg.at_size(m)
        raw = np.zeros((len(self), m, m), np.float32)
        for i in idx:
            raw[i] = face_matte(self.points[i] * (m / s), m, cfg_m)
            if self.matte_points is not None and np.isfinite(self.matte_points[i]).all():
                plate_face = face_matte(self.matte_points[i] * (m / s), m, cfg_m)
                np.maximum(raw[i], plate_face, out=raw[i])
        return raw

    def _prepass(self) -> None:
        idx = np.nonzero(self.tracked)[0]
        if len(idx) == 0:
            s = 8
        else:
            s = check_crop_size(int(self._crop(int(idx[0])).shape[0]))
        n = len(self)
        raw = self._mattes(idx, s)
        smoothed = snap_matte(
            smooth_over_time(raw, self.cfg.temporal_matte, self.tracked), self.cfg.matte_snap
        )
        smoothed[~self.tracked] = 0.0
        self.mattes_crop = smoothed.astype(np.float16)
        self.flicker_raw, self.flicker_smoothed = _runs_flicker(raw, smoothed, self.tracked)

        params: list[np.ndarray | None] = [None] * n
        samples: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        picks = set(idx[np.linspace(0, len(idx) - 1, min(8, len(idx))).astype(int)].tolist())
        for i in idx:
            cfg_s = self._cfg(int(i)).at_size(s)
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
            crop = register_to_plate(crop, plate_crop, cfg_s.register, cfg_s.register_blur_px)
            matte = matte_at(smoothed[i], s)
            gp = cfg_s.gain_params()
            params[int(i)] = self._mode.estimate(crop, plate_crop, matte, gp)
            if int(i) in picks:  # sharpness is compared after the light match (same exposure)
                hull = hull_inside_distance(self.points[i], s) > 0
                samples[int(i)] = (self._mode.apply(crop, params[int(i)]), plate_crop, hull)
        if len(idx):
            stack = np.stack([params[int(i)] for i in idx])
            full = np.zeros((n,) + stack.shape[1:], np.float32)
            full[idx] = stack
            full = smooth_over_time(full, self.cfg.temporal_color, self.tracked)
            for i in idx:
                params[int(i)] = full[i]
        self.color_params = params
        self.soften_px, self.detail_before = 0.0, float("nan")
        if self.cfg.match_sharpness and samples:
            f, p, m_ = (list(x) for x in zip(*samples.values()))
            k = float(np.median([np.sqrt(abs(np.linalg.det(self.inverses[i][:, :2])))
                                 for i in samples]))  # fmt: skip
            self.soften_px, self.detail_before = sharpness_match(f, p, m_, k)
        m = smoothed.shape[1]
        radii = [core_radius(smoothed[i], _scaled_inverse(self.inverses[i], s / m)) for i in idx]
        self.levels = max_levels_for_radius(min(radii), self.cfg.pyramid_levels) if radii else 0

    def _cfg(self, i: int) -> CompositeConfig:
        """Frame ``i``'s config: the ``cross_`` settings where its performer is another person."""
        return self.cfg.for_performer(bool(self.other_actor[i]))

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
            self._cfg(i),
            matte_crop=self.mattes_crop[i],
            color_params=self.color_params[i],
            levels=self.levels,
            soften_px=self.soften_px,
        )

    def __iter__(self) -> Iterator[CompositedFrame]:
        for i in range(len(self)):
            yield self.frame(i)


def _scaled_inverse(inverse: np.ndarray, f: float) -> np.ndarray:
    """The crop → plate transform of the same crop sampled ``1/f`` as finely (pixel ``p`` of
    the coarser crop is pixel ``f·p`` of the original)."""
    out = np.array(inverse, np.float64)
    out[:, :2] *= f
    return out


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
    matte_points: np.ndarray | None = None,
    other_actor: np.ndarray | None = None,
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
        matte_points: N×68×2 float, the plate performer's landmarks in crop pixels: the matte
            covers their face too (None: the driving landmarks' alone).
        other_actor: N bool, frames whose performer is another person than the actor: they
            take the ``cross_`` settings and, under ``tone: auto``, keep the actor's skin tone;
            None: none.

    Returns:
        a :class:`CompositeSequence`: iterate it for ``(composite H×W×3, face_premult H×W×4,
        matte H×W)`` per frame; its ``untouched`` lists the frames passed through.

    Raises:
        CompositeError: invalid config, mismatched lengths or shapes, NaN on a tracked frame.
    """
    return CompositeSequence(
        frames, crops, points_crop, inverses, tracked, cfg, matte_points, other_actor
    )
