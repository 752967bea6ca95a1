"""The native TensorRT backend: ONNX → serialized engine (``.plan``) → execution on CUDA.

``tensorrt`` is imported here and nowhere else, and only inside functions, so this module imports
cleanly where TensorRT is absent. Device memory comes from torch (no pycuda): inputs and outputs
are torch CUDA tensors whose addresses are handed to ``execute_async_v3`` on a private stream.

Written against the TensorRT 10 Python API (``OnnxParser``, ``IBuilderConfig.set_flag``,
``create_optimization_profile``/``set_shape``, ``create_timing_cache``,
``build_serialized_network``, ``deserialize_cuda_engine``, ``set_input_shape``,
``set_tensor_address``, ``execute_async_v3``). TensorRT 11 removed the weak-typing precision flags;
there fp32 builds work and fp16/bf16 raise ``EngineUnavailableError``.

Not yet run on a GPU: see the README's GPU section.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch

from engines.base import Engine, TensorSpec, is_torch, to_numpy
from pipeline.atomic import write_bytes
from pipeline.errors import EngineBuildError, EngineInputError, EngineUnavailableError
from pipeline.inference.engine import Precision

INSTALL_HINT = (
    "on a CUDA node: pip install 'likeness[tensorrt]' (TensorRT 10.x wheels bring their own "
    "libraries; the NVIDIA driver must be installed), or force backend onnxruntime/torch"
)

#: Profile shapes per input: ``{name: (min, opt, max)}``, each a full shape tuple.
ProfileShapes = Mapping[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]


def unavailable_reason() -> str | None:
    """Why TensorRT cannot run here (without importing it), or ``None``."""
    if importlib.util.find_spec("tensorrt") is None:
        return f"the tensorrt package is not installed; {INSTALL_HINT}"
    if not torch.cuda.is_available():
        return (
            "CUDA is not available to torch (no GPU, no driver, or a CPU-only torch build); "
            "TensorRT needs an NVIDIA GPU: run on a GPU node or force backend onnxruntime"
        )
    return None


def is_available() -> bool:
    """True when :func:`unavailable_reason` is ``None``."""
    return unavailable_reason() is None


def import_tensorrt() -> Any:
    """Import ``tensorrt``.

    Raises:
        EngineUnavailableError: not installed or not loadable, with the install command.
    """
    try:
        import tensorrt as trt  # optional backend library (likeness[tensorrt]): GPU nodes only
    except ImportError as exc:  # also covers missing libnvinfer behind an installed wheel
        raise EngineUnavailableError(f"cannot import tensorrt: {exc}", INSTALL_HINT) from exc
    return trt


def _require_cuda() -> Any:
    if not torch.cuda.is_available():
        raise EngineUnavailableError(
            "the tensorrt backend needs CUDA, which torch cannot see here",
            "run on a GPU node with the NVIDIA driver and a CUDA torch build, or force backend "
            "onnxruntime",
        )
    return torch


def node_identity() -> tuple[str, str, str]:
    """What a TensorRT engine is bound to: ``(gpu name, compute capability, TensorRT version)``.

    Raises:
        EngineUnavailableError: no CUDA or no tensorrt.
    """
    torch = _require_cuda()
    trt = import_tensorrt()
    major, minor = torch.cuda.get_device_capability()
    return torch.cuda.get_device_name(), f"{major}.{minor}", str(trt.__version__)


@functools.cache
def _logger(trt: Any) -> Any:
    """One logger per process: TensorRT expects builders and runtimes to share it."""
    return trt.Logger(trt.Logger.WARNING)


def build_serialized_engine(
    onnx_path: str | os.PathLike[str],
    *,
    precision: Precision,
    profile: ProfileShapes,
    timing_cache: str | os.PathLike[str] | None = None,
    workspace_mb: int = 4096,
) -> bytes:
    """Build a TensorRT engine from an ONNX graph.

    Args:
        onnx_path: the ``.onnx`` file (from ``engines.export``).
        precision: ``fp32``; ``fp16`` where ``platform_has_fast_fp16``; ``bf16`` on compute
            capability 8.0 or newer. Reduced precision lets TensorRT pick fp16/bf16 kernels with
            fp32 fallback; I/O stays float32.
        profile: ``{input name: (min, opt, max) shape}`` for the dynamic batch axis.
        timing_cache: a timing-cache file, read if present and rewritten atomically after the
            build, so later builds for the same GPU and TensorRT version skip kernel timing.
        workspace_mb: builder workspace limit, MiB.

    Returns:
        the serialized engine (the ``.plan`` bytes).

    Raises:
        EngineUnavailableError: no CUDA/tensorrt, or the precision is not supported here.
        EngineBuildError: the parser or the builder failed (messages included).
    """
    torch = _require_cuda()
    trt = import_tensorrt()
    logger = _logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(os.fspath(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EngineBuildError(
            f"TensorRT's ONNX parser rejected {onnx_path}:\n  " + "\n  ".join(errors),
            "check the graph with engines.export.check_ops and re-export",
        )
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    _set_precision(trt, builder, config, precision, torch.cuda.get_device_capability())

    opt_profile = builder.create_optimization_profile()
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    for tensor in inputs:
        if tensor.name not in profile:
            raise EngineBuildError(
                f"no optimisation-profile shapes for input {tensor.name!r}",
                f"give shapes for every input: {[t.name for t in inputs]}",
            )
        lo, opt, hi = profile[tensor.name]
        opt_profile.set_shape(tensor.name, lo, opt, hi)
    config.add_optimization_profile(opt_profile)

    cache_path = Path(timing_cache) if timing_cache is not None else None
    blob = cache_path.read_bytes() if cache_path is not None and cache_path.is_file() else b""
    cache = config.create_timing_cache(blob)
    # A stale or foreign cache is ignored rather than trusted (ignore_mismatch=False).
    config.set_timing_cache(cache, False)

    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineBuildError(
            f"TensorRT failed to build an engine from {onnx_path} at {precision}",
            "read the TensorRT log above; try fp32 or a larger workspace_mb",
        )
    if cache_path is not None:
        write_bytes(cache_path, bytes(config.get_timing_cache().serialize()))
    return bytes(plan)


def _set_precision(
    trt: Any, builder: Any, config: Any, precision: Precision, capability: tuple[int, int]
) -> None:
    if precision == "fp32":
        return
    flag_name = precision.upper()
    if not hasattr(trt.BuilderFlag, flag_name):
        raise EngineUnavailableError(
            f"TensorRT {trt.__version__} has no BuilderFlag.{flag_name} (TensorRT 11 dropped "
            "weak typing)",
            "pin tensorrt>=10,<11 for fp16/bf16 engines, or build at precision fp32",
        )
    if precision == "fp16" and not getattr(builder, "platform_has_fast_fp16", True):
        raise EngineUnavailableError(
            "this GPU has no fast fp16 (platform_has_fast_fp16 is False)",
            "build at precision fp32 on this node class",
        )
    if precision == "bf16" and capability < (8, 0):
        raise EngineUnavailableError(
            f"bf16 needs compute capability 8.0 or newer; this GPU is {capability[0]}.{capability[1]}",
            "build at fp16 or fp32 on this node class",
        )
    config.set_flag(getattr(trt.BuilderFlag, flag_name))


def _torch_dtype(trt: Any, dtype: Any) -> Any:

    table = {
        trt.DataType.FLOAT: torch.float32,
        trt.DataType.HALF: torch.float16,
        trt.DataType.INT32: torch.int32,
        trt.DataType.INT64: torch.int64,
        trt.DataType.BOOL: torch.bool,
    }
    if hasattr(trt.DataType, "BF16"):
        table[trt.DataType.BF16] = torch.bfloat16
    if dtype not in table:
        raise EngineBuildError(f"TensorRT I/O dtype {dtype} is not supported by this wrapper")
    return table[dtype]


class TrtEngine(Engine):
    """A deserialized TensorRT engine with one execution context and a private CUDA stream.

    Use as a context manager (or call :meth:`close`) so the context, engine and runtime are freed
    when the block ends, after the stream is drained.

    Args:
        plan: serialized engine bytes.
        device: CUDA device index.
    """

    backend = "tensorrt"

    def __init__(self, plan: bytes, device: int = 0) -> None:
        torch = _require_cuda()
        trt = import_tensorrt()
        self._trt = trt
        self._torch = torch
        self._device = torch.device("cuda", device)
        with torch.cuda.device(self._device):
            self._runtime = trt.Runtime(_logger(trt))
            self._engine = self._runtime.deserialize_cuda_engine(plan)
            if self._engine is None:
                self._runtime = None
                raise EngineBuildError(
                    "TensorRT could not deserialize the engine (built for another GPU or "
                    "TensorRT version, or corrupt)",
                    "rebuild it with engines.cache.build_engine_for_node on this node class",
                )
            self._context = self._engine.create_execution_context()
            self._stream = torch.cuda.Stream(device=self._device)
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        is_in = {n: self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self._inputs = [
            TensorSpec(
                n,
                tuple(int(d) for d in self._engine.get_tensor_shape(n)),
                str(_torch_dtype(trt, self._engine.get_tensor_dtype(n))).removeprefix("torch."),
            )
            for n in names
            if is_in[n]
        ]
        self._outputs = [n for n in names if not is_in[n]]

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, device: int = 0, **_: Any) -> Self:
        """Deserialize a ``.plan`` file.

        Raises:
            EngineUnavailableError: no CUDA or no tensorrt.
            EngineBuildError: unreadable or incompatible plan.
        """
        _require_cuda()
        import_tensorrt()
        try:
            plan = Path(path).read_bytes()
        except OSError as exc:
            raise EngineBuildError(f"cannot read TensorRT plan {path}: {exc}") from exc
        return cls(plan, device=device)

    def input_spec(self) -> list[TensorSpec]:
        return list(self._inputs)

    def output_names(self) -> list[str]:
        return list(self._outputs)

    def profile_batch_range(self) -> tuple[int, int]:
        """``(min, max)`` batch of optimisation profile 0."""
        name = self._inputs[0].name
        lo, _, hi = self._engine.get_tensor_profile_shape(name, 0)
        return int(lo[0]), int(hi[0])

    def __call__(self, **arrays: Any) -> dict[str, Any]:
        """Run one batch on the GPU; see :meth:`Engine.__call__`.

        Raises:
            EngineInputError: names or shapes do not match, or the batch is outside the profile.
            EngineBuildError: the engine is closed or execution failed.
        """
        torch = self._torch
        if self._context is None:
            raise EngineBuildError("this TensorRT engine is closed", "load it again")
        batch = self.check_inputs(arrays)
        lo, hi = self.profile_batch_range()
        if not lo <= batch <= hi:
            raise EngineInputError(
                f"batch {batch} is outside the engine's optimisation profile [{lo}, {hi}]",
                "split the frames into batches within the profile, or rebuild with a larger "
                "engine.batch_max",
            )
        as_torch = any(is_torch(a) for a in arrays.values())
        ctx = self._context
        with torch.cuda.device(self._device):
            feeds: dict[str, Any] = {}
            for spec in self._inputs:
                dtype = getattr(torch, spec.dtype)
                t = torch.as_tensor(arrays[spec.name]).to(self._device, dtype).contiguous()
                feeds[spec.name] = t
                ctx.set_input_shape(spec.name, tuple(t.shape))
                ctx.set_tensor_address(spec.name, t.data_ptr())
            outs: dict[str, Any] = {}
            for name in self._outputs:
                shape = tuple(int(d) for d in ctx.get_tensor_shape(name))
                dtype = _torch_dtype(self._trt, self._engine.get_tensor_dtype(name))
                outs[name] = torch.empty(shape, dtype=dtype, device=self._device)
                ctx.set_tensor_address(name, outs[name].data_ptr())
            # Inputs were written on the current stream; the engine runs on its own.
            self._stream.wait_stream(torch.cuda.current_stream(self._device))
            if not ctx.execute_async_v3(self._stream.cuda_stream):
                raise EngineBuildError("TensorRT execute_async_v3 reported failure")
            self._stream.synchronize()
            del feeds  # kept alive until the stream is drained
        result: dict[str, Any] = {}
        for name, t in outs.items():
            t = t.float()
            result[name] = t if as_torch else np.asarray(to_numpy(t), np.float32)
        return result

    def close(self) -> None:
        """Drain the stream and release the context, engine and runtime (in that order)."""
        if getattr(self, "_context", None) is None:
            return
        self._stream.synchronize()
        self._context = None
        self._engine = None
        self._runtime = None


ENGINE_CLASS = TrtEngine
