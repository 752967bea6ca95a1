"""pipeline.eval.clips: frame picking, and clips tracked once and cached."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import EvalError, LikenessError
from pipeline.eval import clips
from pipeline.eval.clips import load_clip, pick_frames


def test_pick_frames() -> None:
    frames = np.arange(1001, 1101)
    refs, runs = pick_frames(frames, 8, 40, 8, 5)
    assert len(refs) == 8 and refs[0] == 0 and refs[-1] == 99
    assert sum(len(r) for r in runs) <= 40 and len(runs) >= 4
    for run in runs:
        assert np.all(np.diff(frames[run]) == 1)
        assert np.abs(frames[run][:, None] - frames[refs][None]).min() > 5
    with pytest.raises(EvalError):
        pick_frames(frames[:5], 8, 40, 8, 5)
    with pytest.raises(EvalError):
        pick_frames(frames[:10], 8, 40, 8, 5)  # nothing far enough from the references


def test_load_clip_streams_tracks_once_and_reuses_the_cache(
    moving_clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("dlib")
    first = load_clip(moving_clip, 64, max_frames=10, cache=tmp_path)
    assert first.frames.tolist() == list(range(first.frames[0], first.frames[0] + 10))
    assert first.crops.shape == (10, 64, 64, 3) and first.crops.dtype == np.float32
    assert first.points.shape == (10, 68, 2) and first.transforms.shape == (10, 2, 3)
    (cached,) = tmp_path.glob("astro_*_10.npz")
    with pytest.raises(LikenessError, match="does not exist"):
        load_clip(tmp_path / "missing.mov", 64, cache=tmp_path)

    def no_tracking(*args: object, **kwargs: object) -> None:
        raise AssertionError("tracked again although the landmarks were cached")

    monkeypatch.setattr(clips, "track_clip", no_tracking)
    again = load_clip(moving_clip, 64, max_frames=10, cache=tmp_path)
    np.testing.assert_array_equal(again.frames, first.frames)
    np.testing.assert_allclose(again.points, first.points)
    np.testing.assert_allclose(again.crops, first.crops)
