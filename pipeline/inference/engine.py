"""The contract between the pipeline and its inference backends (``engines/``).

The profile's ``engine:`` section (:class:`EngineConfig`) says which backend runs the actor, at
what precision, for which batches, and where built engines are cached; the export and the
synthesis stages both read it, and ``engines/`` builds and opens engines by it. The pipeline
never imports ``engines/``: it says here what it needs (:class:`EngineProvider`, :class:`Engine`),
and the Luigi tasks hand the export and synthesis stages the implementation,
``engines.provider.ActorEngines``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol, Self

import numpy as np

from pipeline.inference.actor import ActorModel

Precision = Literal["fp32", "fp16", "bf16"]
BackendRequest = Literal["auto", "torch", "onnxruntime", "tensorrt"]


#: PSNR gates (dB) against the torch reference on golden frames, per precision.
DEFAULT_PARITY_DB: dict[str, float] = {"fp32": 45.0, "fp16": 35.0, "bf16": 35.0}

#: Environment variable that overrides the default engine cache folder.
CACHE_ENV = "LIKENESS_ENGINE_CACHE"


@dataclass(frozen=True)
class EngineConfig:
    """The profile's ``engine:`` section: which backend, at what precision, for which batches.

    Args:
        backend: ``auto`` (TensorRT with CUDA, else ONNX Runtime, else torch) or a forced backend.
            A forced backend that cannot run raises ``EngineUnavailableError``; it never falls
            back.
        precision: ``fp32``, ``fp16`` or ``bf16`` (bf16 needs compute capability 8.0 or newer).
        batch_min: smallest batch the TensorRT optimisation profile accepts.
        batch_opt: the batch TensorRT tunes kernels for.
        batch_max: largest batch the profile accepts.
        cache_dir: engine cache folder; ``None`` means ``$LIKENESS_ENGINE_CACHE`` or
            ``~/.cache/likeness/engines``. Point farm nodes at a shared folder: entries are keyed
            by GPU, so node classes never collide.
        parity_fp32_db: PSNR gate for fp32 engines.
        parity_reduced_db: PSNR gate for fp16 and bf16 engines.
        torch_compile: wrap the torch backend in ``torch.compile``.
        intra_op_threads: ONNX Runtime intra-op threads; 0 lets it pick (one per core).
        workspace_mb: TensorRT builder workspace limit, MiB.
    """

    backend: BackendRequest = "auto"
    precision: Precision = "fp32"
    batch_min: int = 1
    batch_opt: int = 8
    batch_max: int = 16
    cache_dir: Path | None = None
    parity_fp32_db: float = DEFAULT_PARITY_DB["fp32"]
    parity_reduced_db: float = DEFAULT_PARITY_DB["fp16"]
    torch_compile: bool = False
    intra_op_threads: int = 0
    workspace_mb: int = 4096

    def validate(self) -> list[tuple[str, str]]:
        """Problems as ``(key, what)`` pairs; empty when the section is valid."""
        probs: list[tuple[str, str]] = []
        if self.batch_min < 1:
            probs.append(("batch_min", f"got {self.batch_min}, expected >= 1"))
        if not self.batch_min <= self.batch_opt <= self.batch_max:
            probs.append(
                (
                    "batch_opt",
                    f"got min/opt/max {self.batch_min}/{self.batch_opt}/{self.batch_max}, "
                    "expected batch_min <= batch_opt <= batch_max",
                )
            )
        for key in ("parity_fp32_db", "parity_reduced_db"):
            if getattr(self, key) <= 0:
                probs.append((key, f"got {getattr(self, key)}, expected a positive dB figure"))
        if self.intra_op_threads < 0:
            probs.append(("intra_op_threads", f"got {self.intra_op_threads}, expected >= 0"))
        if self.workspace_mb < 64:
            probs.append(("workspace_mb", f"got {self.workspace_mb}, expected >= 64"))
        return probs

    def parity_threshold(self) -> float:
        """The PSNR gate (dB) for this config's precision."""
        return self.parity_fp32_db if self.precision == "fp32" else self.parity_reduced_db

    def batch_profile(self) -> tuple[int, int, int]:
        """``(min, opt, max)`` batch sizes."""
        return (self.batch_min, self.batch_opt, self.batch_max)

    def resolved_cache_dir(self) -> Path:
        """The engine cache folder: ``cache_dir``, else ``$LIKENESS_ENGINE_CACHE``, else
        ``~/.cache/likeness/engines``."""
        if self.cache_dir is not None:
            return Path(os.path.expanduser(self.cache_dir))
        env = os.environ.get(CACHE_ENV)
        if env:
            return Path(os.path.expanduser(env))
        return Path.home() / ".cache" / "likeness" / "engines"

    def gpu_request(self) -> Literal["never", "always", "auto"]:
        """Whether the stages this section configures run on a GPU
        (:func:`pipeline.stages.graph.wants_gpu`): a forced TensorRT always, ``auto`` when the
        node has CUDA, ONNX Runtime and torch never."""
        if self.backend == "auto":
            return "auto"
        return "always" if self.backend == "tensorrt" else "never"


class Engine(Protocol):
    """What synthesis needs of an engine: named inputs and one batch per call, freed on exit.

    ``engines.base.Engine`` is the backends' implementation.
    """

    def input_spec(self) -> list[Any]:
        """The inputs in graph order, each with a ``name``."""
        ...

    def __call__(self, **arrays: np.ndarray) -> dict[str, np.ndarray]:
        """One batch: B×… float32 arrays by input name → ``{output name: array}``."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class EngineProvider(Protocol):
    """What the export and synthesis stages need from an inference library.

    ``engines.provider.ActorEngines`` implements it; the Luigi tasks pass it in.
    """

    def export(self, actor: ActorModel, onnx_path: Path, cfg: EngineConfig) -> dict[str, Any]:
        """Export the actor's G (its ψ′ folded in) as an ONNX graph with golden frames at
        ``onnx_path``, and build this node's engine for it when ``cfg`` asks for a compiled one.

        Returns:
            manifest extras: the backend, and the cached engine's key and parity when built.

        Raises:
            EngineUnavailableError: a forced backend cannot run here.
            EngineParityError: the built engine fails the parity gate (nothing is cached).
        """
        ...

    def open(self, actor: ActorModel, onnx_path: Path, cfg: EngineConfig) -> Engine:
        """This node's engine for the actor: a verified cached engine, or torch eager.

        Raises:
            EngineUnavailableError: a forced backend cannot run here.
            EngineParityError: a freshly built engine fails the gate.
        """
        ...
