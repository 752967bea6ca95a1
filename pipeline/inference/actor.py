"""A fine-tuned actor ready to render: G with the actor's ψ′, and the references its warp input
is built from, as a fine-tune checkpoint holds them. Rendering needs nothing from training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pipeline.errors import CheckpointError
from pipeline.models.checkpoint import CHECKPOINT_NAME, build_models, load_checkpoint
from pipeline.models.fusion import NEAREST, Fusion, fused_warp
from pipeline.models.generator import Generator
from pipeline.models.rasterize import rasterize
from pipeline.warping.image import warp_image
from pipeline.warping.shapes import nearest_reference
from pipeline.workspace import read_manifest

#: Golden engine inputs are taken from at most this many references.
GOLDEN_FRAMES = 8


def to_chw(images: np.ndarray) -> torch.Tensor:
    """N×S×S×3 float32 → N×3×S×S tensor (same values and colour space)."""
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


class ActorModel:
    """A fine-tuned actor ready to synthesize: G with ψ′ and the references for the warp input.

    Args:
        generator: the fine-tuned G (eval mode).
        psi: 1×num_adain, the actor's ψ′.
        ref_images: K×S×S×3 float32 in 0..1, display sRGB.
        ref_points: K×68×2 float32, crop pixels.
        fusion: how the warp input is built from the references.
    """

    def __init__(
        self,
        generator: Generator,
        psi: torch.Tensor,
        ref_images: np.ndarray,
        ref_points: np.ndarray,
        fusion: Fusion = NEAREST,
    ) -> None:
        self.fusion = fusion
        self.generator = generator.eval()
        self.psi = psi.detach()
        self.ref_images = ref_images
        self.ref_points = ref_points
        self.size = ref_images.shape[1]

    @classmethod
    def from_checkpoint(cls, path: str | Path, expected_sha256: str | None = None) -> ActorModel:
        """Load a fine-tune checkpoint (CPU).

        Raises:
            CheckpointError: missing, corrupt or not a fine-tune checkpoint.
        """
        blob = load_checkpoint(path, expected_sha256=expected_sha256)
        if blob.get("kind") != "finetune":
            raise CheckpointError(f"{path} is a {blob.get('kind')!r} checkpoint, not a fine-tune")
        g = build_models(blob, ["generator"])["generator"]
        try:
            extra = blob["extra"]
            images = extra["ref_images"].numpy().astype(np.float32) / 255.0  # K×S×S×3 sRGB
            points = extra["ref_points"].numpy()  # K×68×2 crop pixels
            psi = blob["model"]["actor"]["psi"]  # 1×num_adain
            fusion = Fusion.from_json(extra["fusion"])
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise CheckpointError(
                f"{path} is a damaged fine-tune checkpoint: {type(exc).__name__}: {exc}",
                "rerun the fine-tune stage",
            ) from exc
        return cls(g, psi, images, points, fusion)

    def warp_input(self, target_points: np.ndarray) -> np.ndarray:
        """G's warp input: the nearest references warped to ``target_points`` (68×2) and blended
        as in training (:func:`pipeline.models.fusion.fused_warp`) → S×S×3 float32 sRGB."""
        return fused_warp(self.ref_images, self.ref_points, target_points, self.fusion)

    @torch.no_grad()
    def __call__(self, target_points: np.ndarray) -> np.ndarray:
        """Synthesize the actor at 68×2 crop landmarks → S×S×3 float32 in 0..1, display sRGB."""
        lm = to_chw(rasterize(target_points, self.size)[None])
        warp = to_chw(self.warp_input(target_points)[None]) if self.generator.use_warp else None
        out = self.generator(lm, warp, self.psi).clamp(0.0, 1.0)
        return out[0].permute(1, 2, 0).numpy()

    def golden_inputs(self) -> dict[str, np.ndarray]:
        """Golden engine inputs from the actor's own references: their drawings and warps.

        Returns:
            ``{"landmarks": G×3×S×S, "warp": G×3×S×S}`` float32 in 0..1 (warp: display sRGB),
            G = min(K, :data:`GOLDEN_FRAMES`), each reference driven by its own landmarks and
            warped from its nearest other reference.
        """
        pts = self.ref_points
        k = len(pts)
        lms, warps = [], []
        for i in range(min(k, GOLDEN_FRAMES)):
            lms.append(rasterize(pts[i], self.size))
            if k > 1:
                others = [j for j in range(k) if j != i]
                j = others[nearest_reference(pts[others], pts[i])]
                warps.append(warp_image(self.ref_images[j], pts[j], pts[i]))
            else:
                warps.append(self.ref_images[i])
        return {
            "landmarks": to_chw(np.stack(lms).astype(np.float32)).numpy(),
            "warp": to_chw(np.stack(warps).astype(np.float32)).numpy(),
        }


def checkpoint_sha256(finetune_dir: Path) -> str | None:
    """The SHA-256 a finetune stage's manifest recorded for its checkpoint."""
    return (read_manifest(finetune_dir) or {}).get("extra", {}).get("checkpoint_sha256")


def load_actor(finetune_dir: Path) -> ActorModel:
    """The fine-tuned actor of a finetune stage folder, checked against its manifest's SHA-256.

    Raises:
        CheckpointError: the checkpoint is missing, damaged, or not the one the manifest
            recorded.
    """
    path = finetune_dir / CHECKPOINT_NAME
    return ActorModel.from_checkpoint(path, expected_sha256=checkpoint_sha256(finetune_dir))
