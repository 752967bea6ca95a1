"""Meta-training of the base model (Zakharov et al. 2019, section 3.2): ``likeness train-base``.

Each step draws, per process, ``batch_size`` episodes: a training video i and K+1 of its frames.
E embeds K of them into ê_i; G (with ψ = P·ê_i and, as warp input, the nearest of the K warped to
the last frame's landmarks) reconstructs the last frame; D scores it with ``W_i + w₀``. G and E
minimise reconstruction + adversarial + feature matching + embedding match; D minimises the hinge
loss (and pulls W_i toward ê_i).

Distributed: launched by ``torchrun``, one process per GPU (NCCL) or per CPU slot (gloo). On one
machine ``likeness train-base --nproc N`` runs it through :mod:`pipeline.train.launch`, which
keeps every listening socket on loopback; on a cluster, ``torchrun`` with the cluster's
rendezvous. E+G and D are each
wrapped in ``DistributedDataParallel``; rank r draws its episodes from ``(seed, step, r)``.
Without torchrun's environment it runs as one process. On CUDA, forwards run under bf16
autocast.

Checkpoints: rank 0 rewrites ``OUT/checkpoint.pt`` atomically every ``checkpoint_every`` steps
and at the end (see :mod:`pipeline.models.checkpoint`). A run killed with ``kill -9`` and started
again with the same command resumes from it and ends bit-identical to an uninterrupted run on the
same device and world size (batches depend only on ``(seed, step, rank)``; optimizer and RNG
states are restored).

The corpus and its episodes: :mod:`pipeline.train.episodes`.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import random
import time
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from pipeline.config import from_mapping, read_yaml, to_jsonable
from pipeline.errors import CheckpointError, ConfigError, LikenessError
from pipeline.hashing import sha256_file
from pipeline.models.checkpoint import (
    CHECKPOINT_NAME,
    load_checkpoint,
    restore_training,
    save_checkpoint,
)
from pipeline.models.discriminator import Discriminator
from pipeline.models.embedder import Embedder
from pipeline.models.fusion import Fusion
from pipeline.models.generator import Generator
from pipeline.models.networks import build, load_network_config
from pipeline.train.determinism import deterministic_algorithms
from pipeline.train.episodes import read_corpus_index, sample_episodes
from pipeline.train.losses import build_perceptual
from pipeline.train.objective import (
    LossWeights,
    discriminator_objective,
    embedding_objective,
    generator_objective,
)

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class MetaTrainConfig:
    """``train-base`` settings (loaded with ``from_mapping`` from YAML).

    Attributes:
        network: network config name or YAML path (``configs/networks``).
        k: reference frames per episode (the paper's K; episodes hold K+1 frames).
        steps: total optimisation steps.
        max_minutes: wall-time budget in minutes over all resumed runs; training stops at the
            first step past it with a checkpoint; ``None`` = no limit.
        batch_size: episodes per process per step.
        lr_g: Adam learning rate of E, G and P.
        lr_d: Adam learning rate of D and W.
        beta1: Adam β₁ (β₂ = 0.999).
        weights: loss weights.
        vgg_weights: torchvision VGG19 weights path; ``None`` skips the perceptual loss.
        checkpoint_every: steps between checkpoints.
        log_every: steps between log lines.
        seed: initialisation and episode-sampling seed.
        deterministic: deterministic torch algorithms (exact resume).
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        amp: bf16 autocast on CUDA.
        fusion: how G's warp input is built from the episode's references, as the fine-tune
            builds it (:class:`~pipeline.models.fusion.Fusion`).
    """

    #: Keys of earlier versions, for the config loader's "renamed to" hint.
    RENAMED_KEYS: ClassVar[dict[str, str]] = {
        "profile": "network",
        "fuse_top": "fusion.top",
        "fuse_temperature": "fusion.temperature",
        "fuse_spline": "fusion.spline",
        "fuse_flow": "fusion.flow",
    }

    network: str = "cpu-preview"
    k: int = 8
    steps: int = 100000
    max_minutes: float | None = None
    batch_size: int = 4
    lr_g: float = 5e-5
    lr_d: float = 2e-4
    beta1: float = 0.5
    weights: LossWeights = dataclasses.field(default_factory=LossWeights)
    vgg_weights: Path | None = None
    checkpoint_every: int = 1000
    log_every: int = 50
    seed: int = 0
    deterministic: bool = True
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = True
    fusion: Fusion = dataclasses.field(default_factory=Fusion)

    def validate(self) -> list[tuple[str, str]]:
        """Problems as ``(key, what)``; empty when valid."""
        probs = [
            (key, f"got {getattr(self, key)}, expected ≥ 1")
            for key in ("k", "steps", "batch_size", "checkpoint_every", "log_every")
            if getattr(self, key) < 1
        ]
        if self.max_minutes is not None and not self.max_minutes > 0:
            probs.append(("max_minutes", f"got {self.max_minutes}, expected > 0 or null"))
        probs += [(f"fusion.{k}", w) for k, w in self.fusion.validate()]
        probs += [(f"weights.{k}", w) for k, w in self.weights.validate()]
        return probs


class EmbedAndGenerate(nn.Module):
    """E and G as one module, so one DDP wrapper sees every parameter used in the G step."""

    def __init__(self, embedder: Embedder, generator: Generator) -> None:
        super().__init__()
        self.embedder = embedder
        self.generator = generator

    def forward(
        self,
        refs: torch.Tensor,
        ref_lms: torch.Tensor,
        target_lm: torch.Tensor,
        warp: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """B×K×3×S×S refs and drawings, B×3×S×S target drawing and warp → (fake, ê)."""
        e_hat, _ = self.embedder(refs, ref_lms)  # B×D
        psi = self.generator.adain_from_embedding(e_hat)  # B×num_adain
        return self.generator(target_lm, warp, psi), e_hat


def _dist_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) without it."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return (
            int(os.environ["RANK"]),
            int(os.environ["WORLD_SIZE"]),
            int(os.environ.get("LOCAL_RANK", 0)),
        )
    return 0, 1, 0


def train_base(
    corpus_index: str | Path, cfg: MetaTrainConfig, out_dir: str | Path, resume: bool = True
) -> Path:
    """Meta-train E, G (with P) and D on a corpus; returns the final checkpoint path.

    Run under ``torchrun`` for several processes; the process group is created (gloo on CPU,
    NCCL on CUDA) and destroyed here.

    Args:
        corpus_index: the ``likeness.corpus/1`` JSON file.
        cfg: the settings.
        out_dir: where ``checkpoint.pt`` is written.
        resume: continue from ``out_dir/checkpoint.pt`` when it exists.

    Raises:
        CorpusError: a bad corpus.
        CheckpointError: a corrupt checkpoint, or one from another world size or config.
        WeightsMissingError: ``vgg_weights`` configured but missing.
    """
    out_dir = Path(out_dir)
    rank, world, local_rank = _dist_env()
    use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    device = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
    if world > 1:
        dist.init_process_group("nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(device)
    try:
        with deterministic_algorithms(cfg.deterministic):
            return _train(corpus_index, cfg, out_dir, resume, rank, world, device)
    finally:
        if world > 1:
            dist.destroy_process_group()


def _train(
    corpus_index: str | Path,
    cfg: MetaTrainConfig,
    out_dir: Path,
    resume: bool,
    rank: int,
    world: int,
    device: torch.device,
) -> Path:
    run = _MetaRun(corpus_index, cfg, out_dir, rank, world)
    if resume:
        run.resume()
    run.prepare(device)
    return run.train()


class _MetaRun:
    """One process's part of a meta-training run, step by step: build, resume, train, save.

    The order of these steps is the order of every random draw, so it is what makes a resumed
    run end bit-identical to an uninterrupted one.
    """

    def __init__(
        self, corpus_index: str | Path, cfg: MetaTrainConfig, out_dir: Path, rank: int, world: int
    ) -> None:
        self.cfg, self.rank, self.world = cfg, rank, world
        self.videos = read_corpus_index(corpus_index, cfg.k + 1)
        net = load_network_config(cfg.network)
        self.size = net.image_size
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        random.seed(cfg.seed)
        self.model_args = {
            "embedder": {"network": "embedder", "params": net.params("embedder")},
            "generator": {"network": "generator", "params": net.params("generator")},
            "discriminator": {
                "network": "discriminator",
                "params": {**net.params("discriminator"), "num_identities": len(self.videos)},
            },
        }
        self.e = build("embedder", self.model_args["embedder"]["params"])
        self.g = build("generator", self.model_args["generator"]["params"])
        d = build("discriminator", self.model_args["discriminator"]["params"])
        assert isinstance(d, Discriminator)
        self.d = d
        self.eg = EmbedAndGenerate(self.e, self.g)  # type: ignore[arg-type]
        self.opt_g = torch.optim.Adam(self.eg.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, 0.999))
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, 0.999))
        self.step, self.elapsed_before = 0, 0.0
        self.ckpt = out_dir / CHECKPOINT_NAME
        self.config_json = to_jsonable(cfg)

    def resume(self) -> None:
        """Continue from ``checkpoint.pt`` when there is one (same config and world size).

        Raises:
            CheckpointError: the checkpoint was written with another config or world size.
        """
        if not self.ckpt.is_file():
            return
        blob = load_checkpoint(self.ckpt)
        # Keys added since the checkpoint was written (e.g. fusion.flow) count at their default,
        # which is the behaviour of the code that wrote it.
        saved = {**to_jsonable(MetaTrainConfig()), **blob["config"]}
        if blob["extra"].get("world_size") != self.world or saved != self.config_json:
            raise CheckpointError(
                f"{self.ckpt} was written by a run with another config or world size "
                f"({blob['extra'].get('world_size')} processes, now {self.world})",
                "resume with the same config and --nproc_per_node, or pass --no-resume",
            )
        self.step = restore_training(
            blob,
            {"embedder": self.e, "generator": self.g, "discriminator": self.d},
            {"generator": self.opt_g, "discriminator": self.opt_d},
        )
        self.elapsed_before = float(blob["extra"].get("elapsed_s", 0.0))
        if self.rank == 0:
            log.info("resuming train-base from step %d", self.step)

    def prepare(self, device: torch.device) -> None:
        """Move the models to ``device``; wrap them in DDP for several processes."""
        cfg = self.cfg
        self.device = device
        self.eg.to(device).train()
        self.d.to(device).train()
        self.perceptual = build_perceptual(cfg.vgg_weights) if cfg.weights.vgg > 0 else None
        if self.perceptual is not None:
            self.perceptual.to(device)
        if self.world > 1:
            ids = [device.index] if device.type == "cuda" else None
            self.eg_run: nn.Module = DDP(self.eg, device_ids=ids)
            self.d_run: nn.Module = DDP(self.d, device_ids=ids)
        else:
            self.eg_run, self.d_run = self.eg, self.d
        self.amp = device.type == "cuda" and cfg.amp

    def save(self, elapsed: float) -> None:
        """Rank 0 writes ``checkpoint.pt`` at the current step."""
        if self.rank != 0:
            return
        save_checkpoint(
            self.ckpt,
            kind="base",
            step=self.step,
            models={"embedder": self.e, "generator": self.g, "discriminator": self.d},
            model_args=self.model_args,
            optimizers={"generator": self.opt_g, "discriminator": self.opt_d},
            config=self.config_json,
            extra={
                "world_size": self.world,
                "image_size": self.size,
                "identities": [f"{v.identity}/{v.video}" for v in self.videos],
                "elapsed_s": elapsed,
            },
        )

    def train_step(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One step of E, G (and D) on episodes drawn from ``(seed, step, rank)``."""
        cfg, d, device = self.cfg, self.d, self.device
        batch = sample_episodes(
            self.videos, cfg.k, cfg.batch_size, self.size, cfg.seed, self.step, self.rank,
            cfg.fusion,
        )  # fmt: skip
        batch = {k: v.to(device) for k, v in batch.items()}
        real, lm, ids = batch["target"], batch["target_lm"], batch["identity"]  # B×3×S×S, B
        warp = batch["warp"] if self.g.use_warp else None
        use_d = cfg.weights.uses_discriminator
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.amp):
            fake, e_hat = self.eg_run(batch["refs"], batch["ref_lms"], lm, warp)
            loss_g, parts = generator_objective(
                fake, real, lm, self.d_run if use_d else None, d.identity_vector(ids),
                cfg.weights, self.perceptual,
            )  # fmt: skip
            if cfg.weights.mch > 0:
                mch = embedding_objective(d.identity(ids).detach(), e_hat, cfg.weights.mch)
                loss_g = loss_g + mch
                parts["mch"] = mch.detach()
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        if use_d:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.amp):
                loss_d, d_parts = discriminator_objective(
                    fake, real, lm, self.d_run, d.identity_vector(ids)
                )
                if cfg.weights.mch > 0:
                    loss_d = loss_d + embedding_objective(
                        d.identity(ids), e_hat.detach(), cfg.weights.mch
                    )
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
            parts.update(d_parts)
        return loss_g, parts

    def train(self) -> Path:
        """Train until the step or time budget; checkpoint on schedule and at the end."""
        cfg = self.cfg
        budget_s = math.inf if cfg.max_minutes is None else cfg.max_minutes * 60.0
        start = t0 = time.monotonic()
        while self.step < cfg.steps:
            late = self.elapsed_before + time.monotonic() - start >= budget_s
            if budget_s < math.inf and _out_of_time(late, self.world, self.device):
                self.save(self.elapsed_before + time.monotonic() - start)
                if self.rank == 0:
                    print(
                        f"checkpoint step {self.step} (time budget of {cfg.max_minutes} min)",
                        flush=True,
                    )
                break
            loss_g, parts = self.train_step()
            self.step += 1
            if self.rank == 0 and self.step % cfg.log_every == 0:
                log.info(
                    "train-base step %d/%d loss %.4f (%s) %.2fs/step",
                    self.step, cfg.steps, float(loss_g.detach()),
                    ", ".join(f"{k} {float(v):.4f}" for k, v in parts.items()),
                    (time.monotonic() - t0) / cfg.log_every,
                )  # fmt: skip
                t0 = time.monotonic()
            if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                self.save(self.elapsed_before + time.monotonic() - start)
                if self.rank == 0:
                    print(f"checkpoint step {self.step}", flush=True)
        if self.world > 1:
            dist.barrier()
        return self.ckpt


def _out_of_time(mine: bool, world: int, device: torch.device) -> bool:
    """Whether any process ran out of time: every rank of a DDP run stops at the same step."""
    if world == 1:
        return mine
    flag = torch.tensor([float(mine)], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item() > 0)


def load_config(path: str | Path | None) -> MetaTrainConfig:
    """A :class:`MetaTrainConfig` from YAML, or the defaults when ``path`` is ``None``.

    Raises:
        ConfigError: unknown keys or wrong types, naming the file and key.
    """
    if path is None:
        return MetaTrainConfig()
    cfg = from_mapping(MetaTrainConfig, read_yaml(Path(path)), source=str(path))
    if cfg is None:  # pragma: no cover - from_mapping raises when it owns the problem list
        raise ConfigError([f"{path}: invalid train-base config"])
    return cfg


def main(argv: list[str] | None = None) -> int:
    """``python -m pipeline.train.meta INDEX --out DIR [--config YAML] [--no-resume]``."""
    ap = argparse.ArgumentParser(description="Meta-train the base talking-head model.")
    ap.add_argument("index", type=Path, help="likeness.corpus/1 JSON index")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--config", type=Path, default=None, help="MetaTrainConfig YAML")
    ap.add_argument("--no-resume", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads per process")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        path = train_base(args.index, load_config(args.config), args.out, resume=not args.no_resume)
    except LikenessError as exc:
        print(f"error: {exc}", flush=True)
        return exc.exit_code
    if _dist_env()[0] == 0:
        print(f"done {path} sha256 {sha256_file(path)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
