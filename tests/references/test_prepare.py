import cv2
import numpy as np
import pytest

from pipeline.demo.synthetic import astronaut_head
from pipeline.errors import DecodeError, NoFaceError, SchemaError
from pipeline.references.prepare import load_still, prepare_references
from pipeline.references.store import load_references
from pipeline.stages.references import ReferencesConfig, run_references


def _png(path, img):
    cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return path


def test_references_aligned_and_saved(tmp_path):
    a = _png(tmp_path / "a.png", cv2.resize(astronaut_head(), (256, 256)))
    b = _png(tmp_path / "b.jpg", cv2.resize(astronaut_head()[:, ::-1].copy(), (300, 300)))
    info = run_references([a, b], ReferencesConfig(), 64, tmp_path / "out")
    assert info["count"] == 2
    refs = load_references(tmp_path / "out" / "refs.npz")
    assert refs.crops.shape == (2, 64, 64, 3) and refs.crops.dtype == np.uint8
    assert refs.points.shape == (2, 68, 2)
    # both faces land on the template: the eyes of the two crops agree within a few pixels
    eyes = refs.points[:, 36:48].mean(axis=1)
    assert np.abs(eyes[0] - eyes[1]).max() < 3.0
    assert (tmp_path / "out" / "references.png").is_file()


def test_not_an_image(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("not a jpeg")
    with pytest.raises(DecodeError, match="not a readable image"):
        load_still(p, 1 << 24)


def test_pixel_bomb_refused_before_decode(tmp_path):
    p = _png(tmp_path / "big.png", np.zeros((300, 300, 3), np.uint8))
    with pytest.raises(DecodeError, match="over the limit"):
        load_still(p, 100 * 100)


def test_faceless_reference_is_named(tmp_path):
    a = _png(tmp_path / "a.png", cv2.resize(astronaut_head(), (256, 256)))
    wall = _png(tmp_path / "wall.png", np.full((200, 200, 3), 128, np.uint8))
    with pytest.raises(NoFaceError, match="wall.png"):
        prepare_references([a, wall], ReferencesConfig(), 64)


def test_load_references_rejects_garbage(tmp_path):
    p = tmp_path / "refs.npz"
    p.write_bytes(b"junk")
    with pytest.raises(SchemaError):
        load_references(p)
