"""Render profiles: one YAML per profile (cpu-preview, farm-256, farm-512), one section per stage.

Each section is parsed into its frozen config dataclass, defined in the stage's module under
:mod:`pipeline.stages` (``engine:``, read by the export and synthesis stages, in
:mod:`pipeline.inference.engine`; ``composite:``, read by delivery, in
:mod:`pipeline.composite.config`). Unknown sections and keys are errors naming the file and key.
A profile is named (``configs/profiles/<name>.yaml``) or given as a path to a YAML file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

import configs
from pipeline.composite.config import CompositeConfig
from pipeline.config import from_mapping, read_yaml
from pipeline.errors import ConfigError
from pipeline.inference.engine import EngineConfig
from pipeline.stages.deliver import DeliverConfig
from pipeline.stages.finetune import FinetuneConfig
from pipeline.stages.graph import StageDef, wants_gpu
from pipeline.stages.ingest import IngestConfig
from pipeline.stages.references import ReferencesConfig
from pipeline.stages.synth import SynthConfig
from pipeline.stages.track import TrackConfig


def configs_dir() -> Path:
    """The folder of shipped configs (``configs/`` of the package)."""
    return Path(configs.__file__).resolve().parent


def available_profiles() -> list[str]:
    return sorted(p.stem for p in (configs_dir() / "profiles").glob("*.yaml"))


@dataclass(frozen=True)
class Profile:
    """A render profile: the config of every stage.

    Attributes:
        name: the profile's name (its file's stem by default).
        description: a line for people.
        use: what the renders are for (e.g. ``de-aging``); when set, the actor's consent record
            must list it in its ``scope``. None checks no scope.
    """

    name: str = "custom"
    description: str = ""
    use: str | None = None
    ingest: IngestConfig = field(default_factory=IngestConfig)
    track: TrackConfig = field(default_factory=TrackConfig)
    references: ReferencesConfig = field(default_factory=ReferencesConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    composite: CompositeConfig = field(default_factory=CompositeConfig)
    deliver: DeliverConfig = field(default_factory=DeliverConfig)

    def wants_gpu(self, stage: StageDef) -> bool:
        """Whether ``stage`` runs on a GPU in this process under this profile: a forced TensorRT
        backend (or ``device: cuda`` fine-tuning) always does; ``auto`` does where this process
        sees CUDA (:func:`pipeline.stages.graph.wants_gpu`)."""
        return wants_gpu(stage, self, cuda_available())


def cuda_available() -> bool:
    """Whether torch sees a CUDA device in this process."""
    return bool(torch.cuda.is_available())


def profile_path(name_or_path: str, base: Path | None = None) -> Path:
    """Resolve a profile name or path.

    Raises:
        ConfigError: no such profile.
    """
    p = Path(os.path.expanduser(name_or_path))
    if p.suffix in (".yaml", ".yml"):
        if not p.is_absolute() and base is not None:
            p = base / p
        if p.is_file():
            return p
        raise ConfigError([f"profile: {name_or_path!r}: file not found (resolved to {p})"])
    cand = configs_dir() / "profiles" / f"{name_or_path}.yaml"
    if cand.is_file():
        return cand
    raise ConfigError(
        [f"profile: {name_or_path!r} is not a known profile"],
        f"use one of {', '.join(available_profiles())}, or a path to a profile YAML",
    )


def load_profile(name_or_path: str, base: Path | None = None) -> Profile:
    """Load and validate a profile.

    Raises:
        ConfigError: every problem found, each with its file and key.
    """
    path = profile_path(name_or_path, base)
    data = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: <top>: expected a mapping of stage sections"])
    data.setdefault("name", path.stem)
    problems: list[str] = []
    prof = from_mapping(Profile, data, source=str(path), problems=problems)
    if prof is None:
        raise ConfigError(problems)
    # files the profile names (a look, a certificate) are relative to it
    review = prof.deliver.review.resolved(path.parent)
    c2pa = prof.deliver.c2pa.resolved(path.parent)
    return replace(prof, deliver=replace(prof.deliver, review=review, c2pa=c2pa))
