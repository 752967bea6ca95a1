"""Generated media with known motion, built from package-shipped portraits only.

Used by the embedded demo, by the tests and by benchmarks that need a plate with ground truth.
No network, no committed third-party media: the face is scikit-image's ``astronaut`` portrait.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from skimage import data


def astronaut() -> np.ndarray:
    """scikit-image's astronaut portrait. Returns: 512×512×3 uint8, display sRGB."""

    return np.ascontiguousarray(data.astronaut())


def astronaut_head() -> np.ndarray:
    """The astronaut's head and shoulders, 200×200 (the face fills about half of it).

    Returns: 200×200×3 uint8, display sRGB. Resized to 160 px or more, dlib's HOG detector finds
    the face without upsampling.
    """
    return np.ascontiguousarray(astronaut()[26:226, 122:322])


@dataclass(frozen=True)
class Motion:
    """Head motion per frame: translation in pixels, rotation in degrees, scale factor.

    Each is ``amplitude * sin(2π f t / n)`` over ``n`` frames (scale: ``1 + amplitude * sin``).
    """

    tx: float = 6.0
    ty: float = 3.0
    rot_deg: float = 4.0
    scale: float = 0.03
    cycles: float = 1.0


def motion_matrices(n: int, motion: Motion, center: tuple[float, float]) -> np.ndarray:
    """Per-frame 2×3 similarity matrices about ``center``.

    Returns:
        n×2×3 float64: maps a point in the still portrait to the same point in frame ``i``.
    """
    out = np.zeros((n, 2, 3), np.float64)
    cx, cy = center
    for i in range(n):
        ph = 2.0 * math.pi * motion.cycles * i / max(n, 1)
        s = 1.0 + motion.scale * math.sin(ph)
        a = math.radians(motion.rot_deg * math.sin(ph))
        m = cv2.getRotationMatrix2D((cx, cy), math.degrees(a), s)
        m[0, 2] += motion.tx * math.sin(ph)
        m[1, 2] += motion.ty * math.cos(ph)
        out[i] = m
    return out


def moving_portrait(
    n: int,
    size: tuple[int, int] = (256, 256),
    motion: Motion | None = None,
    portrait: np.ndarray | None = None,
    noise_sigma: float = 0.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A short plate of a portrait moved by known similarity transforms, plus optional noise.

    Args:
        n: number of frames.
        size: ``(width, height)`` of the plate.
        motion: the motion; ``Motion()`` when omitted.
        portrait: H×W×3 uint8 display-sRGB image; the astronaut when omitted.
        noise_sigma: standard deviation of Gaussian noise, in 8-bit code values.
        seed: noise seed.

    Returns:
        ``(frames, matrices)``: n×H×W×3 uint8 display sRGB, and n×2×3 float64 matrices that map
        a pixel of the portrait resized to the plate onto frame ``i``.
    """
    motion = motion or Motion()
    img = astronaut() if portrait is None else portrait
    w, h = size
    base = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    mats = motion_matrices(n, motion, (w / 2.0, h / 2.0))
    rng = np.random.default_rng(seed)
    frames = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        f = cv2.warpAffine(
            base, mats[i], (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )
        if noise_sigma > 0:
            f = np.clip(f + rng.normal(0.0, noise_sigma, f.shape), 0, 255).astype(np.uint8)
        frames[i] = f
    return frames, mats
