"""Generator G(y, w, ψ): landmark image (+ warped reference) to a face crop (the paper's G).

Zakharov et al. 2019, section 3.2: G is an image-to-image network on the target landmark image y
whose AdaIN parameters ψ come from the identity embedding, ψ = P·ê. P lives here
(:attr:`Generator.projection`) and :meth:`Generator.adain_from_embedding` returns the per-actor
AdaIN tensor; few-shot fine-tuning starts ψ′ from it and export folds it in as a constant
(:meth:`Generator.fold`).

Beyond the paper, G can also take a warp image w: the nearest reference frame warped to the
target landmarks (:mod:`pipeline.models.warp`). G then predicts a residual r, a blend mask m and
a synthesized colour s, and returns ``(1 − m)·(w + r) + m·s``. The residual and mask heads start
at zero (mask bias −5), so an untrained G returns the warp almost unchanged and training only has
to learn corrections: the inside of the mouth, eyelids, shading. With ``synth_from_warp`` the
synthesized colour is itself a correction of the warp, ``s = sigmoid(logit(w) + o)``, so an
untrained G returns the warp (to within ``WARP_EPS`` where it is clipped near 0 or 1) instead of
blending 0.7 % of a flat grey into it. Without a warp input the output is ``s = sigmoid(o)``, as
in the paper.

Export: the graph is plain Conv / AveragePool / Resize / ReduceMean / elementwise ops; no
``grid_sample``. ``forward(landmark_image, warp_image, adain_params)`` takes ψ as a plain tensor.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.errors import GeneratorInputError
from pipeline.models.blocks import AdaResBlock, ResBlockDown, adain, channels, conv

#: The warp is clamped to [ε, 1 − ε] before its logit is taken (``synth_from_warp``); 1e-3 keeps
#: 1 − ε representable in float16 engines and is a quarter of an 8-bit code value.
WARP_EPS = 1e-3


class Generator(nn.Module):
    """G: an encoder–decoder with AdaIN in the bottleneck and decoder, U-Net skips optional.

    Args:
        use_warp: take a warped reference image as a second input and predict a correction.
        base_channels: width at full resolution.
        max_channels: width cap of the deeper levels.
        num_down: resolution halvings in the encoder (the decoder mirrors them).
        num_res: AdaIN residual blocks at the bottleneck.
        embed_dim: size of ê, the input of P.
        skip: add encoder features to the decoder at each resolution (U-Net style).
        spectral_norm: spectrally normalise the convolutions (the paper does; slower).
        mask_bias: initial logit of the blend mask; −5 gives m ≈ 0.007.
        synth_from_warp: predict the synthesized colour as a logit offset from the warp, so that
            an untrained G returns its warp input (to within ``WARP_EPS``). Off by default:
            checkpoints whose recorded params lack it were trained with ``s = sigmoid(o)`` and
            keep it.
        projection_std: initial standard deviation of P, scaled by ``1/sqrt(embed_dim)``.
    """

    def __init__(
        self,
        use_warp: bool = True,
        base_channels: int = 32,
        max_channels: int = 256,
        num_down: int = 3,
        num_res: int = 2,
        embed_dim: int = 512,
        skip: bool = True,
        spectral_norm: bool = False,
        mask_bias: float = -5.0,
        synth_from_warp: bool = False,
        projection_std: float = 0.1,
    ) -> None:
        super().__init__()
        self.use_warp = use_warp
        self.synth_from_warp = synth_from_warp and use_warp
        self.skip = skip
        self.num_down = num_down
        sn = spectral_norm
        cin = 6 if use_warp else 3
        widths = [channels(base_channels, max_channels, lvl) for lvl in range(num_down + 1)]
        self.conv_in = conv(cin, widths[0], 3, sn)
        self.down = nn.ModuleList(
            ResBlockDown(widths[lvl], widths[lvl + 1], sn, norm=True) for lvl in range(num_down)
        )
        self.res = nn.ModuleList(
            AdaResBlock(widths[-1], widths[-1], sn, upsample=False) for _ in range(num_res)
        )
        self.up = nn.ModuleList(
            AdaResBlock(widths[lvl + 1], widths[lvl], sn, upsample=True)
            for lvl in reversed(range(num_down))
        )
        self.head_channels = widths[0]
        self.head = nn.Conv2d(widths[0], 7 if use_warp else 3, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        if use_warp:
            with torch.no_grad():
                self.head.bias[6] = mask_bias
        self.num_adain = (
            sum(b.num_adain for b in self.res)
            + sum(b.num_adain for b in self.up)
            + 2 * self.head_channels
        )
        self.projection = nn.Linear(embed_dim, self.num_adain, bias=False)
        nn.init.normal_(self.projection.weight, std=projection_std / math.sqrt(embed_dim))

    def adain_from_embedding(self, e_hat: torch.Tensor) -> torch.Tensor:
        """ψ = P·ê: the per-actor AdaIN parameters.

        Args:
            e_hat: B×embed_dim float, the averaged embedding from E.

        Returns:
            B×num_adain float. Fine-tuning starts ψ′ from it; export folds it into the graph.
        """
        return self.projection(e_hat)

    def fold(self, adain_params: torch.Tensor) -> FoldedGenerator:
        """G with one actor's ψ baked in as a buffer, for export and inference.

        Args:
            adain_params: 1×num_adain (or num_adain) float, the actor's ψ′.
        """
        return FoldedGenerator(self, adain_params)

    def forward(
        self,
        landmark_image: torch.Tensor,
        warp_image: torch.Tensor | None,
        adain_params: torch.Tensor,
    ) -> torch.Tensor:
        """Synthesize the face crop for the target landmarks.

        Args:
            landmark_image: B×3×H×W float32 in 0..1, the target landmark drawing;
                H and W divisible by ``2**num_down``.
            warp_image: B×3×H×W float32 in 0..1, display sRGB, the nearest reference warped to
                the target landmarks; ``None`` when built with ``use_warp=False``.
            adain_params: B×num_adain or 1×num_adain float, ψ (broadcast over the batch).

        Returns:
            B×3×H×W float32, display sRGB, nominally 0..1 (not clamped, so losses see the
            overshoot; clamp for display).

        Raises:
            GeneratorInputError: a missing warp image, or wrong shapes.
        """
        if landmark_image.dim() != 4 or landmark_image.shape[1] != 3:
            raise GeneratorInputError(
                f"G got a landmark image of shape {tuple(landmark_image.shape)}",
                "pass B×3×H×W",
            )
        if adain_params.dim() != 2 or adain_params.shape[1] != self.num_adain:
            raise GeneratorInputError(
                f"G got AdaIN parameters of shape {tuple(adain_params.shape)}, "
                f"expected B×{self.num_adain}",
                "compute them with adain_from_embedding(e_hat) or load the actor's ψ′",
            )
        if self.use_warp:
            if warp_image is None or warp_image.shape != landmark_image.shape:
                got = None if warp_image is None else tuple(warp_image.shape)
                raise GeneratorInputError(
                    f"G was built with use_warp=True but got warp image {got}",
                    "pass the warped nearest reference, same shape as the landmark image",
                )
            x = torch.cat([landmark_image, warp_image], dim=1)  # B×6×H×W
        else:
            x = landmark_image
        h = self.conv_in(x)
        feats = [h]
        for block in self.down:
            h = block(h)
            feats.append(h)
        offset = 0
        for block in self.res:
            h = block(h, adain_params[:, offset : offset + block.num_adain])
            offset += block.num_adain
        for i, block in enumerate(self.up):
            h = block(h, adain_params[:, offset : offset + block.num_adain])
            offset += block.num_adain
            if self.skip:
                h = h + feats[self.num_down - 1 - i]
        h = F.relu(adain(h, adain_params[:, offset : offset + 2 * self.head_channels]))
        out = self.head(h)  # B×7×H×W (warp) or B×3×H×W
        if not self.use_warp:
            return torch.sigmoid(out)
        residual = out[:, 0:3]
        if self.synth_from_warp:
            # logit written with log(1 − w), not log1p, which the ONNX opset lacks.
            w = warp_image.clamp(WARP_EPS, 1.0 - WARP_EPS)
            synth = torch.sigmoid(out[:, 3:6] + torch.log(w) - torch.log(1.0 - w))
        else:
            synth = torch.sigmoid(out[:, 3:6])
        mask = torch.sigmoid(out[:, 6:7])  # B×1×H×W
        return (1.0 - mask) * (warp_image + residual) + mask * synth


class FoldedGenerator(nn.Module):
    """G with a constant ψ: ``forward(landmark_image, warp_image)``; what gets exported."""

    def __init__(self, generator: Generator, adain_params: torch.Tensor) -> None:
        super().__init__()
        self.generator = generator
        self.register_buffer("adain_params", adain_params.detach().reshape(1, -1).clone())

    def forward(
        self, landmark_image: torch.Tensor, warp_image: torch.Tensor | None = None
    ) -> torch.Tensor:
        """B×3×H×W landmark drawing (+ B×3×H×W warp) → B×3×H×W display sRGB, clamped to 0..1."""
        return self.generator(landmark_image, warp_image, self.adain_params).clamp(0.0, 1.0)
