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


def test_full_resolution_crops_and_each_references_own_resolution(tmp_path):
    """Beside the network-size crops, the references keep full-resolution crops (the render's
    source of detail, at the largest reference's own resolution) and say how big each face
    really is, so that an upscale is known."""
    a = _png(tmp_path / "a.png", cv2.resize(astronaut_head(), (400, 400)))
    b = _png(tmp_path / "b.png", cv2.resize(astronaut_head(), (200, 200)))
    info = run_references([a, b], ReferencesConfig(hires_max=1024), 64, tmp_path / "out")
    refs = load_references(tmp_path / "out" / "refs.npz")
    native = refs.native_sizes
    assert native[0] == pytest.approx(2 * native[1], rel=0.05)  # twice the pixels, twice the size
    assert refs.detail_size % 32 == 0 and refs.detail_size >= native.max()
    assert refs.detail.shape == (2, refs.detail_size, refs.detail_size, 3)
    assert info["detail_size"] == refs.detail_size
    # the same alignment at both sizes: the full-resolution crop, shrunk, is the small one
    small = cv2.resize(refs.detail[0], (64, 64), interpolation=cv2.INTER_AREA).astype(float)
    assert np.abs(small - refs.crops[0]).mean() < 6.0
    capped = prepare_references([a], ReferencesConfig(hires_max=128), 64)
    assert capped.detail_size == 128


def test_a_version_1_references_file_is_refused(tmp_path):
    """Written before the full-resolution crops: refused, never misread (its stage reruns)."""
    p = tmp_path / "refs.npz"
    np.savez(p, schema=np.array("likeness.refs/1"), crops=np.zeros((1, 8, 8, 3), np.uint8),
             points=np.zeros((1, 68, 2), np.float32), sources=np.array(["a.png"]))  # fmt: skip
    with pytest.raises(SchemaError, match="likeness.refs/1"):
        load_references(p)
