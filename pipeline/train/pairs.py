"""The fine-tune's training pairs: each reference as a target, with G's warp input built from
the *other* references as at inference, plus self pairs and the held-out references."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from pipeline.errors import FinetuneInputError
from pipeline.models.fusion import Fusion, fusion_weights
from pipeline.warping.blend import blend_warps
from pipeline.warping.image import warp_image
from pipeline.warping.shapes import shape_distance


def check_references(
    refs: Sequence[tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray]:
    if len(refs) == 0:
        raise FinetuneInputError("no reference images given", "pass 1 to 32 aligned face crops")
    images, points = [], []
    size = None
    for i, (img, pts) in enumerate(refs):
        img = np.asarray(img)
        pts = np.asarray(pts, np.float32)
        if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] != img.shape[1]:
            raise FinetuneInputError(
                f"reference {i} has shape {img.shape}, expected S×S×3", "align the crops first"
            )
        if img.dtype != np.float32 or float(img.min()) < 0.0 or float(img.max()) > 1.0:
            raise FinetuneInputError(
                f"reference {i} is {img.dtype} in {img.min()}..{img.max()}",
                "pass float32 display sRGB in 0..1",
            )
        if pts.shape != (68, 2) or not np.all(np.isfinite(pts)):
            raise FinetuneInputError(
                f"reference {i} landmarks have shape {pts.shape}", "pass 68×2 crop pixel points"
            )
        if size is not None and img.shape[0] != size:
            raise FinetuneInputError(
                f"reference {i} is {img.shape[0]} px, the others {size} px", "align to one size"
            )
        size = img.shape[0]
        images.append(img)
        points.append(pts)
    return np.stack(images), np.stack(points)


def training_pairs(points: np.ndarray, warp_sources: int) -> list[tuple[int, int]]:
    """``(target, source)`` reference pairs: each target with its nearest other references.

    Args:
        points: K×68×2 float, reference landmarks.
        warp_sources: sources per target (fewer when K is small).

    Returns:
        list of index pairs; with K = 1 the only pair is ``(0, 0)``.
    """
    k = len(points)
    if k == 1:
        return [(0, 0)]
    pairs = []
    for t in range(k):
        dist = sorted((shape_distance(points[s], points[t]), s) for s in range(k) if s != t)
        pairs += [(t, s) for _, s in dist[:warp_sources]]
    return pairs


def _self_source(
    image: np.ndarray, points: np.ndarray, jitter_px: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A reference moved to jittered landmarks: (S×S×3 float32 image, 68×2 moved points)."""
    size = image.shape[0]
    angle = rng.normal(0.0, 2.0)
    scale = 1.0 + rng.normal(0.0, 0.02)
    m = cv2.getRotationMatrix2D((size / 2.0, size / 2.0), angle, scale)
    m[:, 2] += rng.normal(0.0, jitter_px, 2)
    moved = points @ m[:, :2].T + m[:, 2] + rng.normal(0.0, jitter_px, points.shape)
    return warp_image(image, points, moved), moved


def self_warp(
    image: np.ndarray, points: np.ndarray, jitter_px: float, rng: np.random.Generator
) -> np.ndarray:
    """A reference moved to jittered landmarks and warped back onto its own landmarks.

    Args:
        image: S×S×3 float32 display sRGB, an aligned reference.
        points: 68×2 float, its landmarks in crop pixels.
        jitter_px: standard deviation of the per-point jitter, plus a small random similarity.
        rng: the random generator (seeded by the caller).

    Returns:
        S×S×3 float32: the reference after two piecewise-affine warps.
    """
    away, moved = _self_source(image, points, jitter_px, rng)
    return warp_image(away, moved, points)


def holdout_indices(k: int, holdout: int) -> list[int]:
    """References held out for early stopping: spread evenly inside the K, none when K < 3."""
    if holdout <= 0 or k < 3:
        return []
    n = min(holdout, k - 2)
    return sorted({int(round(x)) for x in np.linspace(0, k - 1, n + 2)[1:-1]})


def warp_inputs(
    images: np.ndarray,
    points: np.ndarray,
    targets: Sequence[int],
    fusion: Fusion,
    warp_sources: int,
    jitter_px: float,
    rng: np.random.Generator,
    self_pairs: int,
) -> tuple[list[tuple[int, int]], np.ndarray]:
    """G's training inputs, built as at inference: fused warps of *other* references.

    For each target reference: ``warp_sources`` cross pairs, the ``j``-th blending the other
    references after dropping the ``j`` nearest (coverage as good as, then worse than, a plate
    frame's), and ``self_pairs`` pairs whose nearest source is the target itself moved to jittered
    landmarks (a plate frame close to a reference, with realistic mesh errors), blended with the
    others as :func:`pipeline.models.fusion.fused_warp` would.

    Args:
        images: K×S×S×3 float32 display sRGB references.
        points: K×68×2 float landmarks in crop pixels.
        targets: the reference indices used as targets.
        fusion: how the warps are built and blended.
        warp_sources: cross pairs per target.
        jitter_px: standard deviation of the self pairs' landmark jitter, in pixels.
        rng: random generator of the self pairs' jitter.
        self_pairs: self pairs per target.

    Returns:
        ``(pairs, warps)``: ``(target, nearest source)`` per pair (source = target for self
        pairs) and P×S×S×3 float32 warp inputs.
    """
    k = len(images)
    cache: dict[tuple[int, int], np.ndarray] = {}

    def warp_to(t: int, s: int) -> np.ndarray:
        if (t, s) not in cache:
            cache[(t, s)] = warp_image(images[s], points[s], points[t], fusion.spline)
        return cache[(t, s)]

    pairs: list[tuple[int, int]] = []
    warps: list[np.ndarray] = []
    for t in targets:
        dist = {s: shape_distance(points[s], points[t]) for s in range(k) if s != t}
        others = sorted(dist, key=lambda s: (dist[s], s))
        for j in range(min(warp_sources, len(others))):
            srcs = others[j:]
            w = fusion_weights(np.array([dist[s] for s in srcs]), fusion.top, fusion.temperature)
            used = [(wi, s) for wi, s in zip(w, srcs) if wi > 0]
            warps.append(
                blend_warps([warp_to(t, s) for _, s in used], [wi for wi, _ in used], fusion.flow)
            )
            pairs.append((t, srcs[0]))
        for _ in range(self_pairs):
            away, moved = _self_source(images[t], points[t], jitter_px, rng)
            back = warp_image(away, moved, points[t], fusion.spline)
            d = np.array([shape_distance(moved, points[t])] + [dist[s] for s in others])
            w = fusion_weights(d, fusion.top, fusion.temperature)
            used = [(w[0], back)] + [(wi, warp_to(t, s)) for wi, s in zip(w[1:], others) if wi > 0]
            warps.append(blend_warps([x for _, x in used], [wi for wi, _ in used], fusion.flow))
            pairs.append((t, t))
    if not pairs:  # one reference and no self pairs: G learns the identity on it
        pairs.append((targets[0], targets[0]))
        warps.append(images[targets[0]])
    return pairs, np.stack(warps).astype(np.float32)
