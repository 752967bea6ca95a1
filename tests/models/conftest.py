"""Fixtures for the network tests: a parametric 68-point face and tiny sizes."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch


def face68(
    size: int, mouth_open: float = 0.0, shift: tuple[float, float] = (0.0, 0.0)
) -> np.ndarray:
    """A synthetic frontal face in the iBUG 68 layout: 68×2 float32, crop pixels."""

    def ellipse(cx: float, cy: float, rx: float, ry: float, n: int) -> np.ndarray:
        t = np.pi + np.linspace(0, 2 * np.pi, n, endpoint=False)
        return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1)

    t = np.linspace(np.pi, 0, 17)
    jaw = np.stack([0.5 + 0.32 * np.cos(t), 0.45 + 0.38 * np.sin(t)], 1)
    bx = np.linspace(0.0, 1.0, 5)
    rbrow = np.stack([0.25 + 0.18 * bx, 0.36 - 0.03 * np.sin(np.pi * bx)], 1)
    lbrow = np.stack([0.57 + 0.18 * bx, 0.36 - 0.03 * np.sin(np.pi * bx)], 1)
    bridge = np.stack([np.full(4, 0.5), np.linspace(0.42, 0.58, 4)], 1)
    base = np.stack([np.linspace(0.44, 0.56, 5), 0.62 + 0.01 * np.sin(np.pi * bx)], 1)
    reye = ellipse(0.36, 0.44, 0.06, 0.025, 6)
    leye = ellipse(0.64, 0.44, 0.06, 0.025, 6)
    outer = ellipse(0.5, 0.75, 0.12, 0.04 + 0.04 * mouth_open, 12)
    inner = ellipse(0.5, 0.75, 0.08, 0.005 + 0.035 * mouth_open, 8)
    pts = np.concatenate([jaw, rbrow, lbrow, bridge, base, reye, leye, outer, inner])
    return ((pts + np.asarray(shift)) * size).astype(np.float32)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def make_face() -> Callable[..., np.ndarray]:
    """``face68`` itself, for tests that need several faces."""
    return face68


@pytest.fixture
def face() -> np.ndarray:
    """The synthetic face at 64 px."""
    return face68(64)
