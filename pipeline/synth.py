"""Synthesis: render the actor's aligned face crop for every tracked frame of a chunk.

The driving landmarks are the tracked (smoothed) plate landmarks in crop space. When the plate
performer is someone other than the actor, their expression and head pose are retargeted onto
the actor's mean face shape first, so the synthesized face keeps the actor's proportions.

A chunk's output ``faces.npz`` (schema ``likeness.faces/1``) holds, per plate frame: the face
crop (S×S×3 float16, display sRGB), its landmarks in crop pixels, the crop→plate transform and a
``valid`` flag (False where tracking failed: nothing is synthesized there).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pipeline.atomic import atomic_dir, write_npz
from pipeline.errors import SchemaError
from pipeline.frames import FrameRange
from pipeline.landmarks.sidecar import Landmarks
from pipeline.npz import read_sidecar

FACES_SCHEMA = "likeness.faces/1"
FACES_FILE = "faces.npz"


@dataclass(frozen=True)
class SynthConfig:
    """The ``synth:`` section of a profile."""

    chunk_size: int = 24
    batch_size: int = 8
    retarget: Literal["auto", "always", "never"] = "auto"
    same_person_threshold: float = 0.6  # dlib descriptor L2 distance; under it: same person
    expression_scale: float = 1.0

    def validate(self) -> list[tuple[str, str]]:
        out = []
        if self.chunk_size < 1:
            out.append(("chunk_size", f"got {self.chunk_size}, expected at least 1"))
        if self.batch_size < 1:
            out.append(("batch_size", f"got {self.batch_size}, expected at least 1"))
        if not 0.0 < self.same_person_threshold < 2.0:
            out.append(
                ("same_person_threshold", f"got {self.same_person_threshold}, expected 0..2")
            )
        return out


@dataclass(frozen=True)
class Faces:
    """Synthesized crops of one chunk (see the module docstring for the arrays)."""

    frames: np.ndarray  # N int64 plate frame numbers
    faces: np.ndarray  # N×S×S×3 float16, display sRGB (zeros where not valid)
    points: np.ndarray  # N×68×2 float32 crop pixels (NaN where not valid)
    inverse: np.ndarray  # N×2×3 float64 crop pixel → plate pixel (NaN where not valid)
    valid: np.ndarray  # N bool


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
    from pipeline.retarget import mean_shape, retarget

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
        refs: the actor's :class:`~pipeline.references.References`.
        threshold: L2 distance under which two faces are the same person.

    Returns:
        ``(same, distance)``, the distance to the nearest reference.
    """
    from pipeline.identity import descriptor_distance, face_descriptor

    d_plate = face_descriptor(plate_face, plate_points)
    dists = [
        descriptor_distance(d_plate, face_descriptor(c, p)) for c, p in zip(refs.crops, refs.points)
    ]
    best = float(min(dists))
    return best < threshold, best


def save_faces(path: Path, faces: Faces) -> Path:
    return write_npz(
        path,
        schema=np.array(FACES_SCHEMA),
        frames=faces.frames,
        faces=faces.faces,
        points=faces.points,
        inverse=faces.inverse,
        valid=faces.valid,
    )


def load_faces(path: Path) -> Faces:
    """Read ``faces.npz`` without unpickling.

    Raises:
        SchemaError: unreadable or damaged file, unknown schema, missing arrays, or arrays of
            the wrong type or shape.
    """
    fix = "rerun that synthesis chunk"
    names = ("frames", "faces", "points", "inverse", "valid")
    z = read_sidecar(path, SchemaError, "faces file", fix, FACES_SCHEMA, names)
    frames, faces, points, inverse, valid = (z[k] for k in names)
    n = len(frames) if frames.ndim == 1 else -1
    if (
        frames.dtype.kind not in "iu"
        or faces.ndim != 4
        or faces.shape[0] != n
        or faces.shape[3] != 3
        or faces.dtype.kind != "f"
        or points.shape != (n, 68, 2)
        or points.dtype.kind != "f"
        or inverse.shape != (n, 2, 3)
        or inverse.dtype.kind != "f"
        or valid.shape != (n,)
        or valid.dtype != bool
    ):
        raise SchemaError(
            f"{path}: malformed faces: "
            + ", ".join(f"{k} {z[k].dtype} {z[k].shape}" for k in names)
            + " (want N int, N×S×S×3, N×68×2, N×2×3 float, N bool)",
            fix,
        )
    return Faces(frames, faces, points, inverse, valid)


def open_engine(export_dir: Path, engine_cfg: Any, actor: Any) -> Any:
    """This node's engine for the actor: a verified cached engine, or torch eager.

    Raises:
        EngineUnavailableError: a forced backend cannot run here.
        EngineParityError: a freshly built engine fails the gate.
    """
    from engines import select_backend
    from engines.cache import build_engine_for_node
    from engines.torch_engine import TorchEngine
    from pipeline.actor_stage import ONNX_NAME

    backend = select_backend(engine_cfg.backend)
    if backend == "torch":
        folded = actor.generator.fold(actor.psi).eval()
        s = actor.size
        example = {"landmarks": np.zeros((1, 3, s, s), np.float32)}
        if actor.generator.use_warp:
            example["warp"] = np.zeros((1, 3, s, s), np.float32)
        return TorchEngine.from_module(folded, example)
    return build_engine_for_node(export_dir / ONNX_NAME, engine_cfg).open(engine_cfg)


def synthesize(
    actor: Any,
    engine: Any,
    targets: np.ndarray,
    batch_size: int,
    progress: Any = None,
) -> np.ndarray:
    """Render crops for crop-space target landmarks.

    Args:
        actor: the :class:`~pipeline.train.finetune.ActorModel` (references for the warp input).
        engine: an engine taking ``landmarks`` (and ``warp``) B×3×S×S float32, giving ``image``.
        targets: N×68×2 crop pixels (NaN rows are skipped).
        batch_size: frames per engine call.
        progress: optional callable ``(done, total)``.

    Returns:
        N×S×S×3 float32 in 0..1, display sRGB (zeros for skipped rows).
    """
    from pipeline.models.rasterize import rasterize

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


def run_synth_chunk(
    lm: Landmarks,
    frames: FrameRange,
    actor: Any,
    engine: Any,
    targets: np.ndarray,
    cfg: SynthConfig,
    out_dir: Path,
    progress: Any = None,
) -> dict[str, Any]:
    """Synthesize one chunk into ``out_dir/faces.npz`` (the folder appears whole).

    Args:
        lm: the shot's landmarks.
        frames: the chunk's frame range.
        actor: the fine-tuned actor.
        engine: the opened engine.
        targets: N×68×2 crop-space driving landmarks for the whole shot (:func:`driving_points`).
        cfg: the synth config.
        out_dir: the final chunk folder.
    """
    idx = np.array([lm.index(f) for f in frames])
    _, inv = crop_transforms(lm, actor.size)
    tg = targets[idx]
    valid = np.isfinite(tg).all(axis=(1, 2))
    faces = synthesize(actor, engine, tg, cfg.batch_size, progress)
    with atomic_dir(out_dir) as tmp:
        save_faces(
            tmp / FACES_FILE,
            Faces(
                frames=np.asarray(list(frames), np.int64),
                faces=faces.astype(np.float16),
                points=tg.astype(np.float32),
                inverse=np.where(valid[:, None, None], inv[idx], np.nan),
                valid=valid,
            ),
        )
    return {
        "frames": str(frames),
        "synthesized": int(valid.sum()),
        "skipped_untracked": int((~valid).sum()),
    }


def run_synth_task(
    dirs: dict[str, Path],
    frames: FrameRange,
    profile: Any,
    out_dir: Path,
    progress: Any = None,
) -> dict[str, Any]:
    """The synthesis stage for one chunk, from its upstream stage folders.

    Args:
        dirs: stage folders: ``ingest``, ``track``, ``references``, ``finetune``, ``export``.
        frames: the chunk.
        profile: the shot's profile.
        out_dir: the chunk's final folder.

    Raises:
        CheckpointError: the fine-tune checkpoint does not match its manifest's SHA-256.
        EngineUnavailableError, EngineParityError: no usable engine on this node.
    """
    from pipeline.color import ColorPipeline
    from pipeline.ingest import load_cached_plate
    from pipeline.landmarks.sidecar import load_landmarks
    from pipeline.references import REFS_FILE, load_references
    from pipeline.track_stage import LANDMARKS_FILE, display_frame
    from pipeline.train.finetune import CHECKPOINT_NAME, ActorModel
    from pipeline.workspace import read_manifest

    cfg: SynthConfig = profile.synth
    lm = load_landmarks(dirs["track"] / LANDMARKS_FILE)
    refs = load_references(dirs["references"] / REFS_FILE)
    sha = (read_manifest(dirs["finetune"]) or {}).get("extra", {}).get("checkpoint_sha256")
    actor = ActorModel.from_checkpoint(dirs["finetune"] / CHECKPOINT_NAME, expected_sha256=sha)
    info: dict[str, Any] = {}
    if cfg.retarget == "auto":
        tracked = np.flatnonzero(lm.tracked)
        if len(tracked):
            i = int(tracked[0])
            plate = load_cached_plate(dirs["ingest"])
            img = display_frame(plate, int(lm.frames[i]), ColorPipeline(profile.ingest.ocio_config))
            same, dist = is_same_person(img, lm.points[i], refs, cfg.same_person_threshold)
            info["performer_to_actor_distance"] = round(dist, 4)
            retarget_on = not same
        else:
            retarget_on = False
    else:
        retarget_on = cfg.retarget == "always"
    info["retargeted"] = retarget_on
    targets = driving_points(lm, refs.points, actor.size, retarget_on, cfg.expression_scale)
    with open_engine(dirs["export"], profile.engine, actor) as engine:
        info["backend"] = type(engine).__name__
        info.update(run_synth_chunk(lm, frames, actor, engine, targets, cfg, out_dir, progress))
    return info
