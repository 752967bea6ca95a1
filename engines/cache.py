"""The engine cache: one verified, parity-gated engine per model × node class × precision × profile.

Engines are not portable across GPUs or TensorRT versions, so an entry is keyed by the model's
SHA-256, the GPU name and compute capability, the runtime version, the precision and the
optimisation-profile shapes. An entry is a folder::

    <cache_dir>/<key>/engine.plan   # the serialized engine (TensorRT plan, or ORT-optimised graph)
    <cache_dir>/<key>/meta.json     # key parts, plan SHA-256, parity figure
    <cache_dir>/timing/<node>.cache # TensorRT timing cache per GPU kind and TensorRT version

An entry is written whole (temp folder, renamed) and only after the engine passed the parity gate,
so the cache never holds an engine that failed. A lookup re-reads the key parts and re-hashes the
plan; a corrupt or mismatched entry is rebuilt, never used.

:func:`build_engine_for_node` is what the Luigi "export engine" stage calls, once per actor model
and node class.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from engines import backend_module, select_backend
from engines.base import Engine
from engines.export import golden_path
from engines.onnx_engine import import_onnxruntime
from engines.parity import check_parity, load_golden
from pipeline.atomic import atomic_dir, write_json
from pipeline.errors import EngineBuildError, EngineUnavailableError
from pipeline.hashing import sha256_file
from pipeline.inference.engine import EngineConfig

log = logging.getLogger(__name__)

CACHE_SCHEMA = "likeness.engine-cache/1"
PLAN_NAME = "engine.plan"
META_NAME = "meta.json"

#: ``{input name: (min shape, opt shape, max shape)}``.
ProfileShapes = Mapping[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]


def key_parts(
    model_sha256: str,
    gpu_name: str,
    compute_capability: str,
    trt_version: str,
    precision: str,
    profile_shapes: ProfileShapes,
) -> dict[str, Any]:
    """The parts of a cache key as plain JSON data (profile shapes as nested lists)."""
    return {
        "model_sha256": model_sha256,
        "gpu_name": gpu_name,
        "compute_capability": str(compute_capability),
        "trt_version": trt_version,
        "precision": precision,
        "profile_shapes": {
            name: [list(map(int, s)) for s in shapes]
            for name, shapes in sorted(profile_shapes.items())
        },
    }


def engine_cache_key(
    model_sha256: str,
    gpu_name: str,
    compute_capability: str,
    trt_version: str,
    precision: str,
    profile_shapes: ProfileShapes,
) -> str:
    """A folder-safe cache key that changes when any part changes.

    Args:
        model_sha256: hex SHA-256 of the ONNX file.
        gpu_name: e.g. ``"NVIDIA L40S"`` (``cpu:<model>`` for CPU runtimes).
        compute_capability: e.g. ``"8.9"`` (``"cpu"`` for CPU runtimes).
        trt_version: the runtime version, e.g. ``"10.7.0"`` (``"onnxruntime-1.32.0"`` for ORT).
        precision: ``fp32``, ``fp16`` or ``bf16``.
        profile_shapes: ``{input: (min, opt, max)}`` shapes.

    Returns:
        ``<gpu>-sm<cc>-<runtime>-<precision>-<digest>``: readable for operators, unique by the
        SHA-256 of all parts.
    """
    parts = key_parts(
        model_sha256, gpu_name, compute_capability, trt_version, precision, profile_shapes
    )
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
    cc = str(compute_capability).replace(".", "")
    return f"{_slug(gpu_name)}-sm{cc}-{_slug(trt_version)}-{precision}-{digest[:24]}"


def profile_shapes_for(onnx_path: str | os.PathLike[str], cfg: EngineConfig) -> dict[str, Any]:
    """Optimisation-profile shapes for every graph input: the config's batch range on axis 0.

    Raises:
        EngineBuildError: an input has a dynamic dimension other than the batch.
    """

    model = onnx.load(os.fspath(onnx_path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    shapes: dict[str, Any] = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        dims = [
            d.dim_value if d.HasField("dim_value") else -1 for d in vi.type.tensor_type.shape.dim
        ]
        if any(d < 1 for d in dims[1:]):
            raise EngineBuildError(
                f"input {vi.name!r} of {onnx_path} has dynamic dims {dims}; only the batch may be",
                "export with a fixed crop size (engines.export.export_onnx)",
            )
        shapes[vi.name] = tuple((b, *dims[1:]) for b in cfg.batch_profile())
    return shapes


def node_identity(backend: str) -> tuple[str, str, str]:
    """``(device name, compute capability, runtime version)`` an engine of ``backend`` binds to.

    Raises:
        EngineUnavailableError: the backend cannot run here.
        EngineBuildError: the backend has no cacheable engine (torch).
    """
    if backend == "tensorrt":
        return backend_module("tensorrt").node_identity()
    if backend == "onnxruntime":
        ort = import_onnxruntime()
        return f"cpu:{_cpu_model()}", "cpu", f"onnxruntime-{ort.__version__}"
    raise EngineBuildError(
        f"backend {backend!r} runs the torch module directly and has no engine to build",
        "build engines for tensorrt or onnxruntime",
    )


@dataclass(frozen=True)
class CachedEngine:
    """A verified cache entry that passed the parity gate.

    Args:
        key: the cache key (folder name).
        backend: ``tensorrt`` or ``onnxruntime``.
        precision: the engine precision.
        plan_path: the serialized engine.
        psnr_db: its parity figure against the torch reference on golden frames.
        from_cache: ``True`` when an existing entry was reused, ``False`` when just built.
        parts: the key parts, as stored in ``meta.json``.
    """

    key: str
    backend: str
    precision: str
    plan_path: Path
    psnr_db: float
    from_cache: bool
    parts: dict[str, Any] = field(default_factory=dict)

    def open(self, cfg: EngineConfig | None = None) -> Engine:
        """Load the engine after re-checking the plan's SHA-256 against ``meta.json``.

        Args:
            cfg: options for the backend (``intra_op_threads``); defaults apply when ``None``.

        Raises:
            EngineBuildError: the plan or its ``meta.json`` changed on disk (or vanished) since
                it was verified.
        """
        try:
            meta = json.loads((self.plan_path.parent / META_NAME).read_text())
            digest = sha256_file(self.plan_path)
        except (OSError, ValueError) as exc:
            raise EngineBuildError(
                f"engine cache entry {self.plan_path.parent} is unreadable: {exc}",
                "run build_engine_for_node again; it rebuilds corrupt entries",
            ) from exc
        if not isinstance(meta, dict) or digest != meta.get("plan_sha256"):
            raise EngineBuildError(
                f"engine plan {self.plan_path} does not match its recorded SHA-256",
                "run build_engine_for_node again; it rebuilds corrupt entries",
            )
        return _load(self.backend, self.plan_path, cfg or EngineConfig(precision=self.precision))  # type: ignore[arg-type]


def build_engine_for_node(
    onnx_path: str | os.PathLike[str],
    cfg: EngineConfig,
    *,
    golden: str | os.PathLike[str] | None = None,
) -> CachedEngine:
    """Return this node's verified engine for a model, building and caching it if needed.

    The backend comes from ``cfg.backend`` (``auto``: TensorRT with CUDA, else ONNX Runtime).
    A cached entry is used only when its key parts match and its plan hashes to the recorded
    SHA-256 with a parity figure within today's gate; otherwise it is rebuilt. A new engine is
    checked against the torch reference on the golden frames before it is stored.

    Args:
        onnx_path: the exported graph (``engines.export.export_generator``).
        cfg: the profile's ``engine:`` section.
        golden: golden frames with torch reference outputs; default ``<model>.golden.npz``.

    Returns:
        the cache entry.

    Raises:
        EngineUnavailableError: the backend cannot run here, or is torch (nothing to build).
        EngineParityError: the new engine fails the gate; nothing is cached.
        EngineBuildError: export artefacts missing, or the build failed.
    """
    onnx_path = Path(onnx_path)
    backend = select_backend(cfg.backend)
    if backend == "torch":
        raise EngineUnavailableError(
            "no engine backend is available to build (resolved to torch, which runs the module "
            "directly)",
            "install onnxruntime, or tensorrt on a CUDA node: pip install 'likeness[tensorrt]'",
        )
    gate = cfg.parity_threshold()
    gold_in, gold_out = load_golden(golden if golden is not None else golden_path(onnx_path))
    gold_in, gold_out = _fit_batch(gold_in, gold_out, cfg)
    gpu, cc, runtime = node_identity(backend)
    profile = profile_shapes_for(onnx_path, cfg)
    parts = key_parts(sha256_file(onnx_path), gpu, cc, runtime, cfg.precision, profile)
    key = engine_cache_key(sha256_file(onnx_path), gpu, cc, runtime, cfg.precision, profile)
    cache_dir = cfg.resolved_cache_dir()
    entry = cache_dir / key

    found = _verified_entry(entry, key, parts, gate)
    if found is not None:
        return CachedEngine(key, backend, cfg.precision, entry / PLAN_NAME, found, True, parts)

    log.info("building %s engine %s for %s", backend, key, onnx_path.name)
    with atomic_dir(entry) as tmp:
        plan = tmp / PLAN_NAME
        if backend == "tensorrt":
            trt = backend_module("tensorrt")
            timing = (
                cache_dir
                / "timing"
                / f"{_slug(gpu)}-sm{cc.replace('.', '')}-{_slug(runtime)}.cache"
            )
            plan.write_bytes(
                trt.build_serialized_engine(
                    onnx_path,
                    precision=cfg.precision,
                    profile=profile,
                    timing_cache=timing,
                    workspace_mb=cfg.workspace_mb,
                )
            )
        else:
            _build_ort_plan(onnx_path, plan, cfg)
        with _load(backend, plan, cfg) as engine:
            figure = check_parity(engine, gold_out, gold_in, cfg.precision, threshold_db=gate)
        meta = {
            "schema": CACHE_SCHEMA,
            "key": key,
            "parts": parts,
            "backend": backend,
            "plan_sha256": sha256_file(plan),
            "psnr_db": figure,
            "parity_gate_db": gate,
            "onnx": str(onnx_path),
        }
        write_json(tmp / META_NAME, meta)
    return CachedEngine(key, backend, cfg.precision, entry / PLAN_NAME, figure, False, parts)


def _verified_entry(entry: Path, key: str, parts: dict[str, Any], gate: float) -> float | None:
    """The stored parity figure when ``entry`` is sound; ``None`` (with a log line) otherwise."""
    meta_path, plan = entry / META_NAME, entry / PLAN_NAME
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        log.warning("engine cache entry %s: unreadable meta.json (%s); rebuilding", entry, exc)
        return None
    problem = None
    if not isinstance(meta, dict) or meta.get("schema") != CACHE_SCHEMA:
        problem = "unknown schema"
    elif meta.get("key") != key or meta.get("parts") != parts:
        problem = "key parts differ"
    elif not plan.is_file() or sha256_file(plan) != meta.get("plan_sha256"):
        problem = "plan missing or its SHA-256 differs"
    elif not isinstance(meta.get("psnr_db"), (int, float)) or not meta["psnr_db"] >= gate:
        problem = f"parity figure {meta.get('psnr_db')} is below the gate {gate}"
    if problem:
        log.warning("engine cache entry %s: %s; rebuilding", entry, problem)
        return None
    return float(meta["psnr_db"])


def _build_ort_plan(onnx_path: Path, plan: Path, cfg: EngineConfig) -> None:
    """Save ONNX Runtime's fully optimised graph for this CPU as the plan."""
    onnx_engine = backend_module("onnxruntime")
    onnx_engine.OnnxEngine.load(
        onnx_path,
        precision=cfg.precision,
        intra_op_threads=1,
        providers=["CPUExecutionProvider"],
        optimized_path=plan,
    )


def _load(backend: str, plan: Path, cfg: EngineConfig) -> Engine:
    if backend == "onnxruntime":
        # The plan is already optimised for this CPU; "basic" avoids redoing layout passes.
        return backend_module("onnxruntime").OnnxEngine.load(
            plan,
            precision=cfg.precision,
            intra_op_threads=cfg.intra_op_threads,
            graph_optimization="basic",
            providers=["CPUExecutionProvider"],
        )
    return backend_module(backend).ENGINE_CLASS.load(plan)


def _fit_batch(
    ins: dict[str, np.ndarray], outs: dict[str, np.ndarray], cfg: EngineConfig
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Golden frames cut to the profile's batch range (tiled up to ``batch_min``)."""
    n = len(next(iter(ins.values())))
    take = min(n, cfg.batch_max)
    reps = -(-cfg.batch_min // take)

    def fit(a: np.ndarray) -> np.ndarray:
        return np.concatenate([a[:take]] * reps)[: max(take, cfg.batch_min)]

    return {k: fit(v) for k, v in ins.items()}, {k: fit(v) for k, v in outs.items()}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "_", text).strip("_").lower()[:48] or "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
