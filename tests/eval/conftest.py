"""Fixtures of the quality harness's tests: one torch thread, a short generated clip."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def moving_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 frames of the astronaut's head moving, 256², ProRes 422 HQ."""
    from pipeline.demo.synthetic import Motion, astronaut_head, moving_portrait
    from pipeline.io import ProResWriter

    frames, _ = moving_portrait(
        24, size=(256, 256), portrait=astronaut_head(), motion=Motion(tx=6, ty=3, rot_deg=5)
    )
    path = tmp_path_factory.mktemp("clip") / "astro.mov"
    with ProResWriter(path, width=256, height=256, fps=Fraction(24), codec="prores_422hq") as w:
        for f in frames:
            w.write(f.astype(np.float32) / 255.0)
    return path
