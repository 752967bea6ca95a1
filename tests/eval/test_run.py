"""pipeline.eval.run: bad arguments, and one evaluation end to end on a generated clip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pipeline.errors import EvalError, LikenessError
from pipeline.eval.cli import format_summary
from pipeline.eval.run import SCHEMA, evaluate_clip

TINY_NETWORK = {
    "image_size": 64,
    "embed_dim": 16,
    "embedder_params": {"base_channels": 4, "max_channels": 8, "num_down": 3},
    "generator_params": {"base_channels": 8, "max_channels": 16, "num_down": 2, "num_res": 1},
    "discriminator_params": {"base_channels": 4, "max_channels": 8, "num_down": 3},
}


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(LikenessError):
        evaluate_clip(tmp_path / "x.mov", mode="cross")  # no driving clip
    with pytest.raises(LikenessError):
        evaluate_clip(tmp_path / "x.mov", mode="sideways")  # type: ignore[arg-type]
    with pytest.raises(EvalError, match="base checkpoint .* does not exist"):
        evaluate_clip(tmp_path / "x.mov", base=tmp_path / "missing.pt")


def test_evaluate_clip_end_to_end(moving_clip: Path, tmp_path: Path) -> None:
    pytest.importorskip("dlib")
    network = tmp_path / "tiny.yaml"
    network.write_text(yaml.safe_dump(TINY_NETWORK))
    res = evaluate_clip(
        moving_clip, k=3, minutes=0.05, network=str(network), tests=6, run_length=3, min_gap=1,
        out_dir=tmp_path / "out", cache=tmp_path / "cache",
        finetune_overrides={"batch_size": 2, "eval_every": 2},
    )  # fmt: skip
    assert res["schema"] == SCHEMA and res["size"] == 64 and res["k"] == 3
    assert len(res["reference_frames"]) == 3 and res["driving_frames"] == len(res["frames"]) > 0
    for system in ("learned", "warp"):
        assert set(res[system]) == {
            "psnr",
            "ssim",
            "identity",
            "landmark_error",
            "jitter",
            "jitter_raw",
            "ssim_face",
            "psnr_face",
        }
        assert 5.0 < res[system]["psnr"] < 100.0 and 0.0 < res[system]["ssim"] <= 1.0
        assert 5.0 < res[system]["psnr_face"] < 100.0 and 0.0 < res[system]["ssim_face"] <= 1.0
    assert set(res["delta"]) == set(res["warp"])
    assert set(res["train"]["fusion"]) == {"top", "temperature", "spline", "flow"}
    saved = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert saved["schema"] == SCHEMA and saved["learned"] == pytest.approx(res["learned"])
    assert (tmp_path / "out" / "eval.png").stat().st_size > 0
    assert list((tmp_path / "cache").glob("astro_*.npz"))  # landmarks cached for reruns
    assert "learned" in format_summary(res)
