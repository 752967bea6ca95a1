"""Image-sequence plates: ``plates/sh010.####.exr``, ``sh010.%04d.dpx``, ``sh010.@@@@.png``.

Each ``#`` or ``@`` stands for one digit of padding (Nuke's convention), as does ``%0Nd``. The
folder is scanned once; holes in the numbering are reported up front as
:class:`~pipeline.errors.MissingFramesError`, never skipped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.atomic import is_temporary
from pipeline.errors import DecodeError, MissingFramesError
from pipeline.frames import MAX_PLATE_FRAMES, FrameRange, Timecode, parse_rate
from pipeline.io import exr, image
from pipeline.io.base import PlateInfo, PlateReader, check_pixels

_TOKEN = re.compile(r"(#+|@+|%0?(\d*)d)")

DEFAULT_SEQUENCE_FPS = Fraction(24)


@dataclass(frozen=True)
class FramePattern:
    """A parsed sequence pattern.

    Attributes:
        folder: the folder holding the frames.
        prefix: file-name text before the frame number.
        suffix: file-name text after it (including the extension).
        padding: minimum digits of the frame number.
    """

    folder: Path
    prefix: str
    suffix: str
    padding: int

    def path(self, frame: int) -> Path:
        """The file of one frame."""
        return self.folder / f"{self.prefix}{frame:0{self.padding}d}{self.suffix}"

    def scan(self) -> dict[int, Path]:
        """Frame number → file for every file in the folder that matches."""
        rx = re.compile(re.escape(self.prefix) + r"(-?\d+)" + re.escape(self.suffix) + r"\Z")
        found: dict[int, Path] = {}
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError as exc:
            raise DecodeError(
                f"sequence folder {self.folder} does not exist",
                "check plate.path (relative paths resolve against the shot spec's folder)",
            ) from exc
        for entry in entries:
            m = rx.match(entry.name)
            if not m or is_temporary(Path(entry.name)):
                continue
            digits = m.group(1)
            number = int(digits)
            # Same number, one spelling: "1001" with ####, but not "01001" nor "101".
            if f"{number:0{self.padding}d}" == digits:
                found[number] = Path(entry.path)
        return found


def is_sequence_pattern(path: str | Path) -> bool:
    """True when the file name holds a frame token (``####``, ``@@@@`` or ``%04d``)."""
    return _TOKEN.search(Path(path).name) is not None


def parse_pattern(path: str | Path) -> FramePattern:
    """Split a sequence pattern into folder, prefix, padding and suffix.

    Raises:
        DecodeError: no frame token, or more than one.
    """
    path = Path(path)
    tokens = list(_TOKEN.finditer(path.name))
    if len(tokens) != 1:
        raise DecodeError(
            f"sequence pattern {str(path)!r} needs exactly one frame token, found {len(tokens)}",
            "write it as name.####.exr, name.%04d.exr or name.@@@@.exr",
        )
    tok = tokens[0]
    text = tok.group(1)
    padding = int(tok.group(2) or 1) if text.startswith("%") else len(text)
    return FramePattern(path.parent, path.name[: tok.start()], path.name[tok.end() :], padding)


@dataclass(frozen=True)
class _Probe:
    """A frame header, read without decoding pixels."""

    width: int
    height: int
    bit_depth: int
    fps: Fraction | None
    timecode: Any  # OpenEXR.TimeCode, DPX BCD fields, or None
    layout: tuple[str, ...] | None = None  # EXR channel names, sorted


@dataclass(frozen=True)
class _Format:
    """How one suffix's frames are probed and decoded."""

    codec: str
    probe: Callable[[Path], _Probe]
    load: Callable[[Path, int], tuple[np.ndarray, Any]]
    #: The channel names a loaded frame's header lists, for formats whose channels vary.
    layout: Callable[[Any], tuple[str, ...]] | None = None


def _exr_layout(header: dict[str, Any]) -> tuple[str, ...]:
    return tuple(sorted(ch.name for ch in header["channels"]))


def _probe_exr(path: Path) -> _Probe:
    header = exr.read_exr_header(path)
    width, height = exr.exr_size(header)
    fps = header.get("framesPerSecond")
    bits = exr.pixel_bits(path)
    return _Probe(
        width,
        height,
        bits,
        Fraction(fps) if fps else None,
        header.get("timeCode"),
        _exr_layout(header),
    )


def _probe_image(path: Path) -> _Probe:
    h = image.read_header(path)
    return _Probe(h.width, h.height, h.bit_depth, h.fps, h.timecode)


#: Sequence suffix → frame format. Add a format by adding an entry.
SEQUENCE_FORMATS: dict[str, _Format] = {
    ".exr": _Format("exr", _probe_exr, exr.load_exr_rgb, _exr_layout),
    ".dpx": _Format("dpx", _probe_image, image.load_image_rgb),
    ".png": _Format("png", _probe_image, image.load_image_rgb),
    ".tif": _Format("tiff", _probe_image, image.load_image_rgb),
    ".tiff": _Format("tiff", _probe_image, image.load_image_rgb),
}


def _timecode(value: Any, fps: Fraction) -> Timecode | None:
    if value is None:
        return None
    if isinstance(value, tuple):  # DPX BCD fields
        hh, mm, ss, ff, drop = value
        text = f"{hh:02d}:{mm:02d}:{ss:02d}{';' if drop else ':'}{ff:02d}"
        try:
            return Timecode.parse(text, fps)
        except ValueError:
            return None
    return exr.timecode_from_exr(value, fps)


class SequenceReader(PlateReader):
    """Reads an image sequence.

    Args:
        pattern: e.g. ``plates/sh010.####.exr``.
        max_pixels: refuse frames larger than this (each frame's header is checked before it is
            decoded).
        fps: rate for sequences whose headers carry none (an EXR ``framesPerSecond`` or DPX
            frame rate wins); 24 when omitted.

    Raises:
        DecodeError: unknown suffix, no matching files, unreadable first frame.
        MissingFramesError: holes in the numbering.
    """

    def __init__(
        self, pattern: str | Path, *, max_pixels: int, fps: Fraction | None = None
    ) -> None:
        self._pattern = parse_pattern(pattern)
        suffix = Path("frame" + self._pattern.suffix).suffix.lower()
        if suffix not in SEQUENCE_FORMATS:
            raise DecodeError(
                f"no sequence reader for {suffix or 'files without a suffix'!r} in {pattern}",
                f"use one of {', '.join(sorted(SEQUENCE_FORMATS))}",
            )
        self._format = SEQUENCE_FORMATS[suffix]
        self._max_pixels = max_pixels
        self._files = self._pattern.scan()
        if not self._files:
            raise DecodeError(
                f"no frames match {pattern}",
                f"check the folder {self._pattern.folder} and the padding of the frame token",
            )
        numbers = sorted(self._files)
        if numbers[-1] - numbers[0] >= MAX_PLATE_FRAMES:
            raise DecodeError(
                f"frames of {pattern} run from {numbers[0]} to {numbers[-1]}, over the limit of "
                f"{MAX_PLATE_FRAMES} frames per plate",
                f"remove stray files from {self._pattern.folder}",
            )
        missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
        if missing:
            raise MissingFramesError(str(pattern), missing)
        first = self._files[numbers[0]]
        probe = self._format.probe(first)
        check_pixels(first, probe.width, probe.height, max_pixels)
        self._layout = probe.layout
        try:
            rate = parse_rate(probe.fps or fps or DEFAULT_SEQUENCE_FPS)
        except ValueError as exc:
            raise DecodeError(
                f"{first}: header frame rate {probe.fps} is unusable: {exc}",
                "the file is corrupt; re-render it",
            ) from exc
        self.info = PlateInfo(
            path=str(pattern),
            kind="sequence",
            width=probe.width,
            height=probe.height,
            fps=rate,
            timecode=_timecode(probe.timecode, rate),
            frames=FrameRange(numbers[0], numbers[-1]),
            codec=self._format.codec,
            bit_depth=probe.bit_depth,
        )

    def read(self, frames: FrameRange | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(frame number, H×W×3 float32)`` for ``frames`` (all when omitted).

        Pixels are in the plate's own encoding: EXR values as stored, integer codes to 0..1.

        Raises:
            MissingFramesError: ``frames`` reaches outside the sequence, or a file vanished.
            DecodeError: a frame is corrupt, truncated, oversized, of another resolution, or
                (EXR) carries other channels than the first frame read.
        """
        want = self._requested(frames)
        for number in want:
            path = self._files[number]
            if not path.exists():
                raise MissingFramesError(str(self.info.path), [number])
            arr, meta = self._format.load(path, self._max_pixels)
            if self._format.layout is not None:
                names, layout = self._format.layout(meta), self._layout
                if layout is not None and names != layout:
                    extra = sorted(set(names) - set(layout))
                    lacks = sorted(set(layout) - set(names))
                    raise DecodeError(
                        f"{path}: frame {number} has channels {', '.join(names)}; frame "
                        f"{self.info.frames.first} has {', '.join(layout)}"
                        + (f" (extra: {', '.join(extra)})" if extra else "")
                        + (f" (missing: {', '.join(lacks)})" if lacks else "")
                        + " — frames of different renders are mixed in one sequence",
                        "re-export the plate so that every frame carries the same channels",
                    )
            if arr.shape[:2] != (self.info.height, self.info.width):
                raise DecodeError(
                    f"{path}: frame {number} is {arr.shape[1]}×{arr.shape[0]}, the sequence is "
                    f"{self.info.width}×{self.info.height} (mixed resolutions)",
                    "conform every frame of the plate to one resolution",
                )
            yield number, arr

    def close(self) -> None:
        """Nothing stays open between frames."""
