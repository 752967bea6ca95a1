"""Engines for a fine-tuned actor: what the export and synthesis stages are handed.

:class:`ActorEngines` implements :class:`pipeline.inference.engine.EngineProvider` with this
package's backends: the actor's G, its ψ′ folded in, exported as ONNX with golden frames taken
from the actor's own references (:func:`engines.export.export_generator`); the engine built for
this node's GPU and precision, checked against golden frames and kept in the shared cache
(:func:`engines.cache.build_engine_for_node`); or, where the torch backend is chosen, G run
eagerly (:class:`engines.torch_engine.TorchEngine`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from engines import select_backend
from engines.base import Engine
from engines.cache import build_engine_for_node
from engines.export import export_generator
from engines.torch_engine import TorchEngine
from pipeline.inference.actor import ActorModel
from pipeline.inference.engine import EngineConfig


class ActorEngines:
    """``engines``' implementation of :class:`pipeline.inference.engine.EngineProvider`."""

    def export(self, actor: ActorModel, onnx_path: Path, cfg: EngineConfig) -> dict[str, Any]:
        """See :meth:`pipeline.inference.engine.EngineProvider.export`."""
        use_warp = bool(actor.generator.use_warp)
        golden = actor.golden_inputs()  # {name: G×3×S×S float32}
        if not use_warp:
            golden.pop("warp")
        backend = select_backend(cfg.backend)
        info: dict[str, Any] = {"backend": backend, "use_warp": use_warp, "crop_size": actor.size}
        export_generator(
            actor.generator, None, onnx_path, actor.size, use_warp, adain=actor.psi, golden=golden
        )
        if backend != "torch":
            cached = build_engine_for_node(onnx_path, cfg)
            info.update(
                engine_key=cached.key,
                parity_psnr_db=round(cached.psnr_db, 2),
                from_cache=cached.from_cache,
            )
        return info

    def open(self, actor: ActorModel, onnx_path: Path, cfg: EngineConfig) -> Engine:
        """See :meth:`pipeline.inference.engine.EngineProvider.open`."""
        backend = select_backend(cfg.backend)
        if backend == "torch":
            folded = actor.generator.fold(actor.psi).eval()
            s = actor.size
            example = {"landmarks": np.zeros((1, 3, s, s), np.float32)}  # 1×3×S×S
            if actor.generator.use_warp:
                example["warp"] = np.zeros((1, 3, s, s), np.float32)  # 1×3×S×S display sRGB
            return TorchEngine.from_module(folded, example)
        return build_engine_for_node(onnx_path, cfg).open(cfg)
