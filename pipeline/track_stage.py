"""The tracking stages on an ingested plate: per-chunk tracking, then the merge with QC.

Plates are cached scene-linear; the landmark detectors want the picture as it was encoded, so
each frame is converted back to the plate's own colour space and quantised to 8 bits first.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.atomic import atomic_dir
from pipeline.errors import NoFaceError
from pipeline.frames import FrameRange
from pipeline.ingest import CachedPlate, read_cached_frame
from pipeline.landmarks.sidecar import Landmarks, save_landmarks
from pipeline.track import (
    IdentityHint,
    TrackConfig,
    check_gaps,
    hint_from_seed,
    load_chunk,
    make_backend,
    merge_chunks,
    save_chunk,
    track_chunk,
)

CHUNK_FILE = "track.npz"
LANDMARKS_FILE = "landmarks.npz"


def display_frame(plate: CachedPlate, frame: int, color: Any) -> np.ndarray:
    """A cached frame as the detectors see it. Returns: H×W×3 uint8 in the plate's colour space."""
    lin = read_cached_frame(plate, frame)
    enc = color.convert(lin, plate.working_space, plate.source_colorspace)
    return (np.clip(enc, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def display_frames(
    plate: CachedPlate, frames: FrameRange, ocio_config: str | None
) -> Iterator[tuple[int, np.ndarray]]:
    from pipeline.color import ColorPipeline

    color = ColorPipeline(ocio_config)
    for n in frames:
        yield n, display_frame(plate, n, color)


def identity_hint(
    plate: CachedPlate,
    cfg: TrackConfig,
    ocio_config: str | None,
    performer_reference: Path | None,
    seed_box: tuple[float, float, float, float] | None,
) -> IdentityHint | None:
    """The performer to follow: a descriptor from their reference still, or from the seed box.

    The seed box is given on the plate's first frame; it is turned into a descriptor once so
    that every chunk (and every farm node) follows the same face.

    Raises:
        NoFaceError: the reference still shows no face.
    """
    if performer_reference is not None:
        from pipeline.identity import face_descriptor
        from pipeline.io.image import load_image_rgb

        img, _ = load_image_rgb(Path(performer_reference), 8192 * 8192)
        img8 = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8) if img.dtype != np.uint8 else img
        dets = make_backend(cfg).detect(img8)
        if not dets:
            raise NoFaceError(
                f"no face found in the performer reference {performer_reference}",
                "use a sharp, frontal still of the plate performer, or give plate.performer.seed_box",
            )
        best = max(dets, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
        return IdentityHint(reference_descriptor=face_descriptor(img8, best))
    if seed_box is not None:
        first = next(
            display_frames(plate, FrameRange(plate.frames.first, plate.frames.first), ocio_config)
        )[1]
        return hint_from_seed(first, tuple(float(v) for v in seed_box), cfg)
    return None


def run_track_chunk(
    plate: CachedPlate,
    frames: FrameRange,
    cfg: TrackConfig,
    hint: IdentityHint | None,
    out_dir: Path,
    ocio_config: str | None = None,
) -> dict[str, Any]:
    """Track one chunk of frames into ``out_dir/track.npz`` (the folder appears whole)."""
    track = track_chunk(display_frames(plate, frames, ocio_config), cfg, hint)
    with atomic_dir(out_dir) as tmp:
        save_chunk(tmp / CHUNK_FILE, track)
    found = int(np.isfinite(track.points[:, 0, 0]).sum())
    return {"frames": str(frames), "faces_found": found, "keyframes": int(track.keyframe.sum())}


def run_track_merge(
    plate: CachedPlate,
    chunk_dirs: list[Path],
    cfg: TrackConfig,
    out_dir: Path,
    ocio_config: str | None = None,
    review_codec: str = "prores_422hq",
) -> dict[str, Any]:
    """Merge chunk tracks into ``landmarks.npz`` plus QC: an overlay movie and a tracking plot.

    Raises:
        NoFaceError: no frame of the shot shows the performer's face.
        FaceLostError: the face is missing from some frames and ``cfg.on_gap`` is ``"error"``.
    """
    from pipeline.color import ColorPipeline
    from pipeline.io import ProResWriter
    from pipeline.qc.tracking import jitter, overlay_frame, plot_tracking

    chunks = [load_chunk(Path(d) / CHUNK_FILE) for d in chunk_dirs]
    lm: Landmarks = merge_chunks(chunks, cfg, (plate.width, plate.height))
    if not lm.tracked.any():
        raise NoFaceError(
            f"no face was tracked in any of the {len(lm.frames)} frames of {plate.source}",
            "check the plate shows a face of at least ~80 px, or lower track.min_detection_score",
        )
    check_gaps(lm, cfg, plate.source)
    color = ColorPipeline(ocio_config)
    with atomic_dir(out_dir) as tmp:
        save_landmarks(tmp / LANDMARKS_FILE, lm)
        qc = tmp / "qc"
        qc.mkdir()
        plot_tracking(lm, qc / "tracking.png")
        with ProResWriter(
            qc / "landmarks_overlay.mov",
            width=plate.width,
            height=plate.height,
            fps=plate.fps,
            codec="prores_422hq",
            timecode=plate.timecode_at(plate.frames.first),
            metadata={"comment": "likeness landmark QC"},
            color="srgb",
        ) as movie:
            for i, n in enumerate(lm.frames):
                img = display_frame(plate, int(n), color)
                over = overlay_frame(
                    img,
                    lm.points[i],
                    float(lm.confidence[i]),
                    bool(lm.tracked[i]),
                    bool(lm.interpolated[i]),
                )
                movie.write(over.astype(np.float32) / 255.0)
    j = jitter(lm.points)
    return {
        "frames": len(lm.frames),
        "tracked": int(lm.tracked.sum()),
        "interpolated": int(lm.interpolated.sum()),
        "flagged_gaps": [list(map(int, g)) for g in lm.gaps],
        "mean_confidence": float(np.nanmean(np.where(lm.tracked, lm.confidence, np.nan)))
        if lm.tracked.any()
        else 0.0,
        "median_jitter_px": float(np.nanmedian(j)) if np.isfinite(j).any() else None,
    }
