"""Projection discriminator D(x, y, i): realism of a frame given its landmarks (the paper's D).

Zakharov et al. 2019, section 3.2: a residual network V maps (frame, landmark image) to a vector
v, and the realism score is ``r = vᵀ(W_i + w₀) + b``. Meta-training keeps one column W_i per
training video (:attr:`Discriminator.identity`); few-shot fine-tuning uses one vector
``w′ = w₀ + ê`` (:meth:`Discriminator.finetune_vector`), trained from there. D's intermediate
features feed the feature-matching loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.errors import DiscriminatorInputError
from pipeline.models.blocks import down_trunk, linear


class Discriminator(nn.Module):
    """Projection D with per-identity vectors W_i and a shared w₀ and b.

    Args:
        base_channels: width of the first block.
        max_channels: width cap.
        num_down: resolution-halving residual blocks.
        embed_dim: size of v, W_i, w₀ and ê.
        num_identities: rows of W (training videos in meta-training; 0 for fine-tuning only).
        spectral_norm: spectrally normalise V, as in the paper.
    """

    def __init__(
        self,
        base_channels: int = 32,
        max_channels: int = 256,
        num_down: int = 4,
        embed_dim: int = 512,
        num_identities: int = 0,
        spectral_norm: bool = True,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.blocks, cin = down_trunk(base_channels, max_channels, num_down, spectral_norm)
        self.out = linear(cin, embed_dim, spectral_norm)
        self.identity = nn.Embedding(max(num_identities, 1), embed_dim)
        nn.init.normal_(self.identity.weight, std=0.02)
        self.w0 = nn.Parameter(torch.zeros(embed_dim))
        self.b = nn.Parameter(torch.zeros(()))

    def identity_vector(self, index: torch.Tensor) -> torch.Tensor:
        """``W_i + w₀`` for a batch of identity indices (B int64) → B×embed_dim."""
        return self.identity(index) + self.w0

    def finetune_vector(self, e_hat: torch.Tensor) -> torch.Tensor:
        """``w′ = w₀ + ê``: the starting projection for one new actor (B×D → B×D)."""
        return self.w0 + e_hat

    def forward(
        self, image: torch.Tensor, landmark_image: torch.Tensor, w: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Score realism.

        Args:
            image: B×3×H×W float32 in 0..1, display sRGB, real or generated crop.
            landmark_image: B×3×H×W float32, its landmark drawing.
            w: B×embed_dim or 1×embed_dim, the projection (``W_i + w₀`` or ``w′``).

        Returns:
            ``(score, features)``: B float (higher = more real), and the output of every block,
            for feature matching.

        Raises:
            DiscriminatorInputError: mismatched shapes.
        """
        if image.shape != landmark_image.shape or image.dim() != 4:
            raise DiscriminatorInputError(
                f"D got image {tuple(image.shape)} and landmarks {tuple(landmark_image.shape)}",
                "pass two B×3×H×W tensors",
            )
        h = torch.cat([image, landmark_image], dim=1)  # B×6×H×W
        feats = []
        for block in self.blocks:
            h = block(h)
            feats.append(h)
        v = self.out(F.relu(h).mean(dim=(2, 3)))  # B×D
        score = (v * w).sum(dim=1) + self.b  # B
        return score, feats
