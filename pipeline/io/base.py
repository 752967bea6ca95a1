"""The plate-reader interface shared by movies and image sequences."""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Literal

import numpy as np

from pipeline.errors import DecodeError, MissingFramesError
from pipeline.frames import FrameRange, Timecode

#: Default refusal threshold for decoded frame size (a decompression-bomb guard).
DEFAULT_MAX_PIXELS = 8192 * 8192


@dataclass(frozen=True)
class PlateInfo:
    """What a plate is, read from headers before any pixel is decoded.

    Attributes:
        path: the file, or the sequence pattern as given.
        kind: ``"movie"`` or ``"sequence"``.
        width: frame width in pixels.
        height: frame height in pixels.
        fps: exact frame rate (``24000/1001`` for 23.976).
        timecode: timecode of the first frame in ``frames``, or ``None`` when the plate has none.
        frames: available frame numbers; movies are numbered from ``first_frame``.
        codec: ``"prores"``, ``"h264"``, ``"dnxhd"``, ``"exr"``, ``"png"``, ...
        bit_depth: bits per sample as stored (16 for half-float EXR).
    """

    path: str
    kind: Literal["movie", "sequence"]
    width: int
    height: int
    fps: Fraction
    timecode: Timecode | None
    frames: FrameRange
    codec: str
    bit_depth: int


class PlateReader(abc.ABC):
    """Reads the frames of one plate. Use as a context manager.

    Attributes:
        info: the plate's header information.
    """

    info: PlateInfo

    @abc.abstractmethod
    def read(self, frames: FrameRange | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(frame number, pixels)`` in frame order.

        Args:
            frames: the frames to read; all of ``info.frames`` when omitted.

        Yields:
            The frame number and an H×W×3 float32 C-contiguous array in the file's own encoded
            colour space: integer codes normalised to 0..1, float EXR values as stored. Alpha is
            dropped.

        Raises:
            MissingFramesError: part of ``frames`` lies outside ``info.frames``.
            DecodeError: a frame cannot be decoded; the message names it.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release the file handles. Safe to call twice."""

    def __enter__(self) -> PlateReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _requested(self, frames: FrameRange | None) -> FrameRange:
        """``frames`` checked against ``info.frames`` (all of them when ``None``)."""
        have = self.info.frames
        if frames is None:
            return have
        outside = [f for f in frames if f not in have]
        if outside:
            raise MissingFramesError(
                self.info.path,
                outside,
                f"the plate holds frames {have}; request a range inside it",
            )
        return frames


def check_file(path: Path, what: str = "plate") -> None:
    """Refuse a missing, unreadable or zero-byte file before handing it to a decoder.

    Raises:
        DecodeError: naming the path and what is wrong with it.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError as exc:
        raise DecodeError(
            f"{what} {path} does not exist",
            "check the path (relative paths resolve against the shot spec's folder)",
        ) from exc
    except OSError as exc:
        raise DecodeError(f"cannot stat {what} {path}: {exc.strerror or exc}") from exc
    if not path.is_file():
        raise DecodeError(f"{what} {path} is not a regular file", "point at a file")
    if size == 0:
        raise DecodeError(
            f"{what} {path} is empty (0 bytes)",
            "re-copy or re-render the file; it was not written completely",
        )


def check_pixels(path: str | Path, width: int, height: int, max_pixels: int) -> None:
    """Refuse frames whose header claims more than ``max_pixels`` (before decoding).

    Raises:
        DecodeError: bad or oversized dimensions.
    """
    if width <= 0 or height <= 0:
        raise DecodeError(
            f"{path}: header claims a {width}×{height} frame", "the file is corrupt; re-export it"
        )
    if width * height > max_pixels:
        raise DecodeError(
            f"{path}: header claims {width}×{height} = {width * height} pixels, over the limit "
            f"of {max_pixels} (refused before decoding: possible decompression bomb)",
            "if the plate really is that large, raise max_pixels for this shot",
        )


def normalise_codes(arr: np.ndarray) -> np.ndarray:
    """Integer codes to float32 0..1 (float input is returned as float32 values as stored).

    Args:
        arr: H×W×C uint8, uint16 or float, any encoding.

    Returns:
        H×W×C float32 C-contiguous, same encoding.
    """
    if arr.dtype == np.uint8:
        out = arr.astype(np.float32)
        out *= np.float32(1.0 / 255.0)
        return out
    if arr.dtype == np.uint16:
        out = arr.astype(np.float32)
        out *= np.float32(1.0 / 65535.0)
        return out
    return np.ascontiguousarray(arr, dtype=np.float32)
