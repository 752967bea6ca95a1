"""The synthesis stage: the actor's aligned face crop rendered for every tracked frame of one
chunk of the shot (consent required), through this node's engine."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pipeline.atomic import atomic_dir
from pipeline.color import ColorPipeline
from pipeline.consent import load_consent
from pipeline.frames import FrameRange
from pipeline.inference.actor import ActorModel, load_actor
from pipeline.inference.engine import Engine, EngineConfig, EngineProvider
from pipeline.inference.faces import FACES_FILE, Faces, save_faces
from pipeline.inference.synthesize import (
    crop_transforms,
    driving_points,
    is_same_person,
    synthesize,
)
from pipeline.io.plate_cache import display_frame, load_cached_plate
from pipeline.landmarks.sidecar import Landmarks, load_landmarks
from pipeline.references.store import References, load_references
from pipeline.stages.export import ONNX_NAME
from pipeline.stages.references import REFS_FILE
from pipeline.stages.track import LANDMARKS_FILE


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


def run_synth(
    inputs: Mapping[str, Path],
    frames: FrameRange,
    cfg: SynthConfig,
    engine_cfg: EngineConfig,
    out_dir: Path,
    *,
    engines: EngineProvider,
    actor_id: str,
    consent_path: Path | None,
    use: str | None = None,
    ocio_config: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Synthesize one chunk into ``out_dir/faces.npz`` (the folder appears whole).

    Args:
        inputs: the upstream stage folders by stage name: ``ingest``, ``track``,
            ``references``, ``finetune``, ``export``.
        frames: the chunk.
        cfg: the synth config.
        engine_cfg: the profile's ``engine:`` section.
        out_dir: the chunk's final folder.
        engines: the inference library (``engines.provider.ActorEngines``).
        actor_id, consent_path: the actor, whose consent is checked first.
        use: the profile's use, which the consent's scope must cover (None: any).
        ocio_config: the OCIO config (None: $OCIO or the built-in studio config).
        progress: optional callable ``(done, total)``.

    Returns:
        manifest extras: frames synthesized and skipped, the backend, whether the performer's
        expression was retargeted (and their distance to the actor).

    Raises:
        ConsentError: no valid, unexpired consent record for the actor.
        CheckpointError: the fine-tune checkpoint does not match its manifest's SHA-256.
        EngineUnavailableError, EngineParityError: no usable engine on this node.
    """
    load_consent(consent_path, actor_id, use=use)
    lm = load_landmarks(inputs["track"] / LANDMARKS_FILE)
    refs = load_references(inputs["references"] / REFS_FILE)
    actor = load_actor(inputs["finetune"])
    info = _retarget(cfg, lm, refs, inputs["ingest"], ocio_config)
    targets = driving_points(
        lm, refs.points, actor.size, info["retargeted"], cfg.expression_scale
    )  # N×68×2 crop pixels
    with engines.open(actor, inputs["export"] / ONNX_NAME, engine_cfg) as engine:
        info["backend"] = type(engine).__name__
        info.update(_synth_chunk(lm, frames, actor, engine, targets, cfg, out_dir, progress))
    return info


def _retarget(
    cfg: SynthConfig, lm: Landmarks, refs: References, ingest_dir: Path, ocio_config: str | None
) -> dict[str, Any]:
    """Whether to retarget the performer's expression onto the actor's face shape: always,
    never, or (``auto``) when the performer is not the actor by face descriptor distance on the
    first tracked frame."""
    if cfg.retarget != "auto":
        return {"retargeted": cfg.retarget == "always"}
    tracked = np.flatnonzero(lm.tracked)
    if not len(tracked):
        return {"retargeted": False}
    i = int(tracked[0])
    plate = load_cached_plate(ingest_dir)
    img = display_frame(plate, int(lm.frames[i]), ColorPipeline(ocio_config))
    same, dist = is_same_person(img, lm.points[i], refs, cfg.same_person_threshold)
    return {"performer_to_actor_distance": round(dist, 4), "retargeted": not same}


def _synth_chunk(
    lm: Landmarks,
    frames: FrameRange,
    actor: ActorModel,
    engine: Engine,
    targets: np.ndarray,
    cfg: SynthConfig,
    out_dir: Path,
    progress: Callable[[int, int], None] | None,
) -> dict[str, Any]:
    """Render the chunk's frames and write ``faces.npz``.

    Args:
        targets: N×68×2 crop-space driving landmarks for the whole shot.
    """
    idx = np.array([lm.index(f) for f in frames])
    _, inv = crop_transforms(lm, actor.size)
    tg = targets[idx]
    valid = np.isfinite(tg).all(axis=(1, 2))
    faces = synthesize(actor, engine, tg, cfg.batch_size, progress)  # n×S×S×3 display sRGB
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
