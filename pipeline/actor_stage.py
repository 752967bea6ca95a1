"""The actor stages: few-shot fine-tuning on the prepared references, then the engine export.

Fine-tuning trains in a stable work folder beside its final stage folder, so a killed run
resumes from its last checkpoint; the work folder is renamed into place whole when training
ends. The export folds the actor's ψ′ into G, writes the ONNX graph with golden frames taken
from the actor's own references, and builds (or reuses) this node's engine in the shared cache.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.atomic import atomic_dir, sweep_temporaries
from pipeline.errors import ConfigError
from pipeline.references import REFS_FILE, load_references
from pipeline.train.finetune import CHECKPOINT_NAME, FinetuneConfig

log = logging.getLogger("likeness")

ONNX_NAME = "actor.onnx"
WORK_SUFFIX = ".work"


@dataclass(frozen=True)
class FinetuneStageConfig(FinetuneConfig):
    """The ``finetune:`` section of a profile: the fine-tune settings plus the base model.

    Attributes:
        base_checkpoint: a meta-trained base (``likeness train-base``); from scratch when unset.
        base_sha256: the base's expected SHA-256, checked before it is loaded.
    """

    base_checkpoint: str | None = None
    base_sha256: str | None = None

    def validate(self) -> list[tuple[str, str]]:
        out = list(super().validate())
        if self.base_checkpoint and not Path(self.base_checkpoint).expanduser().is_file():
            out.append(
                (
                    "base_checkpoint",
                    f"{self.base_checkpoint!r} does not exist; train one with `likeness train-base` "
                    "or remove the key to fine-tune from scratch",
                )
            )
        if self.base_checkpoint and not self.base_sha256:
            out.append(
                (
                    "base_sha256",
                    "is required with base_checkpoint: the base is checked against it before it "
                    "is loaded; use the SHA-256 that `likeness train-base` prints (or "
                    "`sha256sum` of the file, once you trust it)",
                )
            )
        elif self.base_sha256 and not re.fullmatch(r"[0-9a-fA-F]{64}", self.base_sha256):
            out.append(("base_sha256", f"{self.base_sha256!r} is not a hex SHA-256 (64 digits)"))
        return out


def model_image_size(cfg: FinetuneConfig) -> int:
    """The crop size of the fine-tuned model (references and synthesis use the same)."""
    from pipeline.models import load_profile

    try:
        return int(load_profile(cfg.profile).image_size)
    except ConfigError:
        raise
    except (OSError, KeyError) as exc:  # pragma: no cover - load_profile names its own errors
        raise ConfigError([f"finetune.profile: {cfg.profile!r}: {exc}"]) from exc


def work_dir_for(final: Path) -> Path:
    """The stable training folder of a fine-tune stage (kept across kills, for resume)."""
    return final.with_name(f".{final.name}{WORK_SUFFIX}")


def run_finetune(
    refs_dir: Path, cfg: FinetuneStageConfig, actor_id: str, out_dir: Path
) -> dict[str, Any]:
    """Fine-tune the actor; the stage folder appears whole when training has finished.

    Args:
        refs_dir: the references stage folder (``refs.npz``).
        cfg: the fine-tune config.
        actor_id: recorded in the checkpoint.
        out_dir: the final stage folder.

    Returns:
        manifest extras: checkpoint SHA-256, steps, why it stopped, where it resumed from, losses.
    """
    from pipeline.train.finetune import finetune

    refs = load_references(refs_dir / REFS_FILE)
    pairs = [(c.astype(np.float32) / 255.0, p) for c, p in zip(refs.crops, refs.points)]
    work = work_dir_for(out_dir)
    if not work.exists() and (out_dir / CHECKPOINT_NAME).is_file():
        # A run killed after training, before the stage's manifest: resume from its checkpoint.
        os.replace(out_dir, work)
    sweep_temporaries(work)  # a checkpoint cut off mid-write must not travel into the stage
    base = str(Path(cfg.base_checkpoint).expanduser()) if cfg.base_checkpoint else None
    result = finetune(
        pairs,
        cfg,
        work,
        base_checkpoint=base,
        resume=True,
        actor_id=actor_id,
        base_sha256=cfg.base_sha256,
    )
    if result.resumed_from is not None:
        log.info("fine-tune resumed from step %d", result.resumed_from)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(work, out_dir)
    return {
        "checkpoint": CHECKPOINT_NAME,
        "checkpoint_sha256": result.sha256,
        "step": result.step,
        "stopped_by": result.stopped_by,
        "resumed_from": result.resumed_from,
        "elapsed_s": round(result.elapsed_s, 2),
        "initial_loss": result.initial_loss,
        "final_loss": result.final_loss,
        "base_checkpoint": base,
        "references": list(refs.sources),
    }


def golden_from_references(actor: Any) -> dict[str, np.ndarray]:
    """Golden engine inputs from the actor's own references: their drawings and warps.

    Returns:
        ``{"landmarks": K×3×S×S, "warp": K×3×S×S}`` float32 in 0..1 (warp: display sRGB), each
        reference driven by its own landmarks and warped from its nearest other reference.
    """
    from pipeline.models.rasterize import rasterize
    from pipeline.models.warp import nearest_reference, warp_image

    pts = actor.ref_points
    k = len(pts)
    lms, warps = [], []
    for i in range(min(k, 8)):
        lms.append(rasterize(pts[i], actor.size))
        if k > 1:
            others = [j for j in range(k) if j != i]
            j = others[nearest_reference(pts[others], pts[i])]
            warps.append(warp_image(actor.ref_images[j], pts[j], pts[i]))
        else:
            warps.append(actor.ref_images[i])
    to_chw = lambda a: np.ascontiguousarray(np.stack(a).transpose(0, 3, 1, 2), dtype=np.float32)  # noqa: E731
    return {"landmarks": to_chw(lms), "warp": to_chw(warps)}


def run_export(
    checkpoint: Path, checkpoint_sha256: str, engine_cfg: Any, out_dir: Path
) -> dict[str, Any]:
    """Export the actor's engine graph and build this node's engine into the shared cache.

    Raises:
        CheckpointError: the checkpoint does not match its recorded SHA-256.
        EngineParityError: the built engine fails the parity gate (nothing is cached).
        EngineUnavailableError: a forced backend cannot run here.
    """
    from engines import select_backend
    from engines.cache import build_engine_for_node
    from engines.export import export_generator
    from pipeline.train.finetune import ActorModel

    actor = ActorModel.from_checkpoint(checkpoint, expected_sha256=checkpoint_sha256)
    use_warp = bool(actor.generator.use_warp)
    golden = golden_from_references(actor)
    if not use_warp:
        golden.pop("warp")
    backend = select_backend(engine_cfg.backend)
    info: dict[str, Any] = {"backend": backend, "use_warp": use_warp, "crop_size": actor.size}
    with atomic_dir(out_dir) as tmp:
        export_generator(
            actor.generator,
            None,
            tmp / ONNX_NAME,
            actor.size,
            use_warp,
            adain=actor.psi,
            golden=golden,
        )
        if backend != "torch":
            cached = build_engine_for_node(tmp / ONNX_NAME, engine_cfg)
            info.update(
                engine_key=cached.key,
                parity_psnr_db=round(cached.psnr_db, 2),
                from_cache=cached.from_cache,
            )
    return info
