"""ProResWriter: 10-bit round trips, profiles, alpha, timecode, metadata, colour tags, atomicity.

Tolerances in code values of 1023 on smooth content (measured here: max 5.0 for 4:2:2 HQ, 2.9 for
4:4:4:4 colour, 1.3 for the matte; means 0.47 and 0.45):
- 4:4:4:4 max ≤ 4: limited-range 10-bit Y'CbCr spends 876 codes on luma, so one quantisation
  step is ~1.2 RGB codes, the BT.709 matrix spreads up to ~1.5 codes into a channel, and ProRes
  DCT quantisation adds ~1 code at HQ rates.
- 4:2:2 HQ max ≤ 6: the above plus halved horizontal chroma resolution, re-interpolated on read.
Mean error stays below 1 code in both.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from av.video.reformatter import Interpolation, VideoReformatter
from io_media import FPS, START_TC, make_prores, smooth_alpha, smooth_rgb

from pipeline.color import SRGB_TAGS, VideoTags
from pipeline.errors import EncodeError
from pipeline.frames import Timecode
from pipeline.io import ProResWriter, open_plate


def _decode_rgba(path: Path) -> list[np.ndarray]:
    """Independent read back through PyAV: H×W×4 float64 0..1 per frame."""
    with av.open(str(path)) as c:
        return [
            f.to_ndarray(format="rgba64le").astype(np.float64) / 65535.0 for f in c.decode(video=0)
        ]


def test_422hq_round_trip_within_10bit_tolerance(prores_422):
    path, frames = prores_422
    with open_plate(path) as plate:
        got = list(plate.read())
        info = plate.info
    assert info.codec == "prores" and info.bit_depth == 10
    assert (info.width, info.height) == (128, 64)
    assert [n for n, _ in got] == [1001, 1002, 1003, 1004]
    for (_, arr), want in zip(got, frames, strict=True):
        assert arr.dtype == np.float32 and arr.shape == (64, 128, 3)
        err = np.abs(arr.astype(np.float64) - want) * 1023.0
        assert err.max() <= 6.0, err.max()
        assert err.mean() < 1.0, err.mean()


def test_4444_round_trip_keeps_alpha(tmp_path: Path):
    path = tmp_path / "matte.mov"
    frames = make_prores(path, codec="prores_4444", n=2)
    decoded = _decode_rgba(path)
    assert len(decoded) == 2
    for arr, want in zip(decoded, frames, strict=True):
        err = np.abs(arr - want) * 1023.0
        assert err[..., :3].max() <= 4.0, err[..., :3].max()
        assert err[..., 3].max() <= 2.0, err[..., 3].max()  # alpha is coded directly, no matrix
        assert err.mean() < 1.0
    with open_plate(path) as plate:  # the plate reader drops alpha
        _, rgb = next(plate.read())
    assert rgb.shape == (64, 128, 3)


@pytest.mark.parametrize(
    ("codec", "profile", "pix_fmt"),
    [("prores_422hq", "HQ", "yuv422p10le"), ("prores_4444", "4444", "yuva444p12le")],
)
def test_profile_timecode_metadata_and_colour_tags(tmp_path, codec, profile, pix_fmt):
    path = tmp_path / "r.mov"
    make_prores(path, codec=codec, n=2, metadata={"likeness:shot": "sh010", "comment": "hi"})
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        cc = vs.codec_context
        assert cc.name == "prores"
        assert cc.profile == profile
        assert cc.pix_fmt == pix_fmt  # FFmpeg decodes 4444 at 12 bits
        assert vs.average_rate == FPS
        assert vs.metadata.get("timecode") == START_TC
        tmcd = [s for s in c.streams if s.type == "data"]
        assert tmcd and tmcd[0].metadata.get("timecode") == START_TC
        assert c.metadata.get("likeness:shot") == "sh010"
        assert c.metadata.get("comment") == "hi"
        assert (cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range) == (1, 1, 1, 1)
        frame = next(c.decode(video=0))
        assert (frame.color_primaries, frame.color_trc, frame.colorspace) == (1, 1, 1)


@pytest.mark.parametrize(
    "tags", [SRGB_TAGS, VideoTags(9, 16, 9, "BT.2020 primaries, PQ transfer, BT.2020 matrix")]
)
def test_colour_tags_and_matrix_are_what_was_written(tmp_path: Path, tags: VideoTags):
    """The stream and frames carry the tags, and Y'CbCr is made with the tagged matrix: a
    saturated colour decodes (by the tagged matrix) to what was written."""
    path = tmp_path / "s.mov"
    rgb = np.empty((16, 16, 3), np.float32)
    rgb[...] = (0.8, 0.2, 0.5)
    with ProResWriter(
        path, width=16, height=16, fps=Fraction(24), codec="prores_422hq", tags=tags
    ) as w:
        w.write(rgb)
    with av.open(str(path)) as c:
        cc = c.streams.video[0].codec_context
        assert (cc.color_primaries, cc.color_trc, cc.colorspace) == (
            tags.primaries,
            tags.transfer,
            tags.matrix,
        )
        frame = next(c.decode(video=0))
        assert frame.colorspace == tags.matrix
        back = (
            VideoReformatter()
            .reformat(
                frame,
                format="rgb48le",
                interpolation=Interpolation.BILINEAR | Interpolation.ACCURATE_RND,
            )
            .to_ndarray()[8, 8]
            / 65535.0
        )
    np.testing.assert_allclose(back, (0.8, 0.2, 0.5), atol=1.5 / 255)


def test_timecode_and_fps_read_from_generated_mov(prores_422):
    path, _ = prores_422
    with open_plate(path, first_frame=1001) as plate:
        assert plate.info.fps == Fraction(24000, 1001)
        assert plate.info.timecode == Timecode.parse(START_TC, FPS)
        assert str(plate.info.timecode) == START_TC


def test_drop_frame_timecode_round_trips(tmp_path: Path):
    fps = Fraction(30000, 1001)
    tc = Timecode.parse("00:59:59;29", fps)
    path = tmp_path / "df.mov"
    with ProResWriter(path, width=16, height=16, fps=fps, codec="prores_422hq", timecode=tc) as w:
        w.write(np.zeros((16, 16, 3), np.float32))
    with open_plate(path) as plate:
        assert plate.info.timecode == tc
        assert plate.info.fps == fps


def test_exception_inside_writer_leaves_nothing(tmp_path: Path):
    final = tmp_path / "out.mov"
    with pytest.raises(RuntimeError, match="boom"):
        with ProResWriter(final, width=16, height=16, fps=FPS, codec="prores_422hq") as w:
            w.write(np.zeros((16, 16, 3), np.float32))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_bad_frame_is_encode_error_and_leaves_nothing(tmp_path: Path):
    final = tmp_path / "out.mov"
    with pytest.raises(EncodeError, match="needs float"):
        with ProResWriter(final, width=16, height=16, fps=FPS, codec="prores_4444") as w:
            w.write(np.zeros((16, 16, 3), np.float32))  # 4444 needs the matte channel
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"codec": "prores_lt"},
        {"width": 15},
        {"fps": Fraction(0)},
        {"tags": VideoTags(1, 1, 5, "BT.470 BG matrix")},
    ],
)
def test_bad_parameters_are_encode_errors(tmp_path: Path, kwargs):
    args = {"width": 16, "height": 16, "fps": FPS, "codec": "prores_422hq", **kwargs}
    with pytest.raises(EncodeError):
        ProResWriter(tmp_path / "x.mov", **args)
    assert list(tmp_path.iterdir()) == []


def test_no_frames_is_encode_error(tmp_path: Path):
    with pytest.raises(EncodeError, match="no frames"):
        with ProResWriter(tmp_path / "x.mov", width=16, height=16, fps=FPS, codec="prores_422hq"):
            pass
    assert list(tmp_path.iterdir()) == []


_KILL_SCRIPT = """
import sys, time
import numpy as np
from fractions import Fraction
from pipeline.io import ProResWriter
with ProResWriter(sys.argv[1], width=64, height=64, fps=Fraction(24), codec="prores_422hq") as w:
    for i in range(10_000):
        w.write(np.full((64, 64, 3), (i % 10) / 10, np.float32))
        if i == 3:
            print("writing", flush=True)
    time.sleep(60)
"""


def test_killed_writer_leaves_nothing_at_final_path(tmp_path: Path):
    final = tmp_path / "killed.mov"
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILL_SCRIPT, str(final)],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "writing"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert not final.exists()
    leftovers = list(tmp_path.iterdir())
    assert all(p.name.startswith(".killed.mov.tmp-") for p in leftovers), leftovers


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe not installed")
def test_ffprobe_sees_profile_timecode_and_tags(prores_422):
    path, _ = prores_422
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    probe = json.loads(out.stdout)
    video = next(s for s in probe["streams"] if s["codec_type"] == "video")
    assert video["codec_name"] == "prores"
    assert video["profile"] == "HQ"
    assert video["color_primaries"] == "bt709"
    assert video["color_transfer"] == "bt709"
    assert video["color_space"] == "bt709"
    assert video["color_range"] == "tv"
    assert video["r_frame_rate"] == "24000/1001"
    timecodes = [s.get("tags", {}).get("timecode") for s in probe["streams"]]
    assert START_TC in timecodes
    assert probe["format"]["tags"]["likeness:shot"] == "sh010"


def test_smooth_helpers_are_in_range():
    assert 0.0 <= smooth_rgb().min() and smooth_rgb().max() <= 1.0
    assert smooth_alpha().shape == (64, 128, 1)
