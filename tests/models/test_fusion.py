"""Multi-reference warp fusion: weights, top=1 equals the baseline's nearest warp, the spline
weight, the flow-aligned blend, and their leave-one-out choice."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.align import CANONICAL_68
from pipeline.config import from_mapping
from pipeline.demo.synthetic import astronaut
from pipeline.errors import ConfigError, WarpInputError
from pipeline.models.fusion import Fusion, fused_warp, fusion_weights
from pipeline.train.finetune import FinetuneParams
from pipeline.train.fusion_choice import FUSE_FLOWS, FUSE_SPLINES, select_fusion
from pipeline.warping.blend import blend_flows, blend_warps
from pipeline.warping.image import warp_baseline, warp_image
from pipeline.warping.mesh import warp_map
from pipeline.warping.shapes import nearest_reference, shape_distance
from pipeline.warping.tps import tps_map


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
    np.testing.assert_allclose(fused_warp(imgs, pts, target, Fusion(top=1)), base, atol=1e-6)
    out = fused_warp(imgs, pts, target, Fusion(top=3, temperature=0.05))
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
    np.testing.assert_allclose(fused_warp(imgs, pts, target, Fusion(top=1, spline=0.5)), want)
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
    smooth, scores = select_fusion(imgs, pts, Fusion())
    assert smooth.spline >= 0.5
    assert scores[smooth.key()] == min(scores.values())
    assert {float(key.split("/")[2]) for key in scores} == set(FUSE_SPLINES)
    assert {float(key.split("/")[3]) for key in scores} == set(FUSE_FLOWS)
    imgs, pts = _references(warp_map, seed)
    mesh, _ = select_fusion(imgs, pts, Fusion())
    assert mesh.spline == 0.0


def test_select_fusion_keeps_the_configured_fusion_below_three_references() -> None:
    imgs, pts = _references(warp_map, 0, k=2)
    configured = Fusion(top=2, temperature=0.02, spline=0.25, flow=0.5)
    fusion, scores = select_fusion(imgs, pts, configured)
    assert (fusion.key(), scores) == ("2/0.02/0.25/0.5", {})


# -- the flow-aligned blend -------------------------------------------------------------------
def _shifted(dx: float, size: int = 64) -> np.ndarray:
    """The astronaut, ``size`` px, moved right by ``dx`` px: size×size×3 float32 sRGB."""
    img = cv2.resize(astronaut(), (size, size), interpolation=cv2.INTER_AREA)
    m = np.float32([[1, 0, dx], [0, 1, 0]])
    out = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
    return out.astype(np.float32) / 255.0


def test_blend_without_flow_is_the_weighted_mean_and_one_warp_is_kept() -> None:
    a, b = _shifted(0.0), _shifted(3.0)
    np.testing.assert_array_equal(
        blend_warps([a, b], [0.75, 0.25]), np.float32(0.75) * a + np.float32(0.25) * b
    )
    np.testing.assert_array_equal(blend_warps([b], [1.0], flow_align=1.0), b)


def test_flow_alignment_removes_the_ghost_of_a_misaligned_warp() -> None:
    """Two warps of one face that disagree by 3 px: their plain mean shows the face twice. Moved
    onto the mean's geometry, they blend into one sharp face halfway between them."""
    a, b = _shifted(0.0), _shifted(3.0)
    between = _shifted(1.5)
    inner = (slice(8, -8), slice(8, -8))  # away from the repeated border

    def err(x: np.ndarray) -> float:
        return float(np.abs(x - between)[inner].mean())

    plain = blend_warps([a, b], [0.5, 0.5])
    half = blend_warps([a, b], [0.5, 0.5], flow_align=0.5)
    full = blend_warps([a, b], [0.5, 0.5], flow_align=1.0)
    assert err(full) < 0.2 * err(plain)
    assert err(full) < err(half) < err(plain)
    # deterministic: the same warps give the same blend, also from precomputed flows
    flows = blend_flows([a, b], [0.5, 0.5])
    assert [f.shape for f in flows] == [(64, 64, 2)] * 2 and flows[0].dtype == np.float32
    np.testing.assert_array_equal(blend_warps([a, b], [0.5, 0.5], 1.0, flows), full)
    np.testing.assert_array_equal(blend_warps([a, b], [0.5, 0.5], flow_align=1.0), full)


def test_flows_do_not_depend_on_the_thread_count() -> None:
    """Farm nodes differ in cores: the same warps must give the same blend on any of them."""
    a, b = _shifted(0.0, 128), _shifted(2.5, 128)
    before = cv2.getNumThreads()
    try:
        flows = {}
        for n in (1, 3, 8):
            cv2.setNumThreads(n)
            flows[n] = blend_flows([a, b], [0.6, 0.4])
    finally:
        cv2.setNumThreads(before)
    for n in (3, 8):
        for f, g in zip(flows[1], flows[n]):
            np.testing.assert_array_equal(f, g)


def test_fused_warp_applies_the_flow_alignment() -> None:
    rng = np.random.default_rng(2)
    img = _shifted(0.0, 48)
    base = CANONICAL_68 * 48
    pts = np.stack([base + rng.normal(0, 1.0, (68, 2)) for _ in range(3)])
    imgs = np.stack([img, _shifted(2.0, 48), _shifted(-2.0, 48)])
    w = fusion_weights(np.array([shape_distance(p, base) for p in pts]), 3, 0.05)
    warped = [warp_image(imgs[i], pts[i], base) for i in range(3)]
    np.testing.assert_array_equal(
        fused_warp(imgs, pts, base, Fusion(top=3, temperature=0.05, flow=0.5)),
        blend_warps(warped, w, 0.5),
    )


def test_blend_and_config_reject_bad_flow_settings() -> None:
    a = _shifted(0.0)
    with pytest.raises(WarpInputError, match="flow_align"):
        blend_warps([a, a], [0.5, 0.5], flow_align=1.5)
    with pytest.raises(WarpInputError, match="2 warps with 1 weights"):
        blend_warps([a, a], [1.0])
    with pytest.raises(ConfigError, match="fusion.flow"):
        from_mapping(FinetuneParams, {"fusion": {"flow": -0.5}})


def test_select_fusion_rebuilds_at_most_the_cap_of_references(monkeypatch) -> None:
    """Above ``FUSE_SELECT_TARGETS`` references, the leave-one-out rebuilds that many, spread
    evenly, each from all the others: a candidate's score is its loss on exactly those."""
    import pipeline.train.fusion_choice as choice
    from pipeline.inference.actor import to_chw
    from pipeline.train.losses import multiscale_l1, ssim_loss

    imgs, pts = _references(warp_map, 0, k=5, size=32)
    monkeypatch.setattr(choice, "FUSE_SELECT_TARGETS", 3)
    _, scores = select_fusion(imgs, pts, Fusion(), splines=(0.0,), flows=(0.0,))
    rebuilt = [0, 2, 4]
    fake = []
    for t in rebuilt:  # top 1: the nearest other reference, mesh-warped
        others = [s for s in range(5) if s != t]
        s = min(others, key=lambda s: shape_distance(pts[s], pts[t]))
        fake.append(warp_image(imgs[s], pts[s], pts[t], 0.0))
    fake_t, real_t = to_chw(np.stack(fake)), to_chw(imgs[rebuilt])
    want = float(multiscale_l1(fake_t, real_t) + ssim_loss(fake_t, real_t))
    assert scores["1/0.005/0.0/0.0"] == pytest.approx(want, rel=1e-6)
