"""Losses of Zakharov et al. 2019 (section 3.2) plus the reconstruction terms we lean on.

- hinge adversarial loss for D and G (``L_ADV``, ``L_DSC``);
- feature matching on D's intermediate features (``L_FM``);
- multi-scale L1 and SSIM (beyond the paper: they dominate our objective, because PSNR/SSIM
  against the plate is what the quality gate measures);
- embedding match ``L_MCH = ‖W_i − ê_i‖₁``;
- VGG19 perceptual loss (``L_CNT``), only when a weights file is configured. Without one the term
  is skipped with a logged warning; weights are never downloaded. VGG19 is built here in plain
  torch, with torchvision's parameter names, so torchvision's ``vgg19-dcbb9e9d.pth`` loads as is.

Images are B×3×H×W float32 in 0..1, display sRGB, throughout.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.errors import CheckpointError, WeightsMissingError

log = logging.getLogger(__name__)

#: The file name torchvision publishes for ImageNet VGG19 weights.
VGG19_FILE = "vgg19-dcbb9e9d.pth"

# torchvision's VGG19 "E" configuration: channel counts, "M" = max pool.
_VGG19_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
    512, 512, 512, 512, "M", 512, 512, 512, 512, "M",
)  # fmt: skip
#: Indices in ``features`` of relu1_1, relu2_1, relu3_1, relu4_1, relu5_1.
VGG_LAYERS = (1, 6, 11, 20, 29)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def hinge_d_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """D's hinge loss ``mean(relu(1 − r_real)) + mean(relu(1 + r_fake))`` (B, B → scalar)."""
    return F.relu(1.0 - real_scores).mean() + F.relu(1.0 + fake_scores).mean()


def hinge_g_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """G's adversarial loss ``−mean(r_fake)`` (B → scalar)."""
    return -fake_scores.mean()


def feature_matching(
    real_feats: list[torch.Tensor], fake_feats: list[torch.Tensor]
) -> torch.Tensor:
    """Mean over D's blocks of the L1 distance between real and fake features (real detached)."""
    terms = [F.l1_loss(f, r.detach()) for r, f in zip(real_feats, fake_feats)]
    return torch.stack(terms).mean()


def multiscale_l1(pred: torch.Tensor, target: torch.Tensor, scales: int = 3) -> torch.Tensor:
    """Mean of L1 at full, half, quarter… resolution (B×3×H×W pair → scalar)."""
    total = F.l1_loss(pred, target)
    for _ in range(scales - 1):
        pred, target = F.avg_pool2d(pred, 2), F.avg_pool2d(target, 2)
        total = total + F.l1_loss(pred, target)
    return total / scales


def _gaussian_1d(size: int, sigma: float, device: torch.device) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2.0
    g = torch.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()  # size


def ssim(
    pred: torch.Tensor, target: torch.Tensor, window: int = 11, sigma: float = 1.5
) -> torch.Tensor:
    """Mean SSIM (Wang et al. 2004, Gaussian window, valid region), differentiable.

    The Gaussian blur is separable and the five blurred maps go through one grouped
    convolution pair, which is an order of magnitude faster on CPU than a 2-D window.

    Args:
        pred: B×C×H×W float in 0..1.
        target: B×C×H×W float in 0..1.

    Returns:
        scalar; per channel, averaged like ``skimage.metrics.structural_similarity``
        with ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1``.
    """
    c = pred.shape[1]
    g = _gaussian_1d(window, sigma, pred.device).to(pred.dtype)
    n = 5 * c
    gx = g.view(1, 1, 1, window).expand(n, 1, 1, window)  # 5C×1×1×k
    gy = g.view(1, 1, window, 1).expand(n, 1, window, 1)  # 5C×1×k×1
    stacked = torch.cat([pred, target, pred * pred, target * target, pred * target], dim=1)
    blurred = F.conv2d(F.conv2d(stacked, gx, groups=n), gy, groups=n)  # B×5C×H′×W′
    mu_x, mu_y, exx, eyy, exy = blurred.split(c, dim=1)
    c1, c2 = 0.01**2, 0.03**2
    sxx = exx - mu_x * mu_x
    syy = eyy - mu_y * mu_y
    sxy = exy - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (sxx + syy + c2)
    return (num / den).mean()


def ssim_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 − SSIM`` (scalar)."""
    return 1.0 - ssim(pred, target)


def embedding_match(w: torch.Tensor, e_hat: torch.Tensor) -> torch.Tensor:
    """``L_MCH``: mean absolute difference between D's identity vectors and ê (B×D pair)."""
    return F.l1_loss(w, e_hat)


class VGG19Features(nn.Module):
    """VGG19's convolutional trunk with torchvision's parameter names (``features.N.weight``).

    ``forward`` returns the activations at :data:`VGG_LAYERS` for display-sRGB input in 0..1
    (ImageNet normalisation is applied inside).
    """

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in _VGG19_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, int(v), 3, padding=1), nn.ReLU(inplace=False)]
                cin = int(v)
        self.features = nn.Sequential(*layers[: VGG_LAYERS[-1] + 1])
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """B×3×H×W display sRGB 0..1 → the five ``relu*_1`` activations."""
        h = (x - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in VGG_LAYERS:
                out.append(h)
        return out


class PerceptualLoss(nn.Module):
    """``L_CNT``: L1 between VGG19 activations of prediction and target, frozen VGG."""

    def __init__(self, vgg: VGG19Features) -> None:
        super().__init__()
        self.vgg = vgg.eval()
        for p in self.vgg.parameters():
            p.requires_grad_(False)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """B×3×H×W pair in 0..1 → scalar."""
        fp, ft = self.vgg(pred), self.vgg(target)
        return torch.stack([F.l1_loss(a, b.detach()) for a, b in zip(fp, ft)]).mean()


def build_perceptual(weights: str | Path | None) -> PerceptualLoss | None:
    """The VGG19 perceptual loss, or ``None`` (skipped, with a warning) when not configured.

    Args:
        weights: path to torchvision's ImageNet VGG19 state dict, or ``None``.

    Raises:
        WeightsMissingError: a path is configured but the file is not there.
        CheckpointError: the file is not a VGG19 state dict.
    """
    if weights is None or str(weights) == "":
        log.warning(
            "VGG19 perceptual loss skipped: no weights configured (set losses.vgg_weights to "
            "the path of torchvision's %s to enable it)",
            VGG19_FILE,
        )
        return None
    path = Path(weights)
    if not path.is_file():
        raise WeightsMissingError(
            f"VGG19 weights not found at {path}",
            f"place torchvision's ImageNet VGG19 weights ({VGG19_FILE}, about 548 MB) at {path}, "
            "or remove vgg_weights from the config to train without the perceptual loss; "
            "weights are never downloaded at run time",
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        raise CheckpointError(f"cannot read VGG19 weights at {path}: {exc}") from exc
    vgg = VGG19Features()
    wanted = {k: v for k, v in state.items() if k.startswith("features.")}
    try:
        vgg.load_state_dict(wanted, strict=False)
        missing = [k for k in vgg.state_dict() if k.startswith("features.") and k not in wanted]
    except RuntimeError as exc:
        raise CheckpointError(f"{path} is not a VGG19 state dict: {exc}") from exc
    if missing:
        raise CheckpointError(
            f"{path} lacks VGG19 parameters {missing[:3]}…",
            f"use torchvision's {VGG19_FILE} (keys features.N.weight / features.N.bias)",
        )
    return PerceptualLoss(vgg)
