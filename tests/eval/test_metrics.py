"""pipeline.eval.metrics: PSNR, SSIM and the face-weighted measures, landmark error and jitter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

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
