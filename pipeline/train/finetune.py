"""Per-actor few-shot fine-tuning (Zakharov et al. 2019, section 3.3).

Given K aligned reference crops of one actor and their landmarks:

1. ê = E(references) (E from the base checkpoint, or freshly initialised without one);
2. ψ′ = P·ê (:meth:`Generator.adain_from_embedding`) and w′ = w₀ + ê
   (:meth:`Discriminator.finetune_vector`) become trainable per-actor parameters;
3. G, D, ψ′ and w′ are trained on the references. Each training pair is a reference as target
   and, as G's warp input, one of its ``warp_sources`` nearest *other* references warped to its
   landmarks: the same job G does at inference, where the nearest reference is warped to a plate
   frame's landmarks.

Training is deterministic on CPU (fixed seeds, batches drawn from ``(seed, step)``, RNG states in
the checkpoint, deterministic algorithms), so a run killed with ``kill -9`` and resumed from its
last checkpoint ends bit-identical to an uninterrupted run. A step budget and a wall-time budget
stop it; every ``checkpoint_every`` steps and at the end, ``checkpoint.pt`` is rewritten
atomically. The stage also writes ``preview.png`` and ``loss_curve.json``/``.png`` for QC.

The checkpoint is self-contained for inference (:class:`ActorModel`): it also holds the references
(uint8) and their landmarks, which the warp input needs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch
from torch import nn

from pipeline.atomic import atomic_path, write_json
from pipeline.config import digest, to_jsonable
from pipeline.errors import CheckpointError, FinetuneInputError
from pipeline.models import build, load_profile
from pipeline.models.generator import Generator
from pipeline.models.rasterize import rasterize
from pipeline.models.warp import (
    blend_flows,
    blend_warps,
    fused_warp,
    fusion_weights,
    shape_distance,
    warp_image,
)
from pipeline.train.checkpoint import (
    build_models,
    load_checkpoint,
    restore_training,
    save_checkpoint,
)
from pipeline.train.determinism import deterministic_algorithms
from pipeline.train.losses import build_perceptual, multiscale_l1, ssim_loss
from pipeline.train.objective import LossWeights, discriminator_objective, generator_objective

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    """Few-shot fine-tuning settings (a stage config: loaded with ``from_mapping``).

    Attributes:
        profile: model profile name or YAML path (``configs/models``); ignored when starting
            from a base checkpoint, whose recorded network params are used.
        steps: step budget (total optimisation steps, counting resumed ones).
        max_minutes: wall-time budget in minutes over all resumed runs; ``None`` = no limit.
        batch_size: training pairs per step.
        lr_g: Adam learning rate of G.
        lr_psi: Adam learning rate of ψ′.
        lr_d: Adam learning rate of D and w′.
        beta1: Adam β₁ (β₂ = 0.999).
        weights: the loss weights.
        vgg_weights: path of torchvision's VGG19 weights; ``None`` skips the perceptual loss.
        warp_sources: how many nearest other references serve as warp inputs per target.
        self_pairs: extra pairs per reference whose warp input is the reference itself, moved
            to jittered landmarks and warped back (:func:`self_warp`): a good warp with
            resampling and mesh artifacts, like a plate frame close to a reference. They teach
            G to keep what a good warp gives; cross pairs alone teach it to ignore the warp.
        jitter_px: standard deviation, in pixels, of the landmark jitter of self pairs.
        fuse_top: G's warp input blends this many nearest references
            (:func:`pipeline.models.warp.fused_warp`), in training and at inference alike;
            1 = the nearest reference only.
        fuse_temperature: softmax temperature of the blend, in shape-distance units.
        fuse_spline: how each reference is warped: 0 = piecewise-affine (the baseline's warp),
            1 = thin-plate spline, in between a blend of the two images
            (:func:`pipeline.models.warp.warp_image`).
        fuse_flow: how far each reference's warp moves onto the blend's geometry, along its
            optical flow, before blending (:func:`pipeline.models.warp.blend_warps`): 0 = the
            plain weighted mean, 1 = every warp on the mean's geometry.
        fuse_select: choose ``fuse_top``, ``fuse_temperature``, ``fuse_spline`` and
            ``fuse_flow`` by leave-one-out over the references (each reference rebuilt from the
            others, L1 + SSIM), from :data:`FUSE_TOPS` × :data:`FUSE_TEMPERATURES` ×
            :data:`FUSE_SPLINES` × :data:`FUSE_FLOWS`; the configured fusion is a candidate too.
            Only the references are looked at.
        landmark_dropout: probability that a training pair's landmark drawing is blanked, so
            that G corrects the warp instead of recalling texture keyed on the drawing.
        holdout: references held out of training and scored every ``eval_every`` steps (their
            warp input built from the other references, as for a plate frame); the weights of the
            best score are kept (early stopping). 0 disables it; it needs K ≥ 3.
        holdout_min_gain: the relative drop of the held-out loss below the best so far that a
            later step needs to be kept instead (early stopping's ``min_delta``). The held-out
            set is one or two references, so a smaller drop is noise; at step 0 G returns its
            parameter-free warp input, and leaving that on noise can cost more than it gains.
        eval_every: steps between scores of the held-out references.
        checkpoint_every: steps between periodic checkpoints.
        log_every: steps between log lines (the loss curve keeps every step).
        seed: seed of initialisation and batch sampling.
        deterministic: use deterministic torch algorithms (exact resume).
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        amp: bf16 autocast on CUDA.
    """

    profile: str = "cpu-preview"
    steps: int = 400
    max_minutes: float | None = None
    batch_size: int = 4
    lr_g: float = 1e-4
    lr_psi: float = 1e-3
    lr_d: float = 2e-4
    beta1: float = 0.9
    weights: LossWeights = dataclasses.field(default_factory=lambda: LossWeights(adv=0.0, fm=0.0))
    vgg_weights: Path | None = None
    warp_sources: int = 2
    self_pairs: int = 4
    jitter_px: float = 1.5
    fuse_top: int = 3
    fuse_temperature: float = 0.01
    fuse_spline: float = 0.0
    fuse_flow: float = 0.0
    fuse_select: bool = True
    landmark_dropout: float = 0.5
    holdout: int = 1
    holdout_min_gain: float = 0.01
    eval_every: int = 25
    checkpoint_every: int = 50
    log_every: int = 10
    seed: int = 0
    deterministic: bool = True
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = True

    def validate(self) -> list[tuple[str, str]]:
        """Problems as ``(key, what)``; empty when valid."""
        probs = []
        for key in (
            "steps", "batch_size", "warp_sources", "checkpoint_every", "log_every", "fuse_top",
            "eval_every",
        ):  # fmt: skip
            if getattr(self, key) < 1:
                probs.append((key, f"got {getattr(self, key)}, expected ≥ 1"))
        for key in ("lr_g", "lr_psi", "lr_d"):
            if not getattr(self, key) > 0:
                probs.append((key, f"got {getattr(self, key)}, expected > 0"))
        if not 0.0 <= self.landmark_dropout < 1.0:
            probs.append(("landmark_dropout", f"got {self.landmark_dropout}, expected 0..1"))
        if not self.fuse_temperature > 0:
            probs.append(("fuse_temperature", f"got {self.fuse_temperature}, expected > 0"))
        for key in ("fuse_spline", "fuse_flow"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                probs.append((key, f"got {getattr(self, key)}, expected 0..1"))
        if not 0.0 <= self.holdout_min_gain < 1.0:
            probs.append(
                ("holdout_min_gain", f"got {self.holdout_min_gain}, expected 0 ≤ gain < 1")
            )
        if self.holdout < 0 or self.self_pairs < 0:
            probs.append(("holdout", f"got {self.holdout}, expected ≥ 0"))
        if self.max_minutes is not None and not self.max_minutes > 0:
            probs.append(("max_minutes", f"got {self.max_minutes}, expected > 0 or null"))
        probs += [(f"weights.{k}", w) for k, w in self.weights.validate()]
        return probs

    def resume_key(self) -> str:
        """Digest of the fields a resumed run must share (budgets and logging may change)."""
        keep = dataclasses.replace(self, steps=1, max_minutes=None, checkpoint_every=1, log_every=1)
        return digest(keep)


@dataclasses.dataclass(frozen=True)
class FinetuneResult:
    """What a fine-tune produced.

    Attributes:
        checkpoint: the final checkpoint file.
        sha256: its SHA-256 (for the stage manifest).
        step: steps completed.
        stopped_by: ``"steps"`` or ``"time"``.
        resumed_from: the step a previous run had reached, or ``None`` for a fresh start.
        elapsed_s: training wall time over all runs.
        losses: per-step history: ``{"step": [...], "total": [...], "l1": [...], ...}``.
        initial_loss: reconstruction loss (weighted L1 + SSIM terms) over every training pair
            before the first step.
        final_loss: the same after the last step.
        preview: the preview grid PNG.
        curves_json: the loss-curve JSON.
        curves_png: the loss-curve plot.
        best_step: the step whose weights were kept by early stopping (``None`` without it).
        holdout_loss: the held-out references' loss at ``best_step`` (``None`` without it).
    """

    checkpoint: Path
    sha256: str
    step: int
    stopped_by: str
    resumed_from: int | None
    elapsed_s: float
    losses: dict[str, list[float]]
    initial_loss: float
    final_loss: float
    preview: Path
    curves_json: Path
    curves_png: Path
    best_step: int | None = None
    holdout_loss: float | None = None


class ActorState(nn.Module):
    """The per-actor parameters: ψ′ (G's AdaIN parameters) and w′ (D's projection)."""

    def __init__(self, psi: torch.Tensor, w: torch.Tensor) -> None:
        super().__init__()
        self.psi = nn.Parameter(psi.detach().reshape(1, -1).clone())  # 1×num_adain
        self.w = nn.Parameter(w.detach().reshape(1, -1).clone())  # 1×embed_dim


def _pick_device(choice: str) -> torch.device:
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def _check_refs(refs: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    if len(refs) == 0:
        raise FinetuneInputError("no reference images given", "pass 1 to 32 aligned face crops")
    images, points = [], []
    size = None
    for i, (img, pts) in enumerate(refs):
        img = np.asarray(img)
        pts = np.asarray(pts, np.float32)
        if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] != img.shape[1]:
            raise FinetuneInputError(
                f"reference {i} has shape {img.shape}, expected S×S×3", "align the crops first"
            )
        if img.dtype != np.float32 or float(img.min()) < 0.0 or float(img.max()) > 1.0:
            raise FinetuneInputError(
                f"reference {i} is {img.dtype} in {img.min()}..{img.max()}",
                "pass float32 display sRGB in 0..1",
            )
        if pts.shape != (68, 2) or not np.all(np.isfinite(pts)):
            raise FinetuneInputError(
                f"reference {i} landmarks have shape {pts.shape}", "pass 68×2 crop pixel points"
            )
        if size is not None and img.shape[0] != size:
            raise FinetuneInputError(
                f"reference {i} is {img.shape[0]} px, the others {size} px", "align to one size"
            )
        size = img.shape[0]
        images.append(img)
        points.append(pts)
    return np.stack(images), np.stack(points)


def training_pairs(points: np.ndarray, warp_sources: int) -> list[tuple[int, int]]:
    """``(target, source)`` reference pairs: each target with its nearest other references.

    Args:
        points: K×68×2 float, reference landmarks.
        warp_sources: sources per target (fewer when K is small).

    Returns:
        list of index pairs; with K = 1 the only pair is ``(0, 0)``.
    """
    k = len(points)
    if k == 1:
        return [(0, 0)]
    pairs = []
    for t in range(k):
        dist = sorted((shape_distance(points[s], points[t]), s) for s in range(k) if s != t)
        pairs += [(t, s) for _, s in dist[:warp_sources]]
    return pairs


def _self_source(
    image: np.ndarray, points: np.ndarray, jitter_px: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A reference moved to jittered landmarks: (S×S×3 float32 image, 68×2 moved points)."""
    size = image.shape[0]
    angle = rng.normal(0.0, 2.0)
    scale = 1.0 + rng.normal(0.0, 0.02)
    m = cv2.getRotationMatrix2D((size / 2.0, size / 2.0), angle, scale)
    m[:, 2] += rng.normal(0.0, jitter_px, 2)
    moved = points @ m[:, :2].T + m[:, 2] + rng.normal(0.0, jitter_px, points.shape)
    return warp_image(image, points, moved), moved


def self_warp(
    image: np.ndarray, points: np.ndarray, jitter_px: float, rng: np.random.Generator
) -> np.ndarray:
    """A reference moved to jittered landmarks and warped back onto its own landmarks.

    Args:
        image: S×S×3 float32 display sRGB, an aligned reference.
        points: 68×2 float, its landmarks in crop pixels.
        jitter_px: standard deviation of the per-point jitter, plus a small random similarity.
        rng: the random generator (seeded by the caller).

    Returns:
        S×S×3 float32: the reference after two piecewise-affine warps.
    """
    away, moved = _self_source(image, points, jitter_px, rng)
    return warp_image(away, moved, points)


#: Candidates of the leave-one-out choice of the warp fusion (``FinetuneConfig.fuse_select``).
FUSE_TOPS = (1, 2, 3, 5, 8)
FUSE_TEMPERATURES = (0.005, 0.01, 0.02, 0.05)
FUSE_SPLINES = (0.0, 0.25, 0.5, 0.75, 1.0)
FUSE_FLOWS = (0.0, 0.5, 1.0)
#: At most this many references are rebuilt in the leave-one-out choice (spread evenly over the
#: K; each from all the others): its cost grows with targets × K, not K².
FUSE_SELECT_TARGETS = 12


@dataclasses.dataclass(frozen=True)
class Fusion:
    """How G's warp input is built (:func:`pipeline.models.warp.fused_warp`).

    Attributes:
        top: references blended.
        temperature: softmax temperature of their weights, in shape-distance units.
        spline: weight of the thin-plate spline's image in each reference's warp (0 =
            piecewise-affine).
        flow: how far each warp moves onto the blend's geometry before blending (0 = the
            plain mean; :func:`pipeline.models.warp.blend_warps`).
    """

    top: int
    temperature: float
    spline: float
    flow: float = 0.0

    def key(self) -> str:
        """``"top/temperature/spline/flow"``, as in :func:`select_fusion`'s scores."""
        return f"{self.top}/{self.temperature}/{self.spline}/{self.flow}"


def select_fusion(
    images: np.ndarray,
    points: np.ndarray,
    cfg: FinetuneConfig,
    splines: Sequence[float] = FUSE_SPLINES,
    flows: Sequence[float] = FUSE_FLOWS,
) -> tuple[Fusion, dict[str, float]]:
    """Leave-one-out choice of the warp fusion: each reference rebuilt from the others.

    Args:
        images: K×S×S×3 float32 display sRGB references.
        points: K×68×2 float landmarks in crop pixels.
        cfg: the configured ``fuse_top``/``fuse_temperature``/``fuse_spline``/``fuse_flow``
            (also a candidate).
        splines: the spline weights tried (``(0.0,)``: the piecewise-affine warp only).
        flows: the flow alignments tried (``(0.0,)``: the plain weighted mean only).

    Returns:
        ``(fusion, scores)``: the candidate with the lowest mean L1 + SSIM loss (ties go to the
        smaller top, temperature, spline weight and flow alignment), and every candidate's score
        keyed by :meth:`Fusion.key`. With K < 3 the configured fusion. With K above
        :data:`FUSE_SELECT_TARGETS`, that many references, spread evenly, are rebuilt.
    """
    k = len(images)
    configured = Fusion(cfg.fuse_top, cfg.fuse_temperature, cfg.fuse_spline, cfg.fuse_flow)
    if k < 3:
        return configured, {}
    rebuilt = sorted({int(round(x)) for x in np.linspace(0, k - 1, min(k, FUSE_SELECT_TARGETS))})
    pairs = [(t, s) for t in rebuilt for s in range(k) if s != t]
    weights = {*splines, cfg.fuse_spline}
    affine = {p: warp_image(images[p[1]], points[p[1]], points[p[0]], 0.0) for p in pairs}
    spline = (
        {p: warp_image(images[p[1]], points[p[1]], points[p[0]], 1.0) for p in pairs}
        if max(weights) > 0
        else affine
    )
    dist = {key: shape_distance(points[key[1]], points[key[0]]) for key in pairs}
    real = _to_chw(images[rebuilt])
    aligns = sorted({*flows, cfg.fuse_flow})
    cands = {(top, temp, a) for top in FUSE_TOPS for temp in FUSE_TEMPERATURES for a in splines}
    cands = {c for c in cands if c[0] < k}
    cands.add((min(cfg.fuse_top, k - 1), cfg.fuse_temperature, cfg.fuse_spline))
    scores: dict[str, float] = {}
    best = (math.inf, configured)
    for top, temp, a in sorted(cands):
        # one blend per target and flow alignment; the flows do not depend on the alignment
        fused: dict[float, list[np.ndarray]] = {f: [] for f in aligns}
        for t in rebuilt:
            srcs = [s for s in range(k) if s != t]
            w = fusion_weights(np.array([dist[(t, s)] for s in srcs]), top, temp)
            used = [(wi, s) for wi, s in zip(w, srcs) if wi > 0]
            warped = [(1 - a) * affine[(t, s)] + a * spline[(t, s)] for _, s in used]
            ws = [wi for wi, _ in used]
            flow = blend_flows(warped, ws) if len(used) > 1 and max(aligns) > 0 else None
            for f in aligns:
                fused[f].append(blend_warps(warped, ws, f, flow))
        for f in aligns:
            fake = _to_chw(np.stack(fused[f]).astype(np.float32))
            score = float(multiscale_l1(fake, real) + ssim_loss(fake, real))
            cand = Fusion(top, temp, a, f)
            scores[cand.key()] = score
            if score < best[0] - 1e-9:  # candidates come in sorted order: ties keep the smaller
                best = (score, cand)
    return best[1], scores


def holdout_indices(k: int, holdout: int) -> list[int]:
    """References held out for early stopping: spread evenly inside the K, none when K < 3."""
    if holdout <= 0 or k < 3:
        return []
    n = min(holdout, k - 2)
    return sorted({int(round(x)) for x in np.linspace(0, k - 1, n + 2)[1:-1]})


def warp_inputs(
    images: np.ndarray,
    points: np.ndarray,
    targets: Sequence[int],
    cfg: FinetuneConfig,
    rng: np.random.Generator,
    self_pairs: int,
) -> tuple[list[tuple[int, int]], np.ndarray]:
    """G's training inputs, built as at inference: fused warps of *other* references.

    For each target reference: ``cfg.warp_sources`` cross pairs, the ``j``-th blending the other
    references after dropping the ``j`` nearest (coverage as good as, then worse than, a plate
    frame's), and ``self_pairs`` pairs whose nearest source is the target itself moved to jittered
    landmarks (a plate frame close to a reference, with realistic mesh errors), blended with the
    others as :func:`pipeline.models.warp.fused_warp` would.

    Args:
        images: K×S×S×3 float32 display sRGB references.
        points: K×68×2 float landmarks in crop pixels.
        targets: the reference indices used as targets.
        cfg: fusion and pair settings.
        rng: random generator of the self pairs' jitter.
        self_pairs: self pairs per target.

    Returns:
        ``(pairs, warps)``: ``(target, nearest source)`` per pair (source = target for self
        pairs) and P×S×S×3 float32 warp inputs.
    """
    k = len(images)
    cache: dict[tuple[int, int], np.ndarray] = {}

    def warp_to(t: int, s: int) -> np.ndarray:
        if (t, s) not in cache:
            cache[(t, s)] = warp_image(images[s], points[s], points[t], cfg.fuse_spline)
        return cache[(t, s)]

    pairs: list[tuple[int, int]] = []
    warps: list[np.ndarray] = []
    for t in targets:
        dist = {s: shape_distance(points[s], points[t]) for s in range(k) if s != t}
        others = sorted(dist, key=lambda s: (dist[s], s))
        for j in range(min(cfg.warp_sources, len(others))):
            srcs = others[j:]
            w = fusion_weights(
                np.array([dist[s] for s in srcs]), cfg.fuse_top, cfg.fuse_temperature
            )
            used = [(wi, s) for wi, s in zip(w, srcs) if wi > 0]
            warps.append(
                blend_warps([warp_to(t, s) for _, s in used], [wi for wi, _ in used], cfg.fuse_flow)
            )
            pairs.append((t, srcs[0]))
        for _ in range(self_pairs):
            away, moved = _self_source(images[t], points[t], cfg.jitter_px, rng)
            back = warp_image(away, moved, points[t], cfg.fuse_spline)
            d = np.array([shape_distance(moved, points[t])] + [dist[s] for s in others])
            w = fusion_weights(d, cfg.fuse_top, cfg.fuse_temperature)
            used = [(w[0], back)] + [(wi, warp_to(t, s)) for wi, s in zip(w[1:], others) if wi > 0]
            warps.append(blend_warps([x for _, x in used], [wi for wi, _ in used], cfg.fuse_flow))
            pairs.append((t, t))
    if not pairs:  # one reference and no self pairs: G learns the identity on it
        pairs.append((targets[0], targets[0]))
        warps.append(images[targets[0]])
    return pairs, np.stack(warps).astype(np.float32)


def _to_chw(images: np.ndarray) -> torch.Tensor:
    """N×S×S×3 float32 → N×3×S×S tensor."""
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


def _refs_digest(images: np.ndarray, points: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(images).tobytes())
    h.update(np.ascontiguousarray(points).tobytes())
    return h.hexdigest()


def _seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    random.seed(seed)


def finetune(
    refs: Sequence[tuple[np.ndarray, np.ndarray]],
    cfg: FinetuneConfig,
    out_dir: str | Path,
    base_checkpoint: str | Path | None = None,
    resume: bool = True,
    actor_id: str | None = None,
    base_sha256: str | None = None,
) -> FinetuneResult:
    """Fine-tune G and D on one actor's references.

    Args:
        refs: K pairs of (aligned crop S×S×3 float32 in 0..1, display sRGB; 68×2 float crop
            pixel landmarks). S must equal the profile's ``image_size``.
        cfg: the settings.
        out_dir: where ``checkpoint.pt``, ``preview.png`` and ``loss_curve.*`` go.
        base_checkpoint: a meta-trained base (``train-base``); from scratch when ``None``.
        resume: continue from ``out_dir/checkpoint.pt`` when it exists.
        actor_id: recorded in the checkpoint.
        base_sha256: expected SHA-256 of ``base_checkpoint``, checked when given.

    Returns:
        the :class:`FinetuneResult`.

    Raises:
        FinetuneInputError: unusable references.
        CheckpointError: a corrupt checkpoint, or one made with other settings or references.
        WeightsMissingError: ``cfg.vgg_weights`` is set but the file is missing.
    """
    out_dir = Path(out_dir)
    images, points = _check_refs(refs)
    size = images.shape[1]
    device = _pick_device(cfg.device)
    perceptual = build_perceptual(cfg.vgg_weights) if cfg.weights.vgg > 0 else None
    with deterministic_algorithms(cfg.deterministic):
        return _run(
            images, points, size, cfg, out_dir, base_checkpoint, base_sha256, resume, actor_id,
            device, perceptual,
        )  # fmt: skip


def _initial_models(
    images: np.ndarray,
    lm_images: torch.Tensor,
    cfg: FinetuneConfig,
    size: int,
    base_checkpoint: str | Path | None,
    base_sha256: str | None,
) -> tuple[Generator, nn.Module, ActorState, dict[str, dict[str, Any]]]:
    """Build G and D (from the base or the profile) and initialise ψ′ = P·ê, w′ = w₀ + ê."""
    if base_checkpoint is not None:
        blob = load_checkpoint(base_checkpoint, expected_sha256=base_sha256)
        nets = build_models(blob, ["generator", "embedder", "discriminator"])
        args = {k: blob["model_args"][k] for k in ("generator", "discriminator")}
        base_size = blob["extra"].get("image_size")
        if base_size is not None and base_size != size:
            raise FinetuneInputError(
                f"references are {size} px but the base was trained at {base_size} px",
                f"align the references at {base_size} px",
            )
    else:
        profile = load_profile(cfg.profile)
        if profile.image_size != size:
            raise FinetuneInputError(
                f"references are {size} px but profile {cfg.profile} wants {profile.image_size} px",
                f"align the references at {profile.image_size} px",
            )
        args = {
            "generator": {"network": "generator", "params": profile.params("generator")},
            "discriminator": {
                "network": "discriminator",
                "params": {**profile.params("discriminator"), "num_identities": 0},
            },
        }
        nets = {k: build(v["network"], v["params"]) for k, v in args.items()}
        nets["embedder"] = build("embedder", profile.params("embedder"))
    g, d, e = nets["generator"], nets["discriminator"], nets["embedder"]
    with torch.no_grad():
        frames = _to_chw(images)[None]  # 1×K×3×S×S
        e_hat, _ = e.eval()(frames, lm_images[None])  # 1×embed_dim
        actor = ActorState(g.adain_from_embedding(e_hat), d.finetune_vector(e_hat))
    return g, d, actor, args


def _run(
    images: np.ndarray,
    points: np.ndarray,
    size: int,
    cfg: FinetuneConfig,
    out_dir: Path,
    base_checkpoint: str | Path | None,
    base_sha256: str | None,
    resume: bool,
    actor_id: str | None,
    device: torch.device,
    perceptual: nn.Module | None,
) -> FinetuneResult:
    _seed_all(cfg.seed)
    lm_np = np.stack([rasterize(p, size) for p in points])  # K×S×S×3
    lm_images = _to_chw(lm_np)
    g, d, actor, model_args = _initial_models(
        images, lm_images, cfg, size, base_checkpoint, base_sha256
    )
    use_d = cfg.weights.uses_discriminator
    opt_g = torch.optim.Adam(
        [
            {"params": list(g.parameters()), "lr": cfg.lr_g},
            {"params": [actor.psi], "lr": cfg.lr_psi},
        ],
        betas=(cfg.beta1, 0.999),
    )
    opt_d = torch.optim.Adam(
        list(d.parameters()) + [actor.w], lr=cfg.lr_d, betas=(cfg.beta1, 0.999)
    )
    refs_sha = _refs_digest(images, points)
    history: dict[str, list[float]] = {"step": [], "total": []}
    step, elapsed_before, resumed_from = 0, 0.0, None
    # Early stopping: the weights with the best held-out score (kept in every checkpoint).
    best: dict[str, Any] = {}
    ckpt_path = out_dir / CHECKPOINT_NAME
    if resume and ckpt_path.is_file():
        blob = load_checkpoint(ckpt_path)
        extra = blob["extra"]
        if extra.get("resume_key") != cfg.resume_key() or extra.get("refs_sha256") != refs_sha:
            raise CheckpointError(
                f"{ckpt_path} was made with other settings or references",
                "pass resume=False (or clear the output folder) to start over",
            )
        step = resumed_from = restore_training(
            blob,
            {"generator": g, "discriminator": d, "actor": actor},
            {"generator": opt_g, "discriminator": opt_d},
        )
        elapsed_before = float(extra["elapsed_s"])
        history = {k: list(v) for k, v in extra["history"].items()}
        best.update(extra.get("best") or {})
        log.info("resuming fine-tune from step %d (%s)", step, ckpt_path)
    g.to(device).train()
    d.to(device).train()
    actor.to(device)
    if perceptual is not None:
        perceptual.to(device)

    k = len(images)
    # The pairs (and the checkpoint's inference settings) use the chosen fusion; ``cfg`` itself
    # stays as given, so that the resume key does not change.
    pair_cfg = cfg
    if cfg.fuse_select:
        fusion, _ = select_fusion(images, points, cfg)
        pair_cfg = dataclasses.replace(
            cfg,
            fuse_top=fusion.top,
            fuse_temperature=fusion.temperature,
            fuse_spline=fusion.spline,
            fuse_flow=fusion.flow,
        )
        log.info(
            "warp fusion by leave-one-out: top %d, temperature %g, spline weight %g, flow %g",
            fusion.top,
            fusion.temperature,
            fusion.spline,
            fusion.flow,
        )
    held = holdout_indices(k, cfg.holdout)
    jitter_rng = np.random.default_rng([cfg.seed, 1])
    train_ids = [t for t in range(k) if t not in held]
    pairs, warps = warp_inputs(images, points, train_ids, pair_cfg, jitter_rng, cfg.self_pairs)
    t_real = _to_chw(images).to(device)  # K×3×S×S
    t_lm = lm_images.to(device)
    t_warp = _to_chw(warps).to(device)  # P×3×S×S
    targets = torch.tensor([t for t, _ in pairs], device=device)
    if held:
        val_rng = np.random.default_rng([cfg.seed, 2])
        val_pairs, val_warps = warp_inputs(images, points, held, pair_cfg, val_rng, 2)
        v_warp = _to_chw(val_warps).to(device)  # V×3×S×S
        v_targets = torch.tensor([t for t, _ in val_pairs], device=device)
    amp = device.type == "cuda" and cfg.amp

    def save(at_step: int, elapsed: float) -> str:
        return save_checkpoint(
            ckpt_path,
            kind="finetune",
            step=at_step,
            models={"generator": g, "discriminator": d, "actor": actor},
            model_args=model_args,
            optimizers={"generator": opt_g, "discriminator": opt_d},
            config=to_jsonable(cfg),
            actor_id=actor_id,
            extra={
                "resume_key": cfg.resume_key(),
                "refs_sha256": refs_sha,
                "elapsed_s": elapsed,
                "history": history,
                "best": best or None,
                "fuse_top": pair_cfg.fuse_top,
                "fuse_temperature": pair_cfg.fuse_temperature,
                "fuse_spline": pair_cfg.fuse_spline,
                "fuse_flow": pair_cfg.fuse_flow,
                "image_size": size,
                "ref_images": torch.from_numpy(
                    np.round(images * 255.0).clip(0, 255).astype(np.uint8)
                ),
                "ref_points": torch.from_numpy(points.astype(np.float32)),
                "base_checkpoint": str(base_checkpoint) if base_checkpoint else None,
            },
        )

    def evaluate() -> float:
        """Weighted L1 + SSIM over all training pairs (no grad, no RNG use)."""
        total = 0.0
        with torch.no_grad():
            for i in range(0, len(pairs), cfg.batch_size):
                sl = slice(i, i + cfg.batch_size)
                fake = g(t_lm[targets[sl]], t_warp[sl], actor.psi).float()
                real = t_real[targets[sl]]
                loss = cfg.weights.l1 * multiscale_l1(fake, real)
                loss = loss + cfg.weights.ssim * ssim_loss(fake, real)
                total += float(loss) * fake.shape[0]
        return total / len(pairs)

    def holdout_score() -> float:
        """Weighted L1 + SSIM on the held-out references (no grad, no RNG use)."""
        with torch.no_grad():
            fake = g(t_lm[v_targets], v_warp, actor.psi).float()
            real = t_real[v_targets]
            loss = cfg.weights.l1 * multiscale_l1(fake, real)
            return float(loss + cfg.weights.ssim * ssim_loss(fake, real))

    def consider(at_step: int) -> None:
        """Score the held-out references; keep a copy of the weights when clearly the best."""
        score = holdout_score()
        history.setdefault("holdout_step", []).append(at_step)
        history.setdefault("holdout", []).append(score)
        if not best or score < best["loss"] * (1.0 - cfg.holdout_min_gain):
            best.update(
                step=at_step,
                loss=score,
                generator={n: v.detach().clone() for n, v in g.state_dict().items()},
                actor={n: v.detach().clone() for n, v in actor.state_dict().items()},
            )

    initial_loss = float(history["initial_eval"][0]) if "initial_eval" in history else evaluate()
    history["initial_eval"] = [initial_loss]
    start = time.monotonic()
    budget_s = math.inf if cfg.max_minutes is None else cfg.max_minutes * 60.0
    stopped_by = "steps"
    sha = ""
    if held and step == 0 and not best:
        consider(0)
    while step < cfg.steps:
        if elapsed_before + time.monotonic() - start >= budget_s:
            stopped_by = "time"
            break
        # Batches depend only on (seed, step): a resumed run draws the same ones.
        pick = np.random.default_rng([cfg.seed, step]).integers(0, len(pairs), cfg.batch_size)
        idx = torch.from_numpy(pick).to(device)
        tgt = targets[idx]
        real, lm, warp = t_real[tgt], t_lm[tgt], t_warp[idx]
        # Blank some landmark drawings (drawn from (seed, step) too): G must use the warp.
        keep = np.random.default_rng([cfg.seed, step, 1]).random(cfg.batch_size)
        keep = torch.from_numpy((keep >= cfg.landmark_dropout).astype(np.float32)).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            fake = g(lm * keep.view(-1, 1, 1, 1), warp, actor.psi)
            loss_g, parts = generator_objective(
                fake, real, lm, d if use_d else None, actor.w, cfg.weights, perceptual
            )
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        if use_d:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss_d, d_parts = discriminator_objective(fake, real, lm, d, actor.w)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            parts.update(d_parts)
        step += 1
        if held and step % cfg.eval_every == 0:
            consider(step)
        history["step"].append(step)
        history["total"].append(float(loss_g.detach()))
        for k, v in parts.items():
            history.setdefault(k, []).append(float(v))
        if step % cfg.log_every == 0:
            log.info(
                "fine-tune step %d/%d loss %.4f (%s)",
                step,
                cfg.steps,
                float(loss_g.detach()),
                ", ".join(f"{k} {float(v):.4f}" for k, v in parts.items()),
            )
        if step % cfg.checkpoint_every == 0 and step < cfg.steps:
            sha = save(step, elapsed_before + time.monotonic() - start)
            log.info("checkpoint at step %d", step)
    elapsed = elapsed_before + time.monotonic() - start
    # A run resumed from its own final checkpoint has scored this step already.
    scored = history.get("holdout_step", [])[-1:] == [step]
    if held and (not best or best["step"] != step) and step % cfg.eval_every != 0 and not scored:
        consider(step)
    if best:
        g.load_state_dict(best["generator"])
        actor.load_state_dict(best["actor"])
        log.info("early stopping: keeping step %d (held-out loss %.4f)", best["step"], best["loss"])
    final_loss = evaluate()
    sha = save(step, elapsed)
    g.eval()
    preview = _write_preview(out_dir / "preview.png", g, actor.psi, t_real, t_lm, t_warp, pairs)
    summary = {
        "steps": step,
        "kept_step": int(best["step"]) if best else step,
        "early_stopping": bool(best),
        "fusion": {
            "top": pair_cfg.fuse_top,
            "temperature": pair_cfg.fuse_temperature,
            "spline": pair_cfg.fuse_spline,
            "flow": pair_cfg.fuse_flow,
        },
    }
    curves_json, curves_png = _write_curves(out_dir, history, summary)
    return FinetuneResult(
        checkpoint=ckpt_path,
        sha256=sha,
        step=step,
        stopped_by=stopped_by,
        resumed_from=resumed_from,
        elapsed_s=elapsed,
        losses=history,
        initial_loss=initial_loss,
        final_loss=final_loss,
        preview=preview,
        curves_json=curves_json,
        curves_png=curves_png,
        best_step=int(best["step"]) if best else None,
        holdout_loss=float(best["loss"]) if best else None,
    )


def _write_preview(
    path: Path,
    g: Generator,
    psi: torch.Tensor,
    real: torch.Tensor,
    lm: torch.Tensor,
    warp: torch.Tensor,
    pairs: list[tuple[int, int]],
    rows: int = 4,
) -> Path:
    """A grid, one row per training pair: landmarks, warp input, output, truth (PNG, sRGB)."""
    seen: list[int] = []
    for i, (t, _) in enumerate(pairs):
        if t not in [pairs[j][0] for j in seen]:
            seen.append(i)
    pick = seen[:rows]
    tgt = torch.tensor([pairs[i][0] for i in pick], device=real.device)
    with torch.no_grad():
        out = g(lm[tgt], warp[pick], psi).clamp(0, 1)
    cols = [lm[tgt], warp[pick], out, real[tgt]]  # each R×3×S×S
    tiles = torch.stack(cols, dim=1).float().cpu().numpy()  # R×4×3×S×S
    r, c, _, h, w = tiles.shape
    grid = tiles.transpose(0, 3, 1, 4, 2).reshape(r * h, c * w, 3)  # (R·S)×(4·S)×3 sRGB
    img = np.ascontiguousarray((grid * 255.0).round().clip(0, 255).astype(np.uint8))
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(img, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write preview {tmp}")
    return path


def _write_curves(
    out_dir: Path, history: dict[str, list[float]], summary: dict[str, Any]
) -> tuple[Path, Path]:
    """Write ``loss_curve.json`` (the per-step history, plus ``summary``: the steps run, the
    step kept and the warp fusion used, for the QC page) and a matplotlib plot
    ``loss_curve.png``."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    json_path = write_json(
        out_dir / "loss_curve.json",
        {"schema": "likeness.loss_curve/1", **history, "summary": summary},
    )
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    steps = history["step"]
    for k, v in history.items():
        if k != "step" and len(v) == len(steps):
            ax.plot(steps, v, label=k, linewidth=1)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=7)
    fig.tight_layout()
    png_path = out_dir / "loss_curve.png"
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return json_path, png_path


class ActorModel:
    """A fine-tuned actor ready to synthesize: G with ψ′ and the references for the warp input.

    Args:
        generator: the fine-tuned G (eval mode).
        psi: 1×num_adain, the actor's ψ′.
        ref_images: K×S×S×3 float32 in 0..1, display sRGB.
        ref_points: K×68×2 float32, crop pixels.
        fuse_top: references blended into the warp input (1 = nearest only).
        fuse_temperature: the blend's softmax temperature.
        fuse_spline: weight of the thin-plate spline in each reference's warp (0 =
            piecewise-affine).
        fuse_flow: flow alignment of the blend (0 = the plain mean;
            :func:`pipeline.models.warp.blend_warps`).
    """

    def __init__(
        self,
        generator: Generator,
        psi: torch.Tensor,
        ref_images: np.ndarray,
        ref_points: np.ndarray,
        fuse_top: int = 1,
        fuse_temperature: float = 0.01,
        fuse_spline: float = 0.0,
        fuse_flow: float = 0.0,
    ) -> None:
        self.fuse_top = fuse_top
        self.fuse_temperature = fuse_temperature
        self.fuse_spline = fuse_spline
        self.fuse_flow = fuse_flow
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
        extra = blob["extra"]
        images = extra["ref_images"].numpy().astype(np.float32) / 255.0
        return cls(
            g,
            blob["model"]["actor"]["psi"],
            images,
            extra["ref_points"].numpy(),
            fuse_top=int(extra.get("fuse_top", 1)),
            fuse_temperature=float(extra.get("fuse_temperature", 0.01)),
            fuse_spline=float(extra.get("fuse_spline", 0.0)),  # older checkpoints: affine
            fuse_flow=float(extra.get("fuse_flow", 0.0)),  # older checkpoints: the plain mean
        )

    def warp_input(self, target_points: np.ndarray) -> np.ndarray:
        """G's warp input: the nearest references warped to ``target_points`` (68×2) and blended
        as in training (:func:`pipeline.models.warp.fused_warp`) → S×S×3 float32 sRGB."""
        return fused_warp(
            self.ref_images,
            self.ref_points,
            target_points,
            self.fuse_top,
            self.fuse_temperature,
            self.fuse_spline,
            self.fuse_flow,
        )

    @torch.no_grad()
    def __call__(self, target_points: np.ndarray) -> np.ndarray:
        """Synthesize the actor at 68×2 crop landmarks → S×S×3 float32 in 0..1, display sRGB."""
        lm = _to_chw(rasterize(target_points, self.size)[None])
        warp = _to_chw(self.warp_input(target_points)[None]) if self.generator.use_warp else None
        out = self.generator(lm, warp, self.psi).clamp(0.0, 1.0)
        return out[0].permute(1, 2, 0).numpy()
