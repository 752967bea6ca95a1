"""Resampling an image through a dense backward pixel map: ``cv2.remap``, and its 4-D
``grid_sample`` twin :func:`remap_torch` (ONNX/TensorRT-friendly: never a 5-D ``grid_sample``).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def remap(image: np.ndarray, pixel_map: np.ndarray) -> np.ndarray:
    out = cv2.remap(
        np.ascontiguousarray(image, np.float32),
        pixel_map[..., 0],
        pixel_map[..., 1],
        interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return out.reshape(image.shape)


def remap_torch(image: torch.Tensor, pixel_map: torch.Tensor) -> torch.Tensor:
    """Bilinear backward warp with a 4-D ``grid_sample``; matches ``cv2.remap`` (replicate border).

    Args:
        image: B×C×H×W float.
        pixel_map: B×H×W×2 float, (x, y) source pixel coordinates for each output pixel.

    Returns:
        B×C×H×W float.
    """
    h, w = image.shape[-2:]
    scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], device=pixel_map.device)
    grid = pixel_map * scale - 1.0  # B×H×W×2 in −1..1, align_corners=True convention
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


class Remap(nn.Module):
    """``nn.Module`` wrapper of :func:`remap_torch` (exports as ONNX GridSample, 4-D only)."""

    def forward(self, image: torch.Tensor, pixel_map: torch.Tensor) -> torch.Tensor:
        """B×C×H×W image, B×H×W×2 source pixel map → B×C×H×W."""
        return remap_torch(image, pixel_map)
