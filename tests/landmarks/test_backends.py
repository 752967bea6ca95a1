"""pipeline.landmarks: registry, dlib backend, fan backend (weights never downloaded)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.demo.synthetic import astronaut
from pipeline.errors import CheckpointError, ConfigError, WeightsMissingError
from pipeline.landmarks import BACKENDS, get_backend
from pipeline.landmarks.base import Detection
from pipeline.landmarks.fan_backend import (
    FAN_WEIGHTS_FILE,
    FanBackend,
    crop_matrix,
    heatmaps_to_points,
    torch_hub_checkpoints,
)


def test_registry():
    assert set(BACKENDS) == {"dlib", "fan"}
    with pytest.raises(ConfigError, match="'dlibb'"):
        get_backend("dlibb")
    with pytest.raises(ConfigError, match="upsampel"):
        get_backend("dlib", upsampel=1)


def test_dlib_detect_and_fit():
    img = astronaut()
    dlib = get_backend("dlib")
    dets = dlib.detect(img)
    assert len(dets) == 1 and isinstance(dets[0], Detection)
    d = dets[0]
    assert d.points.shape == (68, 2) and d.points.dtype == np.float32
    assert 0.5 < d.confidence <= 1.0
    x0, y0, x1, y1 = d.box
    # Golden: the HOG box of the astronaut's face in the 512² portrait.
    np.testing.assert_allclose(d.box, (179, 83, 267, 171), atol=2)
    inside = (d.points[:, 0] > x0 - 10) & (d.points[:, 0] < x1 + 10) & (d.points[:, 1] > y0 - 25)
    assert inside.all()
    fit = dlib.fit(img, d.box)
    np.testing.assert_allclose(fit.points, d.points, atol=1e-6)
    assert fit.confidence == 1.0
    # Downscaled detection finds the same face in full-resolution coordinates.
    small = get_backend("dlib", detect_max_side=400).detect(img)
    np.testing.assert_allclose(small[0].points, d.points, atol=4.0)


def test_dlib_detect_near_finds_the_held_face_only():
    import cv2

    # A 1080p-like frame: the astronaut's face about 350 px wide, as on a close-up.
    big = cv2.resize(astronaut(), (2048, 2048), interpolation=cv2.INTER_CUBIC)[:1080, :1920]
    dlib = get_backend("dlib")
    full = dlib.detect(big)
    assert len(full) == 1
    shifted = tuple(v + 20 for v in full[0].box)  # the box the tracker predicted
    near = dlib.detect_near(big, shifted)
    assert len(near) == 1
    # The face is found on a ~120-px view, landmarks are fitted at full resolution.
    np.testing.assert_allclose(
        near[0].box, full[0].box, atol=0.1 * (full[0].box[2] - full[0].box[0])
    )
    assert np.abs(near[0].points - full[0].points).mean() < 3.0
    assert 0.5 < near[0].confidence <= 1.0
    assert dlib.detect_near(big, (1500, 700, 1800, 1000)) == []  # nothing near there


def test_dlib_no_face_and_bad_image():
    assert get_backend("dlib").detect(np.full((128, 128, 3), 127, np.uint8)) == []
    with pytest.raises(ValueError, match="uint8"):
        get_backend("dlib").detect(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(ValueError, match="at least 80"):
        get_backend("dlib", detect_max_side=20)


def test_fan_without_weights_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert torch_hub_checkpoints() == tmp_path / "torch" / "hub" / "checkpoints"
    with pytest.raises(WeightsMissingError) as err:
        get_backend("fan")
    msg = str(err.value)
    assert FAN_WEIGHTS_FILE in msg and str(tmp_path / "torch" / "hub" / "checkpoints") in msg
    with pytest.raises(WeightsMissingError, match="fan_weights"):
        FanBackend(weights=str(tmp_path / "nope.pth.tar"))


def test_fan_file_name_matches_face_alignment():
    api = pytest.importorskip("face_alignment.api")
    assert api.models_urls["2DFAN-4"].rsplit("/", 1)[-1] == FAN_WEIGHTS_FILE


def test_fan_rejects_bad_weights(tmp_path):
    pytest.importorskip("face_alignment")
    torch = pytest.importorskip("torch")
    path = tmp_path / FAN_WEIGHTS_FILE
    torch.save({"conv1.weight": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match="not a 2D-FAN-4"):
        FanBackend(weights=str(path))
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        FanBackend(weights=str(path))


def test_fan_heatmap_decoding_golden():
    hm = np.zeros((68, 64, 64), np.float32)
    hm[:, 30, 20] = 0.8  # peak at x=20, y=30
    hm[:, 30, 21] = 0.4  # right neighbour larger: x nudged by +0.25
    hm[:, 29, 20] = 0.4  # upper neighbour larger: y nudged by -0.25
    pts, peaks = heatmaps_to_points(hm)
    np.testing.assert_allclose(pts[0], ((20.25 + 0.5) * 4, (29.75 + 0.5) * 4))
    np.testing.assert_allclose(peaks, 0.8)


def test_fan_crop_matrix_golden():
    m = crop_matrix((100.0, 100.0, 300.0, 300.0))
    # face-alignment: centre (200, 200 - 0.12 * 200), side 200 * 400 / 195.
    side = 200 * 400 / 195
    np.testing.assert_allclose(m[0, 0], 256 / side)
    np.testing.assert_allclose(m @ [200.0, 176.0, 1.0], [128.0, 128.0])


@pytest.mark.slow
def test_fan_forward_with_random_weights(tmp_path):
    """The full fan path on CPU with an untrained 2D-FAN-4 (shapes and plumbing only)."""
    fa = pytest.importorskip("face_alignment.models")
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    path = tmp_path / FAN_WEIGHTS_FILE
    torch.save(fa.FAN(4).state_dict(), path)
    fan = get_backend("fan", weights=str(path))
    dets = fan.detect(astronaut())
    assert len(dets) == 1 and dets[0].points.shape == (68, 2)
    assert 0.0 <= dets[0].confidence <= 1.0
