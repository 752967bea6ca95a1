"""The per-actor choice of G's warp input: each reference rebuilt from the others
(leave-one-out), over a grid of fusions; only the references are looked at."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from pipeline.inference.actor import to_chw
from pipeline.models.fusion import Fusion, fusion_weights
from pipeline.train.losses import multiscale_l1, ssim_loss
from pipeline.warping.blend import blend_flows, blend_warps, weighted_sum
from pipeline.warping.image import warp_image
from pipeline.warping.shapes import shape_distance

#: Candidates of the leave-one-out choice of the warp fusion (``finetune.fusion_select``).
FUSE_TOPS = (1, 2, 3, 5, 8)


FUSE_TEMPERATURES = (0.005, 0.01, 0.02, 0.05)


FUSE_SPLINES = (0.0, 0.25, 0.5, 0.75, 1.0)


FUSE_FLOWS = (0.0, 0.5, 1.0)


#: At most this many references are rebuilt in the leave-one-out choice (spread evenly over the
#: K; each from all the others): its cost grows with targets × K, not K².
FUSE_SELECT_TARGETS = 12


def select_fusion(
    images: np.ndarray,
    points: np.ndarray,
    configured: Fusion,
    splines: Sequence[float] = FUSE_SPLINES,
    flows: Sequence[float] = FUSE_FLOWS,
) -> tuple[Fusion, dict[str, float]]:
    """Leave-one-out choice of the warp fusion: each reference rebuilt from the others.

    Args:
        images: K×S×S×3 float32 display sRGB references.
        points: K×68×2 float landmarks in crop pixels.
        configured: the configured fusion (also a candidate).
        splines: the spline weights tried (``(0.0,)``: the piecewise-affine warp only).
        flows: the flow alignments tried (``(0.0,)``: the plain weighted mean only).

    Returns:
        ``(fusion, scores)``: the candidate with the lowest mean L1 + SSIM loss (ties go to the
        smaller top, temperature, spline weight and flow alignment), and every candidate's score
        keyed by :meth:`Fusion.key`. With K < 3 the configured fusion. With K above
        :data:`FUSE_SELECT_TARGETS`, that many references, spread evenly, are rebuilt.
    """
    k = len(images)
    if k < 3:
        return configured, {}
    rebuilt = sorted({int(round(x)) for x in np.linspace(0, k - 1, min(k, FUSE_SELECT_TARGETS))})
    pairs = [(t, s) for t in rebuilt for s in range(k) if s != t]
    weights = {*splines, configured.spline}
    affine = {p: warp_image(images[p[1]], points[p[1]], points[p[0]], 0.0) for p in pairs}
    spline = (
        {p: warp_image(images[p[1]], points[p[1]], points[p[0]], 1.0) for p in pairs}
        if max(weights) > 0
        else affine
    )
    dist = {key: shape_distance(points[key[1]], points[key[0]]) for key in pairs}
    real = to_chw(images[rebuilt])
    aligns = sorted({*flows, configured.flow})
    cands = {(top, temp, a) for top in FUSE_TOPS for temp in FUSE_TEMPERATURES for a in splines}
    cands = {c for c in cands if c[0] < k}
    cands.add((min(configured.top, k - 1), configured.temperature, configured.spline))
    scores: dict[str, float] = {}
    best = (math.inf, configured)
    for top, temp, a in sorted(cands):
        # one blend per target and flow alignment; the flows do not depend on the alignment
        fused: dict[float, list[np.ndarray]] = {f: [] for f in aligns}
        for t in rebuilt:
            srcs = [s for s in range(k) if s != t]
            w = fusion_weights(np.array([dist[(t, s)] for s in srcs]), top, temp)
            used = [(wi, s) for wi, s in zip(w, srcs) if wi > 0]
            warped = [weighted_sum([affine[(t, s)], spline[(t, s)]], [1 - a, a]) for _, s in used]
            ws = [wi for wi, _ in used]
            flow = blend_flows(warped, ws) if len(used) > 1 and max(aligns) > 0 else None
            for f in aligns:
                fused[f].append(blend_warps(warped, ws, f, flow))
        for f in aligns:
            fake = to_chw(np.stack(fused[f]).astype(np.float32))
            score = float(multiscale_l1(fake, real) + ssim_loss(fake, real))
            cand = Fusion(top, temp, a, f)
            scores[cand.key()] = score
            if score < best[0] - 1e-9:  # candidates come in sorted order: ties keep the smaller
                best = (score, cand)
    return best[1], scores
