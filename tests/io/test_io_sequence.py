"""Image-sequence plates: patterns, EXR/PNG/TIFF/DPX frames, holes, mixed sizes, bombs."""

from __future__ import annotations

import struct
import zlib
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from io_media import FPS, START_TC, make_exr_sequence, write_png

from pipeline.errors import DecodeError, MissingFramesError
from pipeline.frames import FrameRange, Timecode
from pipeline.io import image as image_io
from pipeline.io import open_plate, write_exr
from pipeline.io.sequence import parse_pattern


@pytest.mark.parametrize(
    ("pattern", "prefix", "padding", "suffix"),
    [
        ("plates/sh010.####.exr", "sh010.", 4, ".exr"),
        ("plates/sh010.%04d.exr", "sh010.", 4, ".exr"),
        ("plates/sh010_@@@@@.dpx", "sh010_", 5, ".dpx"),
        ("sh010.%d.png", "sh010.", 1, ".png"),
    ],
)
def test_parse_pattern(pattern, prefix, padding, suffix):
    p = parse_pattern(pattern)
    assert (p.prefix, p.padding, p.suffix) == (prefix, padding, suffix)
    assert p.path(1001).name == f"{prefix}{1001:0{padding}d}{suffix}"


def test_pattern_needs_one_token():
    with pytest.raises(DecodeError, match="exactly one frame token"):
        parse_pattern("plates/sh###.####.exr")


def test_exr_sequence_smoke_fps_timecode_and_values(tmp_path: Path):
    written = make_exr_sequence(tmp_path / "plates", [1001, 1002, 1003])
    (tmp_path / "plates" / "sh010.v2.1001.exr").write_bytes(b"other sequence")  # not matched
    (tmp_path / "plates" / ".sh010.1004.exr.tmp-1-ab").write_bytes(b"x")  # killed writer
    with open_plate(tmp_path / "plates" / "sh010.####.exr", first_frame=1) as plate:
        info = plate.info
        got = dict(plate.read())
    assert (info.kind, info.codec, info.bit_depth) == ("sequence", "exr", 16)
    assert (info.width, info.height) == (64, 48)
    assert info.frames == FrameRange(1001, 1003)  # sequences keep their own numbers
    assert info.fps == Fraction(24000, 1001)
    assert info.timecode == Timecode.parse(START_TC, FPS)
    assert sorted(got) == [1001, 1002, 1003]
    for n, arr in got.items():
        assert arr.dtype == np.float32 and arr.shape == (48, 64, 3)
        np.testing.assert_array_equal(arr, written[n].astype(np.float32))  # values as stored


def test_sequence_formats_of_pattern_are_equivalent(tmp_path: Path):
    make_exr_sequence(tmp_path, [7, 8], name="a")
    for pattern in ("a.####.exr", "a.%04d.exr", "a.@@@@.exr"):
        with open_plate(tmp_path / pattern) as plate:
            assert plate.info.frames == FrameRange(7, 8)


def test_sequence_fps_argument_and_default(tmp_path: Path):
    make_exr_sequence(tmp_path, [1, 2], fps=None)
    with open_plate(tmp_path / "sh010.####.exr") as plate:
        assert plate.info.fps == 24
    with open_plate(tmp_path / "sh010.####.exr", fps=Fraction(25)) as plate:
        assert plate.info.fps == 25
    make_exr_sequence(tmp_path / "b", [1, 2], fps=Fraction(30))
    with open_plate(tmp_path / "b" / "sh010.####.exr", fps=Fraction(25)) as plate:
        assert plate.info.fps == 30  # the file's own attribute wins


def test_hole_in_sequence_is_missing_frames_error_listing_numbers(tmp_path: Path):
    make_exr_sequence(tmp_path, [1001, 1002, 1005, 1007])
    with pytest.raises(MissingFramesError) as err:
        open_plate(tmp_path / "sh010.####.exr")
    assert err.value.missing == [1003, 1004, 1006]
    assert "1003-1004, 1006" in str(err.value)


def test_range_outside_sequence_is_missing_frames_error(tmp_path: Path):
    make_exr_sequence(tmp_path, [1001, 1002])
    with open_plate(tmp_path / "sh010.####.exr") as plate:
        assert [n for n, _ in plate.read(FrameRange(1002, 1002))] == [1002]
        with pytest.raises(MissingFramesError) as err:
            list(plate.read(FrameRange(1000, 1003)))
    assert err.value.missing == [1000, 1003]


def test_no_matching_files_and_missing_folder(tmp_path: Path):
    with pytest.raises(DecodeError, match="no frames match"):
        open_plate(tmp_path / "sh010.####.exr")
    with pytest.raises(DecodeError, match="does not exist"):
        open_plate(tmp_path / "nope" / "sh010.####.exr")
    with pytest.raises(DecodeError, match="no sequence reader"):
        open_plate(tmp_path / "sh010.####.gif")


def test_mixed_resolutions_is_decode_error(tmp_path: Path):
    make_exr_sequence(tmp_path, [1, 2])
    make_exr_sequence(tmp_path, [3], size=(32, 48))
    with open_plate(tmp_path / "sh010.####.exr") as plate:
        with pytest.raises(DecodeError, match="mixed resolutions"):
            list(plate.read())


@pytest.mark.parametrize("damage", ["zero", "truncate"])
def test_damaged_frame_in_sequence_is_decode_error(tmp_path: Path, damage: str):
    make_exr_sequence(tmp_path, [1, 2, 3], size=(64, 64))
    frame = tmp_path / "sh010.0002.exr"
    data = frame.read_bytes()
    frame.write_bytes(b"" if damage == "zero" else data[: len(data) // 2])
    with open_plate(tmp_path / "sh010.####.exr") as plate:
        with pytest.raises(DecodeError, match="0002"):
            list(plate.read())


def test_exr_without_rgb_is_decode_error(tmp_path: Path):
    write_exr(tmp_path / "m.0001.exr", {"face": np.zeros((8, 8, 3), np.float32)})
    with open_plate(tmp_path / "m.####.exr") as plate:
        with pytest.raises(DecodeError, match="no top-level R, G, B"):
            list(plate.read())


def test_exr_bomb_refused_by_max_pixels(tmp_path: Path):
    make_exr_sequence(tmp_path, [1])
    with pytest.raises(DecodeError, match="decompression bomb"):
        open_plate(tmp_path / "sh010.####.exr", max_pixels=100)


def _rgb_ramp(h: int, w: int, dtype) -> np.ndarray:
    top = 255 if dtype == np.uint8 else 65535
    img = np.zeros((h, w, 3), dtype)
    img[..., 0] = np.linspace(0, top, w, dtype=np.float64).astype(dtype)[None, :]
    img[..., 1] = top // 3
    img[..., 2] = top
    return img


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("backend", ["cv2", "oiio"])
def test_png_sequence_8_and_16_bit_rgb_order(tmp_path: Path, monkeypatch, dtype, backend):
    if backend == "oiio" and not image_io.has_oiio():
        pytest.skip("OpenImageIO is not installed; the OpenCV path is the default")
    monkeypatch.setattr(image_io, "has_oiio", lambda: backend == "oiio")
    img = _rgb_ramp(16, 32, dtype)
    for n in (1, 2):
        write_png(tmp_path / f"p.{n:04d}.png", img)
    top = 255.0 if dtype == np.uint8 else 65535.0
    with open_plate(tmp_path / "p.####.png") as plate:
        assert plate.info.codec == "png"
        assert plate.info.bit_depth == (8 if dtype == np.uint8 else 16)
        (_, arr), _ = plate.read()
    assert arr.dtype == np.float32 and arr.shape == (16, 32, 3)
    np.testing.assert_allclose(arr, img / top, atol=1e-6)  # R is the ramp: no BGR swap


def test_tiff_sequence_16_bit(tmp_path: Path):
    img = _rgb_ramp(8, 16, np.uint16)
    cv2.imwrite(str(tmp_path / "t.0001.tif"), img[..., ::-1].copy())
    with open_plate(tmp_path / "t.####.tif") as plate:
        assert (plate.info.codec, plate.info.bit_depth) == ("tiff", 16)
        assert (plate.info.width, plate.info.height) == (16, 8)
        ((_, arr),) = plate.read()
    np.testing.assert_allclose(arr, img / 65535.0, atol=1e-6)


def _png_bytes_claiming(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr
    chunk += struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk


def test_png_bomb_header_refused_before_decoding(tmp_path: Path):
    (tmp_path / "b.0001.png").write_bytes(_png_bytes_claiming(100_000, 100_000))
    with pytest.raises(DecodeError, match="decompression bomb"):
        open_plate(tmp_path / "b.####.png")


def test_corrupt_png_is_decode_error(tmp_path: Path):
    (tmp_path / "c.0001.png").write_bytes(_png_bytes_claiming(8, 8))  # header, no pixel data
    with open_plate(tmp_path / "c.####.png") as plate:
        with pytest.raises(DecodeError, match="c.0001.png"):
            list(plate.read())


def _write_dpx(path: Path, img: np.ndarray, *, timecode_bcd: int | None, fps: float | None) -> None:
    """A 16-bit DPX through FFmpeg's encoder, with film/TV headers spliced in when asked."""
    out = av.open(str(path), "w", format="image2")
    s = out.add_stream("dpx", rate=24)
    s.width, s.height, s.pix_fmt = img.shape[1], img.shape[0], "rgb48le"
    for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb48le")):
        out.mux(p)
    for p in s.encode():
        out.mux(p)
    out.close()
    if timecode_bcd is None and fps is None:
        return
    data = bytearray(path.read_bytes())
    order = ">" if data[:4] == b"SDPX" else "<"
    (offset,) = struct.unpack(order + "I", data[4:8])
    industry = bytearray(b"\xff" * (2048 - offset))  # film + TV headers, "undefined" filled
    if fps is not None:
        industry[1724 - offset : 1728 - offset] = struct.pack(order + "f", fps)
    if timecode_bcd is not None:
        industry[1920 - offset : 1924 - offset] = struct.pack(order + "I", timecode_bcd)
    data = data[:offset] + industry + data[offset:]
    data[4:8] = struct.pack(order + "I", 2048)
    data[16:20] = struct.pack(order + "I", len(data))
    (elem,) = struct.unpack(order + "I", data[808:812])
    if elem == offset:
        data[808:812] = struct.pack(order + "I", 2048)
    path.write_bytes(bytes(data))


def test_dpx_sequence_with_header_timecode_and_rate(tmp_path: Path):
    img = _rgb_ramp(8, 16, np.uint16)
    for n in (101, 102):
        _write_dpx(tmp_path / f"d.{n:04d}.dpx", img, timecode_bcd=0x01001005, fps=23.976)
    with open_plate(tmp_path / "d.####.dpx") as plate:
        info = plate.info
        frames = list(plate.read())
    assert (info.codec, info.bit_depth, info.width, info.height) == ("dpx", 16, 16, 8)
    assert info.fps == Fraction(24000, 1001)
    assert info.timecode == Timecode.parse("01:00:10:05", info.fps)
    assert [n for n, _ in frames] == [101, 102]
    np.testing.assert_allclose(frames[0][1], img / 65535.0, atol=1e-6)


def test_dpx_without_industry_headers_has_no_timecode(tmp_path: Path):
    _write_dpx(tmp_path / "e.0001.dpx", _rgb_ramp(8, 16, np.uint16), timecode_bcd=None, fps=None)
    with open_plate(tmp_path / "e.####.dpx", fps=Fraction(25)) as plate:
        assert plate.info.timecode is None
        assert plate.info.fps == 25
