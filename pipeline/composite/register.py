"""The synthesized face registered onto the plate's face: a smooth optical flow that moves the
actor's features (eyes, glasses, lip corners, jaw line) the last few pixels onto the
performance, so they stick to the plate instead of swimming a little around it.

The flow is measured between the two crops' luma at a working size, smoothed (only broad
displacements are kept: the actor's own fine shape stays) and scaled to the crop.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.warping.maps import rescale_field, sample

#: The largest crop side the flow is measured at.
FLOW_SIZE = 256


def _luma8(img: np.ndarray) -> np.ndarray:
    """S×S×3 float32 scene-linear → S×S uint8, a perceptual (square-root) luma."""
    y = np.asarray(img, np.float32) @ np.array([0.2722, 0.6741, 0.0537], np.float32)
    return np.clip(np.sqrt(np.maximum(y, 0.0)) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _matched(luma: np.ndarray, like: np.ndarray) -> np.ndarray:
    """``luma`` (uint8) with the mean and deviation of ``like``, so that the flow follows
    features, not a difference of exposure or colour."""
    a, b = luma.astype(np.float32), like.astype(np.float32)
    out = (a - a.mean()) * (b.std() / max(float(a.std()), 1e-3)) + b.mean()
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def register_to_plate(
    face: np.ndarray, plate: np.ndarray, strength: float, sigma_px: float
) -> np.ndarray:
    """``face`` moved onto ``plate`` along their smoothed optical flow.

    Args:
        face: S×S×3 float32, scene-linear ACEScg, the synthesized crop.
        plate: S×S×3 float32, scene-linear ACEScg, the plate warped into the crop.
        strength: 0..1, how far along the flow (0 returns ``face``).
        sigma_px: the flow's smoothing, in pixels of the S crop.

    Returns:
        S×S×3 float32, scene-linear ACEScg.
    """
    if strength <= 0.0:
        return face
    s = face.shape[0]
    m = min(s, FLOW_SIZE)
    small = lambda a: cv2.resize(a, (m, m), interpolation=cv2.INTER_AREA)  # noqa: E731
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    target = _luma8(small(plate))
    moving = _matched(_luma8(small(face)), target)  # exposure and contrast differences aside
    flow = dis.calc(target, moving, None)  # plate x → face x + flow
    flow = cv2.GaussianBlur(flow, (0, 0), max(sigma_px * m / s, 0.5))
    full = rescale_field(flow, s, strength * s / m)
    grid = np.stack(np.meshgrid(np.arange(s), np.arange(s)), -1).astype(np.float32)
    return sample(face, grid + full)


def _detail(img: np.ndarray, mask: np.ndarray) -> float:
    """Mean |Laplacian of Gaussian| (σ = 1 px) of perceptual luma under ``mask``."""
    log = cv2.Laplacian(cv2.GaussianBlur(_luma8(img).astype(np.float32), (0, 0), 1.0), cv2.CV_32F)
    return float(np.abs(log)[mask].mean())


def soften(img: np.ndarray, sigma: float) -> np.ndarray:
    """``img`` (S×S×3 float32, scene-linear) blurred by ``sigma`` pixels; itself at 0."""
    if sigma <= 0:
        return img
    return cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


#: A face this much sharper than the plate, or less, is left alone (resampling noise).
SHARPER = 1.1
#: The strongest blur :func:`sharpness_match` applies, in plate pixels.
MAX_SOFTEN = 3.0


def sharpness_match(
    faces: list[np.ndarray],
    plates: list[np.ndarray],
    mattes: list[np.ndarray],
    scale: float = 1.0,
) -> tuple[float, float]:
    """The one blur that brings the faces' fine detail down to the plate's, for a whole shot.

    A sharp reference photo put on a soft plate looks pasted on, and its extra texture swims
    more from frame to frame than the plate does: as a compositor matches a plate's softness,
    the face is blurred just enough that its detail (mean |LoG| in the landmark hull) is no
    more than the plate's, over the sampled frames (median). A face already softer than the
    plate, or within :data:`SHARPER` of it, is left alone.

    Detail is measured at the plate's own scale (the crops resampled by ``scale``), where the
    plate's pixels are real and not interpolated.

    Args:
        faces: sample S×S×3 float32 crops (scene-linear), registered as they will be used.
        plates: the plate warped into the same crops.
        mattes: S×S masks of where to compare (the landmark hull), any numeric type.
        scale: plate pixels per crop pixel.

    Returns:
        ``(sigma, ratio)``: the blur in crop pixels (0: none), and the detail ratio before it.
    """
    s = faces[0].shape[0] if faces else 0
    side = max(16, int(round(s * scale)))
    to_plate = lambda a: cv2.resize(a, (side, side), interpolation=cv2.INTER_AREA)  # noqa: E731
    pairs = []
    for f, p, m in zip(faces, plates, mattes):
        core = to_plate(m.astype(np.float32)) >= 0.5
        if core.sum() > 64:
            pairs.append((to_plate(f), to_plate(p), core))
    if not pairs:
        return 0.0, float("nan")
    ref = [_detail(p, c) for _, p, c in pairs]

    def ratio(sigma: float) -> float:
        return float(np.median([_detail(soften(f, sigma), c) / max(r, 1e-9)
                                for (f, _, c), r in zip(pairs, ref)]))  # fmt: skip

    before = ratio(0.0)
    if before <= SHARPER:
        return 0.0, before
    lo, hi = 0.0, MAX_SOFTEN  # plate pixels; the detail falls as the blur grows
    if ratio(hi) > 1.0:
        return hi * s / side, before
    for _ in range(10):  # bisect to the blur that leaves as much detail as the plate has
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if ratio(mid) > 1.0 else (lo, mid)
    return hi * s / side, before
