"""pipeline.tracking.smooth: RTS smoother; jitter and lag figures on generated plates with known motion."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from pipeline.align import CANONICAL_68, apply_affine
from pipeline.config import from_mapping
from pipeline.demo.synthetic import Motion, astronaut, moving_portrait
from pipeline.errors import ConfigError
from pipeline.landmarks import get_backend
from pipeline.qc.tracking import jitter
from pipeline.stages.track import TrackConfig
from pipeline.tracking.merge import merge_chunks
from pipeline.tracking.smooth import SmoothConfig, pose_and_shape, rts_smooth, smooth_track
from pipeline.tracking.tracker import track_chunk

N = 30


def face_crop() -> np.ndarray:
    """The astronaut's head, 200×200 uint8 sRGB: a 110-px face once resized to a 256² plate."""
    return np.ascontiguousarray(astronaut()[26:226, 122:322])


def expected(points0: np.ndarray, mats: np.ndarray) -> np.ndarray:
    """Frame-0 landmarks carried through the known motion matrices (N×2×3): N×68×2."""
    base = apply_affine(cv2.invertAffineTransform(mats[0]), points0)
    return np.stack([apply_affine(m, base) for m in mats])


def lag_frames(signal: np.ndarray, reference: np.ndarray, trim: int = 4) -> float:
    """Delay (frames, 0.05 steps, ±3) that best aligns ``signal`` with ``reference``.

    Both are N×D; a positive value means the signal trails the reference.
    """
    t = np.arange(len(reference), dtype=np.float64)
    best, best_err = 0.0, np.inf
    for d in np.arange(-3.0, 3.0001, 0.05):
        shifted = np.stack(
            [np.interp(t - d, t, reference[:, k]) for k in range(reference.shape[1])], 1
        )
        err = np.mean((signal - shifted)[trim:-trim] ** 2)
        if err < best_err:
            best, best_err = float(d), err
    return best


def test_static_head_jitter_drops_3x():
    frames, _ = moving_portrait(N, (256, 256), Motion(0, 0, 0, 0), face_crop(), noise_sigma=4.0)
    cfg = TrackConfig()
    lm = merge_chunks([track_chunk(enumerate(frames), cfg, None)], cfg, (256, 256))
    raw, smooth = np.nanmean(jitter(lm.raw_points)), np.nanmean(jitter(lm.points))
    assert raw > 0.2  # the detector does jitter on this plate
    assert raw / smooth >= 3.0, (raw, smooth)


def test_fast_motion_lag_under_one_frame():
    # Two cycles in 30 frames: up to 10 px and 2.6° per frame at 256 px.
    motion = Motion(tx=25, ty=12, rot_deg=10, scale=0.08, cycles=2)
    frames, mats = moving_portrait(N, (256, 256), motion, face_crop(), noise_sigma=2.0)
    cfg = TrackConfig()
    lm = merge_chunks([track_chunk(enumerate(frames), cfg, None)], cfg, (256, 256))
    truth = expected(get_backend("dlib").detect(frames[0])[0].points, mats)
    assert abs(lag_frames(lm.points.mean(1), truth.mean(1))) < 1.0
    # The crop transform follows too: the template centre mapped into the plate.
    centre = np.einsum("nij,j->ni", lm.inverse, [128.0, 128.0, 1.0])
    back = cv2.invertAffineTransform(mats[0])
    truth_centre = np.stack([apply_affine(m, apply_affine(back, centre[:1]))[0] for m in mats])
    assert abs(lag_frames(centre, truth_centre)) < 1.0
    # Smoothing does not cost accuracy on this motion.
    err_raw = np.linalg.norm(lm.raw_points - truth, axis=2).mean()
    err = np.linalg.norm(lm.points - truth, axis=2).mean()
    assert err < max(1.2 * err_raw, 1.0), (err, err_raw)


def test_rts_golden_and_gaps():
    t = np.arange(20, dtype=np.float64)
    line = np.stack([3.0 + 0.5 * t, -2.0 * t], 1)
    out = rts_smooth(line, 0.5, 0.01)
    np.testing.assert_allclose(out, line, atol=1e-3)  # a constant-velocity path is kept
    holed = line.copy()
    holed[7:10] = np.nan
    np.testing.assert_allclose(rts_smooth(holed, 0.5, 0.01)[7:10], line[7:10], atol=1e-3)
    assert np.isnan(rts_smooth(np.full((5, 2), np.nan), 1.0, 1.0)).all()
    with pytest.raises(ValueError, match="N×K"):
        rts_smooth(np.zeros(5), 1.0, 1.0)


def test_rts_noise_reduction_golden():
    rng = np.random.default_rng(0)
    z = rng.normal(0.0, 1.0, (400, 1))
    out = rts_smooth(z, 1.0, 0.01)
    assert out.std() < 0.2 * z.std()


def test_pose_shape_round_trip():
    rng = np.random.default_rng(3)
    pts = CANONICAL_68[None] * 180 + [40, 30] + rng.normal(0, 1.0, (5, 68, 2))
    pose, shape = pose_and_shape(pts)
    assert pose.shape == (5, 4) and shape.shape == (5, 68, 2)
    smoothed, mats = smooth_track(pts, SmoothConfig(method="none"))
    np.testing.assert_allclose(smoothed, pts, atol=1e-9)
    assert mats.shape == (5, 2, 3)


def test_smooth_config_validation():
    with pytest.raises(ConfigError, match="pose_noise"):
        from_mapping(SmoothConfig, {"pose_noise": 0})
    with pytest.raises(ConfigError, match="method"):
        from_mapping(SmoothConfig, {"method": "kalman"})
    assert dataclasses.asdict(SmoothConfig())["method"] == "rts"
