"""The ingest cache of a plate: scene-linear half-float EXR frames and ``plate.json``.

Every stage after ingest reads the plate from here (:func:`read_cached_frame`), never from the
source; the detectors see it converted back to the plate's own encoding (:func:`display_frame`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.color import ColorPipeline
from pipeline.errors import DecodeError
from pipeline.frames import FrameRange, Timecode, parse_rate
from pipeline.io import read_exr

PLATE_SCHEMA = "likeness.plate/1"


@dataclass(frozen=True)
class CachedPlate:
    """What ``plate.json`` records about an ingested plate."""

    folder: Path
    width: int
    height: int
    frames: FrameRange
    fps: Fraction
    timecode: str | None
    source: str
    source_colorspace: str
    working_space: str

    def frame_path(self, frame: int) -> Path:
        return self.folder / f"plate.{frame:04d}.exr"

    def timecode_at(self, frame: int) -> Timecode | None:
        if self.timecode is None:
            return None
        return Timecode.parse(self.timecode, self.fps) + (frame - self.frames.first)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": PLATE_SCHEMA,
            "width": self.width,
            "height": self.height,
            "frames": str(self.frames),
            "fps": f"{self.fps.numerator}/{self.fps.denominator}",
            "timecode": self.timecode,
            "source": self.source,
            "source_colorspace": self.source_colorspace,
            "working_space": self.working_space,
        }


def load_cached_plate(folder: str | Path) -> CachedPlate:
    """Read ``plate.json`` from an ingest cache folder.

    Raises:
        DecodeError: the folder holds no valid ``plate.json``.
    """
    folder = Path(folder)
    try:
        meta = json.loads((folder / "plate.json").read_text())
    except (OSError, ValueError) as exc:
        raise DecodeError(
            f"cannot read {folder / 'plate.json'}: {exc}", "rerun the ingest stage for this shot"
        ) from exc
    schema = meta.get("schema") if isinstance(meta, dict) else type(meta).__name__
    if schema != PLATE_SCHEMA:
        raise DecodeError(
            f"{folder}/plate.json has schema {schema!r}, expected {PLATE_SCHEMA}",
            "rerun the ingest stage for this shot",
        )
    try:
        plate = CachedPlate(
            folder=folder,
            width=_field(meta, "width", int),
            height=_field(meta, "height", int),
            frames=FrameRange.parse(_field(meta, "frames", str)),
            fps=parse_rate(_field(meta, "fps", str)),
            timecode=_field(meta, "timecode", (str, type(None))),
            source=_field(meta, "source", str),
            source_colorspace=_field(meta, "source_colorspace", str),
            working_space=_field(meta, "working_space", str),
        )
        plate.timecode_at(plate.frames.first)
    except (KeyError, TypeError, ValueError) as exc:
        what = f"lacks the key {exc}" if isinstance(exc, KeyError) else f"is malformed: {exc}"
        raise DecodeError(
            f"{folder}/plate.json {what}", "rerun the ingest stage for this shot"
        ) from exc
    return plate


def _field(meta: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    """``meta[key]``, checked to be of ``kind`` (bool is not an int here).

    Raises:
        KeyError: the key is missing.
        TypeError: the value is of another type.
    """
    value = meta[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise TypeError(f"{key} is {type(value).__name__} {value!r}")
    return value


def read_cached_frame(plate: CachedPlate, frame: int) -> np.ndarray:
    """One cached frame. Returns: H×W×3 float32, scene-linear working space (ACEScg)."""

    chans, _ = read_exr(plate.frame_path(frame))
    return np.dstack([chans["R"], chans["G"], chans["B"]]).astype(np.float32)


def display_frame(plate: CachedPlate, frame: int, color: Any) -> np.ndarray:
    """A cached frame as the detectors see it. Returns: H×W×3 uint8 in the plate's colour space."""
    lin = read_cached_frame(plate, frame)
    enc = color.convert(lin, plate.working_space, plate.source_colorspace)
    return (np.clip(enc, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def display_frames(
    plate: CachedPlate, frames: FrameRange, ocio_config: str | None
) -> Iterator[tuple[int, np.ndarray]]:

    color = ColorPipeline(ocio_config)
    for n in frames:
        yield n, display_frame(plate, n, color)
