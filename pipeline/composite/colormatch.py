"""Colour and light match of a synthesized face to the plate, under the face matte.

Two modes, chosen by name from :data:`MODES`:

- ``linear_gain``: a low-frequency, per-channel gain in linear light, the ratio of the plate to
  the face, each blurred under the matte (normalized convolution), clamped. It corrects exposure,
  white balance and soft shading differences, and leaves detail alone. Its parameters are a small
  ``grid×grid×3`` gain image, cheap to smooth over time.
- ``lab_stats``: mean and standard deviation per channel in a Lab-like perceptual space
  (CIE L*a*b* with a pure cube root, from ACEScg through XYZ, D60 white), transferred from plate
  to face (Reinhard et al. 2001). Its parameters are 4×3 numbers: face mean, face deviation,
  plate mean, plate deviation.

Both work on crops in the same (crop) space: the synthesized crop and the plate warped into the
crop with the forward alignment transform.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.errors import CompositeError

#: ACEScg (AP1 primaries) → CIE XYZ, ACES white (D60). From the ACES specification (S-2014-004).
AP1_TO_XYZ = np.array(
    [
        [0.6624541811, 0.1340042065, 0.1561876870],
        [0.2722287168, 0.6740817658, 0.0536895174],
        [-0.0055746495, 0.0040607335, 1.0103391003],
    ],
    dtype=np.float64,
)
XYZ_TO_AP1 = np.linalg.inv(AP1_TO_XYZ)
#: The ACES white in XYZ (Y = 1): the row sums of AP1_TO_XYZ.
WHITE_XYZ = AP1_TO_XYZ.sum(axis=1)


def linear_to_lab(rgb: np.ndarray) -> np.ndarray:
    """Scene-linear ACEScg to a Lab-like space: CIE L*a*b* with a pure (signed) cube root.

    The linear toe of CIE L*a*b* is left out so the map is smooth, odd and exactly invertible
    for any float input, negatives and values over 1 included.

    Args:
        rgb: ...×3 float, scene-linear ACEScg.

    Returns:
        ...×3 float32: L (100 at Y = 1), a, b.
    """
    xyz = np.asarray(rgb, np.float64) @ AP1_TO_XYZ.T / WHITE_XYZ
    f = np.cbrt(xyz)
    lab = np.stack(
        [
            116.0 * f[..., 1] - 16.0,
            500.0 * (f[..., 0] - f[..., 1]),
            200.0 * (f[..., 1] - f[..., 2]),
        ],
        axis=-1,
    )
    return lab.astype(np.float32)


def lab_to_linear(lab: np.ndarray) -> np.ndarray:
    """Inverse of :func:`linear_to_lab`.

    Args:
        lab: ...×3 float, Lab-like values.

    Returns:
        ...×3 float32, scene-linear ACEScg.
    """
    lab = np.asarray(lab, np.float64)
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], axis=-1)
    xyz = f**3 * WHITE_XYZ
    return (xyz @ XYZ_TO_AP1.T).astype(np.float32)


def _check_pair(face: np.ndarray, plate: np.ndarray, matte: np.ndarray) -> None:
    if face.ndim != 3 or face.shape[2] != 3:
        raise CompositeError(f"face must be H×W×3, got shape {face.shape}")
    if plate.shape != face.shape:
        raise CompositeError(
            f"plate crop must match the face crop's shape {face.shape}, got {plate.shape}",
            "warp the plate into crop space first (pipeline.composite.comp.plate_to_crop)",
        )
    if matte.shape != face.shape[:2]:
        raise CompositeError(f"matte must be {face.shape[:2]} (H×W of the crop), got {matte.shape}")
    for name, a in (("face", face), ("plate crop", plate), ("matte", matte)):
        if a.dtype != np.float32:
            raise CompositeError(f"{name} must be float32 (scene-linear ACEScg), got {a.dtype}")


@dataclass(frozen=True)
class GainParams:
    """Settings of the ``linear_gain`` mode.

    Attributes:
        sigma_px: blur in crop pixels; larger keeps only broader light differences.
        gain_min: smallest gain allowed per channel.
        gain_max: largest gain allowed per channel.
        grid: side of the gain image, in cells.
        keep_tone: keep the face's own mean colour: the gain's mean per channel is made
            neutral (its luminance kept), so the plate gives the shading and exposure and the
            face keeps its skin tone (another actor than the performer).
    """

    sigma_px: float = 12.0
    gain_min: float = 0.25
    gain_max: float = 4.0
    grid: int = 32
    keep_tone: bool = False


def estimate_gain(
    face: np.ndarray, plate: np.ndarray, matte: np.ndarray, params: GainParams
) -> np.ndarray:
    """Low-frequency per-channel gain that takes ``face`` to ``plate`` under ``matte``.

    Both images are weighted by the matte, reduced to ``grid×grid`` cells (area average),
    blurred by ``sigma_px`` (scaled to the grid) and divided; cells the blurred matte does not
    reach take the global ratio. The ratio is clamped to ``[gain_min, gain_max]``.

    Args:
        face: S×S×3 float32, scene-linear ACEScg, the synthesized crop.
        plate: S×S×3 float32, scene-linear ACEScg, the plate warped into the crop.
        matte: S×S float32 in [0, 1], crop-space face matte.
        params: the gain settings.

    Returns:
        grid×grid×3 float32 gain image (linear-light multipliers).

    Raises:
        CompositeError: bad shapes or dtypes, or an empty matte.
    """
    _check_pair(face, plate, matte)
    msum = float(matte.sum())
    if msum <= 0:
        raise CompositeError("the matte is empty, so no colour statistics can be taken")
    g = int(params.grid)
    m = matte[:, :, None]
    small = [
        cv2.resize(np.ascontiguousarray(a), (g, g), interpolation=cv2.INTER_AREA)
        for a in (face * m, plate * m, matte)
    ]
    sigma = max(params.sigma_px * g / face.shape[1], 0.3)
    fm, pm, mm = (cv2.GaussianBlur(a, (0, 0), sigma, borderType=cv2.BORDER_REFLECT) for a in small)
    mm = mm[:, :, None]
    glob_f = (face * m).reshape(-1, 3).sum(0) / msum
    glob_p = (plate * m).reshape(-1, 3).sum(0) / msum
    glob = _safe_ratio(glob_p, glob_f)
    reach = mm > 1e-3 * float(mm.max())
    ratio = np.where(reach & (np.abs(fm) > 1e-6), pm / np.where(np.abs(fm) > 1e-6, fm, 1.0), glob)
    if params.keep_tone:
        # the matte-weighted mean gain per channel → its luminance on every channel
        mean = (ratio * mm).reshape(-1, 3).sum(0) / max(float(mm.sum()), 1e-9)
        ratio = ratio * (float(AP1_TO_XYZ[1] @ mean) / np.maximum(mean, 1e-6))
    return np.clip(ratio, params.gain_min, params.gain_max).astype(np.float32)


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.where(np.abs(den) > 1e-6, num / np.where(np.abs(den) > 1e-6, den, 1.0), 1.0)


def apply_gain(face: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """Multiply ``face`` by a gain image upsampled (bilinear) to its size.

    Args:
        face: S×S×3 float32, scene-linear ACEScg.
        gain: G×G×3 float32 gain image from :func:`estimate_gain`.

    Returns:
        S×S×3 float32, scene-linear ACEScg.
    """
    if gain.ndim != 3 or gain.shape[2] != 3:
        raise CompositeError(f"gain must be G×G×3, got shape {gain.shape}")
    h, w = face.shape[:2]
    up = cv2.resize(np.asarray(gain, np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    return (face * up).astype(np.float32)


def estimate_lab_stats(
    face: np.ndarray, plate: np.ndarray, matte: np.ndarray, params: GainParams | None = None
) -> np.ndarray:
    """Matte-weighted mean and deviation per channel of face and plate in the Lab-like space.

    Args:
        face: S×S×3 float32, scene-linear ACEScg, the synthesized crop.
        plate: S×S×3 float32, scene-linear ACEScg, the plate warped into the crop.
        matte: S×S float32 in [0, 1], crop-space face matte.
        params: unused; accepted so every mode has one signature.

    Returns:
        4×3 float32: face mean, face deviation, plate mean, plate deviation (rows), per L, a, b.

    Raises:
        CompositeError: bad shapes or dtypes, or an empty matte.
    """
    _check_pair(face, plate, matte)
    w = matte.reshape(-1).astype(np.float64)
    if w.sum() <= 0:
        raise CompositeError("the matte is empty, so no colour statistics can be taken")
    w /= w.sum()
    rows = []
    for img in (face, plate):
        lab = linear_to_lab(img).reshape(-1, 3).astype(np.float64)
        mu = w @ lab
        sd = np.sqrt(np.maximum(w @ (lab - mu) ** 2, 0.0))
        rows += [mu, sd]
    return np.asarray(rows, np.float32)


#: Bounds on the deviation ratio, so a flat face never gets blown up.
_SD_RATIO = (0.25, 4.0)


def apply_lab_stats(face: np.ndarray, stats: np.ndarray) -> np.ndarray:
    """Move ``face`` from its own mean/deviation to the plate's, in the Lab-like space.

    Args:
        face: S×S×3 float32, scene-linear ACEScg.
        stats: 4×3 float32 from :func:`estimate_lab_stats`.

    Returns:
        S×S×3 float32, scene-linear ACEScg.
    """
    st = np.asarray(stats, np.float64)
    if st.shape != (4, 3):
        raise CompositeError(f"lab stats must be 4×3, got shape {st.shape}")
    mu_f, sd_f, mu_p, sd_p = st
    scale = np.clip(sd_p / np.maximum(sd_f, 1e-6), *_SD_RATIO)
    lab = linear_to_lab(face).astype(np.float64)
    return lab_to_linear((lab - mu_f) * scale + mu_p)


@dataclass(frozen=True)
class ColorMode:
    """One colour-match mode: how to estimate its per-frame parameters and apply them."""

    estimate: Callable[[np.ndarray, np.ndarray, np.ndarray, GainParams], np.ndarray]
    apply: Callable[[np.ndarray, np.ndarray], np.ndarray]


def _identity_estimate(
    face: np.ndarray, plate: np.ndarray, matte: np.ndarray, params: GainParams
) -> np.ndarray:
    _check_pair(face, plate, matte)
    return np.zeros((0,), np.float32)


#: Colour-match modes by the name the profile uses.
MODES: dict[str, ColorMode] = {
    "linear_gain": ColorMode(estimate_gain, apply_gain),
    "lab_stats": ColorMode(estimate_lab_stats, apply_lab_stats),
    "none": ColorMode(_identity_estimate, lambda face, params: face.astype(np.float32)),
}


def get_mode(name: str) -> ColorMode:
    """The colour-match mode called ``name``.

    Raises:
        CompositeError: unknown name.
    """
    try:
        return MODES[name]
    except KeyError:
        raise CompositeError(
            f"unknown colour-match mode {name!r}", f"use one of {', '.join(sorted(MODES))}"
        ) from None


def color_match(
    face: np.ndarray,
    plate: np.ndarray,
    matte: np.ndarray,
    mode: str = "linear_gain",
    params: GainParams | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Match the synthesized face's colour and light to the plate under the matte.

    Args:
        face: S×S×3 float32, scene-linear ACEScg, the synthesized crop.
        plate: S×S×3 float32, scene-linear ACEScg, the plate warped into the crop.
        matte: S×S float32 in [0, 1], crop-space face matte.
        mode: a key of :data:`MODES`.
        params: gain settings (``linear_gain`` only); defaults when omitted.

    Returns:
        ``(matched, parameters)``: S×S×3 float32 scene-linear ACEScg, and the per-frame
        parameters (smooth them over time, then re-apply with ``MODES[mode].apply``).

    Raises:
        CompositeError: unknown mode, bad shapes or dtypes, or an empty matte.
    """
    m = get_mode(mode)
    p = m.estimate(face, plate, matte, params or GainParams())
    return m.apply(face, p), p
