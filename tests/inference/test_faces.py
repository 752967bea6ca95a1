"""pipeline.inference.faces: ``faces.npz`` v2 (render-size crops, the retargeted flag)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from pipeline.errors import SchemaError, StageError
from pipeline.frames import FrameRange
from pipeline.inference.faces import Faces, join_faces, load_faces, save_faces


def _faces(first: int, n: int, size: int, retargeted: bool = False) -> Faces:
    eye = np.tile(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), (n, 1, 1))
    return Faces(
        np.arange(first, first + n, dtype=np.int64),
        np.full((n, size, size, 3), 0.5, np.float16),
        np.zeros((n, 68, 2), np.float32),
        eye,
        np.ones(n, bool),
        np.full(n, retargeted),
    )


def test_round_trip_keeps_the_render_size_and_the_retargeted_flag(tmp_path):
    save_faces(tmp_path / "f.npz", _faces(1001, 3, 96, retargeted=True))
    back = load_faces(tmp_path / "f.npz")
    assert back.faces.shape == (3, 96, 96, 3) and back.flags.tolist() == [True] * 3
    f = _faces(1, 2, 8)
    unset = Faces(f.frames, f.faces, f.points, f.inverse, f.valid)
    assert unset.flags.tolist() == [False, False]  # unset: all False


def test_a_version_1_faces_file_is_refused(tmp_path):
    f = _faces(1001, 2, 8)
    np.savez(tmp_path / "f.npz", schema=np.array("likeness.faces/1"), frames=f.frames,
             faces=f.faces, points=f.points, inverse=f.inverse, valid=f.valid)  # fmt: skip
    with pytest.raises(SchemaError, match="likeness.faces/1"):
        load_faces(tmp_path / "f.npz")


def test_chunks_rendered_at_different_sizes_do_not_join():
    plate = SimpleNamespace(frames=FrameRange(1001, 1004))
    joined = join_faces([_faces(1003, 2, 64), _faces(1001, 2, 64)], plate)
    assert joined.frames.tolist() == [1001, 1002, 1003, 1004]
    with pytest.raises(StageError, match="different sizes"):
        join_faces([_faces(1001, 2, 64), _faces(1003, 2, 96)], plate)
