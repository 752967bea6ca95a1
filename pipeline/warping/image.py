"""An image warped so that its landmarks land on target landmarks, and the warp baseline W.

W, the nearest reference frame warped to the target landmarks, has no parameters. It is not in
Zakharov et al. 2019: it is the floor the learned model must beat, and, optionally, G's second
input (``Generator(use_warp=True)``), so that G learns a correction instead of a whole face.
"""

from __future__ import annotations

import numpy as np

from pipeline.errors import WarpInputError
from pipeline.warping.blend import weighted_sum
from pipeline.warping.mesh import warp_map
from pipeline.warping.remap import remap
from pipeline.warping.shapes import nearest_reference
from pipeline.warping.tps import tps_map


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
    warps, weights = [], []  # only the maps that take part are computed
    if a < 1.0:
        warps.append(remap(image, warp_map(src_points, dst_points, size)))
        weights.append(1.0 - a)
    if a > 0.0:
        warps.append(remap(image, tps_map(src_points, dst_points, size)))
        weights.append(a)
    return weighted_sum(warps, weights)


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
