"""The ONNX Runtime backend: CPU everywhere, CUDA and TensorRT execution providers where present.

Sessions run with every graph optimisation on and a configurable number of intra-op threads.
Provider order is TensorRT EP, CUDA EP, CPU: the first present wins per node, the CPU provider
always closes the list.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Self

import numpy as np
import torch

from engines.base import Engine, TensorSpec, is_torch, to_numpy
from pipeline.errors import EngineBuildError, EngineUnavailableError
from pipeline.inference.engine import Precision

PREFERRED_PROVIDERS = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CPUExecutionProvider",
)

_ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(bfloat16)": "bfloat16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(bool)": "bool",
}

_OPT_LEVELS = ("disable", "basic", "extended", "all")


#: What to install when ONNX Runtime is missing.
INSTALL_HINT = "pip install onnxruntime (or onnxruntime-gpu)"


def import_onnxruntime() -> ModuleType:
    """Import ``onnxruntime``: this backend's only import of it.

    Deferred, like TensorRT's, so that a node without it (one with onnxruntime-gpu's libraries
    missing, say) still imports this module, and :func:`unavailable_reason` says what to install.

    Raises:
        EngineUnavailableError: not installed or not loadable, with the install command.
    """
    try:
        import onnxruntime  # optional backend library, deferred: see above
    except ImportError as exc:
        raise EngineUnavailableError(f"onnxruntime is not importable: {exc}", INSTALL_HINT) from exc
    return onnxruntime


def unavailable_reason() -> str | None:
    """Why this backend cannot run here, or ``None``."""
    try:
        import_onnxruntime()
    except EngineUnavailableError:
        return f"onnxruntime is not importable: {INSTALL_HINT}"
    return None


def is_available() -> bool:
    """True when :func:`unavailable_reason` is ``None``."""
    return unavailable_reason() is None


def default_providers() -> list[str]:
    """The present providers, in :data:`PREFERRED_PROVIDERS` order."""
    ort = import_onnxruntime()
    present = set(ort.get_available_providers())
    return [p for p in PREFERRED_PROVIDERS if p in present]


def session_options(
    *,
    intra_op_threads: int = 0,
    graph_optimization: str = "all",
    optimized_path: Path | None = None,
    spin: bool = False,
) -> Any:
    """ONNX Runtime session options for inference.

    Args:
        intra_op_threads: threads inside one op; 0 lets ONNX Runtime use one per physical core.
        graph_optimization: ``disable``, ``basic``, ``extended`` or ``all`` (layout and
            hardware-specific fusions; the file saved at ``optimized_path`` then suits this CPU
            or GPU kind only).
        optimized_path: where to save the optimised graph, if anywhere.
        spin: let idle intra-op threads busy-wait for the next op. Off by default: spinning
            threads steal the cores that decoding, compositing (and any co-tenant) need.

    Raises:
        EngineBuildError: an unknown optimisation level.
    """
    ort = import_onnxruntime()
    if graph_optimization not in _OPT_LEVELS:
        raise EngineBuildError(
            f"graph_optimization {graph_optimization!r} is not known",
            f"use one of {', '.join(_OPT_LEVELS)}",
        )
    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    so = ort.SessionOptions()
    so.graph_optimization_level = levels[graph_optimization]
    so.intra_op_num_threads = int(intra_op_threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    if optimized_path is not None:
        so.optimized_model_filepath = os.fspath(optimized_path)
    return so


def provider_options(
    providers: Sequence[str], *, precision: Precision, trt_cache_dir: Path | None
) -> list[dict[str, str]]:
    """Per-provider options: fp16/bf16 and the engine cache for the TensorRT EP.

    Args:
        providers: provider names in order.
        precision: the engine precision; the TensorRT EP gets ``trt_fp16_enable`` or
            ``trt_bf16_enable`` for reduced precision.
        trt_cache_dir: where the TensorRT EP may cache its engines, or ``None`` for no cache.
    """
    opts: list[dict[str, str]] = []
    for p in providers:
        if p == "TensorrtExecutionProvider":
            o = {
                "trt_fp16_enable": str(precision == "fp16"),
                "trt_bf16_enable": str(precision == "bf16"),
            }
            if trt_cache_dir is not None:
                o |= {
                    "trt_engine_cache_enable": "True",
                    "trt_engine_cache_path": os.fspath(trt_cache_dir),
                }
                o |= {
                    "trt_timing_cache_enable": "True",
                    "trt_timing_cache_path": os.fspath(trt_cache_dir),
                }
            opts.append(o)
        else:
            opts.append({})
    return opts


def _ort_errors() -> tuple[type[Exception], ...]:
    """ONNX Runtime's load-time exception classes (they derive from ``Exception`` only)."""
    st = import_onnxruntime().capi.onnxruntime_pybind11_state
    names = ("Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf", "NoSuchFile", "NoModel")
    return tuple(getattr(st, n) for n in names if hasattr(st, n))


class OnnxEngine(Engine):
    """An ONNX Runtime inference session behind the engine protocol.

    Build one with :meth:`load`. Inputs are cast to the graph's input dtype (float32 for graphs
    from ``engines.export``).
    """

    backend = "onnxruntime"

    def __init__(self, session: Any) -> None:
        self._session = session
        self._inputs = [
            TensorSpec(
                i.name,
                tuple(d if isinstance(d, int) and d >= 0 else -1 for d in i.shape),
                _ORT_DTYPES.get(i.type, "float32"),
            )
            for i in session.get_inputs()
        ]
        self._outputs = [o.name for o in session.get_outputs()]

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        precision: Precision = "fp32",
        intra_op_threads: int = 0,
        graph_optimization: str = "all",
        providers: Sequence[str] | None = None,
        trt_cache_dir: Path | None = None,
        optimized_path: Path | None = None,
        spin: bool = False,
        **_: Any,
    ) -> Self:
        """Open an ``.onnx`` file in a new session.

        Args:
            path: the ONNX model.
            precision: ``fp32`` runs as exported; ``fp16``/``bf16`` only change the TensorRT EP.
            intra_op_threads: see :func:`session_options`.
            graph_optimization: see :func:`session_options`.
            providers: providers to use; default :func:`default_providers`.
            trt_cache_dir: engine cache folder for the TensorRT EP.
            optimized_path: save the optimised graph there.
            spin: see :func:`session_options`.

        Raises:
            EngineUnavailableError: onnxruntime is missing or a requested provider is absent.
            EngineBuildError: the file is not a loadable ONNX model.
        """
        reason = unavailable_reason()
        if reason:
            raise EngineUnavailableError("the onnxruntime backend is unavailable", reason)
        ort = import_onnxruntime()
        provs = list(providers) if providers is not None else default_providers()
        absent = [p for p in provs if p not in ort.get_available_providers()]
        if absent:
            raise EngineUnavailableError(
                f"ONNX Runtime providers {absent} are not present "
                f"(present: {ort.get_available_providers()})",
                "install onnxruntime-gpu with matching CUDA/TensorRT libraries, or drop them",
            )
        so = session_options(
            intra_op_threads=intra_op_threads,
            graph_optimization=graph_optimization,
            optimized_path=optimized_path,
            spin=spin,
        )
        try:
            session = ort.InferenceSession(
                os.fspath(path),
                sess_options=so,
                providers=provs,
                provider_options=provider_options(
                    provs, precision=precision, trt_cache_dir=trt_cache_dir
                ),
            )
        except _ort_errors() as exc:
            raise EngineBuildError(
                f"ONNX Runtime cannot load {path}: {exc}",
                "re-export the model with engines.export.export_onnx",
            ) from exc
        return cls(session)

    def providers(self) -> list[str]:
        """The providers this session actually uses."""
        return list(self._session.get_providers())

    def input_spec(self) -> list[TensorSpec]:
        return list(self._inputs)

    def output_names(self) -> list[str]:
        return list(self._outputs)

    def __call__(self, **arrays: Any) -> dict[str, Any]:
        """Run one batch; see :meth:`Engine.__call__`."""
        self.check_inputs(arrays)
        as_torch = any(is_torch(a) for a in arrays.values())
        feeds = {
            s.name: np.ascontiguousarray(to_numpy(arrays[s.name]), dtype=s.dtype)
            for s in self._inputs
        }
        outs = self._session.run(self._outputs, feeds)
        result: dict[str, Any] = {}
        for name, o in zip(self._outputs, outs, strict=True):
            o = np.asarray(o, dtype=np.float32)
            if as_torch:
                result[name] = torch.from_numpy(o)
            else:
                result[name] = o
        return result


ENGINE_CLASS = OnnxEngine
