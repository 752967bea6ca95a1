"""pipeline.landmarks.sidecar: landmarks.npz round trip, schema versions and upgrades."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pipeline.errors import SchemaError
from pipeline.landmarks import sidecar
from pipeline.landmarks.sidecar import SCHEMA, Landmarks, load_landmarks, save_landmarks


def _lm(n: int = 6) -> Landmarks:
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 200, (n, 68, 2)).astype(np.float32)
    pts[3] = np.nan
    mats = np.tile(np.array([[2.0, 0, -10], [0, 2.0, -20]]), (n, 1, 1))
    return Landmarks(
        frames=np.arange(1001, 1001 + n),
        points=pts,
        raw_points=pts.copy(),
        confidence=np.linspace(0, 1, n).astype(np.float32),
        box=rng.uniform(0, 200, (n, 4)).astype(np.float32),
        transform=mats,
        inverse=mats / 2,
        tracked=np.arange(n) != 3,
        interpolated=np.zeros(n, bool),
        gaps=[(1004, 1004)],
        crop_size=256,
        image_size=(320, 240),
    )


def test_round_trip(tmp_path):
    lm = _lm()
    path = save_landmarks(tmp_path / "landmarks.npz", lm)
    with np.load(path, allow_pickle=False) as z:
        assert str(z["schema"]) == SCHEMA
    back = load_landmarks(path)
    for f in dataclasses.fields(Landmarks):
        a, b = getattr(back, f.name), getattr(lm, f.name)
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
            assert a.dtype == b.dtype
        else:
            assert a == b
    assert back.index(1002) == 1
    with pytest.raises(KeyError):
        back.index(2000)


def test_shape_check():
    with pytest.raises(ValueError, match="points"):
        dataclasses.replace(_lm(), points=np.zeros((5, 68, 2), np.float32))


def test_unknown_schema_and_garbage(tmp_path):
    lm = _lm()
    path = save_landmarks(tmp_path / "landmarks.npz", lm)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["schema"] = np.array("likeness.landmarks/9")
    np.savez(tmp_path / "new.npz", **arrays)
    with pytest.raises(SchemaError, match="landmarks/9"):
        load_landmarks(tmp_path / "new.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(SchemaError, match="cannot read"):
        load_landmarks(tmp_path / "junk.npz")
    np.savez(tmp_path / "none.npz", frames=np.arange(3))
    with pytest.raises(SchemaError, match="no schema"):
        load_landmarks(tmp_path / "none.npz")


def test_registered_upgrade(tmp_path, monkeypatch):
    lm = _lm()
    path = save_landmarks(tmp_path / "landmarks.npz", lm)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files if k != "interpolated"}
    arrays["schema"] = np.array("likeness.landmarks/0")  # a version without `interpolated`
    np.savez(tmp_path / "old.npz", **arrays)

    def v0_to_v1(a):
        a["interpolated"] = np.zeros(len(a["frames"]), bool)
        a["schema"] = np.array(SCHEMA)
        return a

    monkeypatch.setitem(sidecar.UPGRADES, "likeness.landmarks/0", v0_to_v1)
    back = load_landmarks(tmp_path / "old.npz")
    assert not back.interpolated.any() and back.gaps == lm.gaps
