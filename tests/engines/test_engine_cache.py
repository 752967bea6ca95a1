"""The engine cache: key parts, verified lookups, corrupt entries rebuilt, failed engines never stored."""

from __future__ import annotations

import json

import pytest

from engines.cache import (
    META_NAME,
    PLAN_NAME,
    build_engine_for_node,
    engine_cache_key,
    profile_shapes_for,
)
from engines.export import golden_path
from engines.parity import load_golden, save_golden
from pipeline.errors import EngineParityError, EngineUnavailableError
from pipeline.inference.engine import EngineConfig

BASE = {
    "model_sha256": "a" * 64,
    "gpu_name": "NVIDIA L40S",
    "compute_capability": "8.9",
    "trt_version": "10.7.0",
    "precision": "fp16",
    "profile_shapes": {"landmarks": ((1, 3, 256, 256), (8, 3, 256, 256), (16, 3, 256, 256))},
}
CHANGED = {
    "model_sha256": "b" * 64,
    "gpu_name": "NVIDIA A100-SXM4-80GB",
    "compute_capability": "8.0",
    "trt_version": "10.8.0",
    "precision": "fp32",
    "profile_shapes": {"landmarks": ((1, 3, 256, 256), (4, 3, 256, 256), (16, 3, 256, 256))},
}


def test_key_is_stable_and_readable():
    key = engine_cache_key(**BASE)
    assert key == engine_cache_key(**BASE)
    assert key.startswith("nvidia_l40s-sm89-10.7.0-fp16-")
    assert "/" not in key and len(key) < 120


@pytest.mark.parametrize("part", sorted(CHANGED))
def test_key_changes_when_any_part_changes(part):
    assert engine_cache_key(**{**BASE, part: CHANGED[part]}) != engine_cache_key(**BASE)


def _cfg(tmp_path, **kw) -> EngineConfig:
    return EngineConfig(
        backend="onnxruntime",
        cache_dir=tmp_path / "cache",
        batch_min=1,
        batch_opt=2,
        batch_max=4,
        intra_op_threads=1,
        **kw,
    )


def test_profile_shapes_follow_the_config(exported, tmp_path):
    shapes = profile_shapes_for(exported, _cfg(tmp_path))
    assert shapes == {"landmarks": ((1, 3, 32, 32), (2, 3, 32, 32), (4, 3, 32, 32))}


def test_build_then_reuse(exported, tmp_path):
    cfg = _cfg(tmp_path)
    first = build_engine_for_node(exported, cfg)
    assert not first.from_cache and first.psnr_db >= 45.0 and first.backend == "onnxruntime"
    meta = json.loads((first.plan_path.parent / META_NAME).read_text())
    assert meta["key"] == first.key and meta["psnr_db"] == first.psnr_db
    assert set(meta["parts"]) == set(BASE)
    second = build_engine_for_node(exported, cfg)
    assert second.from_cache and second.key == first.key
    x = load_golden(golden_path(exported))[0]["landmarks"][:2]
    with second.open(cfg) as engine:
        assert engine(landmarks=x)["image"].shape == (2, 3, 32, 32)


def test_corrupt_plan_is_rebuilt_not_used(exported, tmp_path):
    cfg = _cfg(tmp_path)
    entry = build_engine_for_node(exported, cfg)
    plan = entry.plan_path
    plan.write_bytes(plan.read_bytes()[:-7] + b"garbage")
    again = build_engine_for_node(exported, cfg)
    assert not again.from_cache and again.psnr_db >= 45.0
    assert build_engine_for_node(exported, cfg).from_cache


def test_mismatched_meta_is_rebuilt(exported, tmp_path):
    cfg = _cfg(tmp_path)
    entry = build_engine_for_node(exported, cfg)
    meta_path = entry.plan_path.parent / META_NAME
    meta = json.loads(meta_path.read_text())
    meta["parts"]["gpu_name"] = "some other GPU"
    meta_path.write_text(json.dumps(meta))
    assert not build_engine_for_node(exported, cfg).from_cache


def test_open_refuses_a_plan_changed_after_lookup(exported, tmp_path):
    from pipeline.errors import EngineBuildError

    entry = build_engine_for_node(exported, _cfg(tmp_path))
    entry.plan_path.write_bytes(b"not a model")
    with pytest.raises(EngineBuildError, match="SHA-256"):
        entry.open()


def test_engine_failing_parity_is_never_cached(exported, tmp_path):
    ins, outs = load_golden(golden_path(exported))
    bad_golden = tmp_path / "bad.golden.npz"
    save_golden(bad_golden, ins, {k: v + 0.05 for k, v in outs.items()})  # ≈ 26 dB
    cfg = _cfg(tmp_path)
    with pytest.raises(EngineParityError):
        build_engine_for_node(exported, cfg, golden=bad_golden)
    cache = cfg.resolved_cache_dir()
    assert not any(p.name.endswith(PLAN_NAME) for p in cache.rglob("*")) if cache.exists() else True
    assert not cache.exists() or [p for p in cache.iterdir() if not p.name.startswith(".")] == []


def test_torch_backend_has_nothing_to_build(exported, tmp_path):
    cfg = EngineConfig(backend="torch", cache_dir=tmp_path)
    with pytest.raises(EngineUnavailableError, match="torch"):
        build_engine_for_node(exported, cfg)


def test_stored_figure_below_todays_gate_is_rebuilt(exported, tmp_path):
    cfg = _cfg(tmp_path)
    entry = build_engine_for_node(exported, cfg)
    meta_path = entry.plan_path.parent / META_NAME
    meta = json.loads(meta_path.read_text())
    meta["psnr_db"] = 40.0  # as if built under a looser gate
    meta_path.write_text(json.dumps(meta))
    again = build_engine_for_node(exported, cfg)
    assert not again.from_cache and again.psnr_db >= 45.0
