"""Movie plates (QuickTime, MP4, MXF …) decoded through PyAV.

Frames are numbered from ``first_frame`` in presentation order. Each decoded frame's timestamp is
checked against its expected slot, so a variable frame rate, a dropped frame or a packet the
decoder skipped is an error that names the frame instead of a silent shift of everything after it.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter

from pipeline.errors import DecodeError
from pipeline.frames import MAX_PLATE_FRAMES, FrameRange, Timecode, parse_rate
from pipeline.io.base import PlateInfo, PlateReader, check_file, check_pixels

#: Movie suffixes this reader accepts.
MOVIE_SUFFIXES = (".mov", ".mp4", ".m4v", ".mxf", ".avi", ".mkv")

# Deep (>8-bit) sources are converted with exact rounding and full chroma interpolation: swscale's
# default point-samples 4:2:2 chroma, which costs ~5 code values of 1023 on smooth gradients.
# 8-bit sources keep the default path, which is what FFmpeg itself uses and twice as fast.
_DEEP_INTERP = (
    Interpolation.BILINEAR
    | Interpolation.ACCURATE_RND
    | Interpolation.FULL_CHR_H_INT
    | Interpolation.FULL_CHR_H_INP
)
# Average and nominal rates further apart than this mean a variable-frame-rate file.
_VFR_TOLERANCE = 0.01
_CONFORM_HINT = (
    "conform the plate to a constant frame rate first, e.g. "
    "ffmpeg -i IN -vf fps=24000/1001 -c:v prores_ks -profile:v 3 OUT.mov"
)


def _exact_rate(rate: Fraction) -> Fraction:
    """A container rate as an exact fraction (``2997/100`` → ``30000/1001``)."""
    if rate.denominator > 1001:
        return parse_rate(float(rate))
    return parse_rate(rate)


class MovieReader(PlateReader):
    """Reads a movie's first video stream.

    Args:
        path: the movie file.
        first_frame: the frame number given to the movie's first frame.
        max_pixels: refuse frames larger than this (checked on the header, before decoding).
        fps: the rate to use only when the container declares none.

    Raises:
        DecodeError: missing, empty or corrupt file, no video stream, oversized frames,
            variable frame rate, malformed timecode.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        first_frame: int = 1001,
        max_pixels: int,
        fps: Fraction | None = None,
    ) -> None:
        self._path = Path(path)
        check_file(self._path, "movie")
        try:
            self._container = av.open(str(self._path))
        except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
            raise DecodeError(
                f"cannot open movie {self._path}: {exc}",
                "the file is corrupt or truncated (an interrupted copy loses the index at the "
                "end of a QuickTime file); re-copy or re-export it",
            ) from exc
        try:
            self.info = self._probe(first_frame, max_pixels, fps)
        except BaseException:
            self.close()
            raise
        self._fresh = True
        self._origin: int | None = None
        # One reformatter for the whole read: ``frame.to_ndarray(format=...)`` builds a new
        # swscale context per frame, which costs more than the conversion itself.
        self._reformatter = VideoReformatter()

    def _probe(self, first_frame: int, max_pixels: int, fps: Fraction | None) -> PlateInfo:
        c = self._container
        if not c.streams.video:
            raise DecodeError(
                f"{self._path} has no video stream", "point plate.path at a movie with picture"
            )
        vs = c.streams.video[0]
        cc = vs.codec_context
        if cc is None:  # PyAV gives no codec context when FFmpeg has no decoder for the codec id
            raise DecodeError(
                f"{self._path}: no decoder for its video stream (corrupt header or an unsupported "
                "codec)",
                "re-copy the plate, or re-export it as ProRes, DNxHR or H.264",
            )
        check_pixels(self._path, cc.width, cc.height, max_pixels)
        vs.thread_type = "AUTO"

        avg, nominal = vs.average_rate, vs.base_rate
        if avg and nominal and abs(float(avg) / float(nominal) - 1.0) > _VFR_TOLERANCE:
            raise DecodeError(
                f"{self._path} has a variable frame rate (average {float(avg):.3f} fps, "
                f"nominal {float(nominal):.3f} fps)",
                _CONFORM_HINT,
            )
        declared = nominal or avg or vs.guessed_rate
        if declared:
            try:
                rate = _exact_rate(Fraction(declared))
            except ValueError as exc:  # e.g. a damaged time base: 0.000006 fps
                raise DecodeError(
                    f"{self._path} declares an unusable frame rate {float(declared):g}: {exc}",
                    _CONFORM_HINT,
                ) from exc
        elif fps is not None:
            rate = parse_rate(fps)
        else:
            raise DecodeError(
                f"{self._path} declares no frame rate", "pass the plate's fps explicitly"
            )

        count = self._frame_count(vs, rate)
        if count < 1:
            raise DecodeError(f"{self._path} holds no video frames", "re-export the plate")
        if count > MAX_PLATE_FRAMES:
            raise DecodeError(
                f"{self._path}: header claims {count} frames, over the limit of "
                f"{MAX_PLATE_FRAMES} (a corrupt duration or frame count)",
                "re-copy or re-export the plate",
            )

        fmt = cc.format
        bits = max((comp.bits for comp in fmt.components), default=8) if fmt else 8
        self._deep = bits > 8
        return PlateInfo(
            path=str(self._path),
            kind="movie",
            width=cc.width,
            height=cc.height,
            fps=rate,
            timecode=self._timecode(rate),
            frames=FrameRange(first_frame, first_frame + count - 1),
            codec=cc.name,
            bit_depth=bits,
        )

    def _frame_count(self, vs: av.video.stream.VideoStream, rate: Fraction) -> int:
        """Frames in the stream: from the index, the duration, or (MXF, MKV) by demuxing."""
        if vs.frames:
            return int(vs.frames)
        if vs.duration and vs.time_base:
            return round(vs.duration * vs.time_base * rate)
        count = 0
        try:
            with av.open(str(self._path)) as probe:
                for packet in probe.demux(video=0):
                    if packet.size:
                        count += 1
        except av.FFmpegError as exc:
            raise DecodeError(f"cannot demux {self._path}: {exc}", "re-export the plate") from exc
        return count

    def _timecode(self, rate: Fraction) -> Timecode | None:
        """The start timecode: video stream tag, then a ``tmcd`` data stream, then the container."""
        c = self._container
        sources = [c.streams.video[0].metadata]
        sources += [s.metadata for s in c.streams if s.type == "data"]
        sources.append(c.metadata)
        for meta in sources:
            text = meta.get("timecode")
            if text:
                try:
                    return Timecode.parse(text, rate)
                except ValueError as exc:
                    raise DecodeError(
                        f"{self._path}: malformed start timecode {text!r} at {float(rate):.3f} "
                        f"fps: {exc}",
                        "rewrite the movie's timecode track (HH:MM:SS:FF)",
                    ) from exc
        return None

    def read(self, frames: FrameRange | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(frame number, H×W×3 float32)`` for ``frames`` (all when omitted).

        Pixels are in the movie's own encoding (e.g. display sRGB / Rec.709), normalised to 0..1:
        8-bit sources through ``rgb24``, deeper ones through ``rgb48le`` so 10- and 12-bit codes
        are kept.

        Raises:
            MissingFramesError: ``frames`` reaches outside the movie.
            DecodeError: a frame fails to decode, arrives out of its time slot (variable frame
                rate or a dropped frame), changes size, or the movie ends early.
        """
        want = self._requested(frames)
        first = self.info.frames.first
        start, stop = want.first - first, want.last - first
        seek = start > 0 or not self._fresh
        self._fresh = False
        try:
            produced = self._decode(start, stop, seek=seek)
            for idx, arr in produced:
                yield first + idx, arr
        except av.FFmpegError as exc:
            raise DecodeError(
                f"{self._path}: decoding failed near frame {first + start}: {exc}",
                "the file is corrupt; re-copy or re-export it",
            ) from exc

    def _decode(
        self, start: int, stop: int, *, seek: bool, from_top: bool = False
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Decode movie indices ``start..stop`` (0-based), checking every timestamp.

        Args:
            start: first index wanted.
            stop: last index wanted.
            seek: position the demuxer first (not needed on a fresh container read from 0).
            from_top: seek to the first frame and decode forward, skipping up to ``start``.
        """
        c = self._container
        vs = c.streams.video[0]
        tb = float(vs.time_base) if vs.time_base else 0.0
        rate = float(self.info.fps)
        first = self.info.frames.first
        if self._origin is None:
            self._origin = vs.start_time or 0
        top = from_top or start == 0
        if seek or from_top:
            target = self._origin if top or not tb else self._origin + int(start / rate / tb)
            c.seek(target, stream=vs, backward=True, any_frame=False)
        expected = start
        counter = 0
        leading = True
        frames_in = c.decode(vs)
        while True:
            try:
                frame = next(frames_in)
            except StopIteration:
                break
            except av.FFmpegError as exc:
                raise DecodeError(
                    f"{self._path}: frame {first + expected} cannot be decoded: {exc}",
                    "the file is corrupt; re-copy or re-export it (frames are never skipped)",
                ) from exc
            if frame.pts is None or not tb:
                if not top:
                    # No timestamps to find our place after a seek: count from the top instead.
                    yield from self._decode(start, stop, seek=True, from_top=True)
                    return
                idx = counter
                counter += 1
            else:
                if top and leading:
                    self._origin = frame.pts
                idx = round((frame.pts - self._origin) * tb * rate)
            leading = False
            if idx < start:
                continue  # pre-roll from the keyframe before the wanted frame
            if idx < expected:
                raise DecodeError(
                    f"{self._path}: frame {first + idx} arrives again after frame "
                    f"{first + expected - 1} (duplicate timestamps)",
                    _CONFORM_HINT,
                )
            if idx > expected:
                if expected == start and not top:
                    # The seek landed past the wanted frame (edit lists): decode from the top.
                    yield from self._decode(start, stop, seek=True, from_top=True)
                    return
                raise DecodeError(
                    f"{self._path}: frame {first + expected} is missing: the next decoded frame "
                    f"sits at frame {first + idx} (variable frame rate, dropped frame, or a "
                    "corrupt packet the decoder skipped)",
                    _CONFORM_HINT,
                )
            if frame.is_corrupt:
                raise DecodeError(
                    f"{self._path}: frame {first + idx} decodes corrupt",
                    "the file is damaged; re-copy or re-export it",
                )
            if frame.width != self.info.width or frame.height != self.info.height:
                raise DecodeError(
                    f"{self._path}: frame {first + idx} is {frame.width}×{frame.height}, the "
                    f"plate is {self.info.width}×{self.info.height} (mixed resolutions)",
                    "conform the plate to one resolution",
                )
            yield idx, self._pixels(frame)
            expected += 1
            if expected > stop:
                return
        raise DecodeError(
            f"{self._path}: movie ends after frame {first + expected - 1}, but its header "
            f"promises frames up to {self.info.frames.last} (truncated file)",
            "re-copy or re-export the movie",
        )

    def _pixels(self, frame: av.VideoFrame) -> np.ndarray:
        """One decoded frame as H×W×3 float32 0..1 in the movie's encoding."""
        if self._deep:
            rgb = self._reformatter.reformat(frame, format="rgb48le", interpolation=_DEEP_INTERP)
            scale = np.float32(1.0 / 65535.0)
        else:
            rgb = self._reformatter.reformat(frame, format="rgb24")
            scale = np.float32(1.0 / 255.0)
        arr = rgb.to_ndarray()
        out = arr.astype(np.float32)
        out *= scale
        return out

    def close(self) -> None:
        """Close the container. Safe to call twice."""
        container = getattr(self, "_container", None)
        if container is not None:
            container.close()
            self._container = None
