"""Running shots: the public run API of the tasks, used by the command line and the benchmarks.

- :func:`build_tasks`: plan each shot, reserve its version, and give its top task (the delivery).
- :func:`run`: run tasks with Luigi's local scheduler, or with every other worker of a central
  scheduler (:func:`farm.worker.run_shared`).
- :func:`rerun`: invalidate a shot's stages from one on (:mod:`farm.rerun`) and run it again.
- :func:`outcomes` and :func:`describe`: how each shot ended, for the console: its outputs, or
  one paragraph on why it was not delivered.
- :func:`preflight_all`: every shot checked before anything runs, every problem printed.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import luigi
import luigi.configuration

from farm.rerun import RerunPlan, apply_rerun, plan_rerun
from farm.worker import run_shared
from pipeline.errors import EXIT_FAILED, EXIT_INTERNAL, EXIT_OK, PreflightError
from pipeline.shot.plan import allocate_version, cached_plan, version_note
from pipeline.shot.preflight import PreflightReport, preflight
from pipeline.shot.profile import configs_dir
from pipeline.shot.status import workdir_status
from tasks.base import UNRECORDED
from tasks.stages import Deliver


def luigi_config() -> None:
    """Add the shipped ``configs/luigi.cfg`` to Luigi's configuration (once per process)."""
    cfg = configs_dir() / "luigi.cfg"
    if cfg.is_file():
        luigi.configuration.add_config_path(str(cfg))


def deliver_task(
    spec: str | os.PathLike[str], workdir: str | os.PathLike[str], version: str
) -> Deliver:
    """The top task of one shot: its delivery as ``version``, requiring every other stage."""
    spec, workdir = str(Path(spec).resolve()), str(Path(workdir).resolve())
    plan = cached_plan(spec, workdir)
    return Deliver(spec=spec, workdir=workdir, plan_digest=plan.digest, version=version)


def build_tasks(spec_paths: list[str], workdir: str) -> tuple[list[Deliver], list[tuple[str, str]]]:
    """Plan each shot, reserve its version, and return the top tasks plus ``(shot, version)``.

    A shot that gets a new version says on stderr which stages changed since the version before.

    Raises:
        ShotSpecError, ConfigError, DecodeError: a spec, profile or plate that cannot be planned.
    """
    tasks, versions = [], []
    for sp in spec_paths:
        plan = cached_plan(str(Path(sp).resolve()), workdir)
        before = plan.workdir.versions(plan.spec.shot)
        version = allocate_version(plan)
        note = version_note(plan, version) if version not in before else None
        if note:  # what a wrangler needs to know: why this shot is delivered again
            print(f"{plan.spec.shot}: {note}", file=sys.stderr)
        tasks.append(deliver_task(sp, workdir, version))
        versions.append((plan.spec.shot, version))
    return tasks, versions


def run(tasks: list[luigi.Task], scheduler_url: str | None = None, workers: int = 1) -> bool:
    """Run ``tasks`` to completion: Luigi's local scheduler, or a central one at
    ``scheduler_url`` shared with every other worker.

    Returns:
        True when every task is complete.
    """
    luigi_config()
    if scheduler_url:
        return run_shared(tasks, scheduler_url, workers)
    result = luigi.build(tasks, workers=workers, local_scheduler=True, detailed_summary=True)
    return result.status.name in ("SUCCESS", "SUCCESS_WITH_RETRY")


def rerun(
    workdir: str | os.PathLike[str],
    shot: str,
    from_stage: str | None = None,
    frames: str | None = None,
    *,
    scheduler_url: str | None = None,
    workers: int = 1,
) -> tuple[RerunPlan, bool]:
    """Invalidate what :func:`farm.rerun.plan_rerun` says and run the shot's chain again.

    Returns:
        the plan that was applied, and whether the shot completed.

    Raises:
        FarmError: see :func:`farm.rerun.plan_rerun`.
    """
    rp = plan_rerun(workdir, shot, from_stage, frames)
    version = apply_rerun(rp)
    task = deliver_task(rp.spec, rp.plan.workdir.root, version)
    return rp, run([task], scheduler_url, workers)


@dataclass(frozen=True)
class ShotOutcome:
    """How one shot version ended after a run.

    Attributes:
        shot, version: the shot version.
        delivered: its delivery is complete.
        outputs: what it delivered (``exr``, ``review``, ``qc``), when delivered.
        failed: the failed stage tasks: ``{task: status record}`` (error, message, hint,
            exit_code).
        done: the stage tasks that are done, reused as they are by a rerun.
        exit_code: 0 when delivered, else the most serious failure's
            (:data:`pipeline.errors.EXIT_FAILED` when no stage recorded why).
    """

    shot: str
    version: str
    delivered: bool
    outputs: dict[str, str]
    failed: dict[str, dict[str, Any]]
    done: list[str]
    exit_code: int


def outcomes(workdir: str | os.PathLike[str], versions: list[tuple[str, str]]) -> list[ShotOutcome]:
    """The outcome of each ``(shot, version)`` from the workdir's manifests and state records."""
    st = workdir_status(workdir)
    out = []
    for shot, v in versions:
        info = st["shots"].get(shot, {}).get("versions", {}).get(v, {})
        stages = info.get("stages", {})
        failed = {t: s for t, s in stages.items() if s.get("state") == "failed"}
        for (root, s_, task), rec in UNRECORDED.items():  # failures a full volume kept out
            if s_ == shot and Path(root) == Path(workdir).resolve() and task not in failed:
                failed[task] = {"state": "failed", **rec}
        delivered = info.get("state") == "done"
        code = (
            EXIT_OK
            if delivered
            else max(
                (int(s.get("exit_code") or EXIT_FAILED) for s in failed.values()),
                default=EXIT_FAILED,
            )
        )
        out.append(
            ShotOutcome(
                shot,
                v,
                delivered,
                {k: p for k, p in info.get("outputs", {}).items() if p},
                failed,
                [t for t, s in stages.items() if s.get("state") == "done"],
                code,
            )  # fmt: skip
        )
    return out


def describe(outcome: ShotOutcome, workdir: str | os.PathLike[str]) -> str:
    """A shot's outcome for the console: its outputs, or one paragraph on why it was not
    delivered (the stage, the named error, its fix, the command that prints the log, and what is
    done and reusable)."""
    head = f"{outcome.shot} {outcome.version}"
    if outcome.delivered:
        return "\n".join(
            [f"{head}: delivered", *(f"  {k:<7} {p}" for k, p in outcome.outputs.items())]
        )
    lines = [f"{head}: not delivered"]
    for task, rec in outcome.failed.items():
        stage, _, chunk = task.partition(".")
        where = f"{stage} (frames {chunk})" if chunk else stage
        name = str(rec.get("error", "")).split(":")[0] or "error"
        lines.append(f"  failed: {where}: {name}: {rec.get('message') or rec.get('error')}")
        if rec.get("hint"):
            lines.append(f"  fix: {rec['hint']}")
        elif int(rec.get("exit_code") or 0) == EXIT_INTERNAL:
            lines.append("  fix: this is a bug in likeness; send the log below with the shot")
        cmd = f"likeness logs {outcome.shot} {stage}" + (f" --chunk {chunk}" if chunk else "")
        lines.append(f"  log: {cmd} --workdir {Path(workdir).resolve()}")
    if not outcome.failed:
        lines.append(
            "  no stage failed: the run stopped before it finished (see the messages above)"
        )
    lines.append("  done, reused as they are by a rerun: " + (_stages_done(outcome.done) or "none"))
    return "\n".join(lines)


def _stages_done(tasks: list[str]) -> str:
    """``ingest, track_chunk (2 chunks), track`` from task names, in order."""
    counts = Counter(t.partition(".")[0] for t in tasks)
    chunked = {t.partition(".")[0] for t in tasks if "." in t}
    return ", ".join(f"{s} ({n} chunks)" if s in chunked else s for s, n in counts.items())


def preflight_all(
    specs: list[str], workdir: str | os.PathLike[str] | None = None
) -> tuple[list[PreflightReport], int]:
    """Preflight every shot (:func:`pipeline.shot.preflight.preflight`) and print each problem
    on stderr, with its file and its fix.

    Returns:
        the reports, and the exit code: 0 when every shot passed, else the most serious
        problem's.
    """
    reports = [preflight(sp, workdir) for sp in specs]
    code = EXIT_OK
    for r in reports:
        try:
            r.raise_if_problems()
        except PreflightError as exc:
            print(f"likeness: {exc}", file=sys.stderr)
            code = max(code, exc.exit_code)
    return reports, code
