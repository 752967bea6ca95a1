"""Rendering the actor's aligned face crops for driving landmarks.

The driving landmarks are the tracked (smoothed) plate landmarks in crop space. When the plate
performer is someone other than the actor, their expression and head pose are retargeted onto
the actor's mean face shape first, so the synthesized face keeps the actor's proportions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.inference.retarget import mean_shape, retarget
from pipeline.landmarks.sidecar import Landmarks
from pipeline.models.rasterize import rasterize
from pipeline.tracking.identity import descriptor_distance, face_descriptor


def crop_transforms(lm: Landmarks, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame image→crop and crop→image transforms at crop size ``size``.

    The tracking stage keeps transforms at its own crop size; the template scales linearly, so
    the model's size is a uniform scale of those.

    Returns:
        ``(forward, inverse)``: N×2×3 float64 each (NaN where untracked).
    """
    s = size / float(lm.crop_size)
    fwd = lm.transform.astype(np.float64) * s
    inv = lm.inverse.astype(np.float64).copy()
    inv[:, :, :2] /= s
    return fwd, inv


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


def driving_points(
    lm: Landmarks,
    ref_points: np.ndarray,
    size: int,
    retarget_on: bool,
    expression_scale: float = 1.0,
) -> np.ndarray:
    """Crop-space target landmarks for every frame of the shot.

    Args:
        lm: the shot's tracked landmarks (plate pixels).
        ref_points: K×68×2 float32, the actor's reference landmarks in crop pixels.
        size: the model crop size.
        retarget_on: transfer the performer's pose and expression onto the actor's mean shape.
        expression_scale: scale of the transferred expression.

    Returns:
        N×68×2 float64 crop pixels; NaN on untracked frames.
    """

    fwd, _ = crop_transforms(lm, size)
    out = np.full((len(lm.frames), 68, 2), np.nan)
    ok = np.asarray(lm.tracked, bool) & np.isfinite(lm.points).all(axis=(1, 2))
    if not ok.any():
        return out
    plate_pts = lm.points[ok].astype(np.float64)
    if retarget_on:
        target = mean_shape(ref_points.astype(np.float64))
        plate_pts = retarget(plate_pts, target, expression_scale=expression_scale)
    for j, i in enumerate(np.flatnonzero(ok)):
        out[i] = _apply(fwd[i], plate_pts[j])
    return out


def is_same_person(
    plate_face: np.ndarray, plate_points: np.ndarray, refs: Any, threshold: float
) -> tuple[bool, float]:
    """Whether the plate performer is the actor, by dlib descriptor distance to the references.

    Args:
        plate_face: H×W×3 uint8 display frame of the plate.
        plate_points: 68×2 landmarks of the performer in that frame.
        refs: the actor's :class:`~pipeline.references.store.References`.
        threshold: L2 distance under which two faces are the same person.

    Returns:
        ``(same, distance)``, the distance to the nearest reference.
    """

    d_plate = face_descriptor(plate_face, plate_points)
    dists = [
        descriptor_distance(d_plate, face_descriptor(c, p)) for c, p in zip(refs.crops, refs.points)
    ]
    best = float(min(dists))
    return best < threshold, best


def synthesize(
    actor: Any,
    engine: Any,
    targets: np.ndarray,
    batch_size: int,
    progress: Any = None,
) -> np.ndarray:
    """Render crops for crop-space target landmarks.

    Args:
        actor: the :class:`~pipeline.inference.actor.ActorModel` (references for the warp input).
        engine: an engine taking ``landmarks`` (and ``warp``) B×3×S×S float32, giving ``image``.
        targets: N×68×2 crop pixels (NaN rows are skipped).
        batch_size: frames per engine call.
        progress: optional callable ``(done, total)``.

    Returns:
        N×S×S×3 float32 in 0..1, display sRGB (zeros for skipped rows).
    """

    s = actor.size
    out = np.zeros((len(targets), s, s, 3), np.float32)
    todo = [i for i in range(len(targets)) if np.isfinite(targets[i]).all()]
    names = {spec.name for spec in engine.input_spec()}
    for b in range(0, len(todo), batch_size):
        idx = todo[b : b + batch_size]
        lms = np.stack([rasterize(targets[i].astype(np.float32), s) for i in idx])  # B×S×S×3
        feed = {"landmarks": np.ascontiguousarray(lms.transpose(0, 3, 1, 2), np.float32)}  # B×3×S×S
        if "warp" in names:
            warps = np.stack([actor.warp_input(targets[i].astype(np.float32)) for i in idx])
            feed["warp"] = np.ascontiguousarray(
                warps.transpose(0, 3, 1, 2), np.float32
            )  # B×3×S×S sRGB
        img = np.asarray(engine(**feed)["image"], np.float32)  # B×3×S×S display sRGB
        out[idx] = np.clip(img.transpose(0, 2, 3, 1), 0.0, 1.0)
        if progress is not None:
            progress(min(b + batch_size, len(todo)), len(todo))
    return out
