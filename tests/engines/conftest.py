"""Fixtures for engine tests: a tiny stand-in generator with AdaIN params from an embedding.

The stand-in has G's calling convention (``adain_from_embedding(e_hat)``, ``forward(landmarks, warp,
adain)``) so export, folding and parity are tested without the real networks.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

# pytest's default "prepend" import mode puts tests/ on sys.path, where this folder (no
# __init__.py, mirroring the package) would be found as a namespace package "engines" before the
# editable install's finder is asked. Put the repo root first so the real package wins. The
# project-wide fix is ``pythonpath = ["."]`` under [tool.pytest.ini_options].
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
if getattr(sys.modules.get("engines"), "__file__", "") is None:
    del sys.modules["engines"]
CROP = 32
EMB = 16


class TinyAdaINGenerator(nn.Module):
    """Encoder, one AdaIN residual block, decoder. Input landmarks (and warp) B×3×S×S in [0, 1]."""

    def __init__(self, ch: int = 8, emb: int = EMB, use_warp: bool = False) -> None:
        super().__init__()
        self.use_warp = use_warp
        self.inp = nn.Conv2d(6 if use_warp else 3, ch, 3, padding=1)
        self.down = nn.Conv2d(ch, 2 * ch, 3, stride=2, padding=1)
        self.res = nn.Conv2d(2 * ch, 2 * ch, 3, padding=1)
        self.up = nn.Conv2d(2 * ch, ch, 3, padding=1)
        self.out = nn.Conv2d(ch, 3, 3, padding=1)
        self.proj = nn.Linear(emb, 4 * ch)  # P: ê → ψ (γ and β for 2·ch channels)

    def adain_from_embedding(self, e_hat: torch.Tensor) -> torch.Tensor:
        return self.proj(e_hat)  # 1×4ch

    def forward(
        self, landmarks: torch.Tensor, warp: torch.Tensor | None, adain: torch.Tensor
    ) -> torch.Tensor:
        x = landmarks if warp is None else torch.cat([landmarks, warp], 1)
        h = F.relu(self.inp(x))
        h = F.relu(self.down(h))  # B×2ch×S/2×S/2
        gamma, beta = adain.chunk(2, dim=1)  # 1×2ch each, broadcast over B
        h = F.instance_norm(h) * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]
        h = F.relu(self.res(h)) + h
        h = F.interpolate(h, scale_factor=2.0, mode="nearest")
        return torch.tanh(self.out(F.relu(self.up(h))))  # B×3×S×S in [-1, 1]


@pytest.fixture
def tiny_generator() -> TinyAdaINGenerator:
    torch.manual_seed(0)
    return TinyAdaINGenerator().eval()


@pytest.fixture
def tiny_warp_generator() -> TinyAdaINGenerator:
    torch.manual_seed(1)
    return TinyAdaINGenerator(use_warp=True).eval()


@pytest.fixture
def embedding() -> torch.Tensor:
    torch.manual_seed(2)
    return torch.randn(1, EMB)


@pytest.fixture
def exported(tmp_path, tiny_generator, embedding):
    """A folded tiny generator exported to ONNX, with its golden frames."""
    from engines.export import export_generator

    path = tmp_path / "actor.onnx"
    export_generator(tiny_generator, embedding, path, crop_size=CROP, use_warp=False)
    return path
