"""The engine protocol shared by every inference backend, and the profile's ``engine:`` section.

An engine is a compiled (or wrapped) network with named inputs and named outputs:

* ``Engine.load(path, **opts)`` opens a file made for that backend (``.pt2``, ``.onnx``, ``.plan``);
* ``engine.input_spec()`` lists the inputs as :class:`TensorSpec` (batch axis ``-1``);
* ``engine(**arrays)`` runs one batch and returns ``{output_name: array}``.

Arrays are numpy arrays or torch tensors. Outputs come back as the same kind as the inputs: numpy
in, numpy out (float32); torch in, torch out (on the engine's device). Engines that hold device
memory are context managers; ``close()`` frees it deterministically (never ``__del__``).
"""

from __future__ import annotations

import abc
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Literal, Self

import numpy as np

from pipeline.errors import EngineInputError

Precision = Literal["fp32", "fp16", "bf16"]
BackendRequest = Literal["auto", "torch", "onnxruntime", "tensorrt"]

#: PSNR gates (dB) against the torch reference on golden frames, per precision.
DEFAULT_PARITY_DB: dict[str, float] = {"fp32": 45.0, "fp16": 35.0, "bf16": 35.0}

#: Environment variable that overrides the default engine cache folder.
CACHE_ENV = "LIKENESS_ENGINE_CACHE"


@dataclass(frozen=True)
class TensorSpec:
    """One named input or output of an engine.

    Args:
        name: the graph's tensor name, e.g. ``"landmarks"``.
        shape: dimensions, ``-1`` where dynamic (the batch axis), e.g. ``(-1, 3, 256, 256)``.
        dtype: numpy dtype name, e.g. ``"float32"``.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"

    def with_batch(self, batch: int) -> tuple[int, ...]:
        """The concrete shape for ``batch`` items (every ``-1`` on axis 0 replaced)."""
        return (batch, *self.shape[1:]) if self.shape and self.shape[0] == -1 else self.shape


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


class Engine(abc.ABC):
    """The protocol every backend implements. See the module docstring."""

    #: Registry name of the backend (``torch``, ``onnxruntime``, ``tensorrt``).
    backend: ClassVar[str]

    @classmethod
    @abc.abstractmethod
    def load(cls, path: str | os.PathLike[str], **opts: Any) -> Self:
        """Open an engine file made for this backend."""

    @abc.abstractmethod
    def input_spec(self) -> list[TensorSpec]:
        """The inputs, in graph order."""

    @abc.abstractmethod
    def output_names(self) -> list[str]:
        """The outputs' names, in graph order."""

    @abc.abstractmethod
    def __call__(self, **arrays: Any) -> dict[str, Any]:
        """Run one batch.

        Args:
            **arrays: one array per input name, each ``B×...`` matching :meth:`input_spec`.

        Returns:
            ``{output_name: array}``, numpy float32 for numpy inputs, torch for torch inputs.
        """

    def close(self) -> None:  # noqa: B027 - engines without device memory have nothing to free
        """Free the engine's resources. Safe to call twice."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def check_inputs(self, arrays: Mapping[str, Any]) -> int:
        """Check input names, ranks, fixed dims and a shared batch size.

        Args:
            arrays: ``{name: array}`` (numpy or torch), each ``B×...``.

        Returns:
            the batch size ``B``.

        Raises:
            EngineInputError: a missing or unknown name, a wrong rank or dim, mixed batch sizes.
        """
        spec = {s.name: s for s in self.input_spec()}
        missing = sorted(set(spec) - set(arrays))
        unknown = sorted(set(arrays) - set(spec))
        if missing or unknown:
            raise EngineInputError(
                f"{self.backend} engine inputs: missing {missing or 'none'}, "
                f"unknown {unknown or 'none'}",
                f"pass exactly {sorted(spec)}",
            )
        batches: set[int] = set()
        for name, arr in arrays.items():
            shape = tuple(int(d) for d in arr.shape)
            want = spec[name].shape
            if len(shape) != len(want) or any(
                w != -1 and w != g for w, g in zip(want, shape, strict=True)
            ):
                raise EngineInputError(
                    f"{self.backend} engine input {name!r}: got shape {shape}, expected {want} "
                    "(-1 = any)",
                    "resize the crops to the profile's crop size the engine was built for",
                )
            batches.add(shape[0])
        if len(batches) != 1:
            raise EngineInputError(
                f"{self.backend} engine inputs have different batch sizes {sorted(batches)}",
                "pass the same number of frames for every input",
            )
        return batches.pop()


def to_numpy(value: Any) -> np.ndarray:
    """A torch tensor or array-like as a contiguous numpy array (copied off the device)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.ascontiguousarray(value)


def is_torch(value: Any) -> bool:
    """True for a torch tensor (checked without importing torch)."""
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")
