"""The aligned references of one actor (:class:`References`) and their ``refs.npz``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.atomic import write_npz
from pipeline.errors import SchemaError
from pipeline.npz import read_sidecar

REFS_SCHEMA = "likeness.refs/1"


@dataclass(frozen=True)
class References:
    """Aligned references of one actor.

    Attributes:
        crops: K×S×S×3 uint8, display sRGB, aligned to the canonical template.
        points: K×68×2 float32 landmarks in crop pixels.
        sources: K strings, ``file`` or ``file@frame`` for clip frames.
    """

    crops: np.ndarray
    points: np.ndarray
    sources: tuple[str, ...]

    @property
    def size(self) -> int:
        return int(self.crops.shape[1])


def save_references(path: Path, refs: References) -> Path:
    return write_npz(
        path,
        schema=np.array(REFS_SCHEMA),
        crops=refs.crops,
        points=refs.points,
        sources=np.array(refs.sources),
    )


def load_references(path: Path) -> References:
    """Read ``refs.npz`` without unpickling anything.

    Raises:
        SchemaError: unreadable or damaged file, unknown schema, missing arrays, or arrays of
            the wrong type or shape.
    """
    fix = "rerun the references stage"
    z = read_sidecar(
        path, SchemaError, "references file", fix, REFS_SCHEMA, ("crops", "points", "sources")
    )
    crops, points, sources = z["crops"], z["points"], z["sources"]
    k = len(sources) if sources.ndim == 1 and sources.dtype.kind == "U" else -1
    if (
        crops.dtype != np.uint8
        or crops.shape[:1] != (k,)
        or crops.ndim != 4
        or crops.shape[1] != crops.shape[2]
        or crops.shape[3] != 3
        or points.shape != (k, 68, 2)
        or points.dtype.kind != "f"
    ):
        raise SchemaError(
            f"{path}: malformed references: crops {crops.dtype} {crops.shape}, points "
            f"{points.dtype} {points.shape}, sources {sources.dtype} {sources.shape} (want K×S×S×3 "
            "uint8, K×68×2 float, K strings)",
            fix,
        )
    return References(crops, points, tuple(str(s) for s in sources))
