"""What every farm-manager adapter renders: a batch of shots, each a list of stage jobs."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field


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
