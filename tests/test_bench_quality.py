"""bench/quality.py's bookkeeping: a bad clip is reported and skipped, --json is kept after every
clip, and --resume does not score a finished clip twice. No real media, no fine-tuning."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def bench():
    spec = importlib.util.spec_from_file_location("bench_quality", REPO / "bench" / "quality.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _scored(clip: Path, dssim: float) -> dict:
    metrics = {m: 0.5 for m in ("psnr", "ssim", "landmark_error", "identity", "jitter")}
    metrics |= {"ssim_face": 0.9, "psnr_face": 30.0}
    learned = dict(metrics, ssim=0.5 + dssim, psnr=21.5, landmark_error=0.4, identity=0.4)
    delta = {m: learned[m] - metrics[m] for m in metrics}
    return {
        "clip": str(clip),
        "name": clip.stem,
        "driving_frames": 40,
        "train": {"steps": 3, "seconds": 1.0, "best_step": 0},
        "learned": learned,
        "warp": metrics,
        "delta": delta,
        "wall_s": 2.0,
    }


def test_a_bad_clip_is_named_and_the_others_are_kept(bench, tmp_path, monkeypatch, capsys) -> None:
    good = tmp_path / "good.mp4"
    good.write_bytes(b"not decoded: evaluate_clip is replaced")
    missing = tmp_path / "missing.mp4"
    calls = []

    def fake_eval(clip, *args, **kwargs):
        calls.append(Path(clip))
        if Path(clip) == missing:
            from pipeline.eval.clips import load_clip

            load_clip(clip, 64)  # the real decoder's named error
        return dict(_scored(Path(clip), 0.04), frames=[{"frame": 1}])

    monkeypatch.setattr("pipeline.eval.run.evaluate_clip", fake_eval)
    out = tmp_path / "q.json"
    rc = bench.main(
        [
            str(missing),
            str(good),
            "--json",
            str(out),
            "--out",
            str(tmp_path / "o"),
            "--threads",
            "1",
        ]
    )
    assert rc == 1
    assert calls == [missing, good]
    saved = json.loads(out.read_text())
    assert [c["name"] for c in saved["clips"]] == ["good"]
    assert "frames" not in saved["clips"][0]
    (fail,) = saved["failed"]
    assert fail["name"] == "missing" and fail["error"] == "DecodeError"
    assert "does not exist" in fail["message"] and fail["fix"]
    last = capsys.readouterr().out.strip().splitlines()[-1]
    # One clip of two won: not "most clips", so the goal is not met even though it was won.
    assert last.startswith("HEADLINE 1 clips:") and "clips won 1/2 (1 failed: missing)" in last
    assert "goal NOT MET" in last


def test_resume_keeps_finished_clips_and_refuses_other_settings(
    bench, tmp_path, monkeypatch
) -> None:
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    out = tmp_path / "q.json"
    args = [str(a), str(b), "--json", str(out), "--threads", "1", "--minutes", "1"]
    scored = []

    def fake_eval(clip, *rest, **kwargs):
        scored.append(Path(clip).name)
        return _scored(Path(clip), 0.05)

    monkeypatch.setattr("pipeline.eval.run.evaluate_clip", fake_eval)
    assert bench.main(args) == 0
    assert scored == ["a.mp4", "b.mp4"]
    assert bench.main([*args, "--resume"]) == 0
    assert scored == ["a.mp4", "b.mp4"]  # nothing scored twice
    assert [c["name"] for c in json.loads(out.read_text())["clips"]] == ["a", "b"]
    # Other settings: refused with a named error, and the file is left as it was.
    before = out.read_bytes()
    assert bench.main([*args[:-1], "2", "--resume"]) == 2
    assert out.read_bytes() == before
    out.write_text("{not json")
    assert bench.main([*args, "--resume"]) == 2


def test_headline_with_no_clip_scored(bench) -> None:
    line = bench.headline([], [{"name": "x"}])
    assert line == "HEADLINE 0 of 1 clips scored (1 failed: x)  goal NOT MET"
