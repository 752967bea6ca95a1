"""The fine-tune stage: the actor learned from their prepared references (consent required),
resumable after a kill, from a meta-trained base when the profile names one."""

from __future__ import annotations

import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pipeline.atomic import sweep_temporaries
from pipeline.consent import load_consent
from pipeline.errors import ConfigError
from pipeline.models.checkpoint import CHECKPOINT_NAME
from pipeline.models.networks import load_network_config
from pipeline.provenance import append_audit
from pipeline.references.store import load_references
from pipeline.stages.references import REFS_FILE
from pipeline.train.finetune import FinetuneParams, finetune

log = logging.getLogger("likeness")

WORK_SUFFIX = ".work"


@dataclass(frozen=True)
class FinetuneConfig(FinetuneParams):
    """The ``finetune:`` section of a profile: the fine-tune settings plus the base model.

    Attributes:
        base_checkpoint: a meta-trained base (``likeness train-base``); from scratch when unset.
        base_sha256: the base's expected SHA-256, checked before it is loaded.
    """

    base_checkpoint: str | None = None
    base_sha256: str | None = None

    def gpu_request(self) -> Literal["never", "always", "auto"]:
        """Whether the fine-tune runs on a GPU (:func:`pipeline.stages.graph.wants_gpu`)."""
        return {"cpu": "never", "cuda": "always"}.get(self.device, "auto")  # type: ignore[return-value]

    def validate(self) -> list[tuple[str, str]]:
        """Problems as ``(key, what)``; empty when valid."""
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


def network_image_size(cfg: FinetuneParams) -> int:
    """The crop size of the fine-tuned network (references and synthesis use the same)."""
    try:
        return int(load_network_config(cfg.network).image_size)
    except ConfigError:
        raise
    except (
        OSError,
        KeyError,
    ) as exc:  # pragma: no cover - load_network_config names its own errors
        raise ConfigError([f"finetune.network: {cfg.network!r}: {exc}"]) from exc


def work_dir_for(final: Path) -> Path:
    """The stable training folder of a fine-tune stage (kept across kills, for resume)."""
    return final.with_name(f".{final.name}{WORK_SUFFIX}")


def run_finetune(
    refs_dir: Path,
    cfg: FinetuneConfig,
    out_dir: Path,
    *,
    actor_id: str,
    consent_path: Path | None,
    use: str | None = None,
    audit_dir: Path,
    shot: str,
) -> dict[str, Any]:
    """Fine-tune the actor; the stage folder appears whole when training has finished.

    Args:
        refs_dir: the references stage folder (``refs.npz``).
        cfg: the fine-tune config.
        out_dir: the final stage folder.
        actor_id: the shot's actor, recorded in the checkpoint.
        consent_path: the actor's consent record, checked first.
        use: the profile's use, which the consent's scope must cover (None: any).
        audit_dir: the folder of the append-only ``audit.log`` (the workdir).
        shot: the shot, for the audit log.

    Returns:
        manifest extras: checkpoint SHA-256, steps, why it stopped, where it resumed from,
        losses, the consent id.

    Raises:
        ConsentError: no valid, unexpired consent record for the actor.
        CheckpointError, FinetuneInputError: see :func:`pipeline.train.finetune.finetune`.
    """
    consent = load_consent(consent_path, actor_id, use=use)
    refs = load_references(refs_dir / REFS_FILE)
    pairs = [(c.astype(np.float32) / 255.0, p) for c, p in zip(refs.crops, refs.points)]
    work = work_dir_for(out_dir)
    if not work.exists() and (out_dir / CHECKPOINT_NAME).is_file():
        # A run killed after training, before the stage's manifest: resume from its checkpoint.
        os.replace(out_dir, work)
    sweep_temporaries(work)  # a checkpoint cut off mid-write must not travel into the stage
    base = str(Path(cfg.base_checkpoint).expanduser()) if cfg.base_checkpoint else None
    result = finetune(
        pairs, cfg, work, base_checkpoint=base, resume=True, actor_id=actor_id,
        base_sha256=cfg.base_sha256,
    )  # fmt: skip
    if result.resumed_from is not None:
        log.info("fine-tune resumed from step %d", result.resumed_from)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(work, out_dir)
    append_audit(
        audit_dir, "finetune", shot=shot, actor=actor_id, consent=consent.consent_id,
        model_sha256=result.sha256,
    )  # fmt: skip
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
        "consent_id": consent.consent_id,
    }
