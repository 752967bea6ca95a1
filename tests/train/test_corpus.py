"""`likeness train-base` from a raw VoxCeleb-like corpus: preparation through the tracking library."""

from __future__ import annotations

import json

import cv2
import numpy as np
import yaml

from pipeline.demo.synthetic import Motion, astronaut_head, moving_portrait
from tasks.cli import main


def _corpus(root, identities=("id0", "id1"), frames=10):
    for k, ident in enumerate(identities):
        vdir = root / ident / "vid0"
        vdir.mkdir(parents=True)
        head = astronaut_head() if k == 0 else np.ascontiguousarray(astronaut_head()[:, ::-1])
        clip, _ = moving_portrait(
            frames, (160, 160), Motion(tx=2, ty=1, rot_deg=2), portrait=head, seed=k
        )
        for i, f in enumerate(clip):
            cv2.imwrite(str(vdir / f"{i:04d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    (root / "notes.txt").write_text("not a video folder")


def test_train_base_prepares_corpus_and_trains(tmp_path):
    _corpus(tmp_path / "raw")
    cfg = tmp_path / "meta.yaml"
    cfg.write_text(
        yaml.safe_dump({"steps": 2, "k": 2, "batch_size": 1, "checkpoint_every": 1, "log_every": 1})
    )
    out = tmp_path / "out"
    assert (
        main(
            [
                "train-base",
                str(tmp_path / "raw"),
                "--out",
                str(out),
                "--config",
                str(cfg),
                "--threads",
                "1",
            ]
        )
        == 0
    )
    index = json.loads((out / "corpus" / "index.json").read_text())
    assert len(index["videos"]) == 2
    pts = np.load(out / "corpus" / "id0" / "vid0" / "landmarks.npz")["points"]
    assert pts.shape[1:] == (68, 2) and len(pts) == len(index["videos"][0]["frames"])
    assert (out / "base" / "checkpoint.pt").is_file()
    # a rerun reuses the prepared corpus and resumes the finished run
    assert (
        main(
            [
                "train-base",
                str(out / "corpus"),
                "--out",
                str(out),
                "--config",
                str(cfg),
                "--threads",
                "1",
            ]
        )
        == 0
    )
