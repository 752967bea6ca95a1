"""Landmark rasterizer: numpy and torch versions, shapes, bad input, golden values."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from pipeline.errors import LandmarkShapeError
from pipeline.models.rasterize import (
    PART_COLOURS,
    LandmarkRasterizer,
    rasterize,
    rasterize_torch,
)


def test_smoke_shape_and_range(face: np.ndarray) -> None:
    img = rasterize(face, 64)
    assert img.shape == (64, 64, 3) and img.dtype == np.float32
    assert 0.0 <= img.min() and img.max() <= 1.0
    # every part colour appears somewhere at full strength on a 3-px line
    flat = rasterize(face, 64, thickness=3.0).reshape(-1, 3)
    for colour in PART_COLOURS:
        assert np.any(np.all(np.abs(flat - colour) < 1e-3, axis=1)), colour


def test_torch_matches_numpy(make_face: Callable[..., np.ndarray]) -> None:
    face68 = make_face
    pts = np.stack([face68(48), face68(48, mouth_open=1.0, shift=(0.03, -0.02))])
    ref = np.stack([rasterize(p, 48) for p in pts])
    got = rasterize_torch(torch.from_numpy(pts), 48).permute(0, 2, 3, 1).numpy()
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=1e-4)
    # the module wrapper is the same function
    mod = LandmarkRasterizer(48)(torch.from_numpy(pts)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(mod, got)


def test_thickness_and_points_outside_crop(make_face: Callable[..., np.ndarray]) -> None:
    face68 = make_face
    pts = face68(32, shift=(0.6, 0.0))  # half the face off the right edge
    img = rasterize(pts, 32, thickness=3.0)
    tor = rasterize_torch(torch.from_numpy(pts)[None], 32, thickness=3.0)[0].permute(1, 2, 0)
    np.testing.assert_allclose(tor.numpy(), img, atol=1e-4)


def test_torch_is_differentiable_in_points(face: np.ndarray) -> None:
    pts = torch.from_numpy(face)[None].requires_grad_(True)
    rasterize_torch(pts, 64).sum().backward()
    assert pts.grad is not None and torch.isfinite(pts.grad).all() and pts.grad.abs().sum() > 0


def test_bad_input(make_face: Callable[..., np.ndarray]) -> None:
    face68 = make_face
    with pytest.raises(LandmarkShapeError, match="67"):
        rasterize(np.zeros((67, 2)), 32)
    nan = face68(32)
    nan[5, 0] = np.nan
    with pytest.raises(LandmarkShapeError, match="NaN"):
        rasterize(nan, 32)
    with pytest.raises(LandmarkShapeError, match="B×68×2"):
        rasterize_torch(torch.zeros(68, 2), 32)


def test_golden_values(face: np.ndarray) -> None:
    img = rasterize(face, 64)
    assert float(img.sum()) == pytest.approx(GOLDEN_SUM, rel=1e-5)
    # the nose bridge (green) at x = 32, y = 30
    np.testing.assert_allclose(img[30, 32], [0.0, 1.0, 0.0], atol=1e-6)


GOLDEN_SUM = 393.5248718261719
