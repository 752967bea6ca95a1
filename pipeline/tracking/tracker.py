"""The tracker: the performer's face followed through one chunk of consecutive frames.

A shot is tracked in chunks of frames (``track.chunk_size``) so a farm can spread the work;
:func:`pipeline.tracking.merge.merge_chunks` joins them into one
:class:`~pipeline.landmarks.sidecar.Landmarks`.

Inside a chunk (:func:`track_chunk`):

- **Keyframes.** The detector runs every ``keyframe_interval`` frames, on a scene cut, and on
  every frame while the face is lost.
- **Between keyframes** the face box is predicted from the previous frame's landmarks (through
  the box-to-template relation measured at the last keyframe) and the backend fits landmarks in
  it. A 32² aligned grey patch is compared with the last keyframe's by normalized
  cross-correlation; below ``lost_similarity`` the face is lost (occlusion, cut, drift) and the
  detector runs at once.
- **Identity lock.** On (re)acquisition the face is chosen by the nearest 128-d descriptor to the
  hint's reference (must be under ``identity_threshold``), else by overlap with the hint's seed
  box, else the only (or clearly largest) face. The chunk's own descriptor is taken at its first
  acquisition and used to reacquire the same person after occlusions and cuts. On scheduled
  keyframes the detection that overlaps the tracked face continues the track.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from pipeline.align import CANONICAL_68, apply_affine, invert_affine, umeyama
from pipeline.errors import IdentityError
from pipeline.landmarks import get_backend
from pipeline.landmarks.base import Box, Detection, LandmarkBackend
from pipeline.tracking.chunks import ChunkTrack
from pipeline.tracking.identity import (
    chip_descriptor,
    descriptor_distance,
    face_chip,
    face_descriptor,
)
from pipeline.tracking.smooth import SmoothConfig

_PATCH = 32


#: Inner-face square of the template sampled for the appearance check: x0, y0, side (unit).
_PATCH_REGION = (0.2, 0.28, 0.6)


_THUMB = 32


@dataclass(frozen=True)
class TrackerParams:
    """The tracker's settings (the track stage's config extends them). Defaults suit the CPU
    preview profile.

    Attributes:
        backend: landmark backend name, a key of ``pipeline.landmarks.BACKENDS``.
        fan_weights: path to 2D-FAN-4 weights; ``None`` uses torch's hub cache (fan only).
        device: torch device for the fan backend.
        keyframe_interval: run the detector every this many frames (and on cuts and losses).
        detect_max_side: the detector sees the frame downscaled to at most this side.
        detect_upsample: dlib pyramid upsampling for the detector (1 finds faces half as large,
            at four times the cost).
        min_detection_score: HOG SVM margin threshold.
        lost_similarity: patch correlation (0..1) with the last keyframe below which the face
            counts as lost.
        cut_threshold: mean absolute difference (0..1) of 32² frame thumbnails above which a
            frame starts a new scene.
        max_gap_interpolate: gaps of at most this many frames are interpolated; longer ones (and
            gaps at the shot's ends) are flagged.
        on_gap: what a flagged gap does to the shot. ``"error"`` (default) fails the track stage
            with :class:`~pipeline.errors.FaceLostError` naming the frames, so that no delivery
            silently keeps the original face; ``"passthrough"`` keeps the plate unchanged on
            those frames and lists them in the QC report.
        identity_threshold: descriptor L2 distance under which a face is the performer.
        chunk_descriptor: keep the face chip of each chunk's first acquisition, so the face is
            reacquired by identity after cuts and the merge can check identity across chunk
            borders (the 0.13-s descriptor runs only when one of those needs it).
        crop_size: side of the aligned face crop the transforms map to.
        smoothing: temporal smoothing settings.
    """

    backend: Literal["dlib", "fan"] = "dlib"
    fan_weights: str | None = None
    device: str = "cpu"
    keyframe_interval: int = 10
    detect_max_side: int = 640
    detect_upsample: int = 0
    min_detection_score: float = 0.0
    lost_similarity: float = 0.35
    cut_threshold: float = 0.2
    max_gap_interpolate: int = 5
    on_gap: Literal["error", "passthrough"] = "error"
    identity_threshold: float = 0.6
    chunk_descriptor: bool = True
    crop_size: Literal[128, 256, 512] = 256
    smoothing: SmoothConfig = field(default_factory=SmoothConfig)

    def validate(self) -> list[tuple[str, str]]:
        """Problems as ``(key, message)``; empty when valid."""
        out: list[tuple[str, str]] = []
        for key, low in (
            ("keyframe_interval", 1),
            ("detect_max_side", 80),
            ("detect_upsample", 0),
            ("max_gap_interpolate", 0),
        ):
            if getattr(self, key) < low:
                out.append((key, f"got {getattr(self, key)!r}, expected at least {low}"))
        for key in ("lost_similarity", "cut_threshold"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                out.append((key, f"got {getattr(self, key)!r}, expected 0..1"))
        if not 0.0 < self.identity_threshold < 2.0:
            out.append(("identity_threshold", f"got {self.identity_threshold!r}, expected 0..2"))
        if self.fan_weights is not None and self.backend != "fan":
            out.append(("fan_weights", f"is set but backend is {self.backend!r}; remove it"))
        out += [(f"smoothing.{k}", m) for k, m in self.smoothing.validate()]
        return out


@dataclass(frozen=True)
class IdentityHint:
    """Which face to follow when a plate holds several.

    Attributes:
        reference_descriptor: 128 float32 descriptor of the plate actor (from the shot spec's
            reference), or ``None``.
        seed_box: ``(x0, y0, x1, y1)`` around the performer on the first frame given to
            :func:`track_chunk`, or ``None``. For chunked runs, turn a seed box into a
            descriptor once with :func:`hint_from_seed` and pass that to every chunk.
    """

    reference_descriptor: np.ndarray | None = None
    seed_box: Box | None = None


def make_backend(cfg: TrackerParams) -> LandmarkBackend:
    """The configured landmark backend."""
    params: dict[str, object] = {
        "detect_max_side": cfg.detect_max_side,
        "upsample": cfg.detect_upsample,
        "min_score": cfg.min_detection_score,
    }
    if cfg.backend == "fan":
        params.update(weights=cfg.fan_weights, device=cfg.device)
    return get_backend(cfg.backend, **params)


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``(x0, y0, x1, y1)`` boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _thumb(image: np.ndarray) -> np.ndarray:
    step = max(1, min(image.shape[:2]) // (2 * _THUMB))
    small = cv2.resize(image[::step, ::step], (_THUMB, _THUMB), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32) / 255.0


def _patch(image: np.ndarray, to_unit: np.ndarray) -> np.ndarray:
    """Zero-mean, unit-norm 32² grey patch of the inner face aligned by ``to_unit`` (image → unit).

    Only the template's inner face (brows to chin) is sampled: hair and background around it
    change with head motion and made the correlation drop on plain talking heads.
    """
    x0, y0, side = _PATCH_REGION
    m = to_unit * (_PATCH / side)
    m[:, 2] -= np.array([x0, y0]) * (_PATCH / side)
    p = cv2.warpAffine(image, m, (_PATCH, _PATCH), flags=cv2.INTER_LINEAR)
    p = p.astype(np.float32).mean(2) if p.ndim == 3 else p.astype(np.float32)
    p -= p.mean()
    return p / max(float(np.linalg.norm(p)), 1e-6)


def _scale(m: np.ndarray) -> float:
    return float(np.sqrt(abs(np.linalg.det(m[:, :2]))))


class _Tracker:
    """State of one face track inside a chunk."""

    def __init__(self, cfg: TrackerParams, hint: IdentityHint | None):
        self.cfg = cfg
        self.backend = make_backend(cfg)
        self.reference = None if hint is None else hint.reference_descriptor
        self.seed = None if hint is None else hint.seed_box
        self.descriptor: np.ndarray | None = None
        self.chip: np.ndarray | None = None
        self.points: np.ndarray | None = None  # previous frame's landmarks, 68×2
        self.box: Box | None = None
        self.template: np.ndarray | None = None
        self.box_rel: tuple[float, float, float, float] | None = None  # cx, cy, w, h in unit
        self.kf_conf = 0.0
        self.since_kf = 0

    def follow(self, image: np.ndarray) -> Detection | None:
        """Landmarks of the face predicted from the previous frame, or None when lost."""
        if self.points is None or self.box_rel is None or self.template is None:
            return None
        to_unit = umeyama(self.points, CANONICAL_68)
        cx, cy, w, h = self.box_rel
        c = apply_affine(invert_affine(to_unit), np.array([[cx, cy]]))[0]
        s = _scale(to_unit)
        box = (c[0] - w / s / 2, c[1] - h / s / 2, c[0] + w / s / 2, c[1] + h / s / 2)
        det = self.backend.fit(image, box)
        sim = float(np.sum(_patch(image, umeyama(det.points, CANONICAL_68)) * self.template))
        if sim < self.cfg.lost_similarity:
            return None
        return Detection(det.points, self.kf_conf * det.confidence * min(sim, 1.0), det.box)

    def acquire(self, image: np.ndarray, dets: list[Detection], fno: int) -> Detection | None:
        """Choose the performer among detections (no continuity available)."""
        if not dets:
            return None
        ref = self.reference if self.reference is not None else self.identity()
        if ref is not None:
            descs = [face_descriptor(image, d) for d in dets]
            dist = [descriptor_distance(ref, x) for x in descs]
            i = int(np.argmin(dist))
            if dist[i] >= self.cfg.identity_threshold:
                return None
            self._keep_descriptor(descs[i])
            return dets[i]
        if self.seed is not None:
            overlap = [iou(d.box, self.seed) for d in dets]
            i = int(np.argmax(overlap))
            self.seed = None  # the seed box belongs to the chunk's first frames only
            chosen = dets[i] if overlap[i] > 0 else None
        else:
            areas = sorted(((_area(d.box), k) for k, d in enumerate(dets)), reverse=True)
            if len(areas) > 1 and areas[0][0] < 1.5 * areas[1][0]:
                raise IdentityError(
                    f"frame {fno}: {len(dets)} faces of similar size and no identity hint: "
                    + ", ".join(str(tuple(round(v) for v in d.box)) for d in dets),
                    "name the face to replace in the shot spec: `plate: performer: reference: "
                    "PHOTO` (a photo of the plate actor) or `plate: performer: seed_box: "
                    "[x0, y0, x1, y1]` (pixels around the face on the first frame)",
                )
            chosen = dets[areas[0][1]]
        if chosen is not None and self.cfg.chunk_descriptor and self.chip is None:
            self.chip = face_chip(image, chosen)
        return chosen

    def identity(self) -> np.ndarray | None:
        """Descriptor of the chunk's face, computed from its chip on first use."""
        if self.descriptor is None and self.chip is not None:
            self.descriptor = chip_descriptor(self.chip)
        return self.descriptor

    def _keep_descriptor(self, desc: np.ndarray) -> None:
        if self.descriptor is None:
            self.descriptor = desc

    def continue_with(self, dets: list[Detection]) -> Detection | None:
        """The detection that continues the current track on a scheduled keyframe."""
        if self.box is None:
            return None
        scored = [(iou(d.box, self.box), d) for d in dets]
        scored = [(o, d) for o, d in scored if o >= 0.3]
        return max(scored, key=lambda od: od[0])[1] if scored else None

    def anchor(self, image: np.ndarray, det: Detection) -> None:
        """Make a detection the new keyframe: template patch and box relation."""
        to_unit = umeyama(det.points, CANONICAL_68)
        s = _scale(to_unit)
        x0, y0, x1, y1 = det.box
        c = apply_affine(to_unit, np.array([[(x0 + x1) / 2, (y0 + y1) / 2]]))[0]
        self.box_rel = (float(c[0]), float(c[1]), (x1 - x0) * s, (y1 - y0) * s)
        self.template = _patch(image, to_unit)
        self.kf_conf = det.confidence
        self.since_kf = 0

    def step(self, image: np.ndarray, fno: int, cut: bool) -> tuple[Detection | None, bool]:
        """Track one frame. Returns the followed face (or None) and whether the detector ran."""
        scheduled = self.since_kf >= self.cfg.keyframe_interval - 1
        followed = None if cut else self.follow(image)
        if followed is not None and not scheduled:
            self.since_kf += 1
            return self._keep(followed), False
        near = getattr(self.backend, "detect_near", None)
        if followed is not None and near is not None:
            # A scheduled keyframe on a held face: look near it first (cheap on large frames).
            chosen = self.continue_with(near(image, followed.box))
            if chosen is not None:
                self.anchor(image, chosen)
                return self._keep(chosen), True
        dets = self.backend.detect(image)
        chosen = self.continue_with(dets) if followed is not None else None
        if chosen is None and followed is None:
            chosen = self.acquire(image, dets, fno)
        if chosen is not None:
            self.anchor(image, chosen)
            return self._keep(chosen), True
        if followed is not None:
            # The detector missed a face the tracker still holds (e.g. a turned head).
            self.since_kf = 0
            return self._keep(followed), True
        self.points = self.box = None
        return None, True

    def _keep(self, det: Detection) -> Detection:
        self.points = det.points.astype(np.float64)
        self.box = det.box
        return det


def _area(box: Box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def track_chunk(
    frames: Iterable[tuple[int, np.ndarray]], cfg: TrackerParams, hint: IdentityHint | None
) -> ChunkTrack:
    """Track the performer's face through consecutive frames.

    Args:
        frames: ``(frame number, image)`` pairs in order, consecutive numbers; images are
            H×W×3 uint8 display sRGB, all one size.
        cfg: tracking settings.
        hint: which face to follow when there are several; ``None`` follows the only (or
            clearly largest) face.

    Returns:
        the chunk's :class:`ChunkTrack`.

    Raises:
        ValueError: a frame of the wrong dtype, shape or size, or non-consecutive numbers.
        IdentityError: several similar faces and no hint to choose.
        WeightsMissingError: the backend's weights are not provisioned.
    """
    tracker = _Tracker(cfg, hint)
    rows: list[tuple[int, np.ndarray, float, np.ndarray, bool, bool]] = []
    size: tuple[int, int] | None = None
    prev_thumb: np.ndarray | None = None
    nan_pts = np.full((68, 2), np.nan, np.float32)
    nan_box = np.full(4, np.nan, np.float32)
    for fno, image in frames:
        img = np.asarray(image)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"frame {fno}: expected H×W×3 uint8 sRGB, got {img.dtype} {img.shape}")
        if size is None:
            size = (img.shape[1], img.shape[0])
        elif size != (img.shape[1], img.shape[0]):
            raise ValueError(f"frame {fno}: size {img.shape[1]}×{img.shape[0]}, chunk is {size}")
        if rows and fno != rows[-1][0] + 1:
            raise ValueError(f"frame {fno} follows frame {rows[-1][0]}: frames must be consecutive")
        thumb = _thumb(img)
        cut = (
            prev_thumb is not None and float(np.abs(thumb - prev_thumb).mean()) > cfg.cut_threshold
        )
        prev_thumb = thumb
        det, keyframe = tracker.step(img, fno, cut)
        if det is None:
            rows.append((fno, nan_pts, 0.0, nan_box, keyframe, cut))
        else:
            rows.append(
                (
                    fno,
                    det.points.astype(np.float32),
                    det.confidence,
                    np.array(det.box),
                    keyframe,
                    cut,
                )
            )
    if size is None:
        raise ValueError("track_chunk got no frames")
    desc = tracker.descriptor if tracker.descriptor is not None else np.full(128, np.nan)
    return ChunkTrack(
        frames=np.array([r[0] for r in rows], np.int64),
        points=np.stack([r[1] for r in rows]).astype(np.float32),
        confidence=np.array([r[2] for r in rows], np.float32),
        box=np.stack([r[3] for r in rows]).astype(np.float32),
        keyframe=np.array([r[4] for r in rows], bool),
        cut=np.array([r[5] for r in rows], bool),
        descriptor=np.asarray(desc, np.float32),
        face_chip=tracker.chip if tracker.chip is not None else np.zeros((0, 0, 3), np.uint8),
        image_size=size,
        backend=cfg.backend,
    )
