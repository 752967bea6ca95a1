"""The embedded sample shot, generated offline from package-shipped data.

scikit-image's astronaut portrait is animated with known head motion into a short ProRes plate
with timecode; two reference stills of the same portrait (one re-lit, one re-framed) stand in for
the actor's photos, and a consent record covers the demo use. No network, no committed media.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import yaml

from pipeline.atomic import atomic_path, write_text
from pipeline.color import SRGB_TAGS
from pipeline.demo.synthetic import Motion, astronaut, astronaut_head, moving_portrait
from pipeline.frames import Timecode
from pipeline.io import ProResWriter

DEMO_SHOT = "demo010"
DEMO_FPS = Fraction(24, 1)
DEMO_TIMECODE = "01:00:00:00"


def make_sample_shot(folder: str | Path, frames: int = 24, size: int = 256) -> Path:
    """Write the sample shot (plate, references, consent, spec) under ``folder``.

    Returns:
        The shot spec path. Files already present are reused (generation is deterministic).
    """

    folder = Path(folder)
    spec_path = folder / f"{DEMO_SHOT}.yaml"
    plate = folder / "plates" / f"{DEMO_SHOT}.mov"
    if not plate.is_file():
        clip, _ = moving_portrait(
            frames,
            (size, size),
            Motion(tx=5, ty=3, rot_deg=4, scale=0.03),
            portrait=astronaut_head(),
            noise_sigma=1.0,
        )
        plate.parent.mkdir(parents=True, exist_ok=True)
        with ProResWriter(
            plate,
            width=size,
            height=size,
            fps=DEMO_FPS,
            codec="prores_422hq",
            timecode=Timecode.parse(DEMO_TIMECODE, DEMO_FPS),
            metadata={"comment": "likeness sample plate (scikit-image astronaut)"},
            tags=SRGB_TAGS,
        ) as w:
            for f in clip:
                w.write(f.astype(np.float32) / 255.0)
    refs = folder / "refs"
    refs.mkdir(parents=True, exist_ok=True)
    base = astronaut()
    variants = {
        "astro_01.png": base,
        "astro_02.png": np.clip(base.astype(np.float32) * 1.08 + 4, 0, 255).astype(np.uint8),
    }
    for name, img in variants.items():
        p = refs / name
        if not p.is_file():
            with atomic_path(p) as tmp:
                cv2.imwrite(str(tmp), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    consent = folder / "consent" / "astro.yaml"
    if not consent.is_file():
        write_text(
            consent,
            yaml.safe_dump(
                {
                    "actor": "astro",
                    "granted_by": "likeness demo (public-domain NASA portrait shipped with scikit-image)",
                    "scope": ["demo", "de-aging"],
                    "expires": "2099-12-31",
                    "reference": "demo-0001",
                },
                sort_keys=False,
            ),
        )
    spec = {
        "shot": DEMO_SHOT,
        "plate": {
            "path": f"plates/{DEMO_SHOT}.mov",
            "colorspace": "sRGB Encoded Rec.709 (sRGB)",
        },
        "actor": {"id": "astro", "references": ["refs/"], "consent": "consent/astro.yaml"},
        "profile": "cpu-preview",
        "output": {"exr": {"compression": "zip"}, "review": {"codec": "prores_422hq"}},
    }
    write_text(spec_path, yaml.safe_dump(spec, sort_keys=False))
    return spec_path
