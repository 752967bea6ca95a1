"""Several warps of one target blended, optionally aligned to their consensus along optical flow."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from pipeline.errors import WarpInputError
from pipeline.warping.remap import remap


def luma8(image: np.ndarray) -> np.ndarray:
    """S×S×3 float display sRGB → S×S uint8 luma (Rec.709 weights on the encoded values)."""
    y = np.asarray(image, np.float32) @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    return np.clip(np.rint(y * 255.0), 0, 255).astype(np.uint8)


def blend_flows(warped: Sequence[np.ndarray], weights: Sequence[float]) -> list[np.ndarray]:
    """Each warp's dense optical flow from the plain blend: S×S×2 float32 per warp.

    ``flow[y, x]`` is where, in the warp, the blend's pixel ``(x, y)`` is found (OpenCV's DIS
    flow on 8-bit luma, medium preset; deterministic).
    """
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    plain = weighted_sum(warped, weights)
    base = luma8(plain)
    return [dis.calc(base, luma8(img), None) for img in warped]


def weighted_sum(images: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """Σ wᵢ·imageᵢ in float32 (each weight rounded to float32 first): N same-shape images → one.
    The one weighted blend of warps, used wherever images are mixed by weight."""
    out = np.zeros(np.asarray(images[0]).shape, np.float32)
    for img, wi in zip(images, weights):
        out += np.float32(wi) * np.asarray(img, np.float32)
    return out


def _follow(image: np.ndarray, flow: np.ndarray, strength: float) -> np.ndarray:
    """``image`` resampled at ``x + strength·flow(x)`` (border pixels repeat)."""
    h, w = flow.shape[:2]
    grid = np.stack(np.meshgrid(np.arange(w), np.arange(h)), -1).astype(np.float32)
    return remap(image, grid + np.float32(strength) * flow)


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
        return weighted_sum(warped, weights)
    if flows is None:
        flows = blend_flows(warped, weights)
    moved = [_follow(img, f, flow_align) for img, f in zip(warped, flows)]
    return weighted_sum(moved, weights)
