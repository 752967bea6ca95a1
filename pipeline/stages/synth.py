"""The synthesis stage: the actor's aligned face crop rendered for every tracked frame of one
chunk of the shot (consent required).

Two render paths (``synth.render``): ``plate`` (the default) renders the face at the plate's
resolution from the full-resolution references, with the network's band-limited correction
through this node's engine (:mod:`pipeline.inference.render`); ``network`` is the network's
own S-pixel output, scaled up by the composite (the path before plate-resolution rendering,
kept as the ``cpu-preview-128`` profile for comparison)."""

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
from pipeline.inference.render import PlateRenderer, render_chunk, render_size
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
    """The ``synth:`` section of a profile.

    Attributes:
        chunk_size: frames per synthesis task.
        batch_size: frames per engine call.
        retarget: put the performer's expression on the actor's face shape: ``auto`` (when the
            performer is not the actor), ``always`` or ``never``.
        same_person_threshold: dlib descriptor distance under which performer and actor are
            the same person.
        expression_scale: scale of the retargeted expression.
        render: ``plate`` (the face at the plate's resolution from the full-resolution
            references) or ``network`` (the network's S-pixel output).
        max_crop: the largest plate-resolution render, in pixels.
        correction: ``low_band`` (the network's correction, blurred, added to the warp) or
            ``none`` (the warp of the references alone; the network does not run). ``none`` by
            default: on held-out frames the correction changed no measure (bench/RESULTS.md,
            bench/render.py), since every fine-tune so far keeps its step 0.
        correction_sigma: the correction's blur, in network-crop pixels.
        detail_sigma: with several references, the band above this blur (network-crop pixels)
            comes from the nearest reference alone (0: the registered blend throughout).
    """

    chunk_size: int = 24
    batch_size: int = 8
    retarget: Literal["auto", "always", "never"] = "auto"
    same_person_threshold: float = 0.6  # dlib descriptor L2 distance; under it: same person
    expression_scale: float = 1.0
    render: Literal["plate", "network"] = "plate"
    max_crop: int = 1024
    correction: Literal["low_band", "none"] = "none"
    correction_sigma: float = 4.0
    detail_sigma: float = 2.0

    @property
    def runs_network(self) -> bool:
        """Whether synthesis runs the network (and so wants the engine, and its GPU)."""
        return self.render == "network" or self.correction != "none"

    def validate(self) -> list[tuple[str, str]]:
        out = []
        if not 64 <= self.max_crop <= 4096:
            out.append(("max_crop", f"got {self.max_crop}, expected 64..4096 pixels"))
        if not 0.5 <= self.correction_sigma <= 64:
            out.append(("correction_sigma", f"got {self.correction_sigma}, expected 0.5..64"))
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
    renderer = None
    size = actor.size
    if cfg.render == "plate":
        rs = render_size(lm, refs, actor.size, cfg.max_crop)
        info.update(rs.to_json())
        size = rs.size
        renderer = PlateRenderer(
            actor.ref_images, actor.ref_points, refs, actor.fusion, size, cfg.correction_sigma,
            cfg.detail_sigma,
        )  # fmt: skip
    targets = driving_points(
        lm, refs.points, size, info["retargeted"], cfg.expression_scale
    )  # N×68×2 crop pixels at the render size
    if not cfg.runs_network:
        info["backend"] = "none (the warp of the references alone)"
        info.update(_synth_chunk(lm, frames, actor, None, renderer, targets, cfg, out_dir,
                                 info["retargeted"], progress))  # fmt: skip
        return info
    with engines.open(actor, inputs["export"] / ONNX_NAME, engine_cfg) as engine:
        info["backend"] = type(engine).__name__
        info.update(_synth_chunk(lm, frames, actor, engine, renderer, targets, cfg, out_dir,
                                 info["retargeted"], progress))  # fmt: skip
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
    engine: Engine | None,
    renderer: PlateRenderer | None,
    targets: np.ndarray,
    cfg: SynthConfig,
    out_dir: Path,
    retargeted: bool,
    progress: Callable[[int, int], None] | None,
) -> dict[str, Any]:
    """Render the chunk's frames and write ``faces.npz``.

    Args:
        engine: the network's engine, or None (the plate render without correction).
        renderer: the plate-resolution renderer, or None (the ``network`` path).
        targets: N×68×2 crop-space driving landmarks for the whole shot, at the render size.
        retargeted: whether the performer's expression was put on the actor's face shape.
    """
    idx = np.array([lm.index(f) for f in frames])
    tg = targets[idx]
    valid = np.isfinite(tg).all(axis=(1, 2))
    if renderer is None:
        _, inv = crop_transforms(lm, actor.size)
        faces = synthesize(actor, engine, tg, cfg.batch_size, progress)  # n×S×S×3 sRGB
    else:
        _, inv = crop_transforms(lm, renderer.size)
        faces = render_chunk(renderer, engine, actor, tg, cfg.batch_size, progress)  # n×R×R×3
    with atomic_dir(out_dir) as tmp:
        save_faces(
            tmp / FACES_FILE,
            Faces(
                frames=np.asarray(list(frames), np.int64),
                faces=faces.astype(np.float16),
                points=tg.astype(np.float32),
                inverse=np.where(valid[:, None, None], inv[idx], np.nan),
                valid=valid,
                retargeted=np.full(len(idx), bool(retargeted)),
            ),
        )
    return {
        "frames": str(frames),
        "synthesized": int(valid.sum()),
        "skipped_untracked": int((~valid).sum()),
    }
