"""Movie plates through open_plate: numbering, ranges, rate, timecode, and every named failure."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from io_media import make_h264, make_prores

from pipeline.errors import DecodeError, MissingFramesError
from pipeline.frames import FrameRange
from pipeline.io import PlateInfo, open_plate


def test_h264_mp4_smoke_shape_and_values(tmp_path: Path):
    path = tmp_path / "plate.mp4"
    frames = make_h264(path, n=12)
    with open_plate(path, first_frame=1001) as plate:
        info = plate.info
        got = list(plate.read())
    assert isinstance(info, PlateInfo)
    assert (info.kind, info.codec, info.bit_depth) == ("movie", "h264", 8)
    assert (info.width, info.height) == (64, 64)
    assert info.fps == Fraction(25)
    assert info.frames == FrameRange(1001, 1012)
    assert info.timecode is None
    assert [n for n, _ in got] == list(range(1001, 1013))
    for (_, arr), want in zip(got, frames, strict=True):
        assert arr.dtype == np.float32 and arr.shape == (64, 64, 3) and arr.flags.c_contiguous
        # near-lossless x264 (crf 1) on flat grey: within 2 codes of 255
        assert np.abs(arr * 255.0 - want).max() <= 2.0


def test_sub_range_reads_seek_to_the_right_frames(tmp_path: Path):
    path = tmp_path / "plate.mp4"
    frames = make_h264(path, n=12, gop=4)
    with open_plate(path, first_frame=1) as plate:
        for rng in (FrameRange(6, 8), FrameRange(1, 2), FrameRange(12, 12), FrameRange(5, 12)):
            got = list(plate.read(rng))
            assert [n for n, _ in got] == list(rng)
            for n, arr in got:
                assert abs(float(arr.mean()) * 255.0 - frames[n - 1].mean()) <= 2.0


def test_prores_sub_range_and_re_read(prores_422):
    path, frames = prores_422
    with open_plate(path, first_frame=101) as plate:
        assert plate.info.frames == FrameRange(101, 104)
        ((n, arr),) = plate.read(FrameRange(103, 103))
        assert n == 103
        assert np.abs(arr - frames[2]).max() * 1023 <= 6.0
        assert [n for n, _ in plate.read()] == [101, 102, 103, 104]


def test_range_outside_movie_is_missing_frames_error(tmp_path: Path):
    path = tmp_path / "plate.mp4"
    make_h264(path, n=4)
    with open_plate(path) as plate:
        with pytest.raises(MissingFramesError) as err:
            list(plate.read(FrameRange(1003, 1006)))
    assert err.value.missing == [1005, 1006]


def test_mxf_and_mov_containers(tmp_path: Path):
    # DNxHR HQ in MXF: index-less frame count, derived from the stream duration.
    path = tmp_path / "plate.mxf"
    out = av.open(str(path), "w")
    s = out.add_stream("dnxhd", rate=25, options={"profile": "dnxhr_hq"})
    s.width, s.height, s.pix_fmt = 256, 128, "yuv422p"
    for i in range(3):
        img = np.full((128, 256, 3), 40 * i, np.uint8)
        for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            out.mux(p)
    for p in s.encode():
        out.mux(p)
    out.close()
    with open_plate(path) as plate:
        assert plate.info.codec == "dnxhd"
        assert plate.info.frames == FrameRange(1001, 1003)
        means = [float(a.mean()) * 255.0 for _, a in plate.read()]
    assert means == pytest.approx([0.0, 40.0, 80.0], abs=2.0)


def test_variable_frame_rate_is_decode_error(tmp_path: Path):
    path = tmp_path / "vfr.mp4"
    make_h264(path, n=10, pts=[0, 1, 2, 3, 5, 6, 7, 9, 10, 11])
    with pytest.raises(DecodeError, match="variable frame rate|missing"):
        with open_plate(path) as plate:
            list(plate.read())


def test_mid_stream_corrupt_packet_is_decode_error_naming_a_frame(tmp_path: Path):
    path = tmp_path / "plate.mp4"
    make_h264(path, n=12, gop=4)
    with av.open(str(path)) as c:
        packets = [(p.pos, p.size) for p in c.demux(video=0) if p.size]
    pos, size = packets[5]
    data = bytearray(path.read_bytes())
    for j in range(pos + 4, pos + size):
        data[j] = (data[j] * 7 + 13) % 256
    path.write_bytes(bytes(data))
    with pytest.raises(DecodeError, match=r"frame 10\d\d"):
        with open_plate(path) as plate:
            list(plate.read())


def test_truncated_movie_is_decode_error(prores_422, tmp_path: Path):
    path, _ = prores_422
    cut = tmp_path / "cut.mov"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DecodeError, match="truncated|corrupt"):
        with open_plate(cut) as plate:
            list(plate.read())


def test_truncated_faststart_mp4_is_decode_error(tmp_path: Path):
    # With the index first, a cut file still opens; the reader must notice the missing frames.
    path = tmp_path / "fs.mp4"
    out = av.open(str(path), "w", options={"movflags": "faststart"})
    s = out.add_stream("libx264", rate=25, options={"g": "2"})
    s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
    rng = np.random.default_rng(0)
    for _ in range(10):
        img = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
        for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            out.mux(p)
    for p in s.encode():
        out.mux(p)
    out.close()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.6)])
    with pytest.raises(DecodeError):
        with open_plate(cut) as plate:
            list(plate.read())


def test_zero_byte_missing_and_garbage_movies(tmp_path: Path):
    empty = tmp_path / "empty.mov"
    empty.touch()
    with pytest.raises(DecodeError, match="empty"):
        open_plate(empty)
    with pytest.raises(DecodeError, match="does not exist"):
        open_plate(tmp_path / "nope.mov")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x01garbage" * 100)
    with pytest.raises(DecodeError, match="cannot open"):
        open_plate(junk)


def test_no_video_stream_is_decode_error(tmp_path: Path):
    path = tmp_path / "audio.mp4"
    out = av.open(str(path), "w")
    s = out.add_stream("aac", rate=48000)
    frame = av.AudioFrame.from_ndarray(
        np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
    )
    frame.sample_rate = 48000
    for p in s.encode(frame):
        out.mux(p)
    for p in s.encode():
        out.mux(p)
    out.close()
    with pytest.raises(DecodeError, match="no video stream"):
        open_plate(path)


def test_oversized_header_is_refused_before_decoding(tmp_path: Path):
    path = tmp_path / "plate.mp4"
    make_h264(path, n=2)
    with pytest.raises(DecodeError, match="decompression bomb"):
        open_plate(path, max_pixels=32 * 32)


def test_unknown_suffix_is_decode_error(tmp_path: Path):
    with pytest.raises(DecodeError, match="no plate reader"):
        open_plate(tmp_path / "plate.gif")
    with pytest.raises(DecodeError, match=r"####\.png"):
        open_plate(tmp_path / "still.png")


def test_4444_deep_movie_reads_at_full_precision(tmp_path: Path):
    path = tmp_path / "deep.mov"
    frames = make_prores(path, codec="prores_4444", n=1, timecode=None)
    with open_plate(path) as plate:
        assert plate.info.timecode is None
        assert plate.info.bit_depth == 12  # FFmpeg decodes ProRes 4444 at 12 bits
        ((_, arr),) = plate.read()
    # A 10-bit-truncating (rgb24) path could not get below ~2 codes mean error.
    assert (np.abs(arr - frames[0][..., :3]) * 1023).mean() < 1.0


def test_single_dropped_frame_is_caught_by_timestamps(tmp_path: Path):
    # One gap in 120 frames moves the average rate by under 1%, below the header check: the
    # per-frame timestamp check must name the hole.
    path = tmp_path / "gap.mp4"
    pts = [i if i < 60 else i + 1 for i in range(120)]
    make_h264(path, n=120, size=(16, 16), pts=pts, gop=30)
    with open_plate(path, first_frame=1) as plate:
        with pytest.raises(DecodeError, match="frame 61 is missing"):
            list(plate.read())
