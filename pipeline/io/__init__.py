"""Plate readers and delivery writers behind one small interface.

:func:`open_plate` picks the reader from the path: a frame token (``####``, ``%04d``, ``@@@@``)
means an image sequence, read per frame by the format its suffix maps to; otherwise the suffix
must be a movie container. Writers: :func:`write_exr` (half-float, Nuke layers) and
:class:`ProResWriter` (QuickTime 422 HQ / 4444). Every writer goes through
:mod:`pipeline.atomic`. The ingest cache that later stages read is
:mod:`pipeline.io.plate_cache`.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from pipeline.errors import DecodeError
from pipeline.io.base import DEFAULT_MAX_PIXELS, PlateInfo, PlateReader
from pipeline.io.exr import read_exr, write_exr
from pipeline.io.movie import MOVIE_SUFFIXES, MovieReader
from pipeline.io.prores import ProResWriter
from pipeline.io.sequence import SEQUENCE_FORMATS, SequenceReader, is_sequence_pattern

__all__ = [
    "PlateInfo",
    "PlateReader",
    "ProResWriter",
    "open_plate",
    "read_exr",
    "write_exr",
    "READERS",
]

#: Suffix → reader for single-file plates. Sequences (a frame token in the name) use
#: :class:`SequenceReader`, whose per-frame formats live in ``SEQUENCE_FORMATS``.
READERS: dict[str, type[MovieReader]] = dict.fromkeys(MOVIE_SUFFIXES, MovieReader)


def open_plate(
    path: str | Path,
    *,
    first_frame: int = 1001,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    fps: Fraction | None = None,
) -> PlateReader:
    """Open a movie or an image sequence for reading.

    Args:
        path: a movie (``.mov .mp4 .mxf .m4v .avi .mkv``) or a sequence pattern such as
            ``plates/sh010.####.exr`` (also ``%04d`` and ``@@@@``; ``.exr .dpx .tif .tiff .png``).
        first_frame: frame number of a movie's first frame (sequences keep their own numbers).
        max_pixels: refuse frames whose header claims more pixels (decompression-bomb guard).
        fps: frame rate for sequences whose headers carry none (default 24), or for a movie
            that declares none.

    Returns:
        An open :class:`PlateReader`; use it in a ``with`` block.

    Raises:
        DecodeError: unknown suffix, missing/empty/corrupt file, no video stream, variable
            frame rate, oversized frames, ...
        MissingFramesError: holes in a sequence.
    """
    if is_sequence_pattern(path):
        return SequenceReader(path, max_pixels=max_pixels, fps=fps)
    suffix = Path(path).suffix.lower()
    reader = READERS.get(suffix)
    if reader is None:
        hint = f"use a movie ({', '.join(sorted(READERS))})"
        if suffix in SEQUENCE_FORMATS:
            hint = f"{suffix} frames are read as a sequence: write the path as name.####{suffix}"
        raise DecodeError(f"no plate reader for {str(path)!r} (suffix {suffix or 'none'!r})", hint)
    return reader(path, first_frame=first_frame, max_pixels=max_pixels, fps=fps)
