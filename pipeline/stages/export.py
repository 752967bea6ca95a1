"""The export stage: the fine-tuned actor's G, its ψ′ folded in, exported as an ONNX graph with
golden frames, and this node's engine built into the shared cache when the profile asks for a
compiled backend. Its config is the profile's ``engine:`` section
(:class:`pipeline.inference.engine.EngineConfig`), which synthesis reads too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.atomic import atomic_dir
from pipeline.inference.actor import load_actor
from pipeline.inference.engine import EngineConfig, EngineProvider

#: The exported graph, in the stage folder (its golden frames beside it).
ONNX_NAME = "actor.onnx"


def run_export(
    finetune_dir: Path, cfg: EngineConfig, out_dir: Path, *, engines: EngineProvider
) -> dict[str, Any]:
    """Export the actor's engine graph and build this node's engine into the shared cache.

    Args:
        finetune_dir: the finetune stage's folder.
        cfg: the profile's ``engine:`` section.
        out_dir: the stage's final folder (appears whole).
        engines: the inference library (``engines.provider.ActorEngines``).

    Returns:
        manifest extras: the backend, crop size, and the cached engine's key and parity.

    Raises:
        CheckpointError: the checkpoint does not match its recorded SHA-256.
        EngineParityError: the built engine fails the parity gate (nothing is cached).
        EngineUnavailableError: a forced backend cannot run here.
    """
    actor = load_actor(finetune_dir)
    with atomic_dir(out_dir) as tmp:
        return engines.export(actor, tmp / ONNX_NAME, cfg)
