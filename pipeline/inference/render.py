"""The face rendered at the plate's resolution: real pixels of the references, one geometry, and
at most a band-limited correction from the network.

Per frame, with the target landmarks in an R-pixel crop (R follows the face in the plate,
:func:`render_size`):

1. the references the actor's :class:`~pipeline.models.fusion.Fusion` picks are each warped to
   the target by one backward map (mesh and spline mixed as geometry,
   :func:`pipeline.warping.maps.warp_map_at`) straight from their full-resolution crops;
2. with several references, every one but the nearest is registered onto the nearest's
   geometry first (optical flow between their S-pixel warps, scaled to R and composed with the
   map), so the blend mixes registered images and no feature appears twice;
3. the network, when it runs, sees its usual S-pixel inputs; only the low band of what it
   changes (its output minus its warp input, Gaussian-blurred) is added, so fine detail always
   comes from real pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from pipeline.errors import StageError
from pipeline.landmarks.sidecar import Landmarks
from pipeline.models.fusion import fusion_weights
from pipeline.models.rasterize import rasterize
from pipeline.references.store import References
from pipeline.warping.blend import luma8
from pipeline.warping.maps import compose, rescale_field, sample, warp_map_at
from pipeline.warping.shapes import shape_distance

#: Render sizes are multiples of this many pixels.
SIZE_STEP = 32


@dataclass(frozen=True)
class RenderSize:
    """The shot's render size and what it asks of the references.

    Attributes:
        size: R, the crop side the face is rendered at (one per shot).
        face_px: the plate face's crop side in plate pixels (90th percentile over the shot).
        native: the largest reference's own resolution (crop side at 1:1).
        upscale: R / ``native`` when above 1: how much the best reference is enlarged.
    """

    size: int
    face_px: float
    native: float

    @property
    def upscale(self) -> float:
        return max(1.0, self.size / max(self.native, 1.0))

    def to_json(self) -> dict[str, Any]:
        return {
            "render_size": self.size,
            "plate_face_px": round(self.face_px, 1),
            "reference_native_px": round(self.native, 1),
            "reference_upscale": round(self.upscale, 3),
        }


def render_size(lm: Landmarks, refs: References, minimum: int, maximum: int) -> RenderSize:
    """The crop side that puts about one crop pixel on one plate pixel.

    The plate face's crop side is the tracking crop's side times its crop → plate scale, per
    tracked frame; the 90th percentile over the shot, rounded up to :data:`SIZE_STEP`, clamped
    to ``[minimum, maximum]`` and to the references' full-resolution crops.

    Args:
        lm: the shot's landmarks (their crop transforms).
        refs: the actor's references (their full-resolution size and native resolutions).
        minimum: the smallest size (the network's).
        maximum: the largest size (``synth.max_crop``).
    """
    ok = np.asarray(lm.tracked, bool) & np.isfinite(lm.inverse).all(axis=(1, 2))
    if ok.any():
        scale = np.sqrt(np.abs(np.linalg.det(lm.inverse[ok][:, :, :2].astype(np.float64))))
        face = float(np.percentile(scale * lm.crop_size, 90))
    else:
        face = float(minimum)
    r = SIZE_STEP * math.ceil(face / SIZE_STEP)
    r = int(min(max(r, minimum), maximum, max(refs.detail_size, minimum)))
    return RenderSize(r, face, float(refs.native_sizes.max()))


class PlateRenderer:
    """Renders the actor's face crop at R pixels from the full-resolution references.

    Args:
        ref_images: K×S×S×3 float32 0..1 display sRGB, the network-size references (as the
            fine-tune checkpoint holds them).
        ref_points: K×68×2 float, their landmarks in S-crop pixels.
        refs: the references stage's output, the same K references with ``detail`` crops.
        fusion: how the references are picked and weighted (``top``, ``temperature``,
            ``spline``).
        size: R.
        correction_sigma: blur (S-crop pixels) of the network's correction; the band above it
            never comes from the network.
        detail_sigma: with several references, the band above this blur (S-crop pixels) comes
            from the nearest reference alone and the band below from the registered blend of
            all (0: the blend throughout).

    Raises:
        StageError: ``refs`` are not the checkpoint's references.
    """

    def __init__(
        self,
        ref_images: np.ndarray,
        ref_points: np.ndarray,
        refs: References,
        fusion: Any,
        size: int,
        correction_sigma: float = 4.0,
        detail_sigma: float = 0.0,
    ) -> None:
        if len(refs.points) != len(ref_points) or not np.allclose(
            refs.points, ref_points, atol=1e-3
        ):
            raise StageError(
                "the references stage's output is not the references the fine-tune used",
                "rerun the references and fine-tune stages",
            )
        self.small = np.asarray(ref_images, np.float32)
        self.points = np.asarray(ref_points, np.float64)
        self.s = int(self.small.shape[1])
        self.detail = refs.detail.astype(np.float32) / np.float32(255.0)  # K×H×H×3 sRGB
        self.points_hi = self.points * (refs.detail_size / self.s)
        self.fusion = fusion
        self.size = int(size)
        self.sigma = float(correction_sigma)
        self.detail_sigma = float(detail_sigma)

    def weights(self, target_small: np.ndarray) -> np.ndarray:
        """K fusion weights for S-crop target landmarks (the fine-tune's fusion)."""
        dist = np.array([shape_distance(p, target_small) for p in self.points])
        return fusion_weights(dist, self.fusion.top, self.fusion.temperature)

    def warp(self, target: np.ndarray) -> np.ndarray:
        """The references warped to R-crop landmarks ``target`` (68×2), registered onto the
        nearest's geometry and blended → R×R×3 float32, display sRGB."""
        r, s = self.size, self.s
        small_target = np.asarray(target, np.float64) * (s / r)
        w = self.weights(small_target)
        used = [int(k) for k in np.argsort(-w) if w[k] > 0]
        spline = float(self.fusion.spline)
        maps = {k: warp_map_at(self.points_hi[k], target, r, spline) for k in used}
        if len(used) > 1:
            small = {
                k: sample(self.small[k], warp_map_at(self.points[k], small_target, s, spline))
                for k in used
            }
            dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
            base = luma8(small[used[0]])
            for k in used[1:]:
                flow = dis.calc(base, luma8(small[k]), None)  # S×S×2: primary x → warp k
                maps[k] = compose(maps[k], rescale_field(flow, r, r / s))
        images = {k: sample(self.detail[k], maps[k]) for k in used}
        out = np.zeros((r, r, 3), np.float32)
        for k in used:
            out += np.float32(w[k]) * images[k]
        if len(used) > 1 and self.detail_sigma > 0:
            sd = self.detail_sigma * r / s
            blur = lambda a: cv2.GaussianBlur(a, (0, 0), sd, borderType=cv2.BORDER_REFLECT)  # noqa: E731
            nearest = images[used[0]]
            out = blur(out) + (nearest - blur(nearest))
        return out

    def correction(self, net_out: np.ndarray, net_warp: np.ndarray) -> np.ndarray:
        """The network's band-limited correction at R: ``blur(out − warp input)`` (S×S×3 each)
        resampled to R×R×3 float32 (display sRGB differences)."""
        diff = np.asarray(net_out, np.float32) - np.asarray(net_warp, np.float32)
        low = cv2.GaussianBlur(diff, (0, 0), self.sigma, borderType=cv2.BORDER_REFLECT)
        return rescale_field(low, self.size)

    def small_warp(self, image: np.ndarray) -> np.ndarray:
        """An R×R×3 render at the network's size (area average) → S×S×3 float32."""
        return cv2.resize(image, (self.s, self.s), interpolation=cv2.INTER_AREA)


def render_chunk(
    renderer: PlateRenderer,
    engine: Any | None,
    actor: Any,
    targets: np.ndarray,
    batch_size: int,
    progress: Any = None,
) -> np.ndarray:
    """Render a chunk's faces at R.

    Args:
        renderer: the :class:`PlateRenderer`.
        engine: the network's engine (``landmarks``, optionally ``warp`` in, ``image`` out), or
            None to deliver the warp alone.
        actor: the :class:`~pipeline.inference.actor.ActorModel` (the network's warp input).
        targets: N×68×2 R-crop landmarks (NaN rows are skipped).
        batch_size: frames per engine call.
        progress: optional callable ``(done, total)``.

    Returns:
        N×R×R×3 float32 0..1, display sRGB (zeros for skipped rows).
    """
    r, s = renderer.size, renderer.s
    out = np.zeros((len(targets), r, r, 3), np.float32)
    todo = [i for i in range(len(targets)) if np.isfinite(targets[i]).all()]
    names = {spec.name for spec in engine.input_spec()} if engine is not None else set()
    for b in range(0, len(todo), batch_size):
        idx = todo[b : b + batch_size]
        warps = [renderer.warp(targets[i]) for i in idx]
        if engine is not None:
            small = [(targets[i] * (s / r)).astype(np.float32) for i in idx]
            lms = np.stack([rasterize(p, s) for p in small])  # B×S×S×3
            feed = {"landmarks": np.ascontiguousarray(lms.transpose(0, 3, 1, 2), np.float32)}
            if "warp" in names:
                net_in = np.stack([actor.warp_input(p) for p in small])  # B×S×S×3 sRGB
            else:
                net_in = np.stack([renderer.small_warp(w) for w in warps])
            if "warp" in names:
                feed["warp"] = np.ascontiguousarray(net_in.transpose(0, 3, 1, 2), np.float32)
            net = np.asarray(engine(**feed)["image"], np.float32).transpose(0, 2, 3, 1)
            warps = [w + renderer.correction(o, n) for w, o, n in zip(warps, net, net_in)]
        for i, w in zip(idx, warps):
            out[i] = np.clip(w, 0.0, 1.0)
        if progress is not None:
            progress(min(b + batch_size, len(todo)), len(todo))
    return out
