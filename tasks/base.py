"""Luigi glue shared by every stage task: identity parameters, manifest targets, state records.

A task's parameters carry identity only: the shot spec, the workdir and the plan digest (plus a
chunk or version where the stage has one). Its output is the stage folder of the plan; it is
complete only when that folder's ``_manifest.json`` exists and matches the plan's key and config.
Its requirements are its stage's inputs in the stage graph (:mod:`pipeline.stages.graph`): a
task declares only which stage it runs.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from pathlib import Path
from typing import Any, ClassVar

import luigi

from pipeline.atomic import sweep_temporaries
from pipeline.errors import EXIT_INTERNAL, DiskFullError, LikenessError
from pipeline.shot.plan import ShotPlan, StagePlan, cached_plan
from pipeline.stages.graph import stage_def
from pipeline.workspace import (
    StageManifest,
    Workdir,
    clear_state,
    hash_outputs,
    manifest_matches,
    record_state,
    write_manifest,
)

log = logging.getLogger("likeness")


class ManifestTarget(luigi.Target):
    """A stage folder that exists only once its manifest matches the expected key and config."""

    def __init__(self, folder: Path, key: str, config_digest: str) -> None:
        self.folder = Path(folder)
        self.key = key
        self.config_digest = config_digest

    @property
    def path(self) -> str:
        return str(self.folder)

    def exists(self) -> bool:
        return manifest_matches(self.folder, self.key, self.config_digest)


#: Stage name → the task class that runs it (filled as the task classes are defined).
TASKS: dict[str, type[ShotTask]] = {}


class ShotTask(luigi.Task):
    """Base of every per-shot stage task."""

    spec = luigi.Parameter(description="path of the shot spec YAML")
    workdir = luigi.Parameter(description="the likeness workdir")
    plan_digest = luigi.Parameter(description="digest of the shot plan: changes with any config")
    priority = luigi.IntParameter(default=0, significant=False)

    #: The stage this task runs: a name of :data:`pipeline.stages.graph.STAGES`.
    stage_name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.stage_name:
            TASKS[stage_def(cls.stage_name).name] = cls

    # -- plan lookups ---------------------------------------------------------------------------
    @property
    def plan(self) -> ShotPlan:
        return cached_plan(self.spec, self.workdir)

    @property
    def chunk_id(self) -> str | None:
        return None

    @property
    def stage(self) -> StagePlan:
        return self.plan.stage(self.stage_name, self.chunk_id)

    @property
    def shot(self) -> str:
        return self.plan.spec.shot

    @property
    def wd(self) -> Workdir:
        return self.plan.workdir

    def upstream(self, **extra: Any) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "workdir": self.workdir,
            "plan_digest": self.plan_digest,
            **extra,
        }

    def requires(self) -> dict[str, ShotTask | list[ShotTask]]:
        """The tasks of this stage's inputs in the stage graph, by stage name (a list of chunk
        tasks for a chunked stage)."""
        out: dict[str, ShotTask | list[ShotTask]] = {}
        for name in stage_def(self.stage_name).inputs:
            task = TASKS[name]
            if stage_def(name).chunked:
                out[name] = [task(**self.upstream(chunk=c.chunk)) for c in self.plan.chunks(name)]
            else:
                out[name] = task(**self.upstream())
        return out

    def input_folders(self) -> dict[str, Any]:
        """The input stages' folders by stage name: a Path, or a list of Paths for chunks."""
        return {
            k: [t.folder for t in v] if isinstance(v, list) else v.folder
            for k, v in self.input().items()
        }

    def output(self) -> ManifestTarget:
        st = self.stage
        return ManifestTarget(st.folder, st.key, st.config_digest)

    # -- resources ----------------------------------------------------------------------------
    @property
    def resources(self) -> dict[str, int]:  # type: ignore[override]
        """``{"gpu": 1}`` for a stage that runs on a GPU under this profile, else nothing.

        A profile that forces TensorRT (or CUDA fine-tuning) pins its GPU stages to GPU nodes;
        ``auto`` asks for a GPU only where this process sees CUDA. A CPU-only farm therefore
        runs every stage on CPU workers, and a node never takes more GPU work than its GPUs.
        """
        return {"gpu": 1} if self.plan.profile.wants_gpu(stage_def(self.stage_name)) else {}

    # -- the run wrapper --------------------------------------------------------------------------
    def run(self) -> None:
        out = self.output()
        folder = out.folder
        sweep_temporaries(folder.parent, folder.name)
        started = time.time()
        handler = self._log_to_file()
        try:
            log.info("%s %s: start -> %s", self.shot, self.stage.task_name, folder)
            extra = self.run_stage(folder) or {}
            st = self.stage
            write_manifest(
                folder,
                StageManifest(
                    stage=st.name,
                    key=out.key,
                    shot=self.shot,
                    config_digest=out.config_digest,
                    stage_version=st.version,
                    inputs=st.inputs,
                    frame_range=str(st.frames),
                    outputs=hash_outputs(folder),
                    extra=extra,
                    started=started,
                    finished=time.time(),
                ),
            )
            log.info("%s %s: done in %.1fs", self.shot, self.stage.task_name, time.time() - started)
        except Exception:
            # The traceback goes to the stage's log (``likeness logs``), never to the console.
            log.exception("%s %s: failed", self.shot, self.stage.task_name)
            raise
        finally:
            log.removeHandler(handler)
            handler.close()

    def run_stage(self, folder: Path) -> dict[str, Any] | None:
        """Produce the stage's outputs in ``folder`` (atomically). Returns manifest extras."""
        raise NotImplementedError

    def progress(self, done: int, total: int) -> None:
        """Report progress to the scheduler (visualiser) and, on a terminal, as a bar."""
        pct = int(100 * done / max(total, 1))
        self.set_progress_percentage(pct)
        self.set_status_message(f"{self.stage.task_name}: {done}/{total}")
        if sys.stderr.isatty():
            bar = "#" * (pct // 4)
            end = "\n" if done >= total else ""
            sys.stderr.write(
                f"\r{self.shot} {self.stage.task_name:<28} [{bar:<25}] {done}/{total}{end}"
            )
            sys.stderr.flush()

    def _log_to_file(self) -> logging.Handler:
        path = self.wd.log_dir(self.shot) / f"{self.stage.task_name}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        h = logging.FileHandler(path)
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log.addHandler(h)
        if log.level == logging.NOTSET or log.level > logging.INFO:
            log.setLevel(logging.INFO)
        return h


@ShotTask.event_handler(luigi.Event.START)
def _on_start(task: ShotTask) -> None:
    record_state(task.wd, task.shot, task.stage.task_name, "running")


@ShotTask.event_handler(luigi.Event.SUCCESS)
def _on_success(task: ShotTask) -> None:
    clear_state(task.wd, task.shot, task.stage.task_name)


#: Failures this process could not write to the workdir (a full volume), by
#: ``(workdir, shot, task)``: what :func:`tasks.run.outcomes` reports for them.
UNRECORDED: dict[tuple[str, str, str], dict[str, Any]] = {}


@ShotTask.event_handler(luigi.Event.FAILURE)
def _on_failure(task: ShotTask, exc: BaseException) -> None:
    first = (str(exc).splitlines() or [type(exc).__name__])[0]
    ours = isinstance(exc, LikenessError)
    record = {
        "error": f"{type(exc).__name__}: {first}",
        "message": exc.message if ours else str(exc),
        "hint": exc.hint if ours else None,
        "exit_code": exc.exit_code if ours else EXIT_INTERNAL,
    }
    trace = "".join(traceback.format_exception(exc))[-4000:]
    try:
        record_state(task.wd, task.shot, task.stage.task_name, "failed", **record, traceback=trace)
    except DiskFullError:
        # a full volume may hold the short record (the traceback is in the stage log)
        try:
            record_state(task.wd, task.shot, task.stage.task_name, "failed", **record)
        except DiskFullError:
            log.error("%s %s: the volume is full; its failure could not be recorded",
                      task.shot, task.stage.task_name)  # fmt: skip
            UNRECORDED[(str(task.wd.root), task.shot, task.stage.task_name)] = record
