"""The harness's image and landmark measures (see :mod:`pipeline.eval` for their definitions)."""

from __future__ import annotations

import math

import numpy as np
from skimage.metrics import structural_similarity

from pipeline.composite.config import CompositeConfig
from pipeline.composite.matte import face_matte
from pipeline.qc.tracking import jitter

#: Outer eye corners of the iBUG 68 layout, for the inter-ocular distance.
EYE_CORNERS = (36, 45)


def psnr(pred: np.ndarray, truth: np.ndarray) -> float:
    """PSNR in dB of two H×W×3 float images in 0..1 (display sRGB); capped at 100 dB."""
    return _db(float(np.mean((np.asarray(pred, np.float64) - np.asarray(truth, np.float64)) ** 2)))


def _db(mse: float) -> float:
    """PSNR in dB of a mean squared error on 0..1 images, capped at 100 dB."""
    return 100.0 if mse <= 1e-10 else 10.0 * math.log10(1.0 / mse)


def ssim_full(pred: np.ndarray, truth: np.ndarray) -> tuple[float, np.ndarray]:
    """skimage's SSIM with the harness's settings: ``(mean, H×W float64 map averaged over
    RGB)``; :func:`ssim` is the mean."""

    mean, full = structural_similarity(
        np.asarray(pred, np.float64),
        np.asarray(truth, np.float64),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1.0,
        channel_axis=2,
        full=True,
    )
    return float(mean), full.mean(axis=2)


def ssim(pred: np.ndarray, truth: np.ndarray) -> float:
    """SSIM of two H×W×3 float images in 0..1: skimage, Gaussian σ = 1.5, population covariance.

    ``structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    data_range=1.0, channel_axis=2)``: Wang et al. 2004's settings, averaged over channels.
    """
    return ssim_full(pred, truth)[0]


#: The harness's face region: the matte of the 128-px composite (its edge inside the landmark
#: hull), fixed so that the harness's figures stay comparable whatever the composite's defaults.
EVAL_MATTE = CompositeConfig(erode_px=2.0, feather_px=8.0)


def face_weights(points: np.ndarray, size: int) -> np.ndarray:
    """The region the harness scores: :func:`pipeline.composite.matte.face_matte` of ``points``
    (68×2 crop pixels) with :data:`EVAL_MATTE` → size×size float32 in 0..1."""

    return face_matte(np.asarray(points, np.float64), size, EVAL_MATTE)


def face_ssim(pred: np.ndarray, truth: np.ndarray, weights: np.ndarray) -> float:
    """SSIM map (as :func:`ssim`) averaged with ``weights`` (H×W, e.g. :func:`face_weights`);
    NaN when the weights are all zero."""
    w = np.asarray(weights, np.float64)
    total = float(w.sum())
    if not total > 0:
        return float("nan")
    return float((ssim_full(pred, truth)[1] * w).sum() / total)


def face_psnr(pred: np.ndarray, truth: np.ndarray, weights: np.ndarray) -> float:
    """PSNR in dB of the ``weights``-weighted mean squared error (H×W weights, 0..1 images);
    capped at 100 dB, NaN when the weights are all zero."""
    w = np.asarray(weights, np.float64)
    total = float(w.sum())
    if not total > 0:
        return float("nan")
    err = ((np.asarray(pred, np.float64) - np.asarray(truth, np.float64)) ** 2).mean(axis=2)
    return _db(float((err * w).sum() / total))


def inter_ocular(points: np.ndarray) -> float:
    """Distance between the outer eye corners (points 36 and 45) of 68×2 landmarks."""
    p = np.asarray(points, np.float64)
    return float(np.linalg.norm(p[EYE_CORNERS[0]] - p[EYE_CORNERS[1]]))


def landmark_error(points: np.ndarray, reference: np.ndarray) -> float:
    """Mean point-to-point distance of 68×2 landmarks over ``reference``'s inter-ocular distance."""
    p = np.asarray(points, np.float64)
    r = np.asarray(reference, np.float64)
    return float(np.linalg.norm(p - r, axis=1).mean() / max(inter_ocular(r), 1e-9))


def error_jitter(points: np.ndarray, reference: np.ndarray) -> float:
    """Temporal jitter of a landmark error over consecutive frames, over the inter-ocular distance.

    Args:
        points: T×68×2, re-fitted landmarks of consecutive output frames.
        reference: T×68×2, the truth's re-fitted landmarks of the same frames.

    Returns:
        mean over frames 1..T−1 of the RMS frame-to-frame change of ``points − reference``
        (:func:`pipeline.qc.tracking.jitter`), divided by the mean inter-ocular distance; 0 when
        the output moves exactly as the truth does. NaN for fewer than two frames.
    """

    p = np.asarray(points, np.float64)
    r = np.asarray(reference, np.float64)
    if len(p) < 2:
        return float("nan")
    iod = float(np.mean([inter_ocular(x) for x in r]))
    return float(np.nanmean(jitter(p - r)[1:]) / max(iod, 1e-9))
