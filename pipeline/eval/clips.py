"""A real clip tracked as production tracks a plate, aligned, and split into references and
held-out driving frames."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from pipeline.align import align_image
from pipeline.atomic import write_npz
from pipeline.errors import EvalError, NoFaceError
from pipeline.hashing import sha256_file
from pipeline.io import open_plate
from pipeline.stages.track import TrackConfig
from pipeline.tracking.merge import merge_chunks
from pipeline.tracking.tracker import track_chunk

log = logging.getLogger(__name__)


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
