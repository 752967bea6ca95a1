"""ColorPipeline: OCIO conversions, display transforms, chromaticities, named errors."""

from __future__ import annotations

import numpy as np
import OpenEXR
import pytest

from pipeline.color import (
    ColorPipeline,
    linear_to_srgb,
    srgb_to_linear,
    srgb_uint8_to_float,
    srgb_uint8_to_linear,
)
from pipeline.errors import ColorError

SRGB = "sRGB Encoded Rec.709 (sRGB)"


@pytest.fixture(scope="module")
def cp() -> ColorPipeline:
    return ColorPipeline()


def _img(h: int = 32, w: int = 48, c: int = 3) -> np.ndarray:
    return np.random.default_rng(3).random((h, w, c), dtype=np.float32)


def test_default_config_and_cache_id(cp: ColorPipeline, monkeypatch):
    assert cp.source == "ocio://studio-config-latest"
    assert isinstance(cp.cache_id, str) and cp.cache_id
    monkeypatch.setenv("OCIO", "ocio://default")
    other = ColorPipeline()
    assert other.source == "ocio://default"
    assert other.cache_id != cp.cache_id


def test_unloadable_config_is_color_error(monkeypatch):
    with pytest.raises(ColorError, match="cannot load OpenColorIO config"):
        ColorPipeline("/nonexistent/config.ocio")
    monkeypatch.setenv("OCIO", "/nonexistent/env.ocio")
    with pytest.raises(ColorError, match="env.ocio"):
        ColorPipeline()


def test_srgb_acescg_round_trip_under_1e3(cp: ColorPipeline):
    img = _img()
    lin = cp.convert(img, SRGB, "ACEScg")
    back = cp.convert(lin, "ACEScg", SRGB)
    assert lin.dtype == np.float32 and lin.shape == img.shape
    assert np.abs(back - img).max() < 1e-3
    assert not np.shares_memory(lin, img)


def test_convert_golden_values(cp: ColorPipeline):
    # sRGB mid-grey 0.5 → linear 0.21404; white stays white in ACEScg (D65 → ACES white CAT).
    px = np.array([[[0.5, 0.5, 0.5], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0]]], np.float32)
    out = cp.convert(px, SRGB, "ACEScg")
    np.testing.assert_allclose(out[0, 0], 0.214041, atol=1e-4)
    np.testing.assert_allclose(out[0, 1], 1.0, atol=1e-4)
    # Rec.709 red in AP1 (ACES 1.x matrix, Bradford CAT), first row.
    np.testing.assert_allclose(out[0, 2], [0.6131, 0.0702, 0.0206], atol=2e-3)


def test_alpha_passes_through_and_aliases_work(cp: ColorPipeline):
    img = _img(c=4)
    out = cp.convert(img, "srgb_tx", "lin_ap1")
    np.testing.assert_array_equal(out[..., 3], img[..., 3])
    np.testing.assert_allclose(out[..., :3], cp.convert(img[..., :3], SRGB, "ACEScg"), atol=1e-6)


def test_pure_srgb_curve_agrees_with_ocio(cp: ColorPipeline):
    img = _img()
    np.testing.assert_allclose(
        srgb_to_linear(img), cp.convert(img, SRGB, "Linear Rec.709 (sRGB)"), atol=1e-4
    )
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(img)), img, atol=1e-5)
    codes = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=-1)
    np.testing.assert_allclose(
        srgb_uint8_to_linear(codes), srgb_to_linear(codes / 255.0), atol=1e-7
    )
    assert srgb_uint8_to_float(codes)[15, 15, 0] == 1.0


def test_to_display_is_clipped_float32(cp: ColorPipeline):
    hdr = _img() * 20.0 - 2.0
    out = cp.to_display(hdr, "ACEScg", "sRGB - Display", "ACES 2.0 - SDR 100 nits (Rec.709)")
    assert out.dtype == np.float32 and out.shape == hdr.shape
    assert out.min() >= 0.0 and out.max() <= 1.0
    with pytest.raises(ColorError, match="unknown display"):
        cp.to_display(hdr, "ACEScg", "Nope - Display", "x")
    with pytest.raises(ColorError, match="unknown view"):
        cp.to_display(hdr, "ACEScg", "sRGB - Display", "Nope")


def test_unknown_space_names_close_matches(cp: ColorPipeline):
    with pytest.raises(ColorError) as err:
        cp.check_space("ACEScgg")
    assert "'ACEScg'" in str(err.value)
    with pytest.raises(ColorError, match="unknown colour space"):
        cp.convert(_img(), "sRGB Encoded Rec709", "ACEScg")


@pytest.mark.parametrize(
    "bad",
    [np.zeros((4, 4), np.float32), np.zeros((4, 4, 2), np.float32), np.zeros((4, 4, 3), np.uint8)],
)
def test_bad_image_is_color_error(cp: ColorPipeline, bad):
    with pytest.raises(ColorError):
        cp.convert(bad, SRGB, "ACEScg")


@pytest.mark.parametrize(
    ("space", "interop"),
    [
        ("ACEScg", "lin_ap1_scene"),
        ("ACES2065-1", "lin_ap0_scene"),
        ("Linear Rec.709 (sRGB)", "lin_rec709_scene"),
        (SRGB, "lin_rec709_scene"),
        ("Linear Rec.2020", "lin_rec2020_scene"),
        ("Linear P3-D65", "lin_p3d65_scene"),
    ],
)
def test_chromaticities_match_openexr_table(cp: ColorPipeline, space, interop):
    got = cp.chromaticities(space)
    assert len(got) == 8
    want = OpenEXR.colorInteropIDToChromaticities(interop)
    np.testing.assert_allclose(np.asarray(want, np.float64).ravel()[:8], got, atol=1e-4)


def test_chromaticities_unknown_gamut_is_color_error(cp: ColorPipeline):
    with pytest.raises(ColorError, match="no known chromaticities"):
        cp.chromaticities("Raw")
