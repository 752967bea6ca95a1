"""``landmarks.npz``: a shot's merged, smoothed landmarks and alignment transforms.

The file is a plain ``.npz`` (no pickled objects; read with ``allow_pickle=False``) with a
``schema`` entry. Older schema versions are upgraded on read through functions registered in
:data:`UPGRADES`, one step at a time, as OpenTimelineIO's schema versioning does.

Frames without a usable face hold NaN in ``points``, ``raw_points``, ``box``, ``transform`` and
``inverse``; ``tracked`` is False there and the frame lies in one of ``gaps``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.atomic import write_npz
from pipeline.errors import SchemaError
from pipeline.npz import convert_arrays, frame_numbers, read_npz, size_pair

SCHEMA = "likeness.landmarks/1"

#: ``{old schema: function(arrays) -> arrays of the next schema}``; applied until SCHEMA.
UPGRADES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}


@dataclass(frozen=True)
class Landmarks:
    """Per-frame landmarks of the followed performer over a shot.

    Attributes:
        frames: N int64, plate frame numbers, consecutive.
        points: N×68×2 float32, smoothed iBUG-68 landmarks in plate pixels (NaN: untracked).
        raw_points: N×68×2 float32, the landmarks as detected or fitted (NaN: no measurement).
        confidence: N float32, 0..1 (0 on interpolated and untracked frames).
        box: N×4 float32, face box ``x0, y0, x1, y1`` in plate pixels.
        transform: N×2×3 float64, plate pixel → aligned crop pixel (smoothed).
        inverse: N×2×3 float64, aligned crop pixel → plate pixel.
        tracked: N bool, a real measurement or a short-gap interpolation with valid data.
        interpolated: N bool, filled across a short gap (subset of ``tracked``).
        gaps: flagged long (or unbounded) gaps as inclusive ``(first, last)`` frame numbers.
        crop_size: side of the aligned crop the transforms map to.
        image_size: ``(width, height)`` of the plate.
    """

    frames: np.ndarray
    points: np.ndarray
    raw_points: np.ndarray
    confidence: np.ndarray
    box: np.ndarray
    transform: np.ndarray
    inverse: np.ndarray
    tracked: np.ndarray
    interpolated: np.ndarray
    gaps: list[tuple[int, int]]
    crop_size: int
    image_size: tuple[int, int]

    def __post_init__(self) -> None:
        n = len(self.frames)
        want = {
            "points": (n, 68, 2),
            "raw_points": (n, 68, 2),
            "confidence": (n,),
            "box": (n, 4),
            "transform": (n, 2, 3),
            "inverse": (n, 2, 3),
            "tracked": (n,),
            "interpolated": (n,),
        }
        bad = [
            f"{k} {np.shape(getattr(self, k))} (want {s})"
            for k, s in want.items()
            if np.shape(getattr(self, k)) != s
        ]
        if bad:
            raise ValueError(f"inconsistent Landmarks for {n} frames: " + ", ".join(bad))

    def index(self, frame: int) -> int:
        """Row of a plate frame number. Raises: KeyError when the frame is not in the shot."""
        i = frame - int(self.frames[0]) if len(self.frames) else -1
        if not 0 <= i < len(self.frames):
            raise KeyError(f"frame {frame} is outside {self.frames[0]}-{self.frames[-1]}")
        return i


def save_landmarks(path: str | os.PathLike[str], lm: Landmarks) -> Path:
    """Write ``landmarks.npz`` atomically (temp file, then rename).

    Returns:
        the final path.
    """
    arrays: dict[str, np.ndarray] = {"schema": np.array(SCHEMA)}
    for f in fields(Landmarks):
        value = getattr(lm, f.name)
        if f.name == "gaps":
            value = np.asarray(value, np.int64).reshape(-1, 2)
        arrays[f.name] = np.asarray(value)
    return write_npz(path, compress=True, **arrays)


def load_landmarks(path: str | os.PathLike[str]) -> Landmarks:
    """Read ``landmarks.npz``, upgrading older schema versions.

    Raises:
        SchemaError: unreadable or damaged file, missing schema, a schema this code does not
            know, or arrays of the wrong type or shape.
    """
    path = Path(path)
    arrays = read_npz(path, SchemaError, "landmarks file", "rerun the track merge")
    arrays = upgrade(arrays, path)
    known = {f.name for f in fields(Landmarks)}
    missing = known - set(arrays)
    if missing:
        raise SchemaError(f"{path} ({SCHEMA}) lacks {sorted(missing)}", "rerun the track merge")
    values = convert_arrays(arrays, _CONVERT, path, SchemaError, "rerun the track merge")
    try:
        return Landmarks(**values)
    except ValueError as exc:  # arrays of disagreeing lengths; the message names them
        raise SchemaError(f"{path}: {exc}", "rerun the track merge") from exc


#: How each stored array becomes a :class:`Landmarks` field.
_CONVERT: dict[str, Callable[[np.ndarray], Any]] = {
    "frames": frame_numbers,
    "points": lambda a: a.astype(np.float32),
    "raw_points": lambda a: a.astype(np.float32),
    "confidence": lambda a: a.astype(np.float32),
    "box": lambda a: a.astype(np.float32),
    "transform": lambda a: a.astype(np.float64),
    "inverse": lambda a: a.astype(np.float64),
    "tracked": lambda a: a.astype(bool),
    "interpolated": lambda a: a.astype(bool),
    "gaps": lambda a: [(int(x), int(y)) for x, y in a.reshape(-1, 2)],
    "crop_size": lambda a: int(a),
    "image_size": size_pair,
}


def upgrade(arrays: dict[str, Any], path: Path | str = "<arrays>") -> dict[str, Any]:
    """Bring a loaded ``{name: array}`` mapping up to :data:`SCHEMA` through :data:`UPGRADES`.

    Raises:
        SchemaError: no schema entry, or one with no upgrade path.
    """
    if "schema" not in arrays:
        raise SchemaError(f"{path} has no schema entry; it is not a likeness landmarks file")
    seen: set[str] = set()
    schema = str(arrays["schema"])
    while schema != SCHEMA:
        step = UPGRADES.get(schema)
        if step is None or schema in seen:
            raise SchemaError(
                f"{path} has schema {schema!r}; this code reads {SCHEMA!r} and upgrades "
                f"{sorted(UPGRADES) or 'no older versions'}",
                "rerun the track merge with this version of likeness, or update likeness",
            )
        seen.add(schema)
        arrays = step(dict(arrays))
        schema = str(arrays["schema"])
    return arrays
