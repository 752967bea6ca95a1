"""ProRes review movies (QuickTime) through PyAV's ``prores_ks`` encoder.

The movie is written to a temporary sibling and renamed into place on a clean close, so an
exception or a killed process never leaves a partial movie at the final path.
"""

from __future__ import annotations

import contextlib
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Literal

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, Interpolation, VideoReformatter

from pipeline.atomic import atomic_path
from pipeline.color import BT709_TAGS, VideoTags
from pipeline.errors import EncodeError
from pipeline.frames import Timecode

ProResCodec = Literal["prores_422hq", "prores_4444"]

# codec → (prores_ks profile, encoder pixel format, input layout for from_ndarray, channels)
_PROFILES: dict[str, tuple[str, str, str, int]] = {
    "prores_422hq": ("3", "yuv422p10le", "rgb48le", 3),
    "prores_4444": ("4", "yuva444p10le", "rgba64le", 4),
}
# The Y'CbCr matrix swscale converts with, by H.273 matrix code (BT.2020 NCL, else BT.709).
_MATRIX = {9: Colorspace.BT2020, 1: Colorspace.ITU709}
# Exact rounding and proper chroma filtering on RGB → 4:2:2: swscale's default point-samples
# chroma, which roughly doubles the round-trip error on smooth gradients.
_INTERP = (
    Interpolation.BILINEAR
    | Interpolation.ACCURATE_RND
    | Interpolation.FULL_CHR_H_INT
    | Interpolation.FULL_CHR_H_INP
)


class ProResWriter:
    """Write a ProRes 422 HQ or 4444 QuickTime movie, frame by frame.

    Use as a context manager: the movie appears at ``path`` only when the block exits cleanly.

    Args:
        path: the final ``.mov`` path.
        width: frame width in pixels (even for 4:2:2).
        height: frame height in pixels.
        fps: exact frame rate, e.g. ``Fraction(24000, 1001)``.
        codec: ``"prores_422hq"`` (profile 3, yuv422p10le) or ``"prores_4444"`` (profile 4,
            yuva444p10le, alpha kept).
        timecode: start timecode, written as a QuickTime ``tmcd`` track.
        metadata: extra container metadata (string keys and values, e.g. ``likeness:shot``).
        tags: the colour primaries, transfer and matrix the pixels are in (default BT.709
            for all three); the RGB → Y'CbCr conversion uses that matrix (BT.2020 or BT.709);
            range is video (tv).

    Raises:
        EncodeError: bad parameters, or the encoder cannot be opened.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        width: int,
        height: int,
        fps: Fraction,
        codec: ProResCodec,
        timecode: Timecode | None = None,
        metadata: dict[str, str] | None = None,
        tags: VideoTags = BT709_TAGS,
    ) -> None:
        if codec not in _PROFILES:
            raise EncodeError(
                f"unknown review codec {codec!r}", f"use one of {', '.join(sorted(_PROFILES))}"
            )
        if tags.matrix not in _MATRIX:
            raise EncodeError(
                f"cannot write Y'CbCr matrix {tags.matrix} ({tags.note})",
                "use BT.709 (1) or BT.2020 non-constant luminance (9)",
            )
        if width <= 0 or height <= 0 or (codec == "prores_422hq" and width % 2):
            raise EncodeError(
                f"cannot write a {width}×{height} {codec} movie",
                "use positive dimensions, with an even width for 4:2:2",
            )
        fps = Fraction(fps)
        if fps <= 0:
            raise EncodeError(f"frame rate must be positive, got {fps}", "pass e.g. 24000/1001")
        self.path = Path(path)
        self.width, self.height, self.fps, self.codec = width, height, fps, codec
        profile, self._pix_fmt, self._in_fmt, self._channels = _PROFILES[codec]
        self._count = 0
        self._reformatter = VideoReformatter()  # one swscale context for every frame
        self._stack = contextlib.ExitStack()
        self._closed = False
        tmp = self._stack.enter_context(atomic_path(self.path, suffix=".mov"))
        try:
            self._container = av.open(
                str(tmp), "w", format="mov", options={"movflags": "use_metadata_tags"}
            )
            for key, value in (metadata or {}).items():
                self._container.metadata[str(key)] = str(value)
            stream = self._container.add_stream(
                "prores_ks", rate=fps, options={"profile": profile, "vendor": "apl0"}
            )
            stream.width, stream.height, stream.pix_fmt = width, height, self._pix_fmt
            if timecode is not None:
                stream.metadata["timecode"] = str(timecode)
            cc = stream.codec_context
            cc.color_primaries = tags.primaries
            cc.colorspace = tags.matrix
            cc.color_trc = tags.transfer
            cc.color_range = int(ColorRange.MPEG)
            self.tags = tags
            self._stream = stream
        except (av.FFmpegError, ValueError) as exc:
            self._abort(exc)
            raise EncodeError(
                f"cannot start ProRes movie {self.path}: {exc}",
                "check that this PyAV build has the prores_ks encoder",
            ) from exc

    def write(self, frame: np.ndarray) -> None:
        """Encode one frame.

        Args:
            frame: H×W×3 (422 HQ) or H×W×4 (4444; the fourth channel is the matte) float,
                0..1 in the tagged encoding (``tags``); values outside 0..1 are clipped.

        Raises:
            EncodeError: wrong shape or dtype, writer closed, or the encoder fails.
        """
        if self._closed:
            raise EncodeError(f"{self.path}: write() after close()", "open a new ProResWriter")
        arr = np.asarray(frame)
        want = (self.height, self.width, self._channels)
        if arr.shape != want or not np.issubdtype(arr.dtype, np.floating):
            raise EncodeError(
                f"{self.path}: frame {self._count} is {arr.dtype} {arr.shape}, the movie needs "
                f"float {want}",
                "pass display-referred float pixels of the movie's size (4 channels for 4444)",
            )
        codes = np.empty(arr.shape, np.float32)
        np.multiply(arr, 65535.0, out=codes, casting="unsafe")
        np.clip(codes, 0.0, 65535.0, out=codes)
        np.rint(codes, out=codes)
        rgb = av.VideoFrame.from_ndarray(codes.astype(np.uint16), format=self._in_fmt)
        yuv = self._reformatter.reformat(
            rgb,
            format=self._pix_fmt,
            dst_colorspace=_MATRIX[self.tags.matrix],
            dst_color_range=ColorRange.MPEG,
            interpolation=_INTERP,
        )
        yuv.color_primaries = self.tags.primaries
        yuv.color_trc = self.tags.transfer
        yuv.pts = self._count
        try:
            for packet in self._stream.encode(yuv):
                self._container.mux(packet)
        except av.FFmpegError as exc:
            raise EncodeError(f"{self.path}: encoding frame {self._count} failed: {exc}") from exc
        self._count += 1

    @property
    def frames_written(self) -> int:
        """How many frames have been written so far."""
        return self._count

    def close(self) -> None:
        """Flush the encoder and move the finished movie to ``path``.

        Raises:
            EncodeError: no frames were written, or flushing fails; nothing is left at ``path``.
        """
        if self._closed:
            return
        if self._count == 0:
            err = EncodeError(f"{self.path}: no frames written", "write at least one frame")
            self._abort(err)
            raise err
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
        except av.FFmpegError as exc:
            self._abort(exc)
            raise EncodeError(f"{self.path}: finishing the movie failed: {exc}") from exc
        self._closed = True
        self._stack.close()

    def _abort(self, exc: BaseException) -> None:
        """Drop the temporary movie; nothing reaches ``path``."""
        if self._closed:
            return
        self._closed = True
        container = getattr(self, "_container", None)
        if container is not None:
            with contextlib.suppress(av.FFmpegError, OSError):
                container.close()
        self._stack.__exit__(type(exc), exc, exc.__traceback__)

    def __enter__(self) -> ProResWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
        else:
            self._abort(exc)
