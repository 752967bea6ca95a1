"""Similarity alignment of faces onto a canonical 68-point template.

One function, :func:`align_image`, aligns plate frames, the actor's reference stills and
paintings alike, so every crop the generator sees is framed the same way. The forward transform
(image → crop) and its inverse (crop → image) are kept: compositing uses the inverse to put the
synthesized face back into the plate.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.errors import NoFaceError

#: Crop sizes the profiles allow.
CROP_SIZES = (128, 256, 512)

#: 68×2 float64, iBUG 68 layout, in the unit square (x right, y down). The left-right symmetric
#: mean of dlib's 68-point fits on the two portraits that packages ship (scikit-image's astronaut,
#: matplotlib's Grace Hopper) and their mirror images, levelled so the eyes are horizontal. The
#: landmark bounding box spans x 0.225-0.775 and y 0.31-0.83, which leaves room for hair and chin
#: in the crop, as talking-head crops do.
CANONICAL_68 = np.array(
    [
        (0.2250, 0.4213),
        (0.2317, 0.4920),
        (0.2412, 0.5611),
        (0.2530, 0.6296),
        (0.2803, 0.6919),
        (0.3198, 0.7440),
        (0.3736, 0.7865),
        (0.4331, 0.8196),
        (0.5000, 0.8298),
        (0.5669, 0.8196),
        (0.6264, 0.7865),
        (0.6802, 0.7440),
        (0.7197, 0.6919),
        (0.7470, 0.6296),
        (0.7588, 0.5611),
        (0.7683, 0.4920),
        (0.7750, 0.4213),
        (0.2660, 0.3612),
        (0.2969, 0.3206),
        (0.3454, 0.3102),
        (0.3962, 0.3168),
        (0.4419, 0.3373),
        (0.5581, 0.3373),
        (0.6038, 0.3168),
        (0.6546, 0.3102),
        (0.7031, 0.3206),
        (0.7340, 0.3612),
        (0.5000, 0.4029),
        (0.5000, 0.4484),
        (0.5000, 0.4955),
        (0.5000, 0.5424),
        (0.4383, 0.5683),
        (0.4684, 0.5764),
        (0.5000, 0.5852),
        (0.5316, 0.5764),
        (0.5617, 0.5683),
        (0.3234, 0.4068),
        (0.3529, 0.3899),
        (0.3889, 0.3898),
        (0.4213, 0.4156),
        (0.3867, 0.4200),
        (0.3499, 0.4216),
        (0.5787, 0.4156),
        (0.6111, 0.3898),
        (0.6471, 0.3899),
        (0.6766, 0.4068),
        (0.6501, 0.4216),
        (0.6133, 0.4200),
        (0.3794, 0.6370),
        (0.4251, 0.6317),
        (0.4706, 0.6285),
        (0.5000, 0.6366),
        (0.5294, 0.6285),
        (0.5749, 0.6317),
        (0.6206, 0.6370),
        (0.5764, 0.6831),
        (0.5330, 0.7021),
        (0.5000, 0.7058),
        (0.4670, 0.7021),
        (0.4236, 0.6831),
        (0.3964, 0.6413),
        (0.4692, 0.6506),
        (0.5000, 0.6543),
        (0.5308, 0.6506),
        (0.6036, 0.6413),
        (0.5308, 0.6711),
        (0.5000, 0.6719),
        (0.4692, 0.6711),
    ],
    dtype=np.float64,
)
CANONICAL_68.setflags(write=False)


@dataclass(frozen=True)
class AlignedFace:
    """A face crop and the transforms that relate it to its source image.

    Attributes:
        crop: size×size×C, same dtype and colour space as the source image.
        points_in_crop: 68×2 float32, the landmarks in crop pixels.
        transform: 2×3 float64, image pixel → crop pixel.
        inverse: 2×3 float64, crop pixel → image pixel.
    """

    crop: np.ndarray
    points_in_crop: np.ndarray
    transform: np.ndarray
    inverse: np.ndarray


def _check_points(points: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    if pts.shape != (68, 2):
        raise ValueError(f"landmarks must be 68×2 (iBUG 68 layout), got shape {pts.shape}")
    if not np.isfinite(pts).all():
        raise NoFaceError(
            "landmarks contain NaN or infinite values, so the face cannot be aligned",
            "align only frames whose `tracked` flag is set",
        )
    return pts


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 8:
        raise ValueError(f"crop size must be an integer of at least 8 pixels, got {size!r}")
    return int(size)


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping ``src`` onto ``dst``.

    Umeyama (1991), without reflection.

    Args:
        src: K×2 float, source points.
        dst: K×2 float, target points.

    Returns:
        2×3 float64 matrix ``M`` with ``dst ≈ M @ [x, y, 1]``.

    Raises:
        ValueError: the shapes differ or the source points are all the same.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2:
        raise ValueError(
            f"umeyama needs two K×2 arrays of one shape, got {src.shape} and {dst.shape}"
        )
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    var_s = (s0**2).sum(1).mean()
    if var_s <= 1e-12:
        raise ValueError("umeyama: the source points coincide; no similarity is defined")
    u, sv, vt = np.linalg.svd(d0.T @ s0 / len(src))
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1.0
    rot = u @ np.diag(d) @ vt
    scale = float((sv * d).sum() / var_s)
    m = np.empty((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a 2×3 affine matrix. Returns: 2×3 float64."""
    return cv2.invertAffineTransform(np.asarray(m, np.float64))


def apply_affine(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map K×2 points (any float dtype) through a 2×3 matrix. Returns: K×2 float64."""
    pts = np.asarray(points, np.float64)
    return pts @ np.asarray(m, np.float64)[:, :2].T + np.asarray(m, np.float64)[:, 2]


def similarity_transform(points: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares similarity from a face's landmarks onto the template scaled to ``size``.

    Args:
        points: 68×2 float, iBUG 68 landmarks in image pixels.
        size: the crop side in pixels.

    Returns:
        ``(transform, inverse)``: 2×3 float64 each; image → crop and crop → image.

    Raises:
        ValueError: wrong shape or size.
        NoFaceError: the points hold NaN (an untracked frame).
    """
    pts = _check_points(points)
    size = _check_size(size)
    fwd = umeyama(pts, CANONICAL_68 * size)
    return fwd, invert_affine(fwd)


def align_image(
    image: np.ndarray,
    points: np.ndarray,
    size: int,
    *,
    border: int = cv2.BORDER_REPLICATE,
) -> AlignedFace:
    """Crop a face onto the canonical template: plate frames, reference stills and paintings alike.

    Large downscales are pre-filtered with an area resize so the crop does not alias.

    Args:
        image: H×W×C (or H×W) uint8 display sRGB, or float32 in any colour space; the crop keeps
            the dtype and colour space.
        points: 68×2 float, iBUG 68 landmarks in image pixels.
        size: the crop side in pixels (the profiles use 128, 256 or 512).
        border: an OpenCV border mode for pixels outside the image.

    Returns:
        the :class:`AlignedFace`.

    Raises:
        ValueError: wrong image or point shapes, or a bad size.
        NoFaceError: the points hold NaN.
    """
    img = np.asarray(image)
    if img.ndim not in (2, 3) or img.shape[0] < 2 or img.shape[1] < 2:
        raise ValueError(f"image must be H×W or H×W×C, got shape {img.shape}")
    fwd, inv = similarity_transform(points, size)
    scale = float(np.sqrt(abs(np.linalg.det(fwd[:, :2]))))
    src, m = img, fwd
    if scale < 0.5:
        # Shrink by an area filter first so that warpAffine's bilinear sampling does not alias.
        f = min(1.0, 2.0 * scale)
        h, w = img.shape[:2]
        nw, nh = max(2, round(w * f)), max(2, round(h * f))
        src = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
        pre = np.array([[nw / w, 0.0, 0.0], [0.0, nh / h, 0.0]])
        m = fwd @ np.vstack([invert_affine(pre), [0.0, 0.0, 1.0]])
    crop = cv2.warpAffine(src, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=border)
    if img.ndim == 3 and crop.ndim == 2:
        crop = crop[:, :, None]
    pts_crop = apply_affine(fwd, points).astype(np.float32)
    return AlignedFace(crop=crop, points_in_crop=pts_crop, transform=fwd, inverse=inv)
