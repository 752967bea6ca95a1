"""Chunk tracks joined into the shot's landmarks: identity check across chunks, breaks at cuts,
smoothing, gap filling and the flagged gaps."""

from __future__ import annotations

import os

import numpy as np

from pipeline.align import invert_affine
from pipeline.errors import FaceLostError, StageError
from pipeline.landmarks.sidecar import Landmarks
from pipeline.tracking.chunks import ChunkTrack
from pipeline.tracking.identity import (
    chip_descriptor,
    descriptor_distance,
)
from pipeline.tracking.smooth import smooth_track
from pipeline.tracking.tracker import TrackerParams, iou


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive index runs where ``mask`` is True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0] - 1, strict=True))


def _identity_outliers(chunks: list[ChunkTrack], threshold: float) -> list[int]:
    """Chunks whose descriptor is farther than ``threshold`` from the shot's medoid."""
    descs = {}
    for i, c in enumerate(chunks):
        if np.isfinite(c.descriptor).all():
            descs[i] = c.descriptor
        elif c.face_chip.size:
            descs[i] = chip_descriptor(c.face_chip)
    have = sorted(descs)
    if len(have) < 2:
        return []
    d = np.array([[descriptor_distance(descs[i], descs[j]) for j in have] for i in have])
    tracked = np.array([(chunks[i].confidence > 0).sum() for i in have])
    # The medoid, ties broken towards the chunk with more frames.
    medoid = int(np.lexsort((-tracked, np.median(d, 1)))[0])
    return [have[k] for k in range(len(have)) if d[k, medoid] >= threshold]


def _tiled(chunks: list[ChunkTrack], image_size: tuple[int, int]) -> list[ChunkTrack]:
    """The chunks in frame order, checked to be of this plate and to tile its frames.

    Raises:
        StageError: no chunks, chunks that overlap or leave holes, or another plate size.
    """
    if not chunks:
        raise StageError("merge_chunks got no chunks", "run the track chunks first")
    chunks = sorted(chunks, key=lambda c: int(c.frames[0]))
    for c in chunks:
        if tuple(c.image_size) != tuple(image_size):
            raise StageError(
                f"chunk {c.frames[0]}-{c.frames[-1]} was tracked at {c.image_size}, "
                f"the plate is {tuple(image_size)}",
                "rerun the track chunks on this plate",
            )
    frames = np.concatenate([c.frames for c in chunks])
    if np.any(np.diff(frames) != 1):
        k = int(np.nonzero(np.diff(frames) != 1)[0][0])
        raise StageError(
            f"track chunks do not tile the shot: frame {frames[k]} is followed by {frames[k + 1]}",
            "rerun the missing or overlapping chunks",
        )
    return chunks


def _fill_or_flag(
    frames: np.ndarray, seen: np.ndarray, breaks: np.ndarray, max_gap: int
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Which unseen frames are interpolated (N bool) and which gaps are flagged (first, last):
    a gap is filled when it is short and bounded by tracked frames of one stretch."""
    n = len(frames)
    gaps: list[tuple[int, int]] = []
    fill = np.zeros(n, bool)
    for a, b in _runs(~seen):
        bounded = a > 0 and b < n - 1 and not breaks[a : b + 2].any()
        if bounded and b - a + 1 <= max_gap:
            fill[a : b + 1] = True
        else:
            gaps.append((int(frames[a]), int(frames[b])))
    return fill, gaps


def merge_chunks(
    chunks: list[ChunkTrack], cfg: TrackerParams, image_size: tuple[int, int]
) -> Landmarks:
    """Join chunk tracks into the shot's smoothed landmarks and alignment transforms.

    Steps: order the chunks and check they tile the shot; drop chunks whose face descriptor is
    another person than the rest of the shot (their frames become flagged gaps); break the track
    at cuts, at long gaps and at chunk borders where the face jumps; smooth each stretch (which
    also fills short gaps); flag the long gaps.

    Args:
        chunks: the shot's chunks, any order.
        cfg: tracking settings (gap length, identity threshold, smoothing, crop size).
        image_size: ``(width, height)`` of the plate.

    Returns:
        the shot's :class:`Landmarks`.

    Raises:
        StageError: no chunks, chunks that overlap or leave holes, or another plate size.
    """
    chunks = _tiled(chunks, image_size)
    frames = np.concatenate([c.frames for c in chunks])
    rejected = _identity_outliers(chunks, cfg.identity_threshold)
    raw = np.concatenate([c.points for c in chunks]).astype(np.float64)
    conf = np.concatenate([c.confidence for c in chunks]).astype(np.float32)
    box = np.concatenate([c.box for c in chunks]).astype(np.float32)
    breaks = np.concatenate([c.cut for c in chunks])
    starts = np.cumsum([0] + [len(c.frames) for c in chunks])
    for i in rejected:
        sl = slice(starts[i], starts[i + 1])
        raw[sl], conf[sl], box[sl] = np.nan, 0.0, np.nan
    for s in starts[1:-1]:
        # A face that jumps across a chunk border is a new stretch, not motion to smooth over.
        if np.isfinite(box[s - 1]).all() and np.isfinite(box[s]).all():
            if iou(tuple(box[s - 1]), tuple(box[s])) < 0.3:
                breaks[s] = True
    seen = np.isfinite(raw).all((1, 2))
    fill, gaps = _fill_or_flag(frames, seen, breaks, cfg.max_gap_interpolate)
    tracked = seen | fill
    points = np.full((len(frames), 68, 2), np.nan)  # N×68×2 plate pixels, smoothed
    pose = np.full((len(frames), 2, 3), np.nan)  # N×2×3 template → plate
    # Stretches: runs of tracked frames, also split at cuts.
    for a, b in _runs(tracked):
        cuts = [a] + [int(i) for i in np.nonzero(breaks[a + 1 : b + 1])[0] + a + 1] + [b + 1]
        for s, e in zip(cuts[:-1], cuts[1:], strict=True):
            points[s:e], pose[s:e] = smooth_track(raw[s:e], cfg.smoothing)
    inverse = pose.copy()
    inverse[:, :, :2] /= cfg.crop_size
    transform = np.full_like(inverse, np.nan)
    for i in np.nonzero(tracked)[0]:
        transform[i] = invert_affine(inverse[i])
    for a, b in _runs(fill):
        for j in range(4):
            t = np.arange(a - 1, b + 2)
            box[a : b + 1, j] = np.interp(np.arange(a, b + 1), t[[0, -1]], box[[a - 1, b + 1], j])
    return Landmarks(
        frames=frames,
        points=points.astype(np.float32),
        raw_points=raw.astype(np.float32),
        confidence=conf,
        box=box,
        transform=transform,
        inverse=inverse,
        tracked=tracked,
        interpolated=fill,
        gaps=gaps,
        crop_size=int(cfg.crop_size),
        image_size=(int(image_size[0]), int(image_size[1])),
    )


def _edge_of(box: np.ndarray, image_size: tuple[int, int], margin: float = 0.02) -> str | None:
    """Which frame edge a face box touches (within ``margin`` of the frame side), if any."""
    if not np.all(np.isfinite(box)):
        return None
    w, h = image_size
    x0, y0, x1, y1 = (float(v) for v in box)
    for name, near in (
        ("left", x0 <= margin * w),
        ("right", x1 >= (1.0 - margin) * w),
        ("top", y0 <= margin * h),
        ("bottom", y1 >= (1.0 - margin) * h),
    ):
        if near:
            return name
    return None


def describe_gap(lm: Landmarks, gap: tuple[int, int]) -> str:
    """One line on a flagged gap: its frames and, where it can tell, why the face was lost.

    A gap whose neighbouring tracked frame has its face box on a frame edge is reported as the
    face leaving (or entering) the frame there; otherwise the face was hidden, turned away or
    too small to detect.
    """
    first, last = gap
    span = f"frames {first}-{last} ({last - first + 1} frames)"
    idx = {int(n): i for i, n in enumerate(lm.frames)}
    before, after = idx.get(first - 1), idx.get(last + 1)
    if before is not None and lm.tracked[before]:
        edge = _edge_of(lm.box[before], lm.image_size)
        if edge:
            return f"{span}: the face leaves the frame at the {edge} edge after frame {first - 1}"
    if after is not None and lm.tracked[after]:
        edge = _edge_of(lm.box[after], lm.image_size)
        if edge:
            return f"{span}: the face enters the frame at the {edge} edge at frame {last + 1}"
    return f"{span}: no face was found (hidden, turned away or too small)"


def check_gaps(lm: Landmarks, cfg: TrackerParams, source: str | os.PathLike[str]) -> None:
    """Fail on flagged gaps unless the profile asks for the plate to pass through there.

    Raises:
        FaceLostError: ``cfg.on_gap == "error"`` and the face is missing from some frames.
    """
    if not lm.gaps or cfg.on_gap != "error":
        return
    lines = [describe_gap(lm, g) for g in lm.gaps]
    a, b = max(_runs(lm.tracked), key=lambda r: r[1] - r[0])
    raise FaceLostError(
        f"the performer's face is missing from part of {source}: " + "; ".join(lines),
        "set `plate: frames: A-B` in the shot spec to frames the face is in (the longest tracked run is "
        f"{int(lm.frames[a])}-{int(lm.frames[b])}), or set `track: on_gap: passthrough` in the "
        "profile to keep the plate unchanged on those frames (they are listed in the QC report)",
    )
