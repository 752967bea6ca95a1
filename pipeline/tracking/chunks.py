"""A chunk's raw track (:class:`ChunkTrack`) and its schema-versioned ``track.npz``."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.atomic import write_npz
from pipeline.errors import SchemaError
from pipeline.npz import convert_arrays, frame_numbers, read_sidecar, size_pair

CHUNK_SCHEMA = "likeness.track-chunk/1"


@dataclass(frozen=True)
class ChunkTrack:
    """The raw track of one chunk of frames.

    Attributes:
        frames: N int64, consecutive plate frame numbers.
        points: N×68×2 float32 landmarks in plate pixels; NaN where no face was followed.
        confidence: N float32, 0..1; 0 where no face.
        box: N×4 float32 face boxes; NaN where no face.
        keyframe: N bool, the detector ran on this frame.
        cut: N bool, a scene cut starts at this frame.
        descriptor: 128 float32 identity of the followed face, NaN when not computed.
        face_chip: 150×150×3 uint8 aligned chip of the face at its first acquisition (0×0×3
            when none); :func:`merge_chunks` computes the descriptor from it when needed.
        image_size: ``(width, height)``.
        backend: the landmark backend's name.
    """

    frames: np.ndarray
    points: np.ndarray
    confidence: np.ndarray
    box: np.ndarray
    keyframe: np.ndarray
    cut: np.ndarray
    descriptor: np.ndarray
    face_chip: np.ndarray
    image_size: tuple[int, int]
    backend: str


def save_chunk(path: str | os.PathLike[str], track: ChunkTrack) -> Path:
    """Write a chunk's track atomically as a schema-versioned ``.npz``. Returns the path."""
    return write_npz(
        path,
        compress=True,
        schema=np.array(CHUNK_SCHEMA),
        frames=track.frames,
        points=track.points,
        confidence=track.confidence,
        box=track.box,
        keyframe=track.keyframe,
        cut=track.cut,
        descriptor=track.descriptor,
        face_chip=track.face_chip,
        image_size=np.array(track.image_size, np.int64),
        backend=np.array(track.backend),
    )


def load_chunk(path: str | os.PathLike[str]) -> ChunkTrack:
    """Read a chunk written by :func:`save_chunk`.

    Raises:
        SchemaError: an unreadable or damaged file, another schema, a missing array, or an array
            of the wrong type or shape (each named).
    """
    hint = "rerun that chunk"
    a = read_sidecar(path, SchemaError, "track chunk", hint, CHUNK_SCHEMA, _CHUNK_CONVERT)
    values = convert_arrays(a, _CHUNK_CONVERT, path, SchemaError, hint, text=("backend",))
    n = len(values["frames"])
    for name, row in _CHUNK_ROWS.items():
        shape = values[name].shape
        if shape != (n, *row):
            want = "×".join(["N", *map(str, row)])
            raise SchemaError(
                f"{path}: {name} is {shape}, expected {want} for N = {n} frames", hint
            )
    chip = values["face_chip"]
    if values["descriptor"].shape != (128,) or chip.ndim != 3 or chip.shape[2] != 3:
        raise SchemaError(f"{path}: descriptor must be 128 values and face_chip H×W×3", hint)
    return ChunkTrack(**values)


def _chunk_backend(a: np.ndarray) -> str:
    if a.dtype.kind != "U" or a.ndim != 0:
        raise TypeError("expected the backend's name")
    return str(a)


#: The per-frame arrays of a chunk and the shape of one frame's row.
_CHUNK_ROWS: dict[str, tuple[int, ...]] = {
    "points": (68, 2),
    "confidence": (),
    "box": (4,),
    "keyframe": (),
    "cut": (),
}


#: How each stored array of a chunk becomes a :class:`ChunkTrack` field.
_CHUNK_CONVERT: dict[str, Callable[[np.ndarray], Any]] = {
    "frames": frame_numbers,
    "points": lambda a: a.astype(np.float32),
    "confidence": lambda a: a.astype(np.float32),
    "box": lambda a: a.astype(np.float32),
    "keyframe": lambda a: a.astype(bool),
    "cut": lambda a: a.astype(bool),
    "descriptor": lambda a: a.astype(np.float32),
    "face_chip": lambda a: a.astype(np.uint8),
    "image_size": size_pair,
    "backend": _chunk_backend,
}
