"""Ingest: read a plate, convert it to the scene-linear working space, cache it as half EXR.

Source plates are only ever read. The cache is a folder of ``plate.####.exr`` frames in the
working space (ACEScg by default) plus ``plate.json`` describing the plate: size, frame range,
frame rate, start timecode and source colour space. Every later stage reads this cache.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.atomic import atomic_dir, write_json
from pipeline.errors import DecodeError, MissingFramesError
from pipeline.frames import FrameRange, Timecode, parse_rate

PLATE_SCHEMA = "likeness.plate/1"


@dataclass(frozen=True)
class IngestConfig:
    """The ``ingest:`` section of a profile."""

    working_space: str = "ACEScg"
    ocio_config: str | None = None  # None: $OCIO if set, else ocio://studio-config-latest
    movie_first_frame: int = 1001
    sequence_fps: str = "24"  # for image sequences whose files carry no rate
    max_pixels: int = 8192 * 8192
    cache_compression: str = "zip"

    def validate(self) -> list[tuple[str, str]]:
        out = []
        if self.max_pixels < 64 * 64:
            out.append(("max_pixels", f"got {self.max_pixels}, expected at least 4096"))
        try:
            parse_rate(self.sequence_fps)
        except (ValueError, ZeroDivisionError):
            out.append(
                (
                    "sequence_fps",
                    f"got {self.sequence_fps!r}, expected a rate like 24 or 24000/1001",
                )
            )
        if self.cache_compression not in ("zip", "piz", "dwaa", "none"):
            out.append(
                (
                    "cache_compression",
                    f"got {self.cache_compression!r}, expected zip, piz, dwaa or none",
                )
            )
        return out


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
    from pipeline.io import read_exr

    chans, _ = read_exr(plate.frame_path(frame))
    return np.dstack([chans["R"], chans["G"], chans["B"]]).astype(np.float32)


def ingest_plate(
    plate_path: Path,
    colorspace: str,
    frames: FrameRange | None,
    cfg: IngestConfig,
    out_dir: Path,
    progress: Any = None,
) -> CachedPlate:
    """Ingest a plate into ``out_dir`` (created atomically, whole).

    Args:
        plate_path: a movie file or a sequence pattern.
        colorspace: the plate's OCIO colour space.
        frames: the range to ingest, or ``None`` for every frame.
        cfg: the ingest config.
        out_dir: the final cache folder; it appears only once complete.
        progress: optional callable ``(done, total)``.

    Raises:
        DecodeError, MissingFramesError, ColorError: bad plate or colour space.
    """
    from pipeline.color import ColorPipeline
    from pipeline.io import open_plate, write_exr

    color = ColorPipeline(cfg.ocio_config)
    color.check_space(colorspace)
    color.check_space(cfg.working_space)
    chroma = _chromaticities_or_none(color, cfg.working_space)
    with open_plate(
        plate_path,
        first_frame=cfg.movie_first_frame,
        max_pixels=cfg.max_pixels,
        fps=parse_rate(cfg.sequence_fps),
    ) as reader:
        info = reader.info
        want = frames or info.frames
        missing = [f for f in want if f not in info.frames]
        if missing:
            raise MissingFramesError(
                str(plate_path),
                missing,
                f"the plate holds frames {info.frames}; set plate.frames inside that range",
            )
        tc0 = None
        if info.timecode is not None:
            tc0 = info.timecode + (want.first - info.frames.first)
        with atomic_dir(out_dir) as tmp:
            cached = CachedPlate(
                folder=tmp,
                width=info.width,
                height=info.height,
                frames=want,
                fps=info.fps,
                timecode=str(tc0) if tc0 is not None else None,
                source=str(plate_path),
                source_colorspace=colorspace,
                working_space=cfg.working_space,
            )
            done = 0
            for number, img in reader.read(want):
                lin = color.convert(img, colorspace, cfg.working_space)
                write_exr(
                    cached.frame_path(number),
                    {"": lin},
                    compression=cfg.cache_compression,
                    fps=info.fps,
                    timecode=cached.timecode_at(number),
                    chromaticities=chroma,
                    attrs={"likeness:colorspace": cfg.working_space},
                )
                done += 1
                if progress is not None:
                    progress(done, len(want))
            if done != len(want):
                raise DecodeError(
                    f"{plate_path}: decoded {done} of {len(want)} frames in {want}",
                    "the file may be truncated; re-export the plate",
                )
            write_json(tmp / "plate.json", cached.to_json())
    return load_cached_plate(out_dir)


def _chromaticities_or_none(color: Any, space: str) -> tuple[float, ...] | None:
    from pipeline.errors import ColorError

    try:
        return color.chromaticities(space)
    except ColorError:
        return None
