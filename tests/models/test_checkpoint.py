"""Checkpoints: self-describing, atomic, hashed, weights-only, RNG restore."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.errors import CheckpointError
from pipeline.hashing import sha256_file
from pipeline.inference.actor import ActorModel
from pipeline.models.checkpoint import (
    SCHEMA,
    build_models,
    capture_rng,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from pipeline.models.fusion import Fusion
from pipeline.models.networks import build

PARAMS = {"base_channels": 4, "max_channels": 8, "num_down": 2, "num_res": 1, "embed_dim": 8}


def _save(path: Path) -> tuple[torch.nn.Module, torch.optim.Optimizer, str]:
    torch.manual_seed(0)
    g = build("generator", PARAMS)
    opt = torch.optim.Adam(g.parameters(), lr=1e-3)
    g(
        torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16), torch.zeros(1, g.num_adain)
    ).mean().backward()
    opt.step()
    sha = save_checkpoint(
        path, kind="finetune", step=7, models={"generator": g},
        model_args={"generator": {"network": "generator", "params": PARAMS}},
        optimizers={"generator": opt}, config={"steps": 10}, actor_id="actor-1",
        extra={"history": {"total": [1.0, 0.5]}},
    )  # fmt: skip
    return g, opt, sha


def test_roundtrip_and_self_description(tmp_path: Path) -> None:
    path = tmp_path / "ck" / "checkpoint.pt"
    g, opt, sha = _save(path)
    assert sha == sha256_file(path) and len(sha) == 64
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.pt"]  # no temporaries left
    blob = load_checkpoint(path, expected_sha256=sha)
    assert blob["schema"] == SCHEMA and blob["step"] == 7 and blob["actor_id"] == "actor-1"
    assert blob["config"] == {"steps": 10} and blob["extra"]["history"]["total"] == [1.0, 0.5]
    assert set(blob["rng"]) == {"torch", "numpy", "python", "cuda"}
    g2 = build_models(blob)["generator"]
    for a, b in zip(g.state_dict().values(), g2.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    opt2 = torch.optim.Adam(g2.parameters(), lr=1e-3)
    opt2.load_state_dict(blob["optimizer"]["generator"])
    assert opt2.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]


def test_hash_mismatch_and_corruption(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    _save(path)
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_checkpoint(path, expected_sha256="0" * 64)
    path.write_bytes(path.read_bytes()[:200])  # truncated, as a disk error would leave it
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_foreign_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"model": {}}, path)
    with pytest.raises(CheckpointError, match="not a likeness checkpoint"):
        load_checkpoint(path)


def test_rng_states_restore_exactly() -> None:
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    state = capture_rng()
    want = (torch.rand(3), np.random.rand(3), random.random())
    torch.rand(5)
    np.random.rand(5)
    random.random()
    restore_rng(state)
    got = (torch.rand(3), np.random.rand(3), random.random())
    torch.testing.assert_close(got[0], want[0], rtol=0, atol=0)
    np.testing.assert_array_equal(got[1], want[1])
    assert got[2] == want[2]


def test_a_schema_1_fine_tune_is_upgraded_and_renders_as_it_did(tmp_path: Path) -> None:
    """Schema 1 kept the fusion as four flat ``fuse_*`` settings (missing ones meant the nearest
    reference, piecewise-affine) and the network config as ``profile``."""
    torch.manual_seed(0)
    g = build("generator", {**PARAMS, "use_warp": True})
    images = torch.zeros(2, 16, 16, 3, dtype=torch.uint8)
    points = torch.rand(2, 68, 2) * 16
    blob = {
        "schema": "likeness.checkpoint/1", "kind": "finetune", "step": 3,
        "model": {"generator": g.state_dict(), "actor": {"psi": torch.zeros(1, g.num_adain)}},
        "optimizer": {}, "model_args": {"generator": {"network": "generator",
                                                      "params": {**PARAMS, "use_warp": True}}},
        "rng": capture_rng(), "actor_id": "a",
        "config": {"profile": "cpu-preview", "fuse_top": 2, "fuse_temperature": 0.02,
                   "fuse_select": True, "steps": 3},
        "extra": {"fuse_top": 2, "fuse_temperature": 0.02, "fuse_spline": 0.5,
                  "resume_key": "old", "ref_images": images, "ref_points": points},
    }  # fmt: skip
    torch.save(blob, tmp_path / "old.pt")
    up = load_checkpoint(tmp_path / "old.pt")
    assert up["schema"] == SCHEMA
    assert up["config"] == {
        "network": "cpu-preview", "fusion_select": True, "steps": 3,
        "fusion": {"top": 2, "temperature": 0.02, "spline": 0.0, "flow": 0.0},
    }  # fmt: skip
    assert up["extra"]["fusion"] == {"top": 2, "temperature": 0.02, "spline": 0.5, "flow": 0.0}
    assert "resume_key" not in up["extra"]
    actor = ActorModel.from_checkpoint(tmp_path / "old.pt")
    assert actor.fusion == Fusion(top=2, temperature=0.02, spline=0.5, flow=0.0)
    # a damaged schema-1 file is still a named error, not a crash in the upgrade
    torch.save({**blob, "config": ["not", "a", "mapping"], "extra": None}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError):
        ActorModel.from_checkpoint(tmp_path / "bad.pt")
