"""A tiny generated shot for whole-DAG tests (local scheduler, temporary workdir)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from pipeline.demo.synthetic import Motion, astronaut_head, moving_portrait
from pipeline.frames import Timecode

#: The whole chain at test size: a few fine-tune steps, torch eager inference, small chunks.
TEST_PROFILE = {
    "finetune": {"steps": 3, "batch_size": 2, "checkpoint_every": 2, "log_every": 1},
    "engine": {"backend": "torch"},
    "synth": {"chunk_size": 4, "batch_size": 4},
    "track": {"chunk_size": 4},
}


def make_shot(
    folder: Path,
    *,
    frames: int = 8,
    size: int = 160,
    profile: str | dict | None = None,
    shot: str = "sh010",
    tc: str = "10:00:00:00",
    fps: Fraction = Fraction(25),
) -> Path:
    from pipeline.color import SRGB_TAGS
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
            tags=SRGB_TAGS,
        ) as w:
            for f in clip:
                w.write(f.astype(np.float32) / 255.0)
    refs = folder / "refs"
    refs.mkdir(exist_ok=True)
    ref = refs / "astro.png"
    if not ref.exists():
        cv2.imwrite(
            str(ref), cv2.cvtColor(cv2.resize(astronaut_head(), (192, 192)), cv2.COLOR_RGB2BGR)
        )
    consent = folder / "consent.yaml"
    consent.write_text(
        yaml.safe_dump(
            {
                "actor": "astro",
                "granted_by": "test",
                "scope": ["test"],
                "expires": "2099-12-31",
                "reference": "test-consent",
            }
        )
    )
    if profile is None:
        profile = dict(TEST_PROFILE)
    spec = {
        "shot": shot,
        "plate": {"path": f"plates/{shot}.mov", "colorspace": "sRGB Encoded Rec.709 (sRGB)"},
        "actor": {"id": "astro", "references": ["refs/astro.png"], "consent": "consent.yaml"},
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
