"""Fixtures for compositing tests: a moving astronaut plate in linear light with known transforms."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.align import CANONICAL_68, apply_affine, invert_affine, similarity_transform
from pipeline.demo.synthetic import Motion, moving_portrait

#: The astronaut's face in the 512×512 portrait: jaw x 178..268, brows y 95, chin y 180 (read off
#: the image by eye; it only has to put the face roughly where the template expects it).
_FACE_BOX_512 = (178.0, 95.0, 268.0, 180.0)


def srgb_to_linear(img: np.ndarray) -> np.ndarray:
    """uint8 display sRGB → float32 linear (sRGB primaries; stands in for ACEScg in tests)."""
    x = img.astype(np.float32) / 255.0
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def portrait_points(size: tuple[int, int]) -> np.ndarray:
    """68×2 float64 landmarks of the still portrait resized to ``size`` (template on the box)."""
    x0, y0, x1, y1 = (v * s / 512.0 for v, s in zip(_FACE_BOX_512, size * 2, strict=True))
    cx = (CANONICAL_68[:, 0] - 0.225) / 0.55
    cy = (CANONICAL_68[:, 1] - 0.31) / 0.52
    return np.stack([x0 + cx * (x1 - x0), y0 + cy * (y1 - y0)], axis=1)


class Shot:
    """A tiny shot: plate frames (linear), per-frame crop → plate transforms, crop landmarks."""

    def __init__(self, n: int, size: tuple[int, int], crop: int, motion: Motion | None = None):
        frames8, mats = moving_portrait(n, size, motion or Motion(tx=4.0, ty=2.0, rot_deg=3.0))
        self.frames = np.stack([srgb_to_linear(f) for f in frames8])
        pts0 = portrait_points(size)
        fwd0, _ = similarity_transform(pts0, crop)
        self.crop_size = crop
        self.points_crop = np.repeat(apply_affine(fwd0, pts0)[None], n, axis=0)
        # crop → plate for frame i = (portrait → frame i) ∘ (crop → portrait)
        inv0 = np.vstack([invert_affine(fwd0), [0.0, 0.0, 1.0]])
        self.inverses = np.stack([m @ inv0 for m in mats])
        self.tracked = np.ones(n, bool)


@pytest.fixture(scope="session")
def make_shot() -> type[Shot]:
    """The :class:`Shot` factory: ``make_shot(n, (w, h), crop)``."""
    return Shot


@pytest.fixture(scope="session")
def shot() -> Shot:
    """4 frames of a 256×256 moving astronaut, 128-px crops."""
    return Shot(4, (256, 256), 128)


@pytest.fixture(scope="session")
def to_linear():
    """The uint8 sRGB → float32 linear converter."""
    return srgb_to_linear
