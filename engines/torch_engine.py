"""The torch backend: the reference every other backend is gated against.

Runs an ``nn.Module`` eagerly (optionally through ``torch.compile``). Files are ``.pt2``
``torch.export`` programs written by :func:`engines.export.export_torch_program`, which carry the
input spec and output names in an extra file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np
import torch

from engines.base import Engine, TensorSpec, is_torch, to_numpy
from pipeline.errors import EngineBuildError
from pipeline.inference.engine import Precision

#: Name of the metadata member inside a ``.pt2`` archive.
META_NAME = "likeness_engine.json"

_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def unavailable_reason() -> str | None:
    """Why this backend cannot run here: never (torch is a hard dependency of likeness)."""
    return None


def is_available() -> bool:
    """True when :func:`unavailable_reason` is ``None``."""
    return unavailable_reason() is None


class TorchEngine(Engine):
    """An ``nn.Module`` behind the engine protocol.

    Args:
        module: the network; called as ``module(*inputs in spec order)``. Put in eval mode.
        inputs: the input spec, in the order ``module.forward`` takes them.
        output_names: names for the outputs (a single tensor output, or a tuple in this order).
        precision: ``fp32``, ``fp16`` or ``bf16``; the module and inputs are cast to it and the
            outputs cast back to float32.
        device: torch device string, e.g. ``"cpu"`` or ``"cuda:0"``.
        compile: wrap the module in ``torch.compile`` (first call is slow).
    """

    backend = "torch"

    def __init__(
        self,
        module: Any,
        inputs: Sequence[TensorSpec],
        output_names: Sequence[str] = ("image",),
        *,
        precision: Precision = "fp32",
        device: str = "cpu",
        compile: bool = False,
    ) -> None:

        self._torch = torch
        self._inputs = list(inputs)
        self._outputs = list(output_names)
        self._dtype = getattr(torch, _DTYPES[precision])
        self._device = torch.device(device)
        if isinstance(module, torch.fx.GraphModule):
            # A torch.export program: already in inference form, weights fixed at float32.
            if precision != "fp32":
                raise EngineBuildError(
                    f"a loaded torch program runs at fp32 only, not {precision}",
                    "wrap the nn.Module with TorchEngine.from_module for reduced precision",
                )
            module = module.to(self._device)
        elif isinstance(module, torch.nn.Module):
            module = module.eval().to(device=self._device, dtype=self._dtype)
        self._module = torch.compile(module) if compile else module

    @classmethod
    def from_module(
        cls,
        module: Any,
        example_inputs: Mapping[str, Any],
        output_names: Sequence[str] = ("image",),
        **opts: Any,
    ) -> Self:
        """Wrap a module; the spec is taken from example inputs with a dynamic batch axis.

        Args:
            module: the network.
            example_inputs: ``{name: B×... tensor}`` in ``forward`` order.
            output_names: the outputs' names.
            **opts: ``precision``, ``device``, ``compile``.
        """
        spec = [
            TensorSpec(name, (-1, *(int(d) for d in t.shape[1:])), "float32")
            for name, t in example_inputs.items()
        ]
        return cls(module, spec, output_names, **opts)

    @classmethod
    def load(cls, path: str | os.PathLike[str], **opts: Any) -> Self:
        """Open a ``.pt2`` program written by ``export_torch_program``.

        Args:
            path: the ``.pt2`` file.
            **opts: ``precision``, ``device``, ``compile``.

        Raises:
            EngineBuildError: not a ``.pt2`` written by this project.
        """

        extra: dict[str, Any] = {META_NAME: ""}
        try:
            program = torch.export.load(os.fspath(path), extra_files=extra)
        except (RuntimeError, OSError, ValueError) as exc:
            raise EngineBuildError(
                f"cannot load torch program {path}: {exc}",
                "re-export it with engines.export.export_torch_program",
            ) from exc
        if not extra[META_NAME]:
            raise EngineBuildError(
                f"{path} has no {META_NAME} member",
                "re-export it with engines.export.export_torch_program",
            )
        meta = json.loads(extra[META_NAME])
        spec = [TensorSpec(s["name"], tuple(s["shape"]), s["dtype"]) for s in meta["inputs"]]
        return cls(program.module(), spec, meta["outputs"], **opts)

    def input_spec(self) -> list[TensorSpec]:
        return list(self._inputs)

    def output_names(self) -> list[str]:
        return list(self._outputs)

    def __call__(self, **arrays: Any) -> dict[str, Any]:
        """Run one batch; see :meth:`Engine.__call__`."""
        torch = self._torch
        self.check_inputs(arrays)
        as_torch = any(is_torch(a) for a in arrays.values())
        args = [
            torch.as_tensor(arrays[s.name]).to(device=self._device, dtype=self._dtype)
            for s in self._inputs
        ]
        with torch.inference_mode():
            out = self._module(*args)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        if len(outs) != len(self._outputs):
            raise EngineBuildError(
                f"torch module returned {len(outs)} output(s), expected {self._outputs}",
                "pass output_names matching the module's outputs",
            )
        result: dict[str, Any] = {}
        for name, t in zip(self._outputs, outs, strict=True):
            t = t.float()
            result[name] = t if as_torch else np.asarray(to_numpy(t), dtype=np.float32)
        return result


ENGINE_CLASS = TorchEngine
