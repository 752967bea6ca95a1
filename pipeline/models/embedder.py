"""Embedder E(x, y; φ): a frame and its landmark image to an identity vector ê (the paper's E).

Zakharov et al. 2019, section 3.2: E maps each of the K reference frames, concatenated with its
landmark drawing, to a vector; the K vectors are averaged into ê, which parametrises G through
ψ = P·ê and D through w′ = w₀ + ê.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.errors import EmbedderInputError
from pipeline.models.blocks import down_trunk, linear


class Embedder(nn.Module):
    """E: (frame, landmark image) pairs → one ``embed_dim`` vector per identity.

    Args:
        base_channels: width of the first block.
        max_channels: width cap of the deeper blocks.
        num_down: number of resolution-halving residual blocks.
        embed_dim: size of ê (512 in the paper).
        spectral_norm: spectrally normalise every layer, as in the paper.
    """

    def __init__(
        self,
        base_channels: int = 32,
        max_channels: int = 256,
        num_down: int = 4,
        embed_dim: int = 512,
        spectral_norm: bool = True,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.blocks, cin = down_trunk(base_channels, max_channels, num_down, spectral_norm)
        self.out = linear(cin, embed_dim, spectral_norm)

    def forward(
        self, frames: torch.Tensor, landmark_images: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Embed K references per identity and average them.

        Args:
            frames: B×K×3×H×W float32 in 0..1, display sRGB, aligned face crops.
            landmark_images: B×K×3×H×W float32 in 0..1, their landmark drawings.

        Returns:
            ``(e_hat, e)``: B×embed_dim, the mean over K; and B×K×embed_dim, per reference.

        Raises:
            EmbedderInputError: the shapes are not B×K×3×H×W or do not match.
        """
        if frames.dim() != 5 or frames.shape != landmark_images.shape or frames.shape[2] != 3:
            raise EmbedderInputError(
                f"E got frames {tuple(frames.shape)} and landmarks {tuple(landmark_images.shape)}",
                "pass two B×K×3×H×W tensors of the same shape",
            )
        b, k, _, h, w = frames.shape
        x = torch.cat([frames, landmark_images], dim=2).reshape(b * k, 6, h, w)  # BK×6×H×W
        for block in self.blocks:
            x = block(x)
        v = F.relu(x).mean(dim=(2, 3))  # BK×C
        e = self.out(v).reshape(b, k, self.embed_dim)  # B×K×D
        return e.mean(dim=1), e
