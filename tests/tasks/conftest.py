"""A tiny generated shot for whole-DAG tests (local scheduler, temporary workdir)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.frames import Timecode
from pipeline.synthetic import Motion, astronaut_head, moving_portrait


def make_shot(
    folder: Path,
    *,
    frames: int = 8,
    size: int = 160,
    profile: str | dict = "cpu-preview",
    shot: str = "sh010",
    tc: str = "10:00:00:00",
    fps: Fraction = Fraction(25),
) -> Path:
    from pipeline.io import ProResWriter

    folder.mkdir(parents=True, exist_ok=True)
    plate = folder / "plates" / f"{shot}.mov"
    if not plate.exists():
        clip, _ = moving_portrait(
            frames, (size, size), Motion(tx=2, ty=1, rot_deg=2), portrait=astronaut_head()
        )
        plate.parent.mkdir(parents=True, exist_ok=True)
        with ProResWriter(
            plate,
            width=size,
            height=size,
            fps=fps,
            codec="prores_422hq",
            timecode=Timecode.parse(tc, fps),
        ) as w:
            for f in clip:
                w.write(f.astype(np.float32) / 255.0)
    refs = folder / "refs"
    refs.mkdir(exist_ok=True)
    (refs / "a.png").write_bytes(
        b"\x89PNG"
    )  # only existence is checked before the references stage
    spec = {
        "shot": shot,
        "plate": {"path": f"plates/{shot}.mov", "colorspace": "sRGB Encoded Rec.709 (sRGB)"},
        "actor": {"id": "astro", "references": ["refs/a.png"]},
        "profile": profile if isinstance(profile, str) else "profile.yaml",
        "output": {"exr": {"compression": "zip"}, "review": {"codec": "prores_422hq"}},
    }
    if isinstance(profile, dict):
        (folder / "profile.yaml").write_text(yaml.safe_dump(profile))
    p = folder / f"{shot}.yaml"
    p.write_text(yaml.safe_dump(spec))
    return p


@pytest.fixture
def tiny_shot(tmp_path):
    return make_shot(tmp_path / "shot")
