"""Compositing frames and shots: perfect model, untouched frames, warps, config."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.composite import (
    CompositeConfig,
    CompositedFrame,
    composite_frame,
    composite_sequence,
    plate_to_crop,
    warp_to_plate,
)
from pipeline.config import from_mapping
from pipeline.errors import CompositeError, ConfigError


def _own_crops(shot):
    """The perfect face model: each frame's own aligned crop."""
    return [
        plate_to_crop(f, inv, shot.crop_size)
        for f, inv in zip(shot.frames, shot.inverses, strict=True)
    ]


# --- config ---------------------------------------------------------------------------------


def test_config_defaults_valid_and_ranges_reported():
    assert CompositeConfig().validate() == []
    bad = CompositeConfig(erode_px=-65.0, pyramid_levels=12, temporal_matte=1.0, gain_min=0.0)
    assert {k for k, _ in bad.validate()} == {
        "erode_px",
        "pyramid_levels",
        "temporal_matte",
        "gain_min",
    }
    with pytest.raises(CompositeError, match="erode_px"):
        bad.checked()


def test_config_from_profile_mapping():
    cfg = from_mapping(
        CompositeConfig, {"feather_px": 4, "color_mode": "lab_stats"}, source="p.yaml"
    )
    assert cfg.feather_px == 4.0 and cfg.color_mode == "lab_stats"
    with pytest.raises(ConfigError, match="p.yaml: composite.feather: unknown key"):
        from_mapping(CompositeConfig, {"feather": 4}, source="p.yaml", prefix="composite")
    with pytest.raises(ConfigError, match="color_mode"):
        from_mapping(CompositeConfig, {"color_mode": "histogram"}, source="p.yaml")
    with pytest.raises(ConfigError, match="temporal_color"):
        from_mapping(CompositeConfig, {"temporal_color": 1.5}, source="p.yaml")


# --- warps ----------------------------------------------------------------------------------


def test_warp_to_plate_golden_translation():
    crop = np.arange(8 * 8 * 3, dtype=np.float32).reshape(8, 8, 3)
    inv = np.array([[1.0, 0.0, 10.0], [0.0, 1.0, 5.0]])
    out = warp_to_plate(crop, inv, (20, 16))
    assert out.shape == (16, 20, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out[5:13, 10:18], crop)
    assert out[:5].sum() == 0 and out[:, :10].sum() == 0  # zeros outside the crop


@pytest.mark.parametrize("shape", [(8, 8), (8, 8, 1), (8, 8, 4), (8, 8, 7)])
def test_warp_to_plate_shapes(shape):
    crop = np.ones(shape, np.float32)
    out = warp_to_plate(crop, np.array([[2.0, 0, 1], [0, 2.0, 1]]), (24, 20))
    assert out.shape == (20, 24) + shape[2:]


def test_warp_downscale_is_prefiltered():
    # A fine checkerboard shrunk 4×: bilinear alone aliases; the area prefilter averages to 0.5.
    crop = (np.indices((64, 64)).sum(0) % 2).astype(np.float32)
    out = warp_to_plate(crop, np.array([[0.25, 0, 0], [0, 0.25, 0]]), (16, 16))
    np.testing.assert_allclose(out[2:14, 2:14], 0.5, atol=0.02)


@pytest.mark.parametrize(
    "crop, inv, size",
    [
        (np.ones((8, 8, 3), np.float64), np.eye(2, 3), (8, 8)),
        (np.ones((8, 8, 3), np.float32), np.full((2, 3), np.nan), (8, 8)),
        (np.ones((8, 8, 3), np.float32), np.zeros((2, 3)), (8, 8)),
        (np.ones((8, 8, 3), np.float32), np.eye(3), (8, 8)),
        (np.ones((8, 8, 3), np.float32), np.eye(2, 3), (0, 8)),
        (np.ones((8,), np.float32), np.eye(2, 3), (8, 8)),
    ],
)
def test_warp_bad_inputs(crop, inv, size):
    with pytest.raises(CompositeError):
        warp_to_plate(crop, inv, size)


# --- one frame ------------------------------------------------------------------------------


def test_composite_frame_smoke_and_layers(shot):
    crop = _own_crops(shot)[0] * np.float32(1.2)
    res = composite_frame(
        shot.frames[0], crop, shot.points_crop[0], shot.inverses[0], CompositeConfig()
    )
    assert isinstance(res, CompositedFrame)
    comp, face, matte = res
    assert comp.shape == (256, 256, 3) and face.shape == (256, 256, 4) and matte.shape == (256, 256)
    assert comp.dtype == face.dtype == matte.dtype == np.float32
    np.testing.assert_array_equal(face[:, :, 3], matte)
    assert (face[matte == 0] == 0).all()
    assert 0.0 <= matte.min() and matte.max() == 1.0


def test_composite_frame_bad_inputs(shot):
    cfg = CompositeConfig()
    f, p, inv = shot.frames[0], shot.points_crop[0], shot.inverses[0]
    crop = _own_crops(shot)[0]
    with pytest.raises(CompositeError):
        composite_frame(f.astype(np.float64), crop, p, inv, cfg)
    with pytest.raises(CompositeError):
        composite_frame(f, crop[:, :-1], p, inv, cfg)
    with pytest.raises(CompositeError):
        composite_frame(f, np.full_like(crop, np.nan), p, inv, cfg)
    with pytest.raises(CompositeError):
        composite_frame(f, crop, p, np.full((2, 3), np.nan), cfg)


# --- a shot ---------------------------------------------------------------------------------


def test_perfect_model_gives_back_the_plate(shot):
    """Synthesis = the plate's own aligned crop, warped back with the true transforms.

    Tolerance: the composite may differ from the plate only by the interpolation error of the
    warp round trip (plate → crop → plate, bilinear both ways), which the compositing must not
    add to. Measured on the astronaut (256² plate, 128² crops, face ~45 px wide, so the crop is
    an upscale): round trip mean 0.009-0.012 and max 0.097-0.16 in linear light over the matte;
    composite mean 0.007-0.010, max within 1e-4 of the round trip's.
    """
    crops = _own_crops(shot)
    seq = composite_sequence(
        shot.frames, crops, shot.points_crop, shot.inverses, shot.tracked, CompositeConfig()
    )
    assert seq.untouched == [] and seq.levels >= 1
    for i, (comp, _face, matte) in enumerate(seq):
        plate = shot.frames[i]
        sup = matte > 0
        assert sup.mean() > 0.02
        assert np.array_equal(comp[~sup], plate[~sup])  # untouched outside the matte, bit for bit
        rt = warp_to_plate(crops[i], shot.inverses[i], (256, 256))
        err, rt_err = np.abs(comp - plate)[sup], np.abs(rt - plate)[sup]
        assert rt_err.mean() < 0.015 and rt_err.max() < 0.2  # the round trip itself
        assert err.mean() <= rt_err.mean()
        assert err.max() <= rt_err.max() + 1e-4


def test_untracked_frames_pass_through_bit_exactly(shot):
    tracked = np.array([True, False, True, False])
    crops = _own_crops(shot)
    crops = [c * np.float32(1.3) if t else None for c, t in zip(crops, tracked, strict=True)]
    pts = shot.points_crop.copy()
    inv = shot.inverses.copy()
    pts[~tracked] = np.nan
    inv[~tracked] = np.nan
    seq = composite_sequence(shot.frames, crops, pts, inv, tracked, CompositeConfig())
    assert seq.untouched == [1, 3]
    out = list(seq)
    assert len(out) == 4
    for i in (1, 3):
        comp, face, matte = out[i]
        assert np.array_equal(comp, shot.frames[i]) and comp is not shot.frames[i]
        assert not face.any() and not matte.any() and face.shape == (256, 256, 4)
    for i in (0, 2):
        assert out[i].matte.any()


def test_colour_match_in_the_shot(shot):
    # The model renders the face 30% too warm and 10% dark: the comp still lands on the plate.
    crops = [c * np.float32([1.3, 0.9, 0.7]) for c in _own_crops(shot)]
    args = (shot.frames, crops, shot.points_crop, shot.inverses, shot.tracked)
    matched = list(composite_sequence(*args, CompositeConfig()))
    raw = list(composite_sequence(*args, CompositeConfig(color_mode="none")))
    for i in range(4):
        core = matched[i].matte >= 1
        e_matched = np.abs(matched[i].composite - shot.frames[i])[core].mean()
        e_raw = np.abs(raw[i].composite - shot.frames[i])[core].mean()
        assert e_matched < 0.015 and e_raw > 5 * e_matched


def test_sequence_reports_flicker_reduction(make_shot):
    sh = make_shot(10, (128, 128), 128)
    rng = np.random.default_rng(3)
    pts = sh.points_crop + rng.normal(0.0, 1.0, sh.points_crop.shape)
    crops = _own_crops(sh)
    seq = composite_sequence(sh.frames, crops, pts, sh.inverses, sh.tracked, CompositeConfig())
    assert seq.flicker_raw > 0 and seq.flicker_raw >= 4 * seq.flicker_smoothed
    assert seq.mattes_crop.shape == (10, 128, 128)


def test_sequence_bad_inputs(shot):
    crops = _own_crops(shot)
    cfg = CompositeConfig()
    pts_nan = shot.points_crop.copy()
    pts_nan[2] = np.nan
    with pytest.raises(CompositeError, match="tracked frame"):
        composite_sequence(shot.frames, crops, pts_nan, shot.inverses, shot.tracked, cfg)
    with pytest.raises(CompositeError):
        composite_sequence(
            shot.frames, crops[:3], shot.points_crop, shot.inverses, shot.tracked, cfg
        )
    with pytest.raises(CompositeError):
        composite_sequence(
            shot.frames, crops, shot.points_crop[:3], shot.inverses, shot.tracked, cfg
        )
    with pytest.raises(CompositeError):
        composite_sequence(
            shot.frames,
            crops,
            shot.points_crop,
            shot.inverses,
            shot.tracked,
            CompositeConfig(feather_px=-1),
        )
    with pytest.raises(CompositeError):
        composite_sequence(
            shot.frames, [None, *crops[1:]], shot.points_crop, shot.inverses, shot.tracked, cfg
        )


def test_all_untracked_shot(shot):
    tracked = np.zeros(4, bool)
    nan = np.full_like(shot.points_crop, np.nan)
    seq = composite_sequence(
        shot.frames,
        [None] * 4,
        nan,
        np.full_like(shot.inverses, np.nan),
        tracked,
        CompositeConfig(),
    )
    assert seq.untouched == [0, 1, 2, 3] and seq.levels == 0
    assert all(np.array_equal(c, f) for (c, _, _), f in zip(seq, shot.frames, strict=True))


def test_face_partly_outside_the_plate(shot):
    # The same face, shifted so half of the crop falls off the left edge of the plate.
    inv = shot.inverses[0].copy()
    inv[0, 2] -= 110.0
    crop = _own_crops(shot)[0]
    comp, face, matte = composite_frame(
        shot.frames[0], crop, shot.points_crop[0], inv, CompositeConfig()
    )
    assert matte[:, 0].any() and np.isfinite(comp).all()
    assert np.array_equal(comp[matte == 0], shot.frames[0][matte == 0])
    # and entirely outside: the plate comes back, the face layer is empty
    inv[0, 2] -= 1000.0
    comp, face, matte = composite_frame(
        shot.frames[0], crop, shot.points_crop[0], inv, CompositeConfig()
    )
    assert np.array_equal(comp, shot.frames[0]) and not face.any()
