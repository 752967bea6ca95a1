"""Which face to follow: an identity hint from the performer's reference still or a seed box."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.errors import NoFaceError
from pipeline.frames import FrameRange
from pipeline.io.image import load_image_rgb
from pipeline.io.plate_cache import CachedPlate, display_frames
from pipeline.landmarks.base import Box
from pipeline.tracking.identity import (
    face_descriptor,
)
from pipeline.tracking.tracker import IdentityHint, TrackerParams, iou, make_backend


def hint_from_seed(image: np.ndarray, seed_box: Box, cfg: TrackerParams) -> IdentityHint:
    """Turn a seed box on one frame into a descriptor hint usable by every chunk of the shot.

    Args:
        image: H×W×3 uint8 display sRGB, the frame the seed box was drawn on.
        seed_box: ``(x0, y0, x1, y1)`` pixels around the performer's face.
        cfg: tracking settings (for the backend).

    Raises:
        NoFaceError: no detected face overlaps the seed box.
    """
    dets = make_backend(cfg).detect(image)
    best = max(dets, key=lambda d: iou(d.box, seed_box), default=None)
    if best is None or iou(best.box, seed_box) <= 0.0:
        raise NoFaceError(
            f"no face found overlapping the seed box {tuple(round(v) for v in seed_box)} "
            f"({len(dets)} face(s) detected)",
            "draw the seed box around the performer's face on the shot's first frame",
        )
    return IdentityHint(face_descriptor(image, best), tuple(float(v) for v in seed_box))


def hint_from_reference(path: Path, cfg: TrackerParams) -> IdentityHint:
    """A descriptor hint from a still of the plate performer (their largest face in it).

    Raises:
        DecodeError: the still is unreadable.
        NoFaceError: it shows no face.
    """
    img, _ = load_image_rgb(path, 8192 * 8192)
    img8 = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8) if img.dtype != np.uint8 else img
    dets = make_backend(cfg).detect(img8)
    if not dets:
        raise NoFaceError(
            f"no face found in the performer reference {path}",
            "use a sharp, frontal still of the plate performer, or give plate.performer.seed_box",
        )
    best = max(dets, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
    return IdentityHint(reference_descriptor=face_descriptor(img8, best))


def identity_hint(
    plate: CachedPlate,
    cfg: TrackerParams,
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
        return hint_from_reference(Path(performer_reference), cfg)
    if seed_box is not None:
        first = next(
            display_frames(plate, FrameRange(plate.frames.first, plate.frames.first), ocio_config)
        )[1]
        return hint_from_seed(first, tuple(float(v) for v in seed_box), cfg)
    return None
