"""The ingest stage: a plate (movie or image sequence) converted once into the scene-linear
ingest cache (:mod:`pipeline.io.plate_cache`) that every later stage reads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.atomic import atomic_dir, write_json
from pipeline.color import ColorPipeline
from pipeline.errors import ColorError, DecodeError, MissingFramesError
from pipeline.frames import FrameRange, parse_rate
from pipeline.io import open_plate
from pipeline.io.exr import write_exr
from pipeline.io.plate_cache import CachedPlate, load_cached_plate


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


def run_ingest(
    plate_path: Path,
    colorspace: str,
    frames: FrameRange | None,
    cfg: IngestConfig,
    out_dir: Path,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Ingest a plate into ``out_dir`` (created atomically, whole).

    Args:
        plate_path: a movie file or a sequence pattern.
        colorspace: the plate's OCIO colour space.
        frames: the range to ingest, or ``None`` for every frame.
        cfg: the ingest config.
        out_dir: the final cache folder; it appears only once complete.
        progress: optional callable ``(done, total)``.

    Returns:
        manifest extras: ``{"plate": what plate.json records}``.

    Raises:
        DecodeError, MissingFramesError, ColorError: bad plate or colour space.
    """
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
    return {"plate": load_cached_plate(out_dir).to_json()}


def _chromaticities_or_none(color: ColorPipeline, space: str) -> tuple[float, ...] | None:
    try:
        return color.chromaticities(space)
    except ColorError:
        return None
