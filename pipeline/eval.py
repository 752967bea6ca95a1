"""The quality harness (``likeness eval``): the fine-tuned model against the warp baseline.

**Self-reenactment** (default). A real clip is tracked the way production tracks a plate
(:func:`pipeline.track.track_chunk` in chunks, :func:`pipeline.track.merge_chunks`: dlib
landmarks, RTS-smoothed), every tracked frame is aligned to the canonical template at the
profile's crop size, K reference frames spread evenly over the clip are given to
:func:`pipeline.train.finetune.finetune`, and held-out frames, never within ``min_gap`` frames of
a reference and taken in runs of consecutive frames, drive both the fine-tuned model and the warp
baseline (:func:`pipeline.models.warp.warp_baseline`, the nearest reference warped). Both are
compared with the true aligned crop:

- ``psnr``: dB over the whole crop, 0..1 sRGB;
- ``ssim``: :func:`skimage.metrics.structural_similarity`, Gaussian window σ = 1.5 (11×11),
  ``use_sample_covariance=False``, ``data_range=1``, per RGB channel then averaged (Wang et al.
  2004 settings; the same formula as the training loss);
- ``identity``: L2 distance of dlib's 128-d descriptors of output and truth (< 0.6 reads as the
  same person);
- ``landmark_error``: dlib's 68 points re-fitted on the output and on the truth inside one face
  box (the one found on the truth), mean point distance divided by the truth's inter-ocular
  distance (outer eye corners);
- ``ssim_face``, ``psnr_face``: the same two measures weighted by the production face matte of
  the truth's landmarks (:func:`face_weights`), i.e. only the region a composite keeps. The crop
  is about three quarters hair, body and background, whose motion the crop's landmarks do not
  determine; these two show the face alone. They are diagnostics, not the goal metrics;
- ``jitter``: frame-to-frame RMS change of the output's landmark error over consecutive driven
  frames, over the inter-ocular distance (0 when the output's landmarks move exactly as the
  truth's do); ``jitter_raw`` is the plain RMS motion of the re-fitted output landmarks.

**Cross-identity** (``mode="cross"``, ``driving=`` another clip). The references come from
``clip`` (the target identity); the driving clip's landmarks are retargeted onto the target's
mean reference shape (:func:`pipeline.retarget.retarget`). There is no truth frame, so it reports
the identity distance to the target (mean descriptor of the references) and to the performer (the
driving frame), and ``expression_error``: re-fitted landmarks of the output against the
retargeted driving landmarks, over the inter-ocular distance.

Results go to ``eval.json`` (schema ``likeness.eval/1``) and ``eval.png`` in ``out_dir``.

Nothing in the training sees a driving frame: early stopping, when enabled, holds out a
*reference* (:class:`~pipeline.train.finetune.FinetuneConfig`). The figures are for clips the
pipeline has never been tuned on.

CLI (``likeness eval`` or ``python -m pipeline.eval``)::

    likeness eval CLIP [--k 8] [--minutes 20] [--profile cpu-preview] [--mode self|cross]
                  [--driving CLIP2] [--tests 40] [--run-length 8] [--min-gap 5]
                  [--max-frames N] [--out DIR] [--json FILE] [--threads 2] [--seed 0]
                  [--cache DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import logging
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pipeline.errors import EvalError, LikenessError, NoFaceError
from pipeline.hashing import sha256_file

log = logging.getLogger(__name__)

SCHEMA = "likeness.eval/1"
#: Outer eye corners of the iBUG 68 layout, for the inter-ocular distance.
EYE_CORNERS = (36, 45)


# --------------------------------------------------------------------------------------------
# Clip → aligned crops


@dataclasses.dataclass(frozen=True)
class ClipFaces:
    """A clip's tracked faces, aligned.

    Attributes:
        name: the clip's stem.
        frames: N int64, plate frame numbers of the tracked frames (consecutive numbers where
            the face is tracked throughout).
        crops: N×S×S×3 float32 in 0..1, display sRGB, aligned face crops.
        points: N×68×2 float32, smoothed landmarks in crop pixels.
        transforms: N×2×3 float64, each frame's plate → crop similarity (the head's place in
            the plate, which the crops and their points no longer carry).
    """

    name: str
    frames: np.ndarray
    crops: np.ndarray
    points: np.ndarray
    transforms: np.ndarray


def iter_frames(
    path: str | Path, max_frames: int | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Decode a clip with :func:`pipeline.io.open_plate`, one frame at a time.

    Args:
        path: a movie or an image-sequence pattern.
        max_frames: stop after this many frames.

    Yields:
        ``(frame number, image)``: int and H×W×3 uint8 display sRGB.

    Raises:
        DecodeError: the clip is missing or unreadable.
    """
    from pipeline.io import open_plate

    with open_plate(path) as plate:
        for n, (fno, img) in enumerate(plate.read()):
            if max_frames is not None and n >= max_frames:
                break
            yield int(fno), np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)


def track_clip(
    frames: Iterable[tuple[int, np.ndarray]], crop_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Production tracking: chunks through :func:`track_chunk`, joined by :func:`merge_chunks`.

    The frames are consumed one chunk at a time, so a long or large clip is never held whole.

    Args:
        frames: ``(frame number, image)`` pairs, consecutive numbers, H×W×3 uint8 display sRGB.
        crop_size: the aligned crop size recorded in the track (128, 256 or 512).

    Returns:
        ``(numbers, points)``: N int64 frame numbers and N×68×2 float32 smoothed landmarks in
        plate pixels, NaN where the face is not tracked (N = 0 for a clip with no frames).
    """
    from pipeline.track import TrackConfig, merge_chunks, track_chunk

    cfg = TrackConfig(crop_size=crop_size)  # type: ignore[arg-type]
    it = iter(frames)
    chunks, numbers = [], []
    plate_size: tuple[int, int] | None = None
    while batch := list(itertools.islice(it, cfg.chunk_size)):
        plate_size = (batch[0][1].shape[1], batch[0][1].shape[0])
        numbers.extend(fno for fno, _ in batch)
        chunks.append(track_chunk(batch, cfg, None))
        del batch
    if plate_size is None:
        return np.zeros(0, np.int64), np.zeros((0, 68, 2), np.float32)
    lm = merge_chunks(chunks, cfg, plate_size)
    pts = np.asarray(lm.points, np.float32)
    pts[~lm.tracked] = np.nan
    return np.asarray(numbers, np.int64), pts


def load_clip(
    path: str | Path,
    size: int,
    max_frames: int | None = None,
    cache: str | Path | None = None,
) -> ClipFaces:
    """Track and align a clip (landmarks are cached by the file's SHA-256).

    The clip is decoded twice, once to track and once to align, and only the aligned crops are
    kept: memory grows with the number of frames times the crop size, not the plate size.

    Args:
        path: the clip.
        size: the aligned crop side (the profile's ``image_size``).
        max_frames: keep only the first this many frames.
        cache: folder for the landmark cache; ``None`` tracks every time.

    Returns:
        the :class:`ClipFaces` of the tracked frames.

    Raises:
        DecodeError: a missing or unreadable clip.
        EvalError: no frames.
        NoFaceError: no tracked face.
    """
    from pipeline.align import align_image

    path = Path(path)
    cached = None
    if cache is not None and path.is_file():  # an image-sequence pattern is not cached
        key = f"{path.stem}_{sha256_file(path)[:16]}_{max_frames or 'all'}.npz"
        cached = Path(cache) / key
    if cached is not None and cached.is_file():
        with np.load(cached, allow_pickle=False) as z:
            numbers, plate_pts = z["numbers"], z["points"]
    else:
        t0 = time.monotonic()
        track_size = size if size in (128, 256, 512) else 256
        numbers, plate_pts = track_clip(iter_frames(path, max_frames), track_size)
        log.info("tracked %s: %d frames in %.1f s", path.name, len(numbers), time.monotonic() - t0)
        if cached is not None:
            from pipeline.atomic import write_npz

            cached.parent.mkdir(parents=True, exist_ok=True)
            write_npz(cached, numbers=numbers, points=plate_pts)
    if len(numbers) == 0:
        raise EvalError(f"{path} holds no frames", "pass a clip with a face in it")
    ok = np.isfinite(plate_pts).all(axis=(1, 2))
    if ok.sum() == 0:
        raise NoFaceError(f"no face tracked in {path}", "pass a clip with one visible face")
    row = {int(f): i for i, f in enumerate(numbers)}
    crops, pts, fwd, kept = [], [], [], []
    for fno, image in iter_frames(path, max_frames):
        i = row.get(fno)
        if i is None or not ok[i]:
            continue
        a = align_image(image, plate_pts[i], size)
        crops.append(a.crop.astype(np.float32) / 255.0)
        pts.append(a.points_in_crop.astype(np.float32))
        fwd.append(np.asarray(a.transform, np.float64))
        kept.append(fno)
    if len(kept) != int(ok.sum()):
        raise EvalError(
            f"{path} decoded to other frames the second time ({len(kept)} tracked frames of "
            f"{int(ok.sum())})",
            "check that the clip is not being rewritten, and clear the landmark cache",
        )
    return ClipFaces(
        path.stem, np.asarray(kept, np.int64), np.stack(crops), np.stack(pts), np.stack(fwd)
    )


# --------------------------------------------------------------------------------------------
# Frame selection


def pick_frames(
    frames: np.ndarray, k: int, tests: int, run_length: int, min_gap: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Choose K references spread evenly and held-out runs of consecutive driving frames.

    Args:
        frames: N int64 plate frame numbers of the tracked frames, increasing.
        k: references.
        tests: driving frames wanted in total (fewer when the clip is short).
        run_length: consecutive frames per run (for temporal jitter); at least 2.
        min_gap: a driving frame is more than this many frames from every reference.

    Returns:
        ``(ref_rows, runs)``: K row indices into ``frames``, and a list of row-index arrays,
        each a run of consecutive plate frames.

    Raises:
        EvalError: fewer tracked frames than references, or no frame far enough from them.
    """
    n = len(frames)
    if k < 1 or n < k:
        raise EvalError(
            f"{n} tracked frames for K={k} references", "pass a longer clip or a smaller K"
        )
    refs = np.linspace(0, n - 1, k).round().astype(int)
    ref_frames = frames[refs]
    dist = np.abs(frames[:, None] - ref_frames[None, :]).min(1)
    ok = dist > min_gap
    # Runs of consecutive usable frames.
    segments: list[np.ndarray] = []
    start = None
    for i in range(n + 1):
        good = i < n and ok[i] and (start is None or frames[i] == frames[i - 1] + 1)
        if good and start is None:
            start = i
        elif not good and start is not None:
            segments.append(np.arange(start, i))
            start = i if i < n and ok[i] else None
    segments = [s for s in segments if len(s) >= 2]
    if not segments:
        raise EvalError(
            f"no driving frame is more than {min_gap} frames from the {k} references",
            "pass a longer clip, a smaller K or a smaller --min-gap",
        )
    run_length = max(2, run_length)
    n_runs = max(1, math.ceil(tests / run_length))
    # Spread the runs over the segments in proportion to their length, centred in each.
    total = sum(len(s) for s in segments)
    runs: list[np.ndarray] = []
    for s in segments:
        want = max(1, round(n_runs * len(s) / total)) if len(runs) < n_runs else 0
        for j in range(want):
            length = min(run_length, len(s))
            centre = (j + 0.5) * len(s) / want
            a = int(np.clip(round(centre - length / 2), 0, len(s) - length))
            run = s[a : a + length]
            if not any(np.intersect1d(run, r).size for r in runs):
                runs.append(run)
    runs = runs[:n_runs]
    return refs, runs


# --------------------------------------------------------------------------------------------
# Metrics


def psnr(pred: np.ndarray, truth: np.ndarray) -> float:
    """PSNR in dB of two H×W×3 float images in 0..1 (display sRGB); capped at 100 dB."""
    return _db(float(np.mean((np.asarray(pred, np.float64) - np.asarray(truth, np.float64)) ** 2)))


def _db(mse: float) -> float:
    """PSNR in dB of a mean squared error on 0..1 images, capped at 100 dB."""
    return 100.0 if mse <= 1e-10 else 10.0 * math.log10(1.0 / mse)


def ssim_full(pred: np.ndarray, truth: np.ndarray) -> tuple[float, np.ndarray]:
    """skimage's SSIM with the harness's settings: ``(mean, H×W float64 map averaged over
    RGB)``; :func:`ssim` is the mean."""
    from skimage.metrics import structural_similarity

    mean, full = structural_similarity(
        np.asarray(pred, np.float64),
        np.asarray(truth, np.float64),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1.0,
        channel_axis=2,
        full=True,
    )
    return float(mean), full.mean(axis=2)


def ssim(pred: np.ndarray, truth: np.ndarray) -> float:
    """SSIM of two H×W×3 float images in 0..1: skimage, Gaussian σ = 1.5, population covariance.

    ``structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    data_range=1.0, channel_axis=2)``: Wang et al. 2004's settings, averaged over channels.
    """
    return ssim_full(pred, truth)[0]


def face_weights(points: np.ndarray, size: int) -> np.ndarray:
    """The region a composite keeps: the production face matte of ``points`` (68×2 crop
    pixels), :func:`pipeline.composite.matte.face_matte` with the default
    :class:`~pipeline.composite.comp.CompositeConfig` → size×size float32 in 0..1."""
    from pipeline.composite.comp import CompositeConfig
    from pipeline.composite.matte import face_matte

    return face_matte(np.asarray(points, np.float64), size, CompositeConfig())


def face_ssim(pred: np.ndarray, truth: np.ndarray, weights: np.ndarray) -> float:
    """SSIM map (as :func:`ssim`) averaged with ``weights`` (H×W, e.g. :func:`face_weights`);
    NaN when the weights are all zero."""
    w = np.asarray(weights, np.float64)
    total = float(w.sum())
    if not total > 0:
        return float("nan")
    return float((ssim_full(pred, truth)[1] * w).sum() / total)


def face_psnr(pred: np.ndarray, truth: np.ndarray, weights: np.ndarray) -> float:
    """PSNR in dB of the ``weights``-weighted mean squared error (H×W weights, 0..1 images);
    capped at 100 dB, NaN when the weights are all zero."""
    w = np.asarray(weights, np.float64)
    total = float(w.sum())
    if not total > 0:
        return float("nan")
    err = ((np.asarray(pred, np.float64) - np.asarray(truth, np.float64)) ** 2).mean(axis=2)
    return _db(float((err * w).sum() / total))


def inter_ocular(points: np.ndarray) -> float:
    """Distance between the outer eye corners (points 36 and 45) of 68×2 landmarks."""
    p = np.asarray(points, np.float64)
    return float(np.linalg.norm(p[EYE_CORNERS[0]] - p[EYE_CORNERS[1]]))


def landmark_error(points: np.ndarray, reference: np.ndarray) -> float:
    """Mean point-to-point distance of 68×2 landmarks over ``reference``'s inter-ocular distance."""
    p = np.asarray(points, np.float64)
    r = np.asarray(reference, np.float64)
    return float(np.linalg.norm(p - r, axis=1).mean() / max(inter_ocular(r), 1e-9))


def error_jitter(points: np.ndarray, reference: np.ndarray) -> float:
    """Temporal jitter of a landmark error over consecutive frames, over the inter-ocular distance.

    Args:
        points: T×68×2, re-fitted landmarks of consecutive output frames.
        reference: T×68×2, the truth's re-fitted landmarks of the same frames.

    Returns:
        mean over frames 1..T−1 of the RMS frame-to-frame change of ``points − reference``
        (:func:`pipeline.qc.tracking.jitter`), divided by the mean inter-ocular distance; 0 when
        the output moves exactly as the truth does. NaN for fewer than two frames.
    """
    from pipeline.qc.tracking import jitter

    p = np.asarray(points, np.float64)
    r = np.asarray(reference, np.float64)
    if len(p) < 2:
        return float("nan")
    iod = float(np.mean([inter_ocular(x) for x in r]))
    return float(np.nanmean(jitter(p - r)[1:]) / max(iod, 1e-9))


def to_uint8(image: np.ndarray) -> np.ndarray:
    """H×W×3 float 0..1 → uint8 display sRGB."""
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


class FaceProbe:
    """dlib re-fitting and descriptors on aligned crops (upscaled so that dlib sees a big face).

    Args:
        upscale: the crop is resized by this factor before dlib reads it.
    """

    def __init__(self, upscale: int = 2) -> None:
        from pipeline.landmarks import get_backend

        self.backend = get_backend("dlib", upsample=1)
        self.upscale = upscale

    def _big(self, crop: np.ndarray) -> np.ndarray:
        import cv2

        img = to_uint8(crop)
        s = img.shape[0] * self.upscale
        return cv2.resize(img, (s, s), interpolation=cv2.INTER_CUBIC) if self.upscale > 1 else img

    def box(self, crop: np.ndarray, points: np.ndarray) -> tuple[float, float, float, float]:
        """The face box dlib's detector finds in ``crop`` (nearest to ``points``), crop pixels;
        the landmarks' bounding box when it finds none."""
        big = self._big(crop)
        u = self.upscale
        centre = np.asarray(points, np.float64).mean(0) * u
        dets = self.backend.detect(big)
        if dets:
            d = min(
                dets,
                key=lambda q: np.hypot(
                    (q.box[0] + q.box[2]) / 2 - centre[0], (q.box[1] + q.box[3]) / 2 - centre[1]
                ),
            )
            return tuple(v / u for v in d.box)  # type: ignore[return-value]
        p = np.asarray(points, np.float64)
        x0, y0 = p.min(0)
        x1, y1 = p.max(0)
        return (float(x0), float(y0), float(x1), float(y1))

    def fit(self, crop: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """dlib's 68 points on ``crop`` (H×W×3 float 0..1) inside ``box`` → 68×2 crop pixels."""
        u = self.upscale
        det = self.backend.fit(self._big(crop), tuple(v * u for v in box))
        return np.asarray(det.points, np.float64) / u

    def descriptor(self, crop: np.ndarray, points: np.ndarray) -> np.ndarray:
        """dlib's 128-d descriptor of the face in ``crop`` with landmarks ``points`` (crop px)."""
        from pipeline.identity import face_descriptor

        return face_descriptor(self._big(crop), np.asarray(points, np.float64) * self.upscale)


# --------------------------------------------------------------------------------------------
# The harness


def _summary(rows: list[dict[str, Any]], keys: Sequence[str]) -> dict[str, float]:
    out = {}
    for key in keys:
        vals = [r[key] for r in rows if key in r and r[key] is not None and np.isfinite(r[key])]
        out[key] = float(np.mean(vals)) if vals else float("nan")
    return out


def _driving_cross(
    target: ClipFaces, ref_rows: np.ndarray, driving: ClipFaces, runs: list[np.ndarray]
) -> np.ndarray:
    """The driving clip's landmarks retargeted onto the target's mean reference shape.

    Returns: N×68×2 float32 crop pixels, one per row of ``driving`` (aligned crop space).
    """
    from pipeline.retarget import mean_shape, retarget

    target_mean = mean_shape(target.points[ref_rows])
    return retarget(driving.points, target_mean).astype(np.float32)


def evaluate_clip(
    clip: str | Path,
    k: int = 8,
    minutes: float = 20.0,
    profile: str = "cpu-preview",
    mode: Literal["self", "cross"] = "self",
    driving: str | Path | None = None,
    *,
    tests: int = 40,
    run_length: int = 8,
    min_gap: int = 5,
    max_frames: int | None = None,
    out_dir: str | Path | None = None,
    cache: str | Path | None = None,
    seed: int = 0,
    finetune_overrides: dict[str, Any] | None = None,
    base: str | Path | None = None,
) -> dict[str, Any]:
    """Fine-tune on K frames of ``clip`` and score it against the warp baseline.

    Args:
        clip: the clip whose frames are the references (and, in self mode, the truth).
        k: references, spread evenly over the tracked frames.
        minutes: fine-tuning wall-time budget.
        profile: model profile (``configs/models``); its ``image_size`` is the crop size.
        mode: ``"self"`` (self-reenactment) or ``"cross"`` (drive with ``driving``).
        driving: the performer's clip, for ``mode="cross"``.
        tests: driving frames scored.
        run_length: consecutive frames per run of driving frames (temporal jitter needs ≥ 2).
        min_gap: driving frames are more than this many frames from every reference (self mode).
        max_frames: read only the first this many frames of each clip.
        out_dir: where the fine-tune, ``eval.json`` and ``eval.png`` go; a temporary folder
            (deleted) when ``None``.
        cache: landmark cache folder; ``None`` tracks every time.
        seed: fine-tuning seed.
        finetune_overrides: extra :class:`~pipeline.train.finetune.FinetuneConfig` fields.
        base: a meta-trained base checkpoint (``likeness train-base``) to fine-tune from; from
            scratch when ``None``. Its SHA-256 is recorded in the result. A base meant for a
            fair score must not have seen ``clip``.

    Returns:
        the JSON-able result: ``{"schema", "clip", "mode", "k", "profile", "size", "minutes",
        "train": {...}, "frames": [per-frame rows], "learned": {...}, "warp": {...},
        "delta": {...}, "wins": {...}}``; ``learned``/``warp`` hold the means of ``psnr``,
        ``ssim``, ``identity``, ``landmark_error``, ``jitter``, ``jitter_raw`` (self) or
        ``identity_target``, ``identity_performer``, ``expression_error``, ``jitter_raw``
        (cross).

    Raises:
        EvalError: bad arguments, a missing base, too short a clip.
        NoFaceError: no face tracked.
    """
    import tempfile

    from pipeline.config import to_jsonable
    from pipeline.models import load_profile
    from pipeline.models.warp import warp_baseline
    from pipeline.train.finetune import ActorModel, FinetuneConfig, finetune

    if mode not in ("self", "cross"):
        raise EvalError(f"unknown mode {mode!r}", "use 'self' or 'cross'")
    if mode == "cross" and driving is None:
        raise EvalError("cross-identity mode needs a driving clip", "pass driving=PATH")
    if not minutes > 0:
        raise EvalError(f"minutes must be positive, got {minutes}", "pass e.g. 20")
    if base is not None and not Path(base).is_file():
        raise EvalError(
            f"base checkpoint {base} does not exist",
            "train one with `likeness train-base CORPUS --out DIR` (on clips other than the one "
            "scored), or leave --base out to fine-tune from scratch",
        )
    size = load_profile(profile).image_size
    faces = load_clip(clip, size, max_frames, cache)
    ref_rows, runs = pick_frames(
        faces.frames, k, tests, run_length, min_gap if mode == "self" else -1
    )
    drive_pts: np.ndarray
    if mode == "cross":
        perf = load_clip(driving, size, max_frames, cache)  # type: ignore[arg-type]
        _, runs = pick_frames(perf.frames, 1, tests, run_length, -1)
        drive_pts = _driving_cross(faces, ref_rows, perf, runs)
    else:
        perf = faces
        drive_pts = faces.points
    refs = [(faces.crops[i], faces.points[i]) for i in ref_rows]
    ref_imgs, ref_pts = faces.crops[ref_rows], faces.points[ref_rows]

    tmp = None
    if out_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="likeness_eval_")
        out_dir = tmp.name
    out_dir = Path(out_dir)
    try:
        cfg = FinetuneConfig(
            **{
                "profile": profile,
                "steps": 1_000_000,
                "max_minutes": minutes,
                "checkpoint_every": 500,
                "log_every": 100,
                "device": "auto",
                "seed": seed,
                **(finetune_overrides or {}),
            }
        )
        base_sha = sha256_file(base) if base is not None else None
        res = finetune(
            refs, cfg, out_dir / "finetune", base_checkpoint=base, base_sha256=base_sha,
            resume=False, actor_id=faces.name,
        )  # fmt: skip
        model = ActorModel.from_checkpoint(res.checkpoint, res.sha256)
        probe = FaceProbe()
        target_desc = None
        if mode == "cross":
            descs = [probe.descriptor(im, pt) for im, pt in zip(ref_imgs, ref_pts)]
            target_desc = np.mean(descs, axis=0)
        rows: list[dict[str, Any]] = []
        tracks: dict[str, list[list[np.ndarray]]] = {"learned": [], "warp": [], "truth": []}
        examples = []
        for r, run in enumerate(runs):
            for key in tracks:
                tracks[key].append([])
            for i in run:
                pts = drive_pts[i]
                truth = perf.crops[i]
                outputs = {
                    "learned": model(pts),
                    "warp": warp_baseline(ref_imgs, ref_pts, pts)[0],
                }
                truth_box = probe.box(truth, perf.points[i])
                truth_fit = probe.fit(truth, truth_box)
                # Self mode: every image is fitted in the truth's face box, so the detector's
                # box noise cancels; cross mode: the outputs share the warp's box.
                box = truth_box if mode == "self" else probe.box(outputs["warp"], pts)
                tracks["truth"][r].append(truth_fit if mode == "self" else pts)
                row: dict[str, Any] = {"frame": int(perf.frames[i]), "run": r}
                truth_desc = probe.descriptor(truth, truth_fit)
                face_w = face_weights(perf.points[i], size) if mode == "self" else None
                for name, img in outputs.items():
                    fit = probe.fit(img, box)
                    tracks[name][r].append(fit)
                    desc = probe.descriptor(img, fit)
                    if mode == "self":
                        row[f"{name}_psnr"] = psnr(img, truth)
                        row[f"{name}_ssim"] = ssim(img, truth)
                        row[f"{name}_ssim_face"] = face_ssim(img, truth, face_w)
                        row[f"{name}_psnr_face"] = face_psnr(img, truth, face_w)
                        row[f"{name}_identity"] = descriptor_distance_(desc, truth_desc)
                        row[f"{name}_landmark_error"] = landmark_error(fit, truth_fit)
                    else:
                        row[f"{name}_identity_target"] = descriptor_distance_(desc, target_desc)
                        row[f"{name}_identity_performer"] = descriptor_distance_(desc, truth_desc)
                        row[f"{name}_expression_error"] = landmark_error(fit, pts)
                rows.append(row)
                if len(examples) < 4 and i == run[len(run) // 2]:
                    examples.append((truth, outputs["warp"], outputs["learned"]))
        from pipeline.qc.tracking import jitter

        result_sys: dict[str, dict[str, float]] = {}
        metric_keys = (
            ("psnr", "ssim", "identity", "landmark_error", "ssim_face", "psnr_face")
            if mode == "self"
            else ("identity_target", "identity_performer", "expression_error")
        )
        for name in ("learned", "warp"):
            summ = {m: _summary(rows, [f"{name}_{m}"])[f"{name}_{m}"] for m in metric_keys}
            jit, raw = [], []
            for run_pts, run_ref in zip(tracks[name], tracks["truth"]):
                p, q = np.stack(run_pts), np.stack(run_ref)
                jit.append(error_jitter(p, q))
                iod = float(np.mean([inter_ocular(x) for x in q]))
                raw.append(float(np.nanmean(jitter(p)[1:])) / max(iod, 1e-9))
            summ["jitter"] = float(np.nanmean(jit))
            summ["jitter_raw"] = float(np.nanmean(raw))
            result_sys[name] = summ
        delta = {m: result_sys["learned"][m] - result_sys["warp"][m] for m in result_sys["warp"]}
        lower_better = {
            "identity",
            "landmark_error",
            "jitter",
            "identity_target",
            "expression_error",
            "jitter_raw",
        }
        wins = {
            m: bool(d > 0) if m not in lower_better else bool(d < 0)
            for m, d in delta.items()
            if m != "identity_performer"
        }
        result: dict[str, Any] = {
            "schema": SCHEMA,
            "clip": str(clip),
            "name": faces.name,
            "mode": mode,
            "driving": None if driving is None else str(driving),
            "k": k,
            "profile": profile,
            "size": size,
            "minutes": minutes,
            "reference_frames": [int(faces.frames[i]) for i in ref_rows],
            "driving_frames": len(rows),
            "metrics": {
                "ssim": "skimage structural_similarity, gaussian sigma 1.5 (11x11), "
                "population covariance, data_range 1, mean over RGB",
                "psnr": "dB over the whole aligned crop, sRGB 0..1",
                "identity": "L2 of dlib 128-d descriptors, output vs truth (<0.6 same person)",
                "landmark_error": "dlib 68 points re-fitted in the truth's face box, mean "
                "distance / truth inter-ocular distance",
                "jitter": "RMS frame-to-frame change of the landmark error / inter-ocular",
                "ssim_face": "the SSIM map averaged inside the production face matte of the "
                "truth's landmarks (68-point hull plus forehead, feathered): the region a "
                "composite keeps; diagnostic, not a goal metric",
                "psnr_face": "dB of the face-matte-weighted mean squared error; diagnostic",
            },
            "train": {
                "steps": res.step,
                "stopped_by": res.stopped_by,
                "seconds": round(res.elapsed_s, 1),
                "best_step": res.best_step,
                "holdout_loss": res.holdout_loss,
                "fusion": {  # G's warp input, as chosen by the fine-tune
                    "top": model.fuse_top,
                    "temperature": model.fuse_temperature,
                    "spline": model.fuse_spline,
                    "flow": model.fuse_flow,
                },
                "base": str(base) if base is not None else None,
                "base_sha256": base_sha,
                "config": to_jsonable(cfg),
            },
            "learned": result_sys["learned"],
            "warp": result_sys["warp"],
            "delta": delta,
            "wins": wins,
            "frames": rows,
        }
        from pipeline.atomic import write_json

        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / "eval.json", result)
        plot_result(result, examples, out_dir / "eval.png")
        if tmp is None:
            result["json"] = str(out_dir / "eval.json")
            result["plot"] = str(out_dir / "eval.png")
        return result
    finally:
        if tmp is not None:
            tmp.cleanup()


def descriptor_distance_(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """:func:`pipeline.identity.descriptor_distance`, NaN when either descriptor is missing."""
    from pipeline.identity import descriptor_distance

    if a is None or b is None:
        return float("nan")
    return descriptor_distance(a, b)


def plot_result(
    result: dict[str, Any],
    examples: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    path: str | Path,
) -> Path:
    """Per-frame curves of both systems and a strip of examples (truth | warp | learned), PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from pipeline.atomic import atomic_path

    rows = result["frames"]
    keys = (
        ["psnr", "ssim", "landmark_error", "identity"]
        if result["mode"] == "self"
        else ["identity_target", "identity_performer", "expression_error"]
    )
    fig, axes = plt.subplots(1, len(keys) + 1, figsize=(4 * (len(keys) + 1), 3.4), dpi=90)
    x = np.arange(len(rows))
    for ax, key in zip(axes, keys):
        for name, colour in (("warp", "tab:gray"), ("learned", "tab:blue")):
            y = [r.get(f"{name}_{key}", np.nan) for r in rows]
            ax.plot(
                x,
                y,
                ".-",
                color=colour,
                linewidth=1,
                markersize=3,
                label=f"{name} {result[name][key]:.3f}",
            )
        ax.set_title(key)
        ax.set_xlabel("driving frame")
        ax.legend(fontsize=7)
    if examples:
        strip = np.concatenate([np.concatenate(e, axis=1) for e in examples], axis=0)
        axes[-1].imshow(np.clip(strip, 0, 1))
        axes[-1].set_title("truth | warp | learned", fontsize=8)
    axes[-1].axis("off")
    fig.suptitle(f"{result['name']} ({result['mode']}, K={result['k']}, {result['minutes']} min)")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------
# CLI


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``likeness eval``."""
    ap = argparse.ArgumentParser(
        prog="likeness eval",
        description="Self-reenactment (or cross-identity) quality harness: fine-tuned model "
        "against the warp baseline on a real clip.",
    )
    ap.add_argument("clip", type=Path, help="clip giving the references (and the truth)")
    ap.add_argument("--k", type=int, default=8, help="reference frames (default 8)")
    ap.add_argument("--minutes", type=float, default=20.0, help="fine-tuning budget (20)")
    ap.add_argument("--profile", default="cpu-preview", help="model profile (cpu-preview)")
    ap.add_argument("--mode", choices=("self", "cross"), default="self")
    ap.add_argument("--driving", type=Path, help="performer clip for --mode cross")
    ap.add_argument("--tests", type=int, default=40, help="driving frames scored (40)")
    ap.add_argument("--run-length", type=int, default=8, help="consecutive frames per run (8)")
    ap.add_argument(
        "--min-gap",
        type=int,
        default=5,
        help="driving frames are more than this many frames from a reference (5)",
    )
    ap.add_argument("--max-frames", type=int, help="read only the first N frames")
    ap.add_argument("--out", type=Path, help="output folder (fine-tune, eval.json, eval.png)")
    ap.add_argument("--json", type=Path, help="also write the result JSON here")
    ap.add_argument("--cache", type=Path, help="landmark cache folder")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--base", type=Path, help="meta-trained base checkpoint to fine-tune from (train-base)"
    )
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """``likeness eval``: run :func:`evaluate_clip` and print the summary; 0 on success."""
    import torch

    args = build_parser().parse_args(None if argv is None else list(argv))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    out = args.out or Path(f"eval_{args.clip.stem}")
    try:
        res = evaluate_clip(
            args.clip, args.k, args.minutes, args.profile, args.mode, args.driving,
            tests=args.tests, run_length=args.run_length, min_gap=args.min_gap,
            max_frames=args.max_frames, out_dir=out, cache=args.cache, seed=args.seed,
            base=args.base,
        )  # fmt: skip
    except LikenessError as exc:
        print(f"likeness eval: {exc}")
        return 2
    if args.json:
        from pipeline.atomic import write_json

        write_json(args.json, res)
    print(format_summary(res))
    return 0


def format_summary(res: dict[str, Any]) -> str:
    """One block of text: each metric, learned vs warp."""
    lines = [
        f"{res['name']} ({res['mode']}, K={res['k']}, {res['train']['steps']} steps, "
        f"{res['train']['seconds']:.0f} s, best step {res['train']['best_step']})"
    ]
    for m in res["warp"]:
        lines.append(
            f"  {m:20s} learned {res['learned'][m]:8.4f}   warp {res['warp'][m]:8.4f}"
            f"   Δ {res['delta'][m]:+.4f}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
