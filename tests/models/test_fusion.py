"""Multi-reference warp fusion: weights, and top=1 equals the baseline's nearest warp."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.align import CANONICAL_68
from pipeline.models.warp import WarpInputError, fused_warp, fusion_weights, warp_baseline


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
