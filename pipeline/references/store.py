"""The aligned references of one actor (:class:`References`) and their ``refs.npz``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.atomic import write_npz
from pipeline.errors import SchemaError
from pipeline.npz import read_sidecar

#: v2 adds the full-resolution crops (``hires``) and each reference's own resolution
#: (``native``); a v1 file is refused, and its stage recomputed (the stage's version changed).
REFS_SCHEMA = "likeness.refs/2"


@dataclass(frozen=True)
class References:
    """Aligned references of one actor.

    Attributes:
        crops: K×S×S×3 uint8, display sRGB, aligned to the canonical template at the network's
            size S.
        points: K×68×2 float32 landmarks in crop pixels (at S).
        sources: K strings, ``file`` or ``file@frame`` for clip frames.
        hires: K×H×H×3 uint8, display sRGB, the same alignment at H ≥ S (the render's source
            of detail: landmarks at H are ``points × H / S``); None: ``crops``.
        native: K float32, the crop side at which each reference is 1:1 (one crop pixel per
            pixel of its image); a render above it is an upscale of that reference. None: S.
    """

    crops: np.ndarray
    points: np.ndarray
    sources: tuple[str, ...]
    hires: np.ndarray | None = None
    native: np.ndarray | None = None

    @property
    def size(self) -> int:
        return int(self.crops.shape[1])

    @property
    def detail(self) -> np.ndarray:
        """K×H×H×3 uint8: the full-resolution crops (``crops`` when there are none)."""
        return self.crops if self.hires is None else self.hires

    @property
    def detail_size(self) -> int:
        return int(self.detail.shape[1])

    @property
    def native_sizes(self) -> np.ndarray:
        """K float32: :attr:`native`, or S for each reference when unknown."""
        if self.native is None:
            return np.full(len(self.sources), float(self.size), np.float32)
        return np.asarray(self.native, np.float32)


def save_references(path: Path, refs: References) -> Path:
    return write_npz(
        path,
        schema=np.array(REFS_SCHEMA),
        crops=refs.crops,
        points=refs.points,
        sources=np.array(refs.sources),
        hires=refs.detail,
        native=refs.native_sizes,
    )


def load_references(path: Path) -> References:
    """Read ``refs.npz`` without unpickling anything.

    Raises:
        SchemaError: unreadable or damaged file, unknown schema, missing arrays, or arrays of
            the wrong type or shape.
    """
    fix = "rerun the references stage"
    names = ("crops", "points", "sources", "hires", "native")
    z = read_sidecar(path, SchemaError, "references file", fix, REFS_SCHEMA, names)
    crops, points, sources, hires, native = (z[k] for k in names)
    k = len(sources) if sources.ndim == 1 and sources.dtype.kind == "U" else -1
    if (
        crops.dtype != np.uint8
        or crops.shape[:1] != (k,)
        or crops.ndim != 4
        or crops.shape[1] != crops.shape[2]
        or crops.shape[3] != 3
        or points.shape != (k, 68, 2)
        or points.dtype.kind != "f"
        or hires.dtype != np.uint8
        or hires.ndim != 4
        or hires.shape[0] != k
        or hires.shape[1] != hires.shape[2]
        or hires.shape[1] < crops.shape[1]
        or hires.shape[3] != 3
        or native.shape != (k,)
        or native.dtype.kind != "f"
    ):
        raise SchemaError(
            f"{path}: malformed references: "
            + ", ".join(f"{n} {z[n].dtype} {z[n].shape}" for n in names)
            + " (want K×S×S×3 uint8, K×68×2 float, K strings, K×H×H×3 uint8 with H ≥ S, "
            "K float)",
            fix,
        )
    return References(crops, points, tuple(str(s) for s in sources), hires, native)
