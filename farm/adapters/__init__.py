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
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from pipeline.errors import FarmError


@dataclass(frozen=True)
class StageJob:
    """One stage of a shot as the farm sees it.

    Attributes:
        name: the stage.
        frames: the frame range split into chunks (``1001-1096``); None for a one-task stage.
        chunk_size: frames per farm task when ``frames`` is set.
        after: stages of the same shot that must finish first.
        resources: what one task needs on its node, e.g. ``{"gpu": 1}``.
    """

    name: str
    frames: str | None = None
    chunk_size: int = 1
    after: tuple[str, ...] = ()
    resources: dict[str, int] = field(default_factory=dict)

    @property
    def n_chunks(self) -> int:
        if self.frames is None:
            return 1
        first, last = (int(x) for x in self.frames.split("-"))
        return -(-(last - first + 1) // self.chunk_size)

    @property
    def gpus(self) -> int:
        return int(self.resources.get("gpu", 0))


@dataclass(frozen=True)
class ShotJob:
    """A shot: its spec path (as the farm nodes see it) and its stages, upstream first."""

    shot: str
    spec: str
    stages: tuple[StageJob, ...]


@dataclass(frozen=True)
class FarmBatch:
    """A batch of shots for one farm submission. Paths are as the farm nodes see them.

    Attributes:
        name: batch name (job names derive from it).
        shots: the shots.
        scheduler_url: the central scheduler the farm tasks report to.
        workdir: the likeness workdir on shared storage.
        likeness: the command that runs likeness on a node.
        log_dir: where the farm manager writes task logs (Slurm); default ``workdir/farm-logs``.
        priority: 0-100.
        show, user: OpenCue's show and user; ``pool`` Deadline's pool, Slurm's partition.
    """

    name: str
    shots: tuple[ShotJob, ...]
    scheduler_url: str
    workdir: str
    likeness: str = "likeness"
    log_dir: str | None = None
    priority: int = 50
    show: str = "likeness"
    user: str = "wrangler"
    pool: str | None = None

    def command(self, shot: ShotJob, stage: StageJob, frames: str | None = None) -> str:
        """The shell command of one farm task (``frames`` may hold the manager's tokens)."""
        args = [
            "worker",
            "--scheduler-url",
            self.scheduler_url,
            "--workdir",
            self.workdir,
            "--stage",
            stage.name,
        ]
        if stage.gpus:
            args += ["--resources", f"gpu={stage.gpus}"]
        cmd = " ".join([self.likeness, *(shlex.quote(a) for a in args)])
        if frames is not None:
            cmd += f" --frames {frames}"
        return f"{cmd} {shlex.quote(shot.spec)}"

    @property
    def logs(self) -> str:
        return self.log_dir or f"{self.workdir.rstrip('/')}/farm-logs"


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


def _stage_resources(stage: str, profile: Any) -> dict[str, int]:
    """What one task of ``stage`` needs on its farm node.

    A farm manager's job description is written before any node is chosen, so a GPU stage asks
    for a GPU unless its profile pins it to the CPU (``engine.backend: onnxruntime``/``torch``,
    ``finetune.device: cpu``).
    """
    from tasks.base import ShotTask

    todo: list[type] = list(ShotTask.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if getattr(cls, "stage_name", None) != stage:
            continue
        gpu_stage = getattr(cls, "gpu_stage", None)
        if gpu_stage == "finetune":
            return {"gpu": 1} if profile.finetune.device != "cpu" else {}
        if gpu_stage == "engine":
            return {"gpu": 1} if profile.engine.backend in ("auto", "tensorrt") else {}
        return {}
    return {}


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
    import tasks.deliver  # noqa: F401 - registers the stage tasks (and their resources)
    from pipeline.plan import STAGES, allocate_version, cached_plan

    shots = []
    for sp in specs:
        plan = cached_plan(str(Path(sp).resolve()), str(Path(workdir).resolve()))
        allocate_version(plan)
        stages = []
        for sd in STAGES:
            chunk = getattr(plan.profile, sd.section).chunk_size if sd.chunked else 1
            stages.append(
                StageJob(
                    sd.name,
                    str(plan.frames) if sd.chunked else None,
                    chunk,
                    sd.after,
                    _stage_resources(sd.name, plan.profile),
                )
            )
        shots.append(ShotJob(plan.spec.shot, str(plan.spec.source), tuple(stages)))
    return FarmBatch(name, tuple(shots), scheduler_url, str(Path(workdir).resolve()), **options)
