"""Warp baseline W: the nearest reference frame warped to the target landmarks (no parameters).

Not in Zakharov et al. 2019. It is the floor the learned model must beat, and, optionally, G's
second input (``Generator(use_warp=True)``), so that G learns a correction instead of a whole
face.

The baseline warp is piecewise-affine over a Delaunay mesh of the target's 68 points plus a ring
of anchors outside the crop. The anchors follow the global similarity between the two shapes, so
hair, neck and background move with the head. A thin-plate spline through the same points
(:func:`tps_map`) is the smooth alternative: it bends the cheeks, forehead and hair where the
mesh folds them at triangle edges, and it is worse where the mesh's straight edges are right.
G's warp input may blend the two images (``spline_weight``), and blends several references
(:func:`fused_warp`), optionally after moving each warp onto the blend's geometry along its optical
flow (:func:`blend_warps`); these settings are chosen per actor by leave-one-out over the
references (:func:`pipeline.train.finetune.select_fusion`). The dense maps are computed
in numpy/scipy; the resampling is ``cv2.remap`` or its 4-D ``grid_sample`` twin
:func:`remap_torch` (ONNX/TensorRT-friendly: never a 5-D ``grid_sample``).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from scipy.interpolate import RBFInterpolator
from scipy.spatial import Delaunay
from torch import nn

from pipeline.errors import WarpInputError
from pipeline.retarget import apply_similarity, fit_similarity


def _anchors(size: int, per_side: int = 5) -> np.ndarray:
    """Ring of points on a square half a crop outside the image: (4·per_side)×2 float64."""
    lo, hi = -0.5 * size, 1.5 * size
    t = np.linspace(lo, hi, per_side + 1)
    ring = [(x, y) for x in t for y in t if x in (lo, hi) or y in (lo, hi)]
    return np.asarray(ring, np.float64)


def _check_points(points: np.ndarray, name: str) -> np.ndarray:
    points = np.asarray(points, np.float64)
    if points.shape != (68, 2) or not np.all(np.isfinite(points)):
        raise WarpInputError(
            f"{name} landmarks have shape {points.shape} or are not finite",
            "pass 68×2 (x, y) crop pixel coordinates",
        )
    return points


def _control_points(
    src_points: np.ndarray, dst_points: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What both warps interpolate: ``(dst_all, src_all, glob, pix)``.

    ``dst_all``/``src_all`` are the 68 landmarks plus the anchor ring, (68 + A)×2 float64, in
    the target's and the source's crop pixels. ``glob`` is the 2×3 similarity from the target to
    the source, and ``pix`` is the P×2 grid of output pixel centres (P = size²).

    Raises:
        WarpInputError: wrong shapes or non-finite points.
    """
    src = _check_points(src_points, "source")
    dst = _check_points(dst_points, "target")
    glob = fit_similarity(dst, src)  # target frame → source frame
    anchors = _anchors(size)
    ys, xs = np.mgrid[0:size, 0:size]
    pix = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64)  # P×2
    dst_all = np.concatenate([dst, anchors])
    return dst_all, np.concatenate([src, apply_similarity(glob, anchors)]), glob, pix


def warp_map(src_points: np.ndarray, dst_points: np.ndarray, size: int) -> np.ndarray:
    """Dense backward map of the piecewise-affine warp taking ``src_points`` to ``dst_points``.

    Args:
        src_points: 68×2 float, landmarks of the source image, crop pixels.
        dst_points: 68×2 float, target landmarks, crop pixels.
        size: crop side.

    Returns:
        size×size×2 float32: for each output pixel, the (x, y) to sample in the source.

    Raises:
        WarpInputError: wrong shapes or non-finite points.
    """
    dst_all, src_all, glob, pix = _control_points(src_points, dst_points, size)
    # QJ joggles coincident points (a closed mouth's inner lip) so every point is a vertex.
    tri = Delaunay(dst_all, qhull_options="QJ")
    simplex = tri.find_simplex(pix)  # P, −1 outside the hull
    inside = simplex >= 0
    s = np.where(inside, simplex, 0)
    trans = tri.transform[s]  # P×3×2
    b01 = np.einsum("pij,pj->pi", trans[:, :2], pix - trans[:, 2])  # P×2
    bary = np.concatenate([b01, 1.0 - b01.sum(1, keepdims=True)], 1)  # P×3
    verts = tri.simplices[s]  # P×3
    mapped = (bary[..., None] * src_all[verts]).sum(1)  # P×2
    mapped = np.where(inside[:, None], mapped, apply_similarity(glob, pix))
    return mapped.reshape(size, size, 2).astype(np.float32)  # size×size×2


#: Smoothing of :func:`tps_map`: scipy's ``RBFInterpolator`` adds it to the kernel matrix's
#: diagonal. It keeps the spline solvable when points coincide (a closed mouth's inner lips);
#: on the quality bench's clips 0, 1 and 10 score alike.
TPS_SMOOTHING = 1.0


def tps_map(src_points: np.ndarray, dst_points: np.ndarray, size: int) -> np.ndarray:
    """Dense backward map of the thin-plate spline taking ``src_points`` to ``dst_points``.

    The spline interpolates the same points as :func:`warp_map` (the 68 landmarks and the ring
    of anchors that follow the global similarity), so the two maps agree far from the face.
    Arguments, result and errors are :func:`warp_map`'s.
    """
    dst_all, src_all, _, pix = _control_points(src_points, dst_points, size)
    spline = RBFInterpolator(dst_all, src_all, kernel="thin_plate_spline", smoothing=TPS_SMOOTHING)
    return spline(pix).reshape(size, size, 2).astype(np.float32)  # size×size×2


def _remap(image: np.ndarray, pixel_map: np.ndarray) -> np.ndarray:
    out = cv2.remap(
        np.ascontiguousarray(image, np.float32),
        pixel_map[..., 0],
        pixel_map[..., 1],
        interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return out.reshape(image.shape)


def warp_image(
    image: np.ndarray,
    src_points: np.ndarray,
    dst_points: np.ndarray,
    spline_weight: float = 0.0,
) -> np.ndarray:
    """Warp ``image`` so that its landmarks ``src_points`` land on ``dst_points``.

    Args:
        image: H×W×C float32, display sRGB (any colour space works: resampling is linear),
            square, with ``src_points`` in its pixel coordinates.
        src_points: 68×2 float.
        dst_points: 68×2 float.
        spline_weight: 0 = the piecewise-affine warp (the baseline), 1 = the thin-plate spline
            (:func:`tps_map`); in between, the two warped images blended with this weight on
            the spline's.

    Returns:
        H×W×C float32, same colour space.

    Raises:
        WarpInputError: non-square image, bad landmarks or a weight outside 0..1.
    """
    if image.ndim != 3 or image.shape[0] != image.shape[1]:
        raise WarpInputError(f"warp needs a square H×W×C image, got {image.shape}", "align first")
    a = float(spline_weight)
    if not 0.0 <= a <= 1.0:
        raise WarpInputError(f"spline weight {spline_weight} is outside 0..1", "pass 0..1")
    size = image.shape[0]
    out = np.zeros(image.shape, np.float32)
    if a < 1.0:
        out += np.float32(1.0 - a) * _remap(image, warp_map(src_points, dst_points, size))
    if a > 0.0:
        out += np.float32(a) * _remap(image, tps_map(src_points, dst_points, size))
    return out


def shape_distance(a: np.ndarray, b: np.ndarray) -> float:
    """RMS distance between two 68-point shapes after similarity-aligning ``a`` onto ``b``,
    divided by ``b``'s RMS radius (scale-free)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    aligned = apply_similarity(fit_similarity(a, b), a)
    radius = np.sqrt(((b - b.mean(0)) ** 2).sum(1).mean())
    return float(np.sqrt(((aligned - b) ** 2).sum(1).mean()) / max(radius, 1e-9))


def nearest_reference(ref_points: np.ndarray, target_points: np.ndarray) -> int:
    """Index of the reference whose landmark shape is nearest the target's.

    Args:
        ref_points: K×68×2 float, reference landmarks.
        target_points: 68×2 float.

    Raises:
        WarpInputError: no references, or wrong shapes.
    """
    ref_points = np.asarray(ref_points, np.float64)
    if ref_points.ndim != 3 or ref_points.shape[0] == 0 or ref_points.shape[1:] != (68, 2):
        raise WarpInputError(
            f"references have landmark shape {ref_points.shape}, expected K×68×2 with K ≥ 1",
            "pass at least one reference with its 68 points",
        )
    target = _check_points(target_points, "target")
    return int(np.argmin([shape_distance(p, target) for p in ref_points]))


def warp_baseline(
    ref_images: np.ndarray, ref_points: np.ndarray, target_points: np.ndarray
) -> tuple[np.ndarray, int]:
    """The baseline: warp the nearest reference to the target landmarks.

    Args:
        ref_images: K×S×S×3 float32 in 0..1, display sRGB, aligned crops.
        ref_points: K×68×2 float, their landmarks in crop pixels.
        target_points: 68×2 float, target landmarks in crop pixels.

    Returns:
        ``(image, index)``: S×S×3 float32 display sRGB, and the reference used.

    Raises:
        WarpInputError: mismatched counts or shapes.
    """
    if len(ref_images) != len(ref_points):
        raise WarpInputError(
            f"{len(ref_images)} reference images but {len(ref_points)} landmark sets",
            "pass one 68×2 landmark set per reference",
        )
    k = nearest_reference(ref_points, target_points)
    return warp_image(ref_images[k], ref_points[k], target_points), k


def remap_torch(image: torch.Tensor, pixel_map: torch.Tensor) -> torch.Tensor:
    """Bilinear backward warp with a 4-D ``grid_sample``; matches ``cv2.remap`` (replicate border).

    Args:
        image: B×C×H×W float.
        pixel_map: B×H×W×2 float, (x, y) source pixel coordinates for each output pixel.

    Returns:
        B×C×H×W float.
    """
    h, w = image.shape[-2:]
    scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], device=pixel_map.device)
    grid = pixel_map * scale - 1.0  # B×H×W×2 in −1..1, align_corners=True convention
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


class Remap(nn.Module):
    """``nn.Module`` wrapper of :func:`remap_torch` (exports as ONNX GridSample, 4-D only)."""

    def forward(self, image: torch.Tensor, pixel_map: torch.Tensor) -> torch.Tensor:
        """B×C×H×W image, B×H×W×2 source pixel map → B×C×H×W."""
        return remap_torch(image, pixel_map)


def fusion_weights(distances: np.ndarray, top: int, temperature: float) -> np.ndarray:
    """Weights of the multi-reference fusion: softmax of ``−distance / temperature`` over the
    ``top`` nearest sources, zero for the rest.

    Args:
        distances: K float, :func:`shape_distance` of each source to the target.
        top: how many sources take part (1 = the nearest only, the baseline).
        temperature: softmax temperature in shape-distance units (0.01 ≈ 1 % of the face radius).

    Returns:
        K float64 weights summing to 1.

    Raises:
        WarpInputError: no sources, ``top`` < 1 or a non-positive temperature.
    """
    d = np.asarray(distances, np.float64).reshape(-1)
    if d.size == 0 or top < 1 or not temperature > 0:
        raise WarpInputError(
            f"fusion of {d.size} sources with top={top}, temperature={temperature}",
            "pass at least one source, top ≥ 1 and a positive temperature",
        )
    order = np.argsort(d, kind="stable")[:top]
    logits = -(d[order] - d[order[0]]) / temperature
    w = np.exp(logits)
    out = np.zeros_like(d)
    out[order] = w / w.sum()
    return out


def fused_warp(
    src_images: np.ndarray,
    src_points: np.ndarray,
    target_points: np.ndarray,
    top: int = 3,
    temperature: float = 0.01,
    spline_weight: float = 0.0,
    flow_align: float = 0.0,
) -> np.ndarray:
    """Multi-reference warp: the ``top`` nearest sources warped to the target and blended.

    Averaging several plausible warps lowers the error where one warp alone is wrong (hair,
    background, the mouth), weighted toward the sources whose landmark shape is nearest. With
    ``top=1`` and ``spline_weight=0`` it is exactly :func:`warp_baseline`'s image.

    Args:
        src_images: K×S×S×3 float32 in 0..1, display sRGB, aligned crops.
        src_points: K×68×2 float, their landmarks in crop pixels.
        target_points: 68×2 float, target landmarks in crop pixels.
        top: sources blended.
        temperature: see :func:`fusion_weights`.
        spline_weight: each source's warp, see :func:`warp_image` (0 = piecewise-affine).
        flow_align: how far each warp moves onto the blend's geometry before blending, see
            :func:`blend_warps` (0 = the plain weighted mean).

    Returns:
        S×S×3 float32, display sRGB.

    Raises:
        WarpInputError: mismatched counts, bad shapes or fusion settings.
    """
    src_points = np.asarray(src_points, np.float64)
    if len(src_images) != len(src_points) or len(src_images) == 0:
        raise WarpInputError(
            f"{len(src_images)} source images but {len(src_points)} landmark sets",
            "pass one 68×2 landmark set per source, at least one source",
        )
    target = _check_points(target_points, "target")
    dist = np.array([shape_distance(_check_points(p, "source"), target) for p in src_points])
    w = fusion_weights(dist, top, temperature)
    used = np.nonzero(w)[0]
    warped = [warp_image(src_images[k], src_points[k], target, spline_weight) for k in used]
    return blend_warps(warped, w[used], flow_align)


def _luma8(image: np.ndarray) -> np.ndarray:
    """S×S×3 float display sRGB → S×S uint8 luma (Rec.709 weights on the encoded values)."""
    y = np.asarray(image, np.float32) @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    return np.clip(np.rint(y * 255.0), 0, 255).astype(np.uint8)


def blend_flows(warped: Sequence[np.ndarray], weights: Sequence[float]) -> list[np.ndarray]:
    """Each warp's dense optical flow from the plain blend: S×S×2 float32 per warp.

    ``flow[y, x]`` is where, in the warp, the blend's pixel ``(x, y)`` is found (OpenCV's DIS
    flow on 8-bit luma, medium preset; deterministic).
    """
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    plain = _weighted_sum(warped, weights)
    base = _luma8(plain)
    return [dis.calc(base, _luma8(img), None) for img in warped]


def _weighted_sum(images: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    out = np.zeros(np.asarray(images[0]).shape, np.float32)
    for img, wi in zip(images, weights):
        out += np.float32(wi) * np.asarray(img, np.float32)
    return out


def _follow(image: np.ndarray, flow: np.ndarray, strength: float) -> np.ndarray:
    """``image`` resampled at ``x + strength·flow(x)`` (border pixels repeat)."""
    h, w = flow.shape[:2]
    grid = np.stack(np.meshgrid(np.arange(w), np.arange(h)), -1).astype(np.float32)
    return _remap(image, grid + np.float32(strength) * flow)


def blend_warps(
    warped: Sequence[np.ndarray],
    weights: Sequence[float],
    flow_align: float = 0.0,
    flows: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    """Blend several references warped to one target, optionally aligned to their consensus.

    Landmark warps of different references agree at the landmarks and disagree between them
    (creases, teeth, hair strands, the collar), so their plain weighted mean shows each detail
    twice, faintly. With ``flow_align`` > 0 each warp is first moved that fraction of the way
    onto the plain mean's geometry, along its optical flow from the mean
    (:func:`blend_flows`), and then the moved warps are blended with the same weights. At 1 all
    of them share the mean's geometry; at 0.5 they meet halfway. No truth is involved: only the
    warps themselves.

    Args:
        warped: N S×S×3 float32 display-sRGB warps of the same target.
        weights: N non-negative weights summing to 1 (:func:`fusion_weights`).
        flow_align: 0..1; 0 = the plain weighted mean.
        flows: :func:`blend_flows` of these warps, when already computed.

    Returns:
        S×S×3 float32, display sRGB.

    Raises:
        WarpInputError: no warps, mismatched counts or ``flow_align`` outside 0..1.
    """
    if len(warped) == 0 or len(warped) != len(weights):
        raise WarpInputError(
            f"{len(warped)} warps with {len(weights)} weights",
            "pass one weight per warp, at least one warp",
        )
    if not 0.0 <= flow_align <= 1.0:
        raise WarpInputError(f"flow_align {flow_align}", "pass a fraction in 0..1")
    if flow_align == 0.0 or len(warped) == 1:
        return _weighted_sum(warped, weights)
    if flows is None:
        flows = blend_flows(warped, weights)
    moved = [_follow(img, f, flow_align) for img, f in zip(warped, flows)]
    return _weighted_sum(moved, weights)
