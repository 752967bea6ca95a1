"""The track stage: the performer's face followed through the plate, one farm task per chunk of
frames (:func:`run_track_chunk`), then the chunks merged into the shot's landmarks with their QC
(:func:`run_track_merge`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.atomic import atomic_dir
from pipeline.color import ColorPipeline
from pipeline.errors import NoFaceError
from pipeline.frames import FrameRange
from pipeline.io.plate_cache import display_frames, load_cached_plate
from pipeline.landmarks.sidecar import Landmarks, save_landmarks
from pipeline.qc.tracking import jitter, plot_tracking, write_overlay_movie
from pipeline.tracking.chunks import load_chunk, save_chunk
from pipeline.tracking.hint import identity_hint
from pipeline.tracking.merge import check_gaps, merge_chunks
from pipeline.tracking.tracker import TrackerParams, track_chunk

#: A chunk's track, in its stage folder.
CHUNK_FILE = "track.npz"
#: The shot's landmarks, in the merge's stage folder.
LANDMARKS_FILE = "landmarks.npz"


@dataclass(frozen=True)
class TrackConfig(TrackerParams):
    """The ``track:`` section of a profile: the tracker's settings and the chunk size.

    Attributes:
        chunk_size: frames per tracking chunk (one farm task each).
    """

    chunk_size: int = 48

    def validate(self) -> list[tuple[str, str]]:
        """Problems as ``(key, message)``; empty when valid."""
        out = list(super().validate())
        if self.chunk_size < 1:
            out.append(("chunk_size", f"got {self.chunk_size!r}, expected at least 1"))
        return out


def run_track_chunk(
    ingest_dir: Path,
    frames: FrameRange,
    cfg: TrackConfig,
    out_dir: Path,
    *,
    ocio_config: str | None = None,
    performer_reference: Path | None = None,
    seed_box: tuple[float, float, float, float] | None = None,
) -> dict[str, Any]:
    """Track one chunk of frames into ``out_dir/track.npz`` (the folder appears whole).

    Args:
        ingest_dir: the ingest stage's folder.
        frames: the chunk.
        cfg: the track config.
        out_dir: the chunk's final folder.
        ocio_config: the OCIO config (None: $OCIO or the built-in studio config).
        performer_reference, seed_box: which face to follow when the plate holds several.

    Returns:
        manifest extras: frames, faces found, keyframes.

    Raises:
        NoFaceError: the performer reference shows no face, or no face overlaps the seed box.
    """
    plate = load_cached_plate(ingest_dir)
    hint = identity_hint(plate, cfg, ocio_config, performer_reference, seed_box)
    track = track_chunk(display_frames(plate, frames, ocio_config), cfg, hint)
    with atomic_dir(out_dir) as tmp:
        save_chunk(tmp / CHUNK_FILE, track)
    found = int(np.isfinite(track.points[:, 0, 0]).sum())
    return {"frames": str(frames), "faces_found": found, "keyframes": int(track.keyframe.sum())}


def run_track_merge(
    ingest_dir: Path,
    chunk_dirs: list[Path],
    cfg: TrackConfig,
    out_dir: Path,
    *,
    ocio_config: str | None = None,
) -> dict[str, Any]:
    """Merge chunk tracks into ``landmarks.npz`` plus QC: an overlay movie and a tracking plot.

    Args:
        ingest_dir: the ingest stage's folder.
        chunk_dirs: the chunk stages' folders, any order.
        cfg: the track config.
        out_dir: the stage's final folder (appears whole).
        ocio_config: the OCIO config (None: $OCIO or the built-in studio config).

    Returns:
        manifest extras: tracked, interpolated and flagged frames, confidence and jitter.

    Raises:
        NoFaceError: no frame of the shot shows the performer's face.
        FaceLostError: the face is missing from some frames and ``cfg.on_gap`` is ``"error"``.
    """
    plate = load_cached_plate(ingest_dir)
    chunks = [load_chunk(Path(d) / CHUNK_FILE) for d in chunk_dirs]
    lm: Landmarks = merge_chunks(chunks, cfg, (plate.width, plate.height))
    if not lm.tracked.any():
        raise NoFaceError(
            f"no face was tracked in any of the {len(lm.frames)} frames of {plate.source}",
            "check the plate shows a face of at least ~80 px, or lower track.min_detection_score",
        )
    check_gaps(lm, cfg, plate.source)
    with atomic_dir(out_dir) as tmp:
        save_landmarks(tmp / LANDMARKS_FILE, lm)
        (tmp / "qc").mkdir()
        plot_tracking(lm, tmp / "qc" / "tracking.png")
        write_overlay_movie(
            tmp / "qc" / "landmarks_overlay.mov", plate, lm, ColorPipeline(ocio_config)
        )
    j = jitter(lm.points)
    tracked_conf = np.where(lm.tracked, lm.confidence, np.nan)
    return {
        "frames": len(lm.frames),
        "tracked": int(lm.tracked.sum()),
        "interpolated": int(lm.interpolated.sum()),
        "flagged_gaps": [list(map(int, g)) for g in lm.gaps],
        "mean_confidence": float(np.nanmean(tracked_conf)) if lm.tracked.any() else 0.0,
        "median_jitter_px": float(np.nanmedian(j)) if np.isfinite(j).any() else None,
    }
