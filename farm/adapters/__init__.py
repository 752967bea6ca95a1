"""Farm-manager adapters: turn a batch of shots into a farm manager's job description.

One module per manager, chosen through :data:`ADAPTERS` (a manifest, as OpenTimelineIO's
adapters are). Every module has ``render(batch) -> {relative file name: text}``; the output is a
pure function of the :class:`FarmBatch`, so it can be reviewed, versioned and golden-tested.

Each farm task runs one stage of one shot (a chunk of frames for chunked stages) through
``likeness worker --scheduler-url URL --stage STAGE [--frames A-B] SPEC``: the central scheduler
still hands each Luigi task to one worker at a time, so a task the farm manager retries, or a
stage a ``likeness worker`` elsewhere already ran, is not run twice.

    python -m farm.adapters opencue SPEC... --workdir W --scheduler-url URL --out DIR
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from farm.adapters.base import FarmBatch, ShotJob, StageJob
from pipeline.errors import FarmError
from pipeline.shot.plan import allocate_version, cached_plan
from pipeline.stages.graph import STAGES, wants_gpu


@dataclass(frozen=True)
class AdapterInfo:
    """An entry of the adapter manifest."""

    name: str
    module: str
    description: str


#: The manifest: adapter name -> where it lives and what it writes.
ADAPTERS: dict[str, AdapterInfo] = {
    a.name: a
    for a in (
        AdapterInfo(
            "opencue",
            "farm.adapters.opencue",
            "OpenCue job spec XML (cjsl-1.14): one job per shot, a layer per stage, "
            "frame chunks, layer-on-layer dependencies; submit with cueadmin/pycue",
        ),
        AdapterInfo(
            "deadline",
            "farm.adapters.deadline",
            "AWS Thinkbox Deadline CommandLine jobs: job-info and plugin-info files per stage, "
            "chained per shot by deadlinecommand -SubmitMultipleJobs -dependent",
        ),
        AdapterInfo(
            "slurm",
            "farm.adapters.slurm",
            "Slurm sbatch array scripts per stage, chained by --dependency=afterok",
        ),
    )
}


def get_adapter(name: str) -> ModuleType:
    """The adapter module called ``name``.

    Raises:
        FarmError: no such adapter.
    """
    info = ADAPTERS.get(name)
    if info is None:
        raise FarmError(f"farm adapter {name!r} is unknown", f"use one of: {', '.join(ADAPTERS)}")
    return importlib.import_module(info.module)


def render(name: str, batch: FarmBatch) -> dict[str, str]:
    """The files adapter ``name`` writes for ``batch``: relative name -> text."""
    return get_adapter(name).render(batch)


def write(name: str, batch: FarmBatch, out_dir: str | Path) -> list[Path]:
    """Write adapter ``name``'s files for ``batch`` into ``out_dir``. Returns their paths."""
    out = Path(out_dir)
    paths = []
    for rel, text in render(name, batch).items():
        p = out / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.tmp")
        tmp.write_text(text)
        if rel.endswith(".sh") or rel.endswith(".sbatch"):
            tmp.chmod(0o755)
        tmp.replace(p)
        paths.append(p)
    return paths


def batch_from_specs(
    specs: Sequence[str],
    workdir: str,
    scheduler_url: str,
    *,
    name: str = "likeness",
    **options: Any,
) -> FarmBatch:
    """Plan each shot, reserve its version, and describe the batch for a farm manager.

    Versions are reserved here, at submission, so that every farm task of a shot delivers the
    same version.
    """
    shots = []
    for sp in specs:
        plan = cached_plan(str(Path(sp).resolve()), str(Path(workdir).resolve()))
        allocate_version(plan)
        stages = []
        for sd in STAGES:
            chunk = getattr(plan.profile, sd.section).chunk_size if sd.chunked else 1
            # A job description is written before any node is chosen: a GPU stage asks for a
            # GPU unless its profile pins it to the CPU.
            gpu = wants_gpu(sd, plan.profile, cuda=None)
            stages.append(
                StageJob(
                    sd.name,
                    str(plan.frames) if sd.chunked else None,
                    chunk,
                    sd.inputs,
                    {"gpu": 1} if gpu else {},
                )
            )
        shots.append(ShotJob(plan.spec.shot, str(plan.spec.source), tuple(stages)))
    return FarmBatch(name, tuple(shots), scheduler_url, str(Path(workdir).resolve()), **options)
