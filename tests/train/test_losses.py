"""Losses: hinge, feature matching, multi-scale L1, SSIM against scikit-image, VGG19 handling."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from pipeline.errors import CheckpointError, WeightsMissingError
from pipeline.train.losses import (
    VGG19_FILE,
    PerceptualLoss,
    VGG19Features,
    build_perceptual,
    embedding_match,
    feature_matching,
    hinge_d_loss,
    hinge_g_loss,
    multiscale_l1,
    ssim,
    ssim_loss,
)
from pipeline.train.objective import LossWeights, discriminator_objective, generator_objective


def _img(seed: int, *shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def test_hinge_golden() -> None:
    real, fake = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-2.0, 0.0, 1.5])
    # relu(1 − real) = [0, .5, 2] → 2.5/3 ; relu(1 + fake) = [0, 1, 2.5] → 3.5/3
    assert float(hinge_d_loss(real, fake)) == pytest.approx(6.0 / 3.0)
    assert float(hinge_g_loss(fake)) == pytest.approx(0.5 / 3.0)


def test_feature_matching_and_embedding_match() -> None:
    a = [torch.ones(1, 2, 4, 4), torch.zeros(1, 3, 2, 2)]
    b = [torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 2, 2)]
    assert float(feature_matching(a, b)) == pytest.approx(0.5)
    assert float(embedding_match(torch.ones(2, 4), torch.zeros(2, 4))) == pytest.approx(1.0)
    # real features are targets: no gradient flows into them
    real = [torch.ones(1, 2, 4, 4, requires_grad=True)]
    fake = [torch.zeros(1, 2, 4, 4, requires_grad=True)]
    feature_matching(real, fake).backward()
    assert real[0].grad is None and fake[0].grad is not None


def test_multiscale_l1_golden() -> None:
    x, y = _img(1, 1, 3, 16, 16), _img(2, 1, 3, 16, 16)
    assert float(multiscale_l1(x, x)) == 0.0
    assert float(multiscale_l1(x, y)) == pytest.approx(GOLDEN_MSL1, rel=1e-5)


def test_ssim_matches_scikit_image() -> None:
    x = _img(3, 1, 3, 40, 40)
    y = (x + 0.1 * _img(4, 1, 3, 40, 40)).clamp(0, 1)
    want = structural_similarity(
        x[0].permute(1, 2, 0).numpy(), y[0].permute(1, 2, 0).numpy(), channel_axis=2,
        data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    )  # fmt: skip
    assert float(ssim(x, y)) == pytest.approx(want, abs=1e-5)
    assert float(ssim_loss(x, x)) == pytest.approx(0.0, abs=1e-6)
    x.requires_grad_(True)
    ssim_loss(x, y).backward()
    assert torch.isfinite(x.grad).all()


def test_objectives_shapes_and_weights() -> None:
    from pipeline.models.networks import build

    torch.manual_seed(0)
    d = build(
        "discriminator", {"base_channels": 4, "max_channels": 8, "num_down": 2, "embed_dim": 8}
    )
    fake, real, lm = _img(5, 2, 3, 32, 32), _img(6, 2, 3, 32, 32), _img(7, 2, 3, 32, 32)
    w = torch.randn(2, 8)
    total, parts = generator_objective(fake, real, lm, d, w, LossWeights(), None)
    assert set(parts) == {"l1", "ssim", "adv", "fm"}
    assert float(total) == pytest.approx(sum(float(v) for v in parts.values()), rel=1e-6)
    only_rec, parts = generator_objective(
        fake, real, lm, None, None, LossWeights(adv=0, fm=0), None
    )
    assert set(parts) == {"l1", "ssim"}
    loss_d, _ = discriminator_objective(fake, real, lm, d, w)
    assert loss_d.dim() == 0 and float(loss_d) > 0


def test_vgg_not_configured_warns_and_skips(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="pipeline.train.losses"):
        assert build_perceptual(None) is None
    assert "VGG19 perceptual loss skipped" in caplog.text and VGG19_FILE in caplog.text


def test_vgg_configured_but_missing_names_the_file(tmp_path: Path) -> None:
    where = tmp_path / "weights" / VGG19_FILE
    with pytest.raises(WeightsMissingError) as info:
        build_perceptual(where)
    msg = str(info.value)
    assert str(where) in msg and VGG19_FILE in msg and "never downloaded" in msg


def test_vgg_loads_a_state_dict_with_weights_only(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = tmp_path / VGG19_FILE
    state = VGG19Features().state_dict()
    state = {k: v for k, v in state.items() if k.startswith("features.")}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # torchvision files carry the classifier too
    torch.save(state, path)
    loss = build_perceptual(path)
    assert isinstance(loss, PerceptualLoss)
    x, y = _img(8, 1, 3, 32, 32), _img(9, 1, 3, 32, 32)
    assert float(loss(x, x)) == 0.0 and float(loss(x, y)) > 0.0
    assert all(not p.requires_grad for p in loss.parameters())


def test_vgg_bad_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError):
        build_perceptual(junk)
    partial = tmp_path / "partial.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, partial)
    with pytest.raises(CheckpointError, match="lacks"):
        build_perceptual(partial)


GOLDEN_MSL1 = 0.19605527818202972


def test_golden_is_set() -> None:
    assert GOLDEN_MSL1 != 0.0 and np.isfinite(GOLDEN_MSL1)
