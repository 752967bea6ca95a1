"""pipeline.delivery.review: the review's transform (the plate's encoding by default, or a
display/view, a look file, a CDL), its tags and its named errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.color import SRGB_TAGS, ColorPipeline
from pipeline.delivery.review import CDL, ReviewLook, review_transform
from pipeline.delivery.write import burn_in_lines
from pipeline.errors import ColorError, ConfigError
from pipeline.frames import Timecode
from pipeline.shot.profile import load_profile

SRGB = "sRGB Encoded Rec.709 (sRGB)"


@pytest.fixture(scope="module")
def color() -> ColorPipeline:
    return ColorPipeline()


def _plate(color: ColorPipeline) -> tuple[np.ndarray, np.ndarray]:
    """Display sRGB values and the same pixels in ACEScg, as ingest makes them."""
    enc = np.random.default_rng(0).random((16, 24, 3), dtype=np.float32)
    return enc, color.convert(enc, SRGB, "ACEScg")


def test_default_returns_to_the_plates_encoding(color) -> None:
    enc, lin = _plate(color)
    rt = review_transform(color, "ACEScg", SRGB, ReviewLook())
    np.testing.assert_allclose(rt(lin), enc, atol=1e-4)
    assert rt.target == SRGB and rt.tags == SRGB_TAGS
    assert "no display transform" in rt.description and rt.short == SRGB


def test_a_named_display_and_view_is_used_and_tagged(color) -> None:
    _, lin = _plate(color)
    rt = review_transform(
        color, "ACEScg", SRGB,
        ReviewLook(display="Rec.1886 Rec.709 - Display", view="ACES 2.0 - SDR 100 nits (Rec.709)"),
    )  # fmt: skip
    expect = color.to_display(
        lin, "ACEScg", "Rec.1886 Rec.709 - Display", "ACES 2.0 - SDR 100 nits (Rec.709)"
    )
    np.testing.assert_allclose(rt(lin), expect, atol=1e-6)
    assert rt.target == "Rec.1886 Rec.709 - Display"
    assert (rt.tags.primaries, rt.tags.transfer, rt.tags.matrix) == (1, 1, 1)
    assert "BT.1886" in rt.tags.note and "ACES 2.0" in rt.short
    pq = review_transform(color, "ACEScg", SRGB, ReviewLook(display="Rec.2100-PQ - Display"))
    assert (pq.tags.primaries, pq.tags.transfer, pq.tags.matrix) == (9, 16, 9)
    assert "ACES 2.0 - HDR 1000 nits (P3 D65)" in pq.description  # the display's default view


def test_a_scene_linear_plate_falls_back_to_the_default_display(color) -> None:
    rt = review_transform(color, "ACEScg", "ACEScg", ReviewLook())
    display, view = color.default_display_view()
    assert rt.target == display and view in rt.description and "scene-linear" in rt.description


def test_a_look_file_and_a_cdl_apply_to_the_encoded_pixels(color, tmp_path: Path) -> None:
    enc, lin = _plate(color)
    cube = tmp_path / "show.cube"
    xs = np.linspace(0, 1, 1024)
    cube.write_text("LUT_1D_SIZE 1024\n" + "".join(f"{v:.7f} {v:.7f} {v:.7f}\n" for v in xs**2))
    rt = review_transform(color, "ACEScg", SRGB, ReviewLook(look=str(cube)))
    np.testing.assert_allclose(rt(lin), enc**2, atol=1e-4)
    assert "show.cube" in rt.short and "the look show.cube" in rt.description
    cdl = CDL(slope=(1.2, 1.0, 0.8), offset=(0.0, 0.05, 0.0), power=(1.0, 1.0, 1.0))
    rt = review_transform(color, "ACEScg", SRGB, ReviewLook(cdl=cdl))
    expect = np.clip(enc * np.array(cdl.slope) + np.array(cdl.offset), 0, 1)
    np.testing.assert_allclose(rt(lin), expect, atol=1e-4)
    assert rt.tags == SRGB_TAGS and "CDL slope (1.2, 1, 0.8)" in rt.description


@pytest.mark.parametrize(
    ("look", "match"),
    [
        (ReviewLook(display="No Such Display"), "unknown display 'No Such Display'"),
        (ReviewLook(display="sRGB - Display", view="Nope"), "unknown view 'Nope'"),
        (ReviewLook(view="Un-tone-mapped"), "needs a display"),
        (ReviewLook(look="/nonexistent/show.cube"), "does not exist"),
        (ReviewLook(cdl=CDL(power=(1.0, 0.0, 1.0))), "power"),
    ],
)
def test_bad_review_settings_are_named_errors(color, look, match) -> None:
    with pytest.raises(ColorError, match=match):
        review_transform(color, "ACEScg", SRGB, look)


def test_an_unreadable_look_file_is_a_named_error(color, tmp_path: Path) -> None:
    bad = tmp_path / "bad.cube"
    bad.write_text("this is not a LUT\n")
    with pytest.raises(ColorError, match="OpenColorIO cannot build"):
        review_transform(color, "ACEScg", SRGB, ReviewLook(look=str(bad)))


def test_spec_settings_win_over_the_profiles() -> None:
    profile = ReviewLook(display="sRGB - Display", view="Un-tone-mapped", look="/show.cube")
    assert ReviewLook().over(profile) == profile
    shot = ReviewLook(display="Rec.1886 Rec.709 - Display").over(profile)
    assert shot.display == "Rec.1886 Rec.709 - Display" and shot.view is None  # its own default
    assert shot.look == "/show.cube"
    assert ReviewLook(view="Video (colorimetric)").over(profile).view == "Video (colorimetric)"


def test_profile_review_section_and_renamed_keys(tmp_path: Path) -> None:
    (tmp_path / "luts").mkdir()
    (tmp_path / "luts" / "show.cube").write_text("LUT_1D_SIZE 2\n0 0 0\n1 1 1\n")
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump({"deliver": {"review": {"look": "luts/show.cube"}}}))
    assert load_profile(str(p)).deliver.review.look == str(tmp_path / "luts" / "show.cube")
    p.write_text(yaml.safe_dump({"deliver": {"review_display": "sRGB - Display"}}))
    with pytest.raises(ConfigError, match="renamed to 'review.display'"):
        load_profile(str(p))
    p.write_text(yaml.safe_dump({"deliver": {"review": {"cdl": {"saturation": -1}}}}))
    with pytest.raises(ConfigError, match="saturation"):
        load_profile(str(p))


def test_the_burn_in_names_a_display_transform_or_look(color) -> None:
    rt = review_transform(color, "ACEScg", SRGB, ReviewLook(cdl=CDL(saturation=0.5)))
    tc = Timecode.parse("01:00:00:00", 24)
    assert burn_in_lines("sh010", "v002", 1001, tc, rt) == [
        "sh010 v002", "frame 1001", "TC 01:00:00:00", f"{SRGB} + CDL"
    ]  # fmt: skip
    plain = review_transform(color, "ACEScg", SRGB, ReviewLook())
    assert plain.plain and not rt.plain
    assert burn_in_lines("sh010", "v001", 1001, None, plain) == [
        "sh010 v001",
        "frame 1001",
        "TC --",
    ]
