"""The network registry and the network configs (``configs/networks/<name>.yaml``).

Hyperparameters live in ``*_params`` blocks of a network config and are unpacked into
``__init__``: ``build("generator", config.params("generator"))``.
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any

from torch import nn

from pipeline.config import from_mapping, read_yaml
from pipeline.errors import ConfigError
from pipeline.models.discriminator import Discriminator
from pipeline.models.embedder import Embedder
from pipeline.models.generator import Generator

#: Network name → class. Names are what checkpoints record in ``model_args``.
NETWORKS: dict[str, type[nn.Module]] = {
    "embedder": Embedder,
    "generator": Generator,
    "discriminator": Discriminator,
}


#: Where the network configs live.
NETWORK_DIR = Path(__file__).resolve().parents[2] / "configs" / "networks"


def build(name: str, params: dict[str, Any] | None = None) -> nn.Module:
    """Build a registered network from its ``*_params`` block.

    Args:
        name: a key of :data:`NETWORKS`.
        params: keyword arguments of the network's ``__init__``.

    Raises:
        ConfigError: unknown network name, or a parameter the network does not take.
    """
    if name not in NETWORKS:
        raise ConfigError([f"networks: {name!r}: unknown network; known: {', '.join(NETWORKS)}"])
    cls = NETWORKS[name]
    params = dict(params or {})
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    bad = sorted(set(params) - accepted)
    if bad:
        raise ConfigError(
            [
                f"{name}_params: {k}: unknown parameter; known: {', '.join(sorted(accepted))}"
                for k in bad
            ]
        )
    return cls(**params)


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """The network sizes of one network config (``configs/networks/<name>.yaml``).

    Attributes:
        image_size: side of the aligned face crop in pixels (divisible by 2**num_down of G).
        embed_dim: size of ê, shared by E, G's projection P and D.
        embedder_params: ``Embedder.__init__`` keywords.
        generator_params: ``Generator.__init__`` keywords.
        discriminator_params: ``Discriminator.__init__`` keywords.
    """

    image_size: int
    embed_dim: int = 512
    embedder_params: dict[str, Any] = dataclasses.field(default_factory=dict)
    generator_params: dict[str, Any] = dataclasses.field(default_factory=dict)
    discriminator_params: dict[str, Any] = dataclasses.field(default_factory=dict)

    def validate(self) -> list[tuple[str, str]]:
        """Problems as ``(key, what)``; empty when valid."""
        probs = []
        if self.image_size < 16:
            probs.append(("image_size", f"got {self.image_size}, expected at least 16"))
        for block in ("embedder_params", "generator_params", "discriminator_params"):
            if "embed_dim" in getattr(self, block):
                probs.append((f"{block}.embed_dim", "set embed_dim once, at the top level"))
        return probs

    def params(self, name: str) -> dict[str, Any]:
        """The ``__init__`` keywords of network ``name``, with ``embed_dim`` filled in."""
        return {**getattr(self, f"{name}_params"), "embed_dim": self.embed_dim}


def load_network_config(name_or_path: str | Path) -> NetworkConfig:
    """Read a network config by name (``cpu-preview``) or path.

    Raises:
        ConfigError: a missing file, unknown keys, or wrong types.
    """
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = NETWORK_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in NETWORK_DIR.glob("*.yaml"))
        raise ConfigError([f"{path}: network config not found; known: {', '.join(known)}"])
    config = from_mapping(NetworkConfig, read_yaml(path), source=str(path))
    for name in NETWORKS:
        build_check = set(config.params(name)) - (
            set(inspect.signature(NETWORKS[name].__init__).parameters) - {"self"}
        )
        if build_check:
            raise ConfigError(
                [f"{path}: {name}_params.{k}: unknown parameter" for k in sorted(build_check)]
            )
    return config


__all__ = ["NETWORKS", "NetworkConfig", "build", "load_network_config"]
