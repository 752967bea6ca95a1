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
from types import TracebackType
from typing import Any, ClassVar, Self

import numpy as np

from pipeline.errors import EngineInputError


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
