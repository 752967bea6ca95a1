"""Where a fine-tune starts: G and D from a meta-trained base (or built fresh from the
network config), and the actor's ψ′ = P·ê and w′ = w₀ + ê from the embedding of its
references (Zakharov et al. 2019, section 3.3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.errors import FinetuneInputError
from pipeline.inference.actor import to_chw
from pipeline.models.checkpoint import (
    build_models,
    load_checkpoint,
)
from pipeline.models.generator import Generator
from pipeline.models.networks import build, load_network_config


class ActorState(nn.Module):
    """The per-actor parameters: ψ′ (G's AdaIN parameters) and w′ (D's projection)."""

    def __init__(self, psi: torch.Tensor, w: torch.Tensor) -> None:
        super().__init__()
        self.psi = nn.Parameter(psi.detach().reshape(1, -1).clone())  # 1×num_adain
        self.w = nn.Parameter(w.detach().reshape(1, -1).clone())  # 1×embed_dim


def initial_models(
    images: np.ndarray,
    lm_images: torch.Tensor,
    network: str,
    base_checkpoint: str | Path | None,
    base_sha256: str | None,
) -> tuple[Generator, nn.Module, ActorState, dict[str, dict[str, Any]]]:
    """Build G and D (from the base or the network config); ψ′ = P·ê, w′ = w₀ + ê."""
    size = images.shape[1]
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
        net = load_network_config(network)
        if net.image_size != size:
            raise FinetuneInputError(
                f"references are {size} px but network {network} wants {net.image_size} px",
                f"align the references at {net.image_size} px",
            )
        args = {
            "generator": {"network": "generator", "params": net.params("generator")},
            "discriminator": {
                "network": "discriminator",
                "params": {**net.params("discriminator"), "num_identities": 0},
            },
        }
        nets = {k: build(v["network"], v["params"]) for k, v in args.items()}
        nets["embedder"] = build("embedder", net.params("embedder"))
    g, d, e = nets["generator"], nets["discriminator"], nets["embedder"]
    with torch.no_grad():
        frames = to_chw(images)[None]  # 1×K×3×S×S
        e_hat, _ = e.eval()(frames, lm_images[None])  # 1×embed_dim
        actor = ActorState(g.adain_from_embedding(e_hat), d.finetune_vector(e_hat))
    return g, d, actor, args
