"""Inference engines: torch, ONNX Runtime and TensorRT behind one protocol.

Backends sit in :data:`BACKENDS`, a registry of module paths imported only when asked for, so a
missing optional backend (TensorRT) costs nothing until it is requested. Each backend module
defines ``ENGINE_CLASS`` (an :class:`engines.base.Engine`) and ``unavailable_reason()``.

Selection (:func:`select_backend`): ``auto`` picks TensorRT when CUDA and tensorrt are present,
else ONNX Runtime, else torch. A forced backend that cannot run raises ``EngineUnavailableError``
saying what to install; it never falls back silently.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any

from engines.base import Engine, TensorSpec
from pipeline.errors import EngineUnavailableError
from pipeline.inference.engine import EngineConfig

#: Engine file suffix → the backend that opens it (used by ``load_engine("auto", path)``).
SUFFIXES: dict[str, str] = {".pt2": "torch", ".onnx": "onnxruntime", ".plan": "tensorrt"}

#: Backend name → module path, in ``auto`` preference order.
BACKENDS: dict[str, str] = {
    "tensorrt": "engines.trt_engine",
    "onnxruntime": "engines.onnx_engine",
    "torch": "engines.torch_engine",
}

__all__ = [
    "BACKENDS",
    "SUFFIXES",
    "Engine",
    "EngineConfig",
    "TensorSpec",
    "available_backends",
    "backend_module",
    "load_engine",
    "select_backend",
]


def backend_module(name: str) -> ModuleType:
    """Import a backend's module.

    Raises:
        EngineUnavailableError: an unknown backend name.
    """
    if name not in BACKENDS:
        raise EngineUnavailableError(
            f"unknown inference backend {name!r}",
            f"use auto or one of {', '.join(BACKENDS)}",
        )
    return importlib.import_module(BACKENDS[name])


def available_backends() -> list[str]:
    """Backends that can run on this machine, in preference order."""
    return [n for n in BACKENDS if backend_module(n).unavailable_reason() is None]


def select_backend(requested: str = "auto") -> str:
    """Resolve a backend request to a backend that can run here.

    Args:
        requested: ``auto`` or a backend name (profile ``engine.backend`` or ``--backend``).

    Returns:
        the backend name.

    Raises:
        EngineUnavailableError: a forced backend cannot run here (the hint says what to install),
            an unknown name, or ``auto`` found nothing.
    """
    if requested == "auto":
        for name in BACKENDS:
            if backend_module(name).unavailable_reason() is None:
                return name
        raise EngineUnavailableError(
            "no inference backend can run here", "pip install torch==2.13.0 onnxruntime"
        )
    reason = backend_module(requested).unavailable_reason()
    if reason is not None:
        raise EngineUnavailableError(
            f"backend {requested!r} was forced but cannot run here", reason
        )
    return requested


def load_engine(name: str, path: str | os.PathLike[str], **opts: Any) -> Engine:
    """Open an engine file with a backend.

    Args:
        name: a backend name (see :func:`select_backend`), or ``auto`` to pick the backend
            from the file suffix (:data:`SUFFIXES`).
        path: a file for that backend: ``.pt2`` (torch), ``.onnx`` (onnxruntime), ``.plan``
            (tensorrt).
        **opts: backend options (``precision``, ``intra_op_threads``, ``device`` ...).

    Raises:
        EngineUnavailableError: the backend cannot run here.
        EngineBuildError: the file cannot be loaded.
    """
    if name == "auto" and os.path.splitext(path)[1] in SUFFIXES:
        name = SUFFIXES[os.path.splitext(path)[1]]
    backend = select_backend(name)
    return backend_module(backend).ENGINE_CLASS.load(path, **opts)
