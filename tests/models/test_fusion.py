"""Multi-reference warp fusion: weights, top=1 equals the baseline's nearest warp, the spline
weight, and its leave-one-out choice."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.align import CANONICAL_68
from pipeline.models.warp import (
    WarpInputError,
    fused_warp,
    fusion_weights,
    nearest_reference,
    tps_map,
    warp_baseline,
    warp_image,
    warp_map,
)
from pipeline.synthetic import astronaut
from pipeline.train.finetune import FUSE_SPLINES, FinetuneConfig, select_fusion


def test_fusion_weights() -> None:
    w = fusion_weights(np.array([0.3, 0.1, 0.2]), top=1, temperature=0.01)
    np.testing.assert_array_equal(w, [0.0, 1.0, 0.0])
    w = fusion_weights(np.array([0.3, 0.1, 0.1 + 0.01 * np.log(2.0)]), top=2, temperature=0.01)
    np.testing.assert_allclose(w, [0.0, 2 / 3, 1 / 3])
    with pytest.raises(WarpInputError):
        fusion_weights(np.array([]), 1, 0.01)
    with pytest.raises(WarpInputError):
        fusion_weights(np.array([0.1]), 1, 0.0)


def test_fused_warp_top1_is_the_baseline_and_blends_shapes() -> None:
    rng = np.random.default_rng(0)
    imgs = rng.random((3, 32, 32, 3)).astype(np.float32)
    pts = np.stack([CANONICAL_68 * 32 + rng.normal(0, 0.5, (68, 2)) for _ in range(3)])
    target = CANONICAL_68 * 32
    base, _ = warp_baseline(imgs, pts, target)
    np.testing.assert_allclose(fused_warp(imgs, pts, target, top=1), base, atol=1e-6)
    out = fused_warp(imgs, pts, target, top=3, temperature=0.05)
    assert out.shape == (32, 32, 3) and out.dtype == np.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    with pytest.raises(WarpInputError):
        fused_warp(imgs[:2], pts, target)


def test_fused_warp_blends_each_source_with_its_spline_warp() -> None:
    rng = np.random.default_rng(1)
    imgs = rng.random((2, 32, 32, 3)).astype(np.float32)
    pts = np.stack([CANONICAL_68 * 32 + rng.normal(0, 0.8, (68, 2)) for _ in range(2)])
    target = CANONICAL_68 * 32
    k = nearest_reference(pts, target)
    want = warp_image(imgs[k], pts[k], target, 0.5)
    np.testing.assert_allclose(fused_warp(imgs, pts, target, top=1, spline_weight=0.5), want)
    assert np.abs(want - warp_image(imgs[k], pts[k], target)).max() > 1e-3


def _references(make_map, seed: int, k: int = 5, size: int = 48):
    """K references of one portrait, each moved to jittered landmarks by ``make_map``."""
    rng = np.random.default_rng(seed)
    img = cv2.resize(astronaut(), (size, size), interpolation=cv2.INTER_AREA)
    img = img.astype(np.float32) / 255.0
    base = CANONICAL_68 * size
    imgs, pts = [], []
    for _ in range(k):
        p = base + rng.normal(0, 1.5, (68, 2)) + rng.normal(0, 2.0, 2)
        m = make_map(base, p, size)
        imgs.append(cv2.remap(img, m[..., 0], m[..., 1], cv2.INTER_LINEAR, None,
                              cv2.BORDER_REPLICATE))  # fmt: skip
        pts.append(p)
    return np.stack(imgs), np.stack(pts)


@pytest.mark.parametrize("seed", [0, 1])
def test_select_fusion_picks_the_warp_that_made_the_references(seed: int) -> None:
    """References that differ by smooth (spline) motion are rebuilt best with the spline; ones
    that differ by mesh motion, with the mesh. Only the references are looked at."""
    imgs, pts = _references(tps_map, seed)
    smooth, scores = select_fusion(imgs, pts, FinetuneConfig())
    assert smooth.spline >= 0.5
    assert scores[f"{smooth.top}/{smooth.temperature}/{smooth.spline}"] == min(scores.values())
    assert {float(key.split("/")[2]) for key in scores} == set(FUSE_SPLINES)
    imgs, pts = _references(warp_map, seed)
    mesh, _ = select_fusion(imgs, pts, FinetuneConfig())
    assert mesh.spline == 0.0


def test_select_fusion_keeps_the_configured_fusion_below_three_references() -> None:
    imgs, pts = _references(warp_map, 0, k=2)
    cfg = FinetuneConfig(fuse_top=2, fuse_temperature=0.02, fuse_spline=0.25)
    fusion, scores = select_fusion(imgs, pts, cfg)
    assert (fusion.top, fusion.temperature, fusion.spline, scores) == (2, 0.02, 0.25, {})
