"""write_exr / read_exr: exact half-float round trips, Nuke layers, header attributes, atomicity."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import OpenEXR
import pytest

from pipeline.color import ColorPipeline
from pipeline.errors import DecodeError, EncodeError
from pipeline.frames import Timecode
from pipeline.io import read_exr, write_exr
from pipeline.io.exr import pixel_bits, timecode_from_exr

RNG = np.random.default_rng(7)


def _half_image(h: int, w: int, c: int) -> np.ndarray:
    """Random finite halves over a wide range, negatives and tiny values included."""
    vals = RNG.normal(0.0, 4.0, (h, w, c)).astype(np.float16)
    vals[0, 0] = np.float16(6.1e-5)  # smallest normal
    vals[0, 1] = np.float16(-60000.0)
    return vals


@pytest.mark.parametrize("compression", ["zip", "piz", "none"])
def test_half_round_trip_is_exact_with_layers_and_header(tmp_path: Path, compression: str):
    beauty = _half_image(32, 48, 4)
    face = _half_image(32, 48, 4)
    fps = Fraction(24000, 1001)
    tc = Timecode.parse("01:02:03:04", fps)
    chroma = ColorPipeline().chromaticities("ACEScg")
    path = write_exr(
        tmp_path / "out" / "sh010.1001.exr",
        {"": beauty, "face": face},
        compression=compression,
        fps=fps,
        timecode=tc,
        chromaticities=chroma,
        owner="likeness test",
        attrs={"likeness:synthetic": "1", "likeness:actor": "jdoe"},
    )
    channels, header = read_exr(path)
    assert sorted(channels) == sorted(["R", "G", "B", "A", "face.R", "face.G", "face.B", "face.A"])
    for i, c in enumerate("RGBA"):
        assert channels[c].dtype == np.float16
        assert channels[c].shape == (32, 48)
        np.testing.assert_array_equal(channels[c].view(np.uint16), beauty[..., i].view(np.uint16))
        np.testing.assert_array_equal(
            channels[f"face.{c}"].view(np.uint16), face[..., i].view(np.uint16)
        )
    assert header["framesPerSecond"] == fps
    assert timecode_from_exr(header["timeCode"], fps) == tc
    assert header["chromaticities"] == pytest.approx(chroma, abs=1e-6)
    assert header["owner"] == "likeness test"
    assert header["likeness:synthetic"] == "1"
    assert header["likeness:actor"] == "jdoe"
    assert (
        header["compression"]
        == {
            "zip": OpenEXR.ZIP_COMPRESSION,
            "piz": OpenEXR.PIZ_COMPRESSION,
            "none": OpenEXR.NO_COMPRESSION,
        }[compression]
    )


def test_float32_input_is_stored_as_half_rgb(tmp_path: Path):
    img = np.linspace(-1.0, 3.0, 16 * 8 * 3, dtype=np.float32).reshape(16, 8, 3)
    path = write_exr(tmp_path / "a.exr", {"": img})
    channels, header = read_exr(path)
    assert sorted(channels) == ["B", "G", "R"]
    assert pixel_bits(path) == 16
    np.testing.assert_array_equal(channels["G"], img[..., 1].astype(np.float16))
    assert "framesPerSecond" not in header and "timeCode" not in header


def test_drop_frame_timecode_flag(tmp_path: Path):
    fps = Fraction(30000, 1001)
    tc = Timecode.parse("00:10:00;00", fps)
    path = write_exr(
        tmp_path / "df.exr", {"": np.zeros((4, 4, 3), np.float32)}, fps=fps, timecode=tc
    )
    _, header = read_exr(path)
    assert header["timeCode"].dropFrame is True
    assert timecode_from_exr(header["timeCode"], fps) == tc
    assert str(timecode_from_exr(header["timeCode"], fps)) == "00:10:00;00"


def test_dwaa_is_written_and_close(tmp_path: Path):
    img = np.tile(np.linspace(0.0, 1.0, 64, dtype=np.float32)[None, :, None], (64, 1, 3))
    path = write_exr(tmp_path / "d.exr", {"": img}, compression="dwaa")
    channels, header = read_exr(path)
    assert header["compression"] == OpenEXR.DWAA_COMPRESSION
    assert np.abs(channels["R"].astype(np.float32) - img[..., 0]).max() < 0.02


@pytest.mark.parametrize(
    ("layers", "kwargs"),
    [
        ({"": np.zeros((4, 4, 2), np.float32)}, {}),
        ({"": np.zeros((4, 4, 3), np.uint8)}, {}),
        ({"": np.zeros((4, 4, 3), np.float32), "face": np.zeros((5, 4, 3), np.float32)}, {}),
        ({"a.b": np.zeros((4, 4, 3), np.float32)}, {}),
        ({}, {}),
        ({"": np.zeros((4, 4, 3), np.float32)}, {"compression": "lzw"}),
        ({"": np.zeros((4, 4, 3), np.float32)}, {"chromaticities": (0.1, 0.2)}),
        ({"": np.zeros((4, 4, 3), np.float32)}, {"attrs": {"owner": "x"}}),
    ],
)
def test_bad_input_is_encode_error_and_leaves_nothing(tmp_path: Path, layers, kwargs):
    final = tmp_path / "bad.exr"
    with pytest.raises(EncodeError):
        write_exr(final, layers, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_nothing_at_final_path(tmp_path: Path, monkeypatch):
    final = tmp_path / "x.exr"

    class Exploding:
        def __init__(self, header, channels):
            pass

        def write(self, path: str) -> None:
            Path(path).write_bytes(b"v/1\x01partial")
            raise RuntimeError("disk went away")

    monkeypatch.setattr(OpenEXR, "File", Exploding)
    with pytest.raises(EncodeError, match="disk went away"):
        write_exr(final, {"": np.zeros((4, 4, 3), np.float32)})
    assert list(tmp_path.iterdir()) == []


def test_rewrite_replaces_whole_file(tmp_path: Path):
    final = tmp_path / "x.exr"
    write_exr(final, {"": np.zeros((4, 4, 3), np.float32)})
    write_exr(final, {"": np.ones((4, 4, 3), np.float32)})
    channels, _ = read_exr(final)
    assert channels["R"].min() == 1.0
    assert [p.name for p in tmp_path.iterdir()] == ["x.exr"]


@pytest.mark.parametrize("keep", [0, 100, 0.5, -10])
def test_truncated_or_empty_exr_is_decode_error(tmp_path: Path, keep):
    src = write_exr(tmp_path / "full.exr", {"": _half_image(64, 64, 3)}, compression="none")
    data = src.read_bytes()
    n = (
        int(len(data) * keep)
        if isinstance(keep, float)
        else (len(data) + keep if keep < 0 else keep)
    )
    bad = tmp_path / "bad.exr"
    bad.write_bytes(data[:n])
    with pytest.raises(DecodeError):
        read_exr(bad)


def test_missing_and_garbage_exr_are_decode_errors(tmp_path: Path):
    with pytest.raises(DecodeError, match="does not exist"):
        read_exr(tmp_path / "nope.exr")
    junk = tmp_path / "junk.exr"
    junk.write_bytes(b"not an exr at all" * 10)
    with pytest.raises(DecodeError):
        read_exr(junk)
