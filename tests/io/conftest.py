"""Fixtures for the plate I/O tests; the generators live in ``io_media``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from io_media import make_prores


@pytest.fixture
def prores_422(tmp_path: Path) -> tuple[Path, list[np.ndarray]]:
    """A 4-frame 128×64 ProRes 422 HQ movie with timecode and metadata, and its frames."""
    path = tmp_path / "review.mov"
    frames = make_prores(path, metadata={"likeness:shot": "sh010", "comment": "test"})
    return path, frames
