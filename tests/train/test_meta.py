"""train-base: corpus index, one-process run, 2-process gloo torchrun, kill -9 and exact resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from pipeline.demo.synthetic import Motion, astronaut, moving_portrait
from pipeline.errors import CheckpointError, CorpusError
from pipeline.models.checkpoint import load_checkpoint
from pipeline.models.fusion import Fusion
from pipeline.train.episodes import (
    CORPUS_SCHEMA,
    build_corpus_index,
    read_corpus_index,
    sample_episodes,
)
from pipeline.train.finetune import FinetuneParams, finetune
from pipeline.train.meta import MetaTrainConfig, load_config, train_base
from tests import sockets

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, astronaut_points: np.ndarray) -> Path:
    """2 identities × 2 videos × 5 frames, 64-px crops, VoxCeleb-like layout; returns the index."""
    root = tmp_path_factory.mktemp("corpus")
    still = astronaut()
    pts512 = astronaut_points
    for ident, perm in (("id00001", [0, 1, 2]), ("id00002", [2, 1, 0])):
        portrait = np.ascontiguousarray(still[..., perm])  # a second "person": channels swapped
        for vid, seed in (("vid_a", 1), ("vid_b", 2)):
            motion = Motion(tx=2 + seed, ty=1, rot_deg=3 * seed, scale=0.02, cycles=1.0)
            frames, mats = moving_portrait(5, size=(64, 64), motion=motion, portrait=portrait)
            pts = np.stack([(pts512 / 8.0) @ m[:, :2].T + m[:, 2] for m in mats]).astype(np.float32)
            vdir = root / ident / vid
            (vdir / "frames").mkdir(parents=True)
            for i, f in enumerate(frames):
                cv2.imwrite(
                    str(vdir / "frames" / f"{i:06d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR)
                )
            np.savez(vdir / "landmarks.npz", points=pts)
    build_corpus_index(root)
    return root / "index.json"


def _config(tmp_path: Path, network: Path, **kw: object) -> Path:
    cfg = {"network": str(network), "k": 2, "steps": 4, "batch_size": 1, "checkpoint_every": 2,
           "log_every": 1, "device": "cpu", **kw}  # fmt: skip
    path = tmp_path / "meta.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_corpus_index(corpus: Path, tmp_path: Path) -> None:
    index = json.loads(corpus.read_text())
    assert index["schema"] == CORPUS_SCHEMA and len(index["videos"]) == 4
    v = index["videos"][0]
    assert set(v) == {"identity", "video", "frames", "landmarks"} and len(v["frames"]) == 5
    videos = read_corpus_index(corpus, min_frames=3)
    assert videos[0].frames[0].is_file()
    batch = sample_episodes(videos, k=2, count=2, size=32, seed=0, step=0, rank=0)
    assert batch["refs"].shape == (2, 2, 3, 32, 32) and batch["warp"].shape == (2, 3, 32, 32)
    assert batch["identity"].dtype == torch.int64
    again = sample_episodes(videos, k=2, count=2, size=32, seed=0, step=0, rank=0)
    torch.testing.assert_close(again["target"], batch["target"], rtol=0, atol=0)
    other = sample_episodes(videos, k=2, count=2, size=32, seed=0, step=0, rank=1)
    assert not torch.equal(other["target"], batch["target"])
    with pytest.raises(CorpusError, match="no video"):
        read_corpus_index(corpus, min_frames=50)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": "x", "videos": []}))
    with pytest.raises(CorpusError, match="not a likeness.corpus/1"):
        read_corpus_index(bad, 3)
    with pytest.raises(CorpusError, match="no videos"):
        build_corpus_index(tmp_path / "empty")


def test_train_base_then_finetune_from_it(corpus, tiny_network, tmp_path, astronaut_refs) -> None:
    cfg = load_config(_config(tmp_path, tiny_network))
    ckpt = train_base(corpus, cfg, tmp_path / "base")
    blob = load_checkpoint(ckpt)
    assert blob["kind"] == "base" and blob["step"] == 4 and blob["extra"]["world_size"] == 1
    assert blob["model_args"]["discriminator"]["params"]["num_identities"] == 4
    assert len(blob["extra"]["identities"]) == 4
    # a fine-tune starts from it
    ft = FinetuneParams(network="ignored-with-a-base", steps=2, batch_size=2, device="cpu")
    res = finetune(astronaut_refs, ft, tmp_path / "ft", base_checkpoint=ckpt, base_sha256=None)
    assert res.step == 2
    assert load_checkpoint(res.checkpoint)["extra"]["base_checkpoint"] == str(ckpt)
    # resuming with another config is refused
    with pytest.raises(CheckpointError, match="another config"):
        train_base(corpus, MetaTrainConfig(**{**vars(cfg), "lr_g": 1.0}), tmp_path / "base")


def test_warp_input_blends_the_nearest_references_as_the_finetune_does(corpus: Path) -> None:
    videos = read_corpus_index(corpus, min_frames=4)
    one = sample_episodes(
        videos, k=3, count=2, size=32, seed=0, step=0, rank=0, fusion=Fusion(top=1)
    )
    two = sample_episodes(
        videos, k=3, count=2, size=32, seed=0, step=0, rank=0, fusion=Fusion(top=3)
    )
    torch.testing.assert_close(one["target"], two["target"], rtol=0, atol=0)  # same episodes
    assert not torch.equal(one["warp"], two["warp"])


def test_time_budget_stops_with_a_checkpoint_and_holds_across_a_resume(
    corpus, tiny_network, tmp_path, monkeypatch
) -> None:
    import types

    import pipeline.train.meta as meta

    clock = iter(range(0, 10**6, 10))  # every reading of the clock is 10 s later
    monkeypatch.setattr(meta, "time", types.SimpleNamespace(monotonic=lambda: float(next(clock))))
    cfg = load_config(_config(tmp_path, tiny_network, steps=50, max_minutes=1.0))
    blob = load_checkpoint(train_base(corpus, cfg, tmp_path / "base"))
    assert 0 < blob["step"] < 50 and blob["extra"]["elapsed_s"] >= 60.0
    # a resume finds the budget spent: no further step
    again = load_checkpoint(train_base(corpus, cfg, tmp_path / "base"))
    assert again["step"] == blob["step"]
    # a schema-1 checkpoint (flat fuse_* settings and `profile`, written before fuse_spline and
    # fuse_flow existed) is upgraded on load and resumes: a missing setting is its old default
    v1 = {k: v for k, v in again["config"].items() if k not in ("fusion", "network")}
    v1.update(profile=str(tiny_network), fuse_top=3, fuse_temperature=0.01)
    torch.save(
        {**again, "schema": "likeness.checkpoint/1", "config": v1},
        tmp_path / "base" / "checkpoint.pt",
    )
    assert load_checkpoint(train_base(corpus, cfg, tmp_path / "base"))["step"] == blob["step"]
    bad = MetaTrainConfig(fusion=Fusion(spline=-0.1, flow=1.5)).validate()
    assert ("fusion.spline", "got -0.1, expected 0..1") in bad
    assert ("fusion.flow", "got 1.5, expected 0..1") in bad
    assert ("max_minutes", "got 0.0, expected > 0 or null") in MetaTrainConfig(
        max_minutes=0.0
    ).validate()


def _launch(args: list[str]) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=env, cwd=REPO,
    )  # fmt: skip


def test_torchrun_two_processes_gloo_listening_on_loopback_only(
    corpus, tiny_network, tmp_path
) -> None:
    cfg = _config(tmp_path, tiny_network, steps=3, checkpoint_every=2)
    proc = _launch([
        "-m", "pipeline.train.launch", "--nproc", "2",
        "-m", "pipeline.train.meta", str(corpus), "--out", str(tmp_path / "ddp"),
        "--config", str(cfg), "--threads", "1",
    ])  # fmt: skip
    seen: set[tuple[str, int]] = set()
    while proc.poll() is None:  # the rendezvous store and gloo's pairs, while they exist
        seen |= sockets.listening(proc.pid)
        time.sleep(0.05)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert len(seen) >= 2, f"expected the store and gloo listening, saw {seen}"
    assert all(sockets.is_loopback(a) for a, _ in seen), seen
    assert "done" in out
    blob = load_checkpoint(tmp_path / "ddp" / "checkpoint.pt")
    assert blob["step"] == 3 and blob["extra"]["world_size"] == 2


def test_kill_9_then_resume_matches_an_uninterrupted_run(corpus, tiny_network, tmp_path) -> None:
    cfg = _config(tmp_path, tiny_network, steps=8, checkpoint_every=3)
    cmd = [
        "-m",
        "pipeline.train.meta",
        str(corpus),
        "--config",
        str(cfg),
        "--threads",
        "1",
        "--out",
    ]
    proc = _launch([*cmd, str(tmp_path / "clean")])
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out

    proc = _launch([*cmd, str(tmp_path / "broken")])
    seen = False
    assert proc.stdout is not None
    for line in proc.stdout:
        if "checkpoint step 3" in line:
            seen = True
        elif seen and "train-base step" in line:
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert seen and proc.returncode == -signal.SIGKILL
    assert load_checkpoint(tmp_path / "broken" / "checkpoint.pt")["step"] == 3
    proc = _launch([*cmd, str(tmp_path / "broken")])
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0 and "resuming train-base from step 3" in out, out

    a = load_checkpoint(tmp_path / "clean" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "broken" / "checkpoint.pt")
    assert a["step"] == b["step"] == 8
    for net in ("embedder", "generator", "discriminator"):
        for key, value in a["model"][net].items():
            torch.testing.assert_close(
                b["model"][net][key], value, rtol=0, atol=0, msg=f"{net}.{key}"
            )
    for name in ("generator", "discriminator"):
        for i, st in a["optimizer"][name]["state"].items():
            torch.testing.assert_close(
                b["optimizer"][name]["state"][i]["exp_avg_sq"], st["exp_avg_sq"], rtol=0, atol=0
            )
