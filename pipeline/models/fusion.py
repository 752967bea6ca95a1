"""G's warp input: the references nearest a target warped to it and blended (the fusion).

One :class:`Fusion` value says how: how many references, the blend's temperature, how much of
each reference's warp is the thin-plate spline, and how far the warps are moved onto their
consensus before blending. The same value is the ``fusion:`` config of a fine-tune and of
``train-base``, is chosen per actor by leave-one-out (:mod:`pipeline.train.fusion_choice`), is
saved in the checkpoint, and is what :class:`~pipeline.inference.actor.ActorModel` renders with.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from pipeline.errors import WarpInputError
from pipeline.warping.blend import blend_warps
from pipeline.warping.image import warp_image
from pipeline.warping.shapes import check_points, shape_distance


@dataclasses.dataclass(frozen=True)
class Fusion:
    """How G's warp input is built (:func:`fused_warp`).

    Attributes:
        top: references blended (1 = the nearest only).
        temperature: softmax temperature of their weights, in shape-distance units (0.01 ≈ 1 %
            of the face radius).
        spline: weight of the thin-plate spline's image in each reference's warp: 0 =
            piecewise-affine (the baseline's warp), 1 = the spline
            (:func:`pipeline.warping.image.warp_image`).
        flow: how far each warp moves onto the blend's geometry, along its optical flow, before
            blending: 0 = the plain weighted mean, 1 = every warp on the mean's geometry
            (:func:`pipeline.warping.blend.blend_warps`).
    """

    top: int = 3
    temperature: float = 0.01
    spline: float = 0.0
    flow: float = 0.0

    def validate(self) -> list[tuple[str, str]]:
        """Problems as ``(key, what)``; empty when valid."""
        probs = []
        if self.top < 1:
            probs.append(("top", f"got {self.top}, expected ≥ 1"))
        if not self.temperature > 0:
            probs.append(("temperature", f"got {self.temperature}, expected > 0"))
        for key in ("spline", "flow"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                probs.append((key, f"got {getattr(self, key)}, expected 0..1"))
        return probs

    def key(self) -> str:
        """``"top/temperature/spline/flow"``, as in the leave-one-out choice's scores."""
        return f"{self.top}/{self.temperature}/{self.spline}/{self.flow}"

    def to_json(self) -> dict[str, Any]:
        """``{"top", "temperature", "spline", "flow"}``: what checkpoints and results record."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Fusion:
        """The fusion a checkpoint or result recorded (:meth:`to_json`)."""
        return cls(
            top=int(data["top"]),
            temperature=float(data["temperature"]),
            spline=float(data["spline"]),
            flow=float(data.get("flow", 0.0)),
        )


#: One reference, the nearest, warped piecewise-affine: the warp baseline's image, and what a
#: checkpoint without a recorded fusion renders with.
NEAREST = Fusion(top=1)


def fusion_weights(distances: np.ndarray, top: int, temperature: float) -> np.ndarray:
    """Weights of the multi-reference fusion: softmax of ``−distance / temperature`` over the
    ``top`` nearest sources, zero for the rest.

    Args:
        distances: K float, :func:`~pipeline.warping.shapes.shape_distance` of each source to the
            target.
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
    fusion: Fusion = Fusion(),
) -> np.ndarray:
    """Multi-reference warp: the ``fusion.top`` nearest sources warped to the target and blended.

    Averaging several plausible warps lowers the error where one warp alone is wrong (hair,
    background, the mouth), weighted toward the sources whose landmark shape is nearest. With
    ``Fusion(top=1)`` it is exactly :func:`~pipeline.warping.image.warp_baseline`'s image.

    Args:
        src_images: K×S×S×3 float32 in 0..1, display sRGB, aligned crops.
        src_points: K×68×2 float, their landmarks in crop pixels.
        target_points: 68×2 float, target landmarks in crop pixels.
        fusion: how the sources are warped and blended.

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
    target = check_points(target_points, "target")
    dist = np.array([shape_distance(check_points(p, "source"), target) for p in src_points])
    w = fusion_weights(dist, fusion.top, fusion.temperature)
    used = np.nonzero(w)[0]
    warped = [warp_image(src_images[k], src_points[k], target, fusion.spline) for k in used]
    return blend_warps(warped, w[used], fusion.flow)
