"""The references stage: the actor's stills and clips, faces found and aligned to the
fine-tuned network's crop size and at full resolution, into ``refs.npz`` and a contact sheet."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline.atomic import atomic_dir, atomic_path
from pipeline.references.prepare import ReferencesParams, prepare_references
from pipeline.references.store import save_references

REFS_FILE = "refs.npz"


@dataclass(frozen=True)
class ReferencesConfig(ReferencesParams):
    """The ``references:`` section of a profile: how references are read and aligned."""


def run_references(
    paths: list[Path], cfg: ReferencesConfig, size: int, out_dir: Path
) -> dict[str, Any]:
    """The references stage: ``refs.npz`` and a contact sheet, in a folder that appears whole."""

    refs = prepare_references(paths, cfg, size)
    with atomic_dir(out_dir) as tmp:
        save_references(tmp / REFS_FILE, refs)
        sheet = np.concatenate(list(refs.crops), axis=1)
        with atomic_path(tmp / "references.png") as p:
            cv2.imwrite(str(p), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return {
        "count": len(refs.sources),
        "sources": list(refs.sources),
        "crop_size": refs.size,
        "detail_size": refs.detail_size,
        "native_sizes": [round(float(v), 1) for v in refs.native_sizes],
    }
