"""Building blocks shared by E, G and D: residual down/up blocks, instance norm and AdaIN.

Not a network itself. Every operation here exports to ONNX opset 17 as plain ops
(Conv, AveragePool, Resize, ReduceMean, Mul, Add, Sqrt, Div): instance norm is written out rather
than calling ``F.instance_norm``, so that the AdaIN parameters can be a plain input tensor or a
folded constant.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _sn


def conv(cin: int, cout: int, k: int, sn: bool) -> nn.Module:
    """A same-padded ``k``×``k`` convolution, spectrally normalised when ``sn``."""
    layer = nn.Conv2d(cin, cout, k, padding=k // 2)
    return _sn(layer) if sn else layer


def linear(cin: int, cout: int, sn: bool, bias: bool = True) -> nn.Module:
    """A linear layer, spectrally normalised when ``sn``."""
    layer = nn.Linear(cin, cout, bias=bias)
    return _sn(layer) if sn else layer


def instance_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Normalise each channel of each sample to zero mean, unit variance.

    Args:
        x: B×C×H×W float.

    Returns:
        B×C×H×W, same dtype.
    """
    mean = x.mean(dim=(2, 3), keepdim=True)  # B×C×1×1
    centred = x - mean
    var = (centred * centred).mean(dim=(2, 3), keepdim=True)  # B×C×1×1
    return centred / torch.sqrt(var + eps)


def adain(x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Adaptive instance norm: ``(1 + γ)·IN(x) + β``.

    Args:
        x: B×C×H×W float features.
        params: B×2C or 1×2C float, ``[γ | β]``. The scale is offset by one so that zero
            parameters leave the normalised features unchanged.

    Returns:
        B×C×H×W.
    """
    c = x.shape[1]
    gamma = params[:, :c].unsqueeze(-1).unsqueeze(-1)  # B×C×1×1
    beta = params[:, c:].unsqueeze(-1).unsqueeze(-1)  # B×C×1×1
    return instance_norm(x) * (1.0 + gamma) + beta


class ResBlockDown(nn.Module):
    """BigGAN-style residual block that halves the resolution.

    ``norm`` picks instance norm (G's encoder, as in the paper) or none (E and D).
    """

    def __init__(self, cin: int, cout: int, sn: bool, norm: bool, first: bool = False) -> None:
        super().__init__()
        self.norm = norm
        self.first = first
        self.conv1 = conv(cin, cout, 3, sn)
        self.conv2 = conv(cout, cout, 3, sn)
        self.skip = conv(cin, cout, 1, sn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """B×Cin×H×W → B×Cout×H/2×W/2."""
        h = x
        if not self.first:
            h = F.relu(instance_norm(h) if self.norm else h)
        h = self.conv1(h)
        h = F.relu(instance_norm(h) if self.norm else h)
        h = F.avg_pool2d(self.conv2(h), 2)
        return h + F.avg_pool2d(self.skip(x), 2)


class AdaResBlock(nn.Module):
    """Residual block with AdaIN before each convolution; optionally doubles the resolution.

    Attributes:
        num_adain: how many AdaIN parameters this block reads (2·Cin + 2·Cout).
    """

    def __init__(self, cin: int, cout: int, sn: bool, upsample: bool) -> None:
        super().__init__()
        self.cin, self.cout, self.upsample = cin, cout, upsample
        self.conv1 = conv(cin, cout, 3, sn)
        self.conv2 = conv(cout, cout, 3, sn)
        self.skip = conv(cin, cout, 1, sn) if (cin != cout or upsample) else None
        self.num_adain = 2 * cin + 2 * cout

    def forward(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """B×Cin×H×W and B×num_adain (or 1×num_adain) → B×Cout×H′×W′ (H′ = 2H if upsample)."""
        p1 = params[:, : 2 * self.cin]
        p2 = params[:, 2 * self.cin : self.num_adain]
        h = F.relu(adain(x, p1))
        if self.upsample:
            h = F.interpolate(h, scale_factor=2.0, mode="nearest")
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        h = self.conv1(h)
        h = self.conv2(F.relu(adain(h, p2)))
        return h + (self.skip(x) if self.skip is not None else x)


def channels(base: int, cap: int, level: int) -> int:
    """Width at a pyramid level: ``base·2^level`` capped at ``cap``."""
    return min(base * (2**level), cap)


def down_trunk(
    base_channels: int, max_channels: int, num_down: int, sn: bool, cin: int = 6
) -> tuple[nn.ModuleList, int]:
    """The residual downsampling trunk shared by E and D: (image, landmark image) pairs in.

    Returns:
        the blocks (B×cin×H×W → B×C×H/2^num_down×W/2^num_down) and C, the output width.
    """
    blocks = []
    for level in range(num_down):
        cout = channels(base_channels, max_channels, level)
        blocks.append(ResBlockDown(cin, cout, sn, norm=False, first=level == 0))
        cin = cout
    return nn.ModuleList(blocks), cin
