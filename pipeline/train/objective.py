"""The generator and discriminator objectives shared by meta-training and fine-tuning.

Zakharov et al. 2019, section 3.2: G (with E, or with ψ′ when fine-tuning) minimises
``L_CNT + L_ADV + L_MCH``; D minimises the hinge loss ``L_DSC``. Here the content term is
multi-scale L1 + SSIM (+ VGG19 when weights are configured), weighted to dominate, and the
adversarial and feature-matching terms are modest. D runs once per objective on the real and fake
batches concatenated, so that a DDP-wrapped D sees one forward per backward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pipeline.train.losses import (
    PerceptualLoss,
    embedding_match,
    feature_matching,
    hinge_d_loss,
    hinge_g_loss,
    multiscale_l1,
    ssim_loss,
)


@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms; a zero weight skips the term (and D, when adv and fm are 0).

    Attributes:
        l1: multi-scale L1.
        ssim: ``1 − SSIM``.
        vgg: VGG19 perceptual loss (used only when weights are configured).
        adv: hinge adversarial loss for G.
        fm: feature matching on D.
        mch: embedding match ‖W_i − ê_i‖₁ (meta-training only).
    """

    l1: float = 1.0
    ssim: float = 1.0
    vgg: float = 0.0
    adv: float = 0.01
    fm: float = 0.1
    mch: float = 1.0

    @property
    def uses_discriminator(self) -> bool:
        """Whether D has to be trained at all."""
        return self.adv > 0 or self.fm > 0

    def validate(self) -> list[tuple[str, str]]:
        """Problems as ``(key, what)``: weights must be non-negative."""
        return [(k, f"got {v}, expected ≥ 0") for k, v in vars(self).items() if v < 0]


def _twice(w: torch.Tensor | None) -> torch.Tensor | None:
    """Projection vectors for a real+fake concatenated batch (1×D broadcasts as is)."""
    if w is None or w.shape[0] == 1:
        return w
    return torch.cat([w, w])


def generator_objective(
    fake: torch.Tensor,
    real: torch.Tensor,
    landmarks: torch.Tensor,
    d: nn.Module | None,
    w: torch.Tensor | None,
    weights: LossWeights,
    perceptual: PerceptualLoss | None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """G's loss on one batch.

    Args:
        fake: B×3×H×W float32, G's output, display sRGB.
        real: B×3×H×W float32 in 0..1, the ground truth, display sRGB.
        landmarks: B×3×H×W float32, the target landmark drawings.
        d: the discriminator (possibly DDP-wrapped), or ``None`` when not used.
        w: B×D or 1×D projection vectors for D.
        weights: the loss weights.
        perceptual: the VGG19 loss, or ``None`` when not configured.

    Returns:
        ``(total, parts)``: the scalar loss and each weighted term, detached.
    """
    parts: dict[str, torch.Tensor] = {}
    fake32, real32 = fake.float(), real.float()
    if weights.l1 > 0:
        parts["l1"] = weights.l1 * multiscale_l1(fake32, real32)
    if weights.ssim > 0:
        parts["ssim"] = weights.ssim * ssim_loss(fake32, real32)
    if perceptual is not None and weights.vgg > 0:
        parts["vgg"] = weights.vgg * perceptual(fake, real)
    if d is not None and weights.uses_discriminator:
        b = fake.shape[0]
        scores, feats = d(torch.cat([fake, real]), torch.cat([landmarks, landmarks]), _twice(w))
        if weights.adv > 0:
            parts["adv"] = weights.adv * hinge_g_loss(scores[:b].float())
        if weights.fm > 0:
            parts["fm"] = weights.fm * feature_matching(
                [f[b:].float() for f in feats], [f[:b].float() for f in feats]
            )
    total = torch.stack(list(parts.values())).sum()
    return total, {k: v.detach() for k, v in parts.items()}


def discriminator_objective(
    fake: torch.Tensor,
    real: torch.Tensor,
    landmarks: torch.Tensor,
    d: nn.Module,
    w: torch.Tensor,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """D's hinge loss on one batch (``fake`` is detached here).

    Args:
        fake: B×3×H×W float32, G's output.
        real: B×3×H×W float32 in 0..1, ground truth.
        landmarks: B×3×H×W float32, landmark drawings.
        d: the discriminator (possibly DDP-wrapped).
        w: B×D or 1×D projection vectors.

    Returns:
        ``(loss, {"d": loss detached})``.
    """
    b = fake.shape[0]
    scores, _ = d(torch.cat([fake.detach(), real]), torch.cat([landmarks, landmarks]), _twice(w))
    loss = hinge_d_loss(scores[b:].float(), scores[:b].float())
    return loss, {"d": loss.detach()}


def embedding_objective(
    w_identity: torch.Tensor, e_hat: torch.Tensor, weight: float
) -> torch.Tensor:
    """Weighted ``L_MCH`` (B×D pair → scalar)."""
    return weight * embedding_match(w_identity, e_hat)
