"""bench/warps.py on a generated clip: every row scored, a bad clip named and skipped, the JSON
written, the headline last. No real media."""

from __future__ import annotations

import importlib.util
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def bench():
    spec = importlib.util.spec_from_file_location("bench_warps", REPO / "bench" / "warps.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_scores_every_row_and_skips_a_bad_clip(bench, tmp_path: Path, capsys) -> None:
    pytest.importorskip("dlib")
    from pipeline.demo.synthetic import Motion, astronaut_head, moving_portrait
    from pipeline.io import ProResWriter

    frames, _ = moving_portrait(
        48, size=(256, 256), portrait=astronaut_head(), motion=Motion(tx=6, ty=3, rot_deg=5)
    )
    clip = tmp_path / "astro.mov"
    with ProResWriter(clip, width=256, height=256, fps=Fraction(24), codec="prores_422hq") as w:
        for f in frames:
            w.write(f.astype(np.float32) / 255.0)
    out = tmp_path / "w.json"
    args = [str(tmp_path / "missing.mp4"), str(clip), "--k", "3", "--tests", "8"]
    rc = bench.main([*args, "--json", str(out), "--cache", str(tmp_path / "lm"), "--threads", "1"])
    assert rc == 1  # one clip failed
    data = json.loads(out.read_text())
    assert data["schema"] == "likeness.bench.warps/1"
    (failed,) = data["failed"]
    assert failed["error"] == "DecodeError" and "missing.mp4" in failed["clip"]
    (res,) = data["results"]
    assert res["clip"] == "astro" and res["frames"] > 0
    assert res["fusion_affine"][2] == 0.0 and 0.0 <= res["fusion"][2] <= 1.0
    for system in bench.SYSTEMS:
        assert 0.0 < res[system]["ssim"] <= 1.0 and 5.0 < res[system]["psnr"] < 100.0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("HEADLINE 1 clips vs warp:") and last.endswith("1 failed")
