"""Landmark rasterizer: 68 points to a line drawing, one colour per facial part (the paper's y).

Zakharov et al. 2019 condition the embedder E, the generator G and the discriminator D on a
landmark image y: the 68 iBUG points drawn as polylines, each facial part in its own colour.

The drawing is a soft distance field, not ``cv2.polylines``, so that a numpy version (for the
pipeline) and a torch version (for training, batched and differentiable in the points) compute
the same formula and agree to float precision. A pixel's value for one part is
``clip(thickness / 2 + 0.5 - d, 0, 1)`` where ``d`` is its distance to the nearest segment of the
part: an anti-aliased line ``thickness`` pixels wide. Parts are combined per channel by ``max``.

Points are in crop pixel coordinates, x right and y down, with pixel centres at integers.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from pipeline.errors import LandmarkShapeError

#: The facial parts of the 68-point iBUG scheme: name, point indices, closed polyline.
PARTS: tuple[tuple[str, tuple[int, ...], bool], ...] = (
    ("jaw", tuple(range(0, 17)), False),
    ("right_brow", tuple(range(17, 22)), False),
    ("left_brow", tuple(range(22, 27)), False),
    ("nose_bridge", tuple(range(27, 31)), False),
    ("nose_base", (31, 32, 33, 34, 35), False),
    ("right_eye", tuple(range(36, 42)), True),
    ("left_eye", tuple(range(42, 48)), True),
    ("outer_lip", tuple(range(48, 60)), True),
    ("inner_lip", tuple(range(60, 68)), True),
)

#: One display-sRGB colour per part, in ``PARTS`` order, values in 0..1.
PART_COLOURS: np.ndarray = np.array(
    [
        [1.0, 1.0, 1.0],  # jaw
        [1.0, 0.5, 0.0],  # right brow
        [1.0, 0.85, 0.0],  # left brow
        [0.0, 1.0, 0.0],  # nose bridge
        [0.0, 0.6, 0.3],  # nose base
        [0.0, 0.5, 1.0],  # right eye
        [0.0, 1.0, 1.0],  # left eye
        [1.0, 0.0, 0.0],  # outer lip
        [1.0, 0.0, 1.0],  # inner lip
    ],
    np.float32,
)


def default_thickness(size: int) -> float:
    """Line width in pixels used when none is given: about 1.5 px at 128 px crops."""
    return max(1.0, size / 85.0)


def _segments(points: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per part, the segment start and end points: (S×2, S×2) float32 each."""
    out = []
    for _, idx, closed in PARTS:
        ids = list(idx) + ([idx[0]] if closed else [])
        pts = points[ids]
        out.append((pts[:-1], pts[1:]))
    return out


def _check_points(points: np.ndarray | torch.Tensor, batched: bool) -> None:
    shape = tuple(points.shape)
    want = (68, 2) if not batched else (None, 68, 2)
    ok = len(shape) == len(want) and all(w is None or s == w for s, w in zip(shape, want))
    if not ok:
        raise LandmarkShapeError(
            f"landmarks have shape {shape}, expected {'B×' if batched else ''}68×2",
            "pass the 68 iBUG points (x, y) in crop pixel coordinates",
        )


def rasterize(points: np.ndarray, size: int, thickness: float | None = None) -> np.ndarray:
    """Draw 68 landmarks as coloured anti-aliased polylines.

    Args:
        points: 68×2 float, (x, y) in crop pixel coordinates.
        size: crop side in pixels (the drawing is size×size).
        thickness: line width in pixels; :func:`default_thickness` when omitted.

    Returns:
        size×size×3 float32 in 0..1, display sRGB, black background.

    Raises:
        LandmarkShapeError: ``points`` is not 68×2 or not finite.
    """
    points = np.asarray(points, np.float32)
    _check_points(points, batched=False)
    if not np.all(np.isfinite(points)):
        raise LandmarkShapeError("landmarks contain NaN or inf", "drop frames without a face")
    half = np.float32((default_thickness(size) if thickness is None else thickness) / 2.0 + 0.5)
    image = np.zeros((size, size, 3), np.float32)
    reach = float(half) + 1.0
    for (a, b), colour in zip(_segments(points), PART_COLOURS):
        # Only pixels within reach of the part's bounding box can be lit: skip the rest.
        both = np.concatenate([a, b])
        x0, y0 = np.maximum(np.floor(both.min(0) - reach), 0).astype(int)
        x1, y1 = np.minimum(np.ceil(both.max(0) + reach) + 1, size).astype(int)
        if x1 <= x0 or y1 <= y0:
            continue
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        pix = np.stack([xs.ravel(), ys.ravel()], axis=1)  # P×2, P = box pixels
        ab = b - a  # S×2
        denom = np.maximum((ab * ab).sum(1), np.float32(1e-8))  # S
        ap = pix[:, None, :] - a[None, :, :]  # P×S×2
        t = np.clip((ap * ab[None]).sum(2) / denom[None], 0.0, 1.0)  # P×S
        diff = ap - t[..., None] * ab[None]  # P×S×2
        d = np.sqrt((diff * diff).sum(2)).min(1)  # P
        v = np.clip(half - d, 0.0, 1.0).reshape(y1 - y0, x1 - x0, 1)  # box h×w×1
        box = image[y0:y1, x0:x1]
        np.maximum(box, v * colour, out=box)
    return image  # size×size×3 float32, display sRGB


def rasterize_torch(
    points: torch.Tensor, size: int, thickness: float | None = None
) -> torch.Tensor:
    """Batched torch twin of :func:`rasterize`; differentiable in ``points``.

    Args:
        points: B×68×2 float, (x, y) in crop pixel coordinates.
        size: crop side in pixels.
        thickness: line width in pixels; :func:`default_thickness` when omitted.

    Returns:
        B×3×size×size float32 in 0..1, display sRGB, on ``points.device``.

    Raises:
        LandmarkShapeError: ``points`` is not B×68×2.
    """
    _check_points(points, batched=True)
    points = points.float()
    dev = points.device
    half = (default_thickness(size) if thickness is None else thickness) / 2.0 + 0.5
    coords = torch.arange(size, dtype=torch.float32, device=dev)
    ys, xs = torch.meshgrid(coords, coords, indexing="ij")
    pix = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)  # P×2
    colours = torch.from_numpy(PART_COLOURS).to(dev)
    bsz = points.shape[0]
    image = torch.zeros(bsz, size * size, 3, device=dev)
    for (_, idx, closed), colour in zip(PARTS, colours):
        ids = list(idx) + ([idx[0]] if closed else [])
        pts = points[:, ids]  # B×(S+1)×2
        a, b = pts[:, :-1], pts[:, 1:]  # B×S×2
        ab = b - a
        denom = (ab * ab).sum(-1).clamp_min(1e-8)  # B×S
        ap = pix[None, :, None, :] - a[:, None, :, :]  # B×P×S×2
        t = ((ap * ab[:, None]).sum(-1) / denom[:, None]).clamp(0.0, 1.0)  # B×P×S
        diff = ap - t[..., None] * ab[:, None]  # B×P×S×2
        d = torch.sqrt((diff * diff).sum(-1) + 1e-12).amin(-1)  # B×P
        v = (half - d).clamp(0.0, 1.0)  # B×P
        image = torch.maximum(image, v[..., None] * colour)
    # B×P×3 -> B×3×size×size float32, display sRGB
    return image.reshape(bsz, size, size, 3).permute(0, 3, 1, 2).contiguous()


class LandmarkRasterizer(nn.Module):
    """``nn.Module`` wrapper of :func:`rasterize_torch` at a fixed crop size."""

    def __init__(self, size: int, thickness: float | None = None) -> None:
        super().__init__()
        self.size = size
        self.thickness = thickness

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """B×68×2 crop pixel points → B×3×size×size float32 display sRGB."""
        return rasterize_torch(points, self.size, self.thickness)
