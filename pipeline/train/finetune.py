"""Per-actor few-shot fine-tuning (Zakharov et al. 2019, section 3.3).

Given K aligned reference crops of one actor and their landmarks:

1. ê = E(references) (E from the base checkpoint, or freshly initialised without one);
2. ψ′ = P·ê (:meth:`Generator.adain_from_embedding`) and w′ = w₀ + ê
   (:meth:`Discriminator.finetune_vector`) become trainable per-actor parameters;
3. G, D, ψ′ and w′ are trained on the references. Each training pair is a reference as target
   and, as G's warp input, one of its ``warp_sources`` nearest *other* references warped to its
   landmarks: the same job G does at inference, where the nearest reference is warped to a plate
   frame's landmarks (:mod:`pipeline.train.pairs`).

Training is deterministic on CPU (fixed seeds, batches drawn from ``(seed, step)``, RNG states in
the checkpoint, deterministic algorithms), so a run killed with ``kill -9`` and resumed from its
last checkpoint ends bit-identical to an uninterrupted run. A step budget and a wall-time budget
stop it; every ``checkpoint_every`` steps and at the end, ``checkpoint.pt`` is rewritten
atomically. The stage also writes ``preview.png`` and ``loss_curve.json``/``.png`` for QC
(:mod:`pipeline.train.qc`).

The checkpoint is self-contained for inference (:class:`~pipeline.inference.actor.ActorModel`):
it also holds the references (uint8), their landmarks and the fusion G's warp input uses.
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
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from pipeline.config import to_jsonable
from pipeline.errors import CheckpointError
from pipeline.inference.actor import to_chw
from pipeline.models.checkpoint import (
    CHECKPOINT_NAME,
    load_checkpoint,
    restore_training,
    save_checkpoint,
)
from pipeline.models.fusion import Fusion
from pipeline.models.rasterize import rasterize
from pipeline.train.determinism import deterministic_algorithms
from pipeline.train.fusion_choice import select_fusion
from pipeline.train.losses import build_perceptual, multiscale_l1, ssim_loss
from pipeline.train.objective import LossWeights, discriminator_objective, generator_objective
from pipeline.train.pairs import check_references, holdout_indices, warp_inputs
from pipeline.train.qc import write_curves, write_preview
from pipeline.train.start import initial_models

log = logging.getLogger(__name__)


#: Config fields a resumed run may change: budgets and logging.
_RESUMABLE = ("steps", "max_minutes", "checkpoint_every", "log_every")


@dataclasses.dataclass(frozen=True)
class FinetuneParams:
    """Few-shot fine-tuning settings (the fine-tune stage's config extends them).

    Attributes:
        network: network config name or YAML path (``configs/networks``); ignored when
            starting from a base checkpoint, whose recorded network params are used.
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
            to jittered landmarks and warped back (:func:`pipeline.train.pairs.self_warp`): a
            good warp with resampling and mesh artifacts, like a plate frame close to a
            reference. They teach G to keep what a good warp gives; cross pairs alone teach it
            to ignore the warp.
        jitter_px: standard deviation, in pixels, of the landmark jitter of self pairs.
        fusion: how G's warp input is built, in training and at inference alike
            (:class:`~pipeline.models.fusion.Fusion`).
        fusion_select: choose the fusion by leave-one-out over the references (each reference
            rebuilt from the others, L1 + SSIM), from the grid of
            :mod:`pipeline.train.fusion_choice`; the configured ``fusion`` is a candidate too.
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

    #: Keys of earlier versions, for the config loader's "renamed to" hint.
    RENAMED_KEYS: ClassVar[dict[str, str]] = {
        "profile": "network",
        "fuse_top": "fusion.top",
        "fuse_temperature": "fusion.temperature",
        "fuse_spline": "fusion.spline",
        "fuse_flow": "fusion.flow",
        "fuse_select": "fusion_select",
    }

    network: str = "cpu-preview"
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
    fusion: Fusion = dataclasses.field(default_factory=Fusion)
    fusion_select: bool = True
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
            "steps", "batch_size", "warp_sources", "checkpoint_every", "log_every", "eval_every",
        ):  # fmt: skip
            if getattr(self, key) < 1:
                probs.append((key, f"got {getattr(self, key)}, expected ≥ 1"))
        for key in ("lr_g", "lr_psi", "lr_d"):
            if not getattr(self, key) > 0:
                probs.append((key, f"got {getattr(self, key)}, expected > 0"))
        if not 0.0 <= self.landmark_dropout < 1.0:
            probs.append(("landmark_dropout", f"got {self.landmark_dropout}, expected 0..1"))
        if not 0.0 <= self.holdout_min_gain < 1.0:
            probs.append(
                ("holdout_min_gain", f"got {self.holdout_min_gain}, expected 0 ≤ gain < 1")
            )
        if self.holdout < 0:
            probs.append(("holdout", f"got {self.holdout}, expected ≥ 0"))
        if self.self_pairs < 0:
            probs.append(("self_pairs", f"got {self.self_pairs}, expected ≥ 0"))
        if self.max_minutes is not None and not self.max_minutes > 0:
            probs.append(("max_minutes", f"got {self.max_minutes}, expected > 0 or null"))
        probs += [(f"fusion.{k}", w) for k, w in self.fusion.validate()]
        probs += [(f"weights.{k}", w) for k, w in self.weights.validate()]
        return probs

    def resume_view(self) -> dict[str, Any]:
        """The config as plain data without the fields a resumed run may change."""
        return _resume_view(to_jsonable(self))


def _resume_view(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in _RESUMABLE}


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
        fusion: the fusion G's warp input uses (chosen, or as configured).
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
    fusion: Fusion
    best_step: int | None = None
    holdout_loss: float | None = None


def finetune(
    refs: Sequence[tuple[np.ndarray, np.ndarray]],
    cfg: FinetuneParams,
    out_dir: str | Path,
    base_checkpoint: str | Path | None = None,
    resume: bool = True,
    actor_id: str | None = None,
    base_sha256: str | None = None,
) -> FinetuneResult:
    """Fine-tune G and D on one actor's references.

    Args:
        refs: K pairs of (aligned crop S×S×3 float32 in 0..1, display sRGB; 68×2 float crop
            pixel landmarks). S must equal the network config's ``image_size``.
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
    images, points = check_references(refs)
    device = _pick_device(cfg.device)
    perceptual = build_perceptual(cfg.vgg_weights) if cfg.weights.vgg > 0 else None
    with deterministic_algorithms(cfg.deterministic):
        run = _Run(images, points, cfg, Path(out_dir), base_checkpoint, base_sha256, actor_id)
        if resume:
            run.resume()
        run.prepare(device, perceptual)
        return run.train()


def _pick_device(choice: str) -> torch.device:
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def _refs_digest(images: np.ndarray, points: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(images).tobytes())
    h.update(np.ascontiguousarray(points).tobytes())
    return h.hexdigest()


def _seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    random.seed(seed)


class _Run:
    """One fine-tune, step by step: build, resume, prepare the pairs, train, keep the best.

    The order of these steps is the order of every random draw, so it is what makes a resumed
    run end bit-identical to an uninterrupted one.
    """

    def __init__(
        self,
        images: np.ndarray,
        points: np.ndarray,
        cfg: FinetuneParams,
        out_dir: Path,
        base_checkpoint: str | Path | None,
        base_sha256: str | None,
        actor_id: str | None,
    ) -> None:
        self.images, self.points, self.cfg = images, points, cfg  # K×S×S×3 sRGB, K×68×2
        self.size = images.shape[1]
        self.ckpt_path = out_dir / CHECKPOINT_NAME
        self.out_dir = out_dir
        self.base_checkpoint = base_checkpoint
        self.actor_id = actor_id
        _seed_all(cfg.seed)
        self.lm_images = to_chw(np.stack([rasterize(p, self.size) for p in points]))  # K×3×S×S
        self.g, self.d, self.actor, self.model_args = initial_models(
            images, self.lm_images, cfg.network, base_checkpoint, base_sha256
        )
        self.opt_g = torch.optim.Adam(
            [
                {"params": list(self.g.parameters()), "lr": cfg.lr_g},
                {"params": [self.actor.psi], "lr": cfg.lr_psi},
            ],
            betas=(cfg.beta1, 0.999),
        )
        self.opt_d = torch.optim.Adam(
            list(self.d.parameters()) + [self.actor.w], lr=cfg.lr_d, betas=(cfg.beta1, 0.999)
        )
        self.refs_sha = _refs_digest(images, points)
        self.history: dict[str, list[float]] = {"step": [], "total": []}
        self.step, self.elapsed_before, self.resumed_from = 0, 0.0, None
        #: Early stopping: the weights with the best held-out score (kept in every checkpoint).
        self.best: dict[str, Any] = {}
        self.fusion = cfg.fusion

    def resume(self) -> None:
        """Continue from ``checkpoint.pt`` when there is one (same settings and references).

        Raises:
            CheckpointError: the checkpoint was made with other settings or references.
        """
        if not self.ckpt_path.is_file():
            return
        blob = load_checkpoint(self.ckpt_path)
        extra = blob["extra"]
        defaults = to_jsonable(type(self.cfg)())
        saved = _resume_view({**defaults, **blob["config"]})
        if saved != self.cfg.resume_view() or extra.get("refs_sha256") != self.refs_sha:
            raise CheckpointError(
                f"{self.ckpt_path} was made with other settings or references",
                "pass resume=False (or clear the output folder) to start over",
            )
        self.step = self.resumed_from = restore_training(
            blob,
            {"generator": self.g, "discriminator": self.d, "actor": self.actor},
            {"generator": self.opt_g, "discriminator": self.opt_d},
        )
        self.elapsed_before = float(extra["elapsed_s"])
        self.history = {k: list(v) for k, v in extra["history"].items()}
        self.best.update(extra.get("best") or {})
        log.info("resuming fine-tune from step %d (%s)", self.step, self.ckpt_path)

    def prepare(self, device: torch.device, perceptual: nn.Module | None) -> None:
        """Move the models to ``device``, choose the fusion and build the training pairs."""
        cfg, images, points = self.cfg, self.images, self.points
        self.device, self.perceptual = device, perceptual
        self.g.to(device).train()
        self.d.to(device).train()
        self.actor.to(device)
        if perceptual is not None:
            perceptual.to(device)
        if cfg.fusion_select:
            self.fusion, _ = select_fusion(images, points, cfg.fusion)
            f = self.fusion
            log.info(
                "warp fusion by leave-one-out: top %d, temperature %g, spline weight %g, flow %g",
                f.top, f.temperature, f.spline, f.flow,
            )  # fmt: skip
        self.held = holdout_indices(len(images), cfg.holdout)
        train_ids = [t for t in range(len(images)) if t not in self.held]
        self.pairs, warps = warp_inputs(
            images, points, train_ids, self.fusion, cfg.warp_sources, cfg.jitter_px,
            np.random.default_rng([cfg.seed, 1]), cfg.self_pairs,
        )  # fmt: skip
        self.t_real = to_chw(images).to(device)  # K×3×S×S
        self.t_lm = self.lm_images.to(device)  # K×3×S×S
        self.t_warp = to_chw(warps).to(device)  # P×3×S×S
        self.targets = torch.tensor([t for t, _ in self.pairs], device=device)
        if self.held:
            val_pairs, val_warps = warp_inputs(
                images, points, self.held, self.fusion, cfg.warp_sources, cfg.jitter_px,
                np.random.default_rng([cfg.seed, 2]), 2,
            )  # fmt: skip
            self.v_warp = to_chw(val_warps).to(device)  # V×3×S×S
            self.v_targets = torch.tensor([t for t, _ in val_pairs], device=device)
        self.amp = device.type == "cuda" and cfg.amp

    def _loss(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """Weighted L1 + SSIM of B×3×S×S images."""
        w = self.cfg.weights
        return w.l1 * multiscale_l1(fake, real) + w.ssim * ssim_loss(fake, real)

    def evaluate(self) -> float:
        """Weighted L1 + SSIM over all training pairs (no grad, no RNG use)."""
        total, bs = 0.0, self.cfg.batch_size
        with torch.no_grad():
            for i in range(0, len(self.pairs), bs):
                tgt = self.targets[i : i + bs]
                fake = self.g(self.t_lm[tgt], self.t_warp[i : i + bs], self.actor.psi).float()
                total += float(self._loss(fake, self.t_real[tgt])) * fake.shape[0]
        return total / len(self.pairs)

    def holdout_score(self) -> float:
        """Weighted L1 + SSIM on the held-out references (no grad, no RNG use)."""
        with torch.no_grad():
            fake = self.g(self.t_lm[self.v_targets], self.v_warp, self.actor.psi).float()
            return float(self._loss(fake, self.t_real[self.v_targets]))

    def consider(self, at_step: int) -> None:
        """Score the held-out references; keep a copy of the weights when clearly the best."""
        score = self.holdout_score()
        self.history.setdefault("holdout_step", []).append(at_step)
        self.history.setdefault("holdout", []).append(score)
        best = self.best
        if not best or score < best["loss"] * (1.0 - self.cfg.holdout_min_gain):
            best.update(
                step=at_step,
                loss=score,
                generator={n: v.detach().clone() for n, v in self.g.state_dict().items()},
                actor={n: v.detach().clone() for n, v in self.actor.state_dict().items()},
            )

    def train_step(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One optimisation step of G (and D); its batch depends only on ``(seed, step)``."""
        cfg, device, step = self.cfg, self.device, self.step
        pick = np.random.default_rng([cfg.seed, step]).integers(0, len(self.pairs), cfg.batch_size)
        idx = torch.from_numpy(pick).to(device)
        tgt = self.targets[idx]
        real, lm, warp = self.t_real[tgt], self.t_lm[tgt], self.t_warp[idx]
        # Blank some landmark drawings (drawn from (seed, step) too): G must use the warp.
        keep = np.random.default_rng([cfg.seed, step, 1]).random(cfg.batch_size)
        keep = torch.from_numpy((keep >= cfg.landmark_dropout).astype(np.float32)).to(device)
        use_d = cfg.weights.uses_discriminator
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.amp):
            fake = self.g(lm * keep.view(-1, 1, 1, 1), warp, self.actor.psi)
            loss_g, parts = generator_objective(
                fake, real, lm, self.d if use_d else None, self.actor.w, cfg.weights,
                self.perceptual,
            )  # fmt: skip
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        if use_d:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.amp):
                loss_d, d_parts = discriminator_objective(fake, real, lm, self.d, self.actor.w)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
            parts.update(d_parts)
        return loss_g, parts

    def record(self, loss_g: torch.Tensor, parts: dict[str, torch.Tensor]) -> None:
        """Append this step's losses to the history, and log every ``log_every`` steps."""
        self.history["step"].append(self.step)
        self.history["total"].append(float(loss_g.detach()))
        for k, v in parts.items():
            self.history.setdefault(k, []).append(float(v))
        if self.step % self.cfg.log_every == 0:
            log.info(
                "fine-tune step %d/%d loss %.4f (%s)",
                self.step, self.cfg.steps, float(loss_g.detach()),
                ", ".join(f"{k} {float(v):.4f}" for k, v in parts.items()),
            )  # fmt: skip

    def save(self, elapsed: float) -> str:
        """Write ``checkpoint.pt`` at the current step; returns its SHA-256."""
        return save_checkpoint(
            self.ckpt_path,
            kind="finetune",
            step=self.step,
            models={"generator": self.g, "discriminator": self.d, "actor": self.actor},
            model_args=self.model_args,
            optimizers={"generator": self.opt_g, "discriminator": self.opt_d},
            config=to_jsonable(self.cfg),
            actor_id=self.actor_id,
            extra={
                "refs_sha256": self.refs_sha,
                "elapsed_s": elapsed,
                "history": self.history,
                "best": self.best or None,
                "fusion": self.fusion.to_json(),
                "image_size": self.size,
                "ref_images": torch.from_numpy(
                    np.round(self.images * 255.0).clip(0, 255).astype(np.uint8)
                ),
                "ref_points": torch.from_numpy(self.points.astype(np.float32)),
                "base_checkpoint": str(self.base_checkpoint) if self.base_checkpoint else None,
            },
        )

    def train(self) -> FinetuneResult:
        """Train until the step or time budget, then keep the best weights and write QC."""
        cfg = self.cfg
        initial = self.history.get("initial_eval")
        initial_loss = float(initial[0]) if initial else self.evaluate()
        self.history["initial_eval"] = [initial_loss]
        start = time.monotonic()
        budget_s = math.inf if cfg.max_minutes is None else cfg.max_minutes * 60.0
        stopped_by = "steps"
        if self.held and self.step == 0 and not self.best:
            self.consider(0)
        while self.step < cfg.steps:
            if self.elapsed_before + time.monotonic() - start >= budget_s:
                stopped_by = "time"
                break
            loss_g, parts = self.train_step()
            self.step += 1
            if self.held and self.step % cfg.eval_every == 0:
                self.consider(self.step)
            self.record(loss_g, parts)
            if self.step % cfg.checkpoint_every == 0 and self.step < cfg.steps:
                self.save(self.elapsed_before + time.monotonic() - start)
                log.info("checkpoint at step %d", self.step)
        elapsed = self.elapsed_before + time.monotonic() - start
        return self.finish(stopped_by, elapsed, initial_loss)

    def finish(self, stopped_by: str, elapsed: float, initial_loss: float) -> FinetuneResult:
        """Score the last step, restore the kept weights, save, and write the QC files."""
        best, step = self.best, self.step
        # A run resumed from its own final checkpoint has scored this step already.
        scored = self.history.get("holdout_step", [])[-1:] == [step]
        last_unscored = step % self.cfg.eval_every != 0 and not scored
        if self.held and (not best or best["step"] != step) and last_unscored:
            self.consider(step)
        if best:
            self.g.load_state_dict(best["generator"])
            self.actor.load_state_dict(best["actor"])
            log.info(
                "early stopping: keeping step %d (held-out loss %.4f)", best["step"], best["loss"]
            )
        final_loss = self.evaluate()
        sha = self.save(elapsed)
        self.g.eval()
        preview = write_preview(
            self.out_dir / "preview.png", self.g, self.actor.psi, self.t_real, self.t_lm,
            self.t_warp, self.pairs,
        )  # fmt: skip
        summary = {
            "steps": step,
            "kept_step": int(best["step"]) if best else step,
            "early_stopping": bool(best),
            "fusion": self.fusion.to_json(),
        }
        curves_json, curves_png = write_curves(self.out_dir, self.history, summary)
        return FinetuneResult(
            checkpoint=self.ckpt_path,
            sha256=sha,
            step=step,
            stopped_by=stopped_by,
            resumed_from=self.resumed_from,
            elapsed_s=elapsed,
            losses=self.history,
            initial_loss=initial_loss,
            final_loss=final_loss,
            preview=preview,
            curves_json=curves_json,
            curves_png=curves_png,
            fusion=self.fusion,
            best_step=int(best["step"]) if best else None,
            holdout_loss=float(best["loss"]) if best else None,
        )
