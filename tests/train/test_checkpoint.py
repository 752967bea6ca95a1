"""Checkpoints: self-describing, atomic, hashed, weights-only, RNG restore."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.errors import CheckpointError
from pipeline.hashing import sha256_file
from pipeline.models.checkpoint import (
    SCHEMA,
    build_models,
    capture_rng,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
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
