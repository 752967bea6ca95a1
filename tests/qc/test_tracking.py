"""pipeline.qc.tracking: jitter, overlay frames, confidence/jitter plot."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.align import CANONICAL_68
from pipeline.landmarks.sidecar import Landmarks
from pipeline.qc.tracking import jitter, overlay_frame, plot_tracking


def _landmarks(n: int = 12) -> Landmarks:
    pts = np.repeat((CANONICAL_68 * 100 + 20)[None], n, 0).astype(np.float32)
    pts[:, :, 0] += np.arange(n)[:, None]
    tracked = np.ones(n, bool)
    tracked[8:10] = False
    pts[8:10] = np.nan
    interp = np.zeros(n, bool)
    interp[4] = True
    eye = np.tile(np.array([[1.0, 0, 0], [0, 1, 0]]), (n, 1, 1))
    return Landmarks(
        frames=np.arange(1001, 1001 + n),
        points=pts,
        raw_points=pts,
        confidence=np.where(tracked, 0.9, 0.0).astype(np.float32),
        box=np.zeros((n, 4), np.float32),
        transform=eye,
        inverse=eye,
        tracked=tracked,
        interpolated=interp,
        gaps=[(1009, 1010)],
        crop_size=256,
        image_size=(160, 160),
    )


def test_jitter_golden():
    pts = np.zeros((4, 68, 2))
    pts[1] += [3.0, 4.0]  # 5 px move of every point
    pts[3] = np.nan
    j = jitter(pts)
    assert np.isnan(j[0]) and j[1] == pytest.approx(5.0) and j[2] == pytest.approx(5.0)
    assert np.isnan(j[3])
    with pytest.raises(ValueError, match="N×68×2"):
        jitter(np.zeros((3, 5, 2)))


def test_overlay_draws_and_flags():
    img = np.full((160, 160, 3), 50, np.uint8)
    lm = _landmarks()
    out = overlay_frame(img, lm.points[0], 0.9, True)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert (out != img).any() and (img == 50).all()  # drawn on a copy
    # Landmarks are drawn in green for a confident frame.
    x, y = np.round(lm.points[0, 30]).astype(int)
    assert out[y, x, 1] > 200
    lost = overlay_frame(img, lm.points[8], 0.0, False)
    assert lost[:30, 5:80, 0].max() > 200  # red NO FACE banner
    interp = overlay_frame(img, lm.points[4], 0.5, True, interpolated=True)
    assert (interp != out).any()
    with pytest.raises(ValueError, match="uint8"):
        overlay_frame(img.astype(np.float32), lm.points[0], 1.0, True)
    with pytest.raises(ValueError, match="68×2"):
        overlay_frame(img, np.zeros((5, 2)), 1.0, True)


def test_plot_writes_png(tmp_path):
    path = plot_tracking(_landmarks(), tmp_path / "qc" / "tracking.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]
