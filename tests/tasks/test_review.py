"""The review movie through the real chain: outside the face it is the plate (its own encoding, no
display transform), and with a show look it is the plate through that look."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import yaml
from av.video.reformatter import Interpolation, VideoReformatter

from pipeline.color import SRGB_TAGS
from pipeline.demo.synthetic import Motion, astronaut_head, moving_portrait
from pipeline.frames import Timecode
from pipeline.io import ProResWriter, read_exr
from pipeline.shot.status import workdir_status
from tasks.cli import main
from tests.tasks.conftest import TEST_PROFILE, make_shot

SIZE, FRAMES = 160, 8
#: Known display-referred sRGB colours, painted as patches along the plate's top and bottom.
PATCHES = np.array(
    [
        (230, 40, 35), (40, 200, 60), (35, 60, 220), (240, 220, 40),
        (200, 60, 200), (40, 200, 210), (128, 128, 128), (20, 20, 20),
    ],
    np.uint8,
)  # fmt: skip
BAND = 16  # patch rows at the top and bottom
CDL = {"slope": [1.1, 0.95, 0.9], "offset": [0.02, 0.0, -0.01], "power": [0.9, 1.0, 1.1],
       "saturation": 0.8}  # fmt: skip


def _plate_frames() -> np.ndarray:
    """N×H×W×3 uint8 display sRGB: a moving portrait with colour patches top and bottom."""
    clip, _ = moving_portrait(
        FRAMES, (SIZE, SIZE), Motion(tx=2, ty=1, rot_deg=2), portrait=astronaut_head()
    )
    w = SIZE // len(PATCHES)
    for i, c in enumerate(PATCHES):
        clip[:, :BAND, i * w : (i + 1) * w] = c
        clip[:, -BAND:, i * w : (i + 1) * w] = c[::-1]
    return clip


def _shot(folder: Path, review: dict | None = None) -> Path:
    plate = folder / "plates" / "sh010.mov"
    if not plate.exists():
        plate.parent.mkdir(parents=True)
        fps = Fraction(25)
        with ProResWriter(
            plate, width=SIZE, height=SIZE, fps=fps, codec="prores_422hq",
            timecode=Timecode.parse("10:00:00:00", fps), tags=SRGB_TAGS,
        ) as w:  # fmt: skip
            for f in _plate_frames():
                w.write(f.astype(np.float32) / 255.0)
    profile = {**TEST_PROFILE, "deliver": {"burn_in": False}}
    spec = make_shot(folder, frames=FRAMES, size=SIZE, profile=profile)
    if review is not None:
        data = yaml.safe_load(spec.read_text())
        data["output"]["review"].update(review)
        spec.write_text(yaml.safe_dump(data))
    return spec


def _decode(path: str | Path) -> tuple[np.ndarray, dict]:
    """Every frame as N×H×W×3 float 0..255 (by the stream's own tagged matrix, exact rounding),
    and the stream's colour tags."""
    fmt = VideoReformatter()
    out = []
    with av.open(str(path)) as c:
        cc = c.streams.video[0].codec_context
        tags = {"primaries": cc.color_primaries, "transfer": cc.color_trc, "matrix": cc.colorspace}
        meta = dict(c.metadata)
        for frame in c.decode(video=0):
            rgb = fmt.reformat(
                frame,
                format="rgb48le",
                interpolation=Interpolation.BILINEAR | Interpolation.ACCURATE_RND,
            )
            out.append(rgb.to_ndarray().astype(np.float64) / 257.0)
    return np.stack(out), {**tags, "meta": meta}


def _outside_face(version: dict, numbers: list[int]) -> np.ndarray:
    """N×H×W bool: pixels the face matte does not touch (grown by 3 px for 4:2:2 chroma)."""
    masks = []
    for n in numbers:
        chans, _ = read_exr(Path(version["outputs"]["exr"].replace("####", f"{n:04d}")))
        touched = cv2.dilate((chans["face.A"] > 0).astype(np.uint8), np.ones((7, 7), np.uint8))
        masks.append(touched == 0)
    return np.stack(masks)


def _cdl(x: np.ndarray) -> np.ndarray:
    """ASC CDL v1.2 on 0..1 values (clamped before the power), then saturation on Rec.709 luma."""
    v = np.clip(x * np.array(CDL["slope"]) + np.array(CDL["offset"]), 0.0, 1.0)
    v = v ** np.array(CDL["power"])
    luma = (v * np.array([0.2126, 0.7152, 0.0722])).sum(-1, keepdims=True)
    return np.clip(luma + CDL["saturation"] * (v - luma), 0.0, 1.0)


def test_review_is_the_plate_outside_the_face_and_the_plate_through_a_look(tmp_path):
    wd = tmp_path / "wd"
    spec = _shot(tmp_path / "shot")
    assert main(["submit", str(spec), "--workdir", str(wd)]) == 0
    v1 = workdir_status(wd)["shots"]["sh010"]["versions"]["v001"]
    review, tags = _decode(v1["outputs"]["review"])
    plate, _ = _decode(tmp_path / "shot" / "plates" / "sh010.mov")
    numbers = list(range(1001, 1001 + FRAMES))
    outside = _outside_face(v1, numbers)
    assert outside.mean() > 0.4  # most of the frame is plate, and the face is somewhere
    assert (~outside).any(axis=(1, 2)).all()  # every frame has a synthesized face
    diff = np.abs(review - plate).mean(-1)[outside]
    assert diff.mean() <= 2.0, diff.mean()  # within codec noise (8-bit code values)
    bias = (review - plate)[outside].mean(0)  # a tone or colour shift shows here first
    assert np.abs(bias).max() <= 0.5, bias  # (4:2:2 at the patches' edges is the codec's noise)
    # the known colours come back as they were painted (not darkened by a view transform)
    w = SIZE // len(PATCHES)
    for i, c in enumerate(PATCHES):
        got = review[:, 3 : BAND - 3, i * w + 3 : (i + 1) * w - 3].reshape(-1, 3).mean(0)
        np.testing.assert_allclose(got, c, atol=2.0, err_msg=f"patch {i}")
    # tagged as what was written: sRGB-encoded Rec.709, BT.709 matrix, and named
    assert (tags["primaries"], tags["transfer"], tags["matrix"]) == (1, 13, 1)
    assert "sRGB Encoded Rec.709 (sRGB)" in tags["meta"]["likeness_review_transform"]
    assert "no display transform" in tags["meta"]["likeness_review_transform"]
    qc = Path(v1["outputs"]["qc"]).read_text()
    assert "no display transform" in qc

    # a show look (an inline CDL in the shot spec): only the delivery is redone, and the review
    # is the plate through the look
    spec = _shot(tmp_path / "shot", review={"cdl": CDL})
    assert main(["submit", str(spec), "--workdir", str(wd)]) == 0
    v2 = workdir_status(wd)["shots"]["sh010"]["versions"]["v002"]
    graded, tags2 = _decode(v2["outputs"]["review"])
    expect = _cdl(plate / 255.0) * 255.0
    diff2 = np.abs(graded - expect).mean(-1)[outside]
    assert diff2.mean() <= 2.0, diff2.mean()
    assert np.abs(graded - plate).mean(-1)[outside].mean() > 5.0  # the look did something
    assert "CDL slope (1.1, 0.95, 0.9)" in tags2["meta"]["likeness_review_transform"]
