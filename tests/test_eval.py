"""The quality harness: metrics on known values, frame selection, and a tiny end-to-end run on a
generated clip (the astronaut moving, written as ProRes); no real media."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pipeline.errors import EvalError, LikenessError
from pipeline.eval import clips
from pipeline.eval.cli import format_summary
from pipeline.eval.clips import load_clip, pick_frames
from pipeline.eval.metrics import (
    error_jitter,
    face_psnr,
    face_ssim,
    face_weights,
    inter_ocular,
    landmark_error,
    psnr,
    ssim,
)
from pipeline.eval.run import SCHEMA, evaluate_clip

TINY_NETWORK = {
    "image_size": 64,
    "embed_dim": 16,
    "embedder_params": {"base_channels": 4, "max_channels": 8, "num_down": 3},
    "generator_params": {"base_channels": 8, "max_channels": 16, "num_down": 2, "num_res": 1},
    "discriminator_params": {"base_channels": 4, "max_channels": 8, "num_down": 3},
}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _shape(seed: int = 0) -> np.ndarray:
    from pipeline.align import CANONICAL_68

    rng = np.random.default_rng(seed)
    return (CANONICAL_68 * 64 + rng.normal(0, 0.3, (68, 2))).astype(np.float64)


def test_psnr_and_ssim_known_values() -> None:
    a = np.full((16, 16, 3), 0.5, np.float32)
    assert psnr(a, a + 0.1) == pytest.approx(20.0, abs=1e-4)  # MSE 0.01
    assert psnr(a, a) == 100.0
    img = np.random.default_rng(0).random((32, 32, 3)).astype(np.float32)
    assert ssim(img, img) == pytest.approx(1.0)
    # flat images: only the luminance term, (2·0.5·0.6 + C1) / (0.5² + 0.6² + C1), C1 = 0.01²
    assert ssim(a, a + 0.1) == pytest.approx(0.6001 / 0.6101, abs=1e-6)


def test_face_region_measures_count_only_the_weighted_pixels() -> None:
    rng = np.random.default_rng(3)
    truth = rng.random((32, 32, 3))
    pred = truth.copy()
    pred[:, 16:] = np.clip(pred[:, 16:] + 0.2, 0.0, 1.0)  # right half wrong
    left = np.zeros((32, 32))
    left[:, :8] = 1.0  # far from the wrong half (the SSIM window reaches 5 px)
    assert face_ssim(pred, truth, left) == pytest.approx(1.0)
    assert face_psnr(pred, truth, left) == 100.0
    right = 1.0 - left
    mse = ((pred - truth) ** 2).mean(axis=2)[:, 8:].mean()
    assert face_psnr(pred, truth, right) == pytest.approx(10 * np.log10(1 / mse))
    assert face_ssim(pred, truth, right) < 0.99
    assert np.isnan(face_ssim(pred, truth, np.zeros((32, 32))))
    assert np.isnan(face_psnr(pred, truth, np.zeros((32, 32))))
    # The weights are the production face matte: zero in the corners, one at the nose.
    from pipeline.align import CANONICAL_68

    w = face_weights(CANONICAL_68 * 64, 64)
    assert w.shape == (64, 64) and w[0, 0] == 0.0 and w[0, -1] == 0.0
    nose = np.round(CANONICAL_68[30] * 64).astype(int)
    assert w[nose[1], nose[0]] == 1.0


def test_ssim_matches_the_training_loss_formula() -> None:
    """Harness SSIM and the differentiable loss SSIM are one formula (valid region aside)."""
    from pipeline.train.losses import ssim as torch_ssim

    rng = np.random.default_rng(1)
    a = rng.random((48, 48, 3)).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1).astype(np.float32)
    t = float(
        torch_ssim(
            torch.from_numpy(a).permute(2, 0, 1)[None], torch.from_numpy(b).permute(2, 0, 1)[None]
        )
    )
    assert ssim(a, b) == pytest.approx(t, abs=0.03)


def test_landmark_error_and_jitter_known_values() -> None:
    ref = _shape()
    iod = inter_ocular(ref)
    assert landmark_error(ref + [0.1 * iod, 0.0], ref) == pytest.approx(0.1)
    track = np.stack([_shape(i) for i in range(5)])
    # an output that moves exactly like the truth, offset by a constant: no jitter
    assert error_jitter(track + 2.0, track) == pytest.approx(0.0, abs=1e-12)
    # an error that alternates by ±d on every point: RMS change 2·d·√2 / inter-ocular
    alt = track + np.array([1.0, 1.0]) * np.array([1, -1, 1, -1, 1])[:, None, None]
    mean_iod = np.mean([inter_ocular(x) for x in track])
    assert error_jitter(alt, track) == pytest.approx(2 * np.sqrt(2) / mean_iod)
    assert np.isnan(error_jitter(track[:1], track[:1]))


def test_pick_frames() -> None:
    frames = np.arange(1001, 1101)
    refs, runs = pick_frames(frames, 8, 40, 8, 5)
    assert len(refs) == 8 and refs[0] == 0 and refs[-1] == 99
    assert sum(len(r) for r in runs) <= 40 and len(runs) >= 4
    for run in runs:
        assert np.all(np.diff(frames[run]) == 1)
        assert np.abs(frames[run][:, None] - frames[refs][None]).min() > 5
    with pytest.raises(EvalError):
        pick_frames(frames[:5], 8, 40, 8, 5)
    with pytest.raises(EvalError):
        pick_frames(frames[:10], 8, 40, 8, 5)  # nothing far enough from the references


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(LikenessError):
        evaluate_clip(tmp_path / "x.mov", mode="cross")  # no driving clip
    with pytest.raises(LikenessError):
        evaluate_clip(tmp_path / "x.mov", mode="sideways")  # type: ignore[arg-type]
    with pytest.raises(EvalError, match="base checkpoint .* does not exist"):
        evaluate_clip(tmp_path / "x.mov", base=tmp_path / "missing.pt")


@pytest.fixture(scope="module")
def moving_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 frames of the astronaut's head moving, 256², ProRes 422 HQ."""
    from pipeline.demo.synthetic import Motion, astronaut_head, moving_portrait
    from pipeline.io import ProResWriter

    frames, _ = moving_portrait(
        24, size=(256, 256), portrait=astronaut_head(), motion=Motion(tx=6, ty=3, rot_deg=5)
    )
    path = tmp_path_factory.mktemp("clip") / "astro.mov"
    with ProResWriter(path, width=256, height=256, fps=Fraction(24), codec="prores_422hq") as w:
        for f in frames:
            w.write(f.astype(np.float32) / 255.0)
    return path


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


def test_load_clip_streams_tracks_once_and_reuses_the_cache(
    moving_clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("dlib")
    first = load_clip(moving_clip, 64, max_frames=10, cache=tmp_path)
    assert first.frames.tolist() == list(range(first.frames[0], first.frames[0] + 10))
    assert first.crops.shape == (10, 64, 64, 3) and first.crops.dtype == np.float32
    assert first.points.shape == (10, 68, 2) and first.transforms.shape == (10, 2, 3)
    (cached,) = tmp_path.glob("astro_*_10.npz")
    with pytest.raises(LikenessError, match="does not exist"):
        load_clip(tmp_path / "missing.mov", 64, cache=tmp_path)

    def no_tracking(*args: object, **kwargs: object) -> None:
        raise AssertionError("tracked again although the landmarks were cached")

    monkeypatch.setattr(clips, "track_clip", no_tracking)
    again = load_clip(moving_clip, 64, max_frames=10, cache=tmp_path)
    np.testing.assert_array_equal(again.frames, first.frames)
    np.testing.assert_allclose(again.points, first.points)
    np.testing.assert_allclose(again.crops, first.crops)
