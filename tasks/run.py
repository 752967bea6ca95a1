"""Running shots: the public run API of the tasks, used by the command line and the benchmarks.

- :func:`build_tasks`: plan each shot, reserve its version, and give its top task (the delivery).
- :func:`run`: run tasks with Luigi's local scheduler, or with every other worker of a central
  scheduler (:func:`farm.worker.run_shared`).
- :func:`rerun`: invalidate a shot's stages from one on (:mod:`farm.rerun`) and run it again.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import luigi
import luigi.configuration

from farm.rerun import RerunPlan, apply_rerun, plan_rerun
from farm.worker import run_shared
from pipeline.shot.plan import allocate_version, cached_plan, version_note
from pipeline.shot.profile import configs_dir
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
    ok = result.status.name in ("SUCCESS", "SUCCESS_WITH_RETRY")
    if not ok:
        print(result.summary_text, file=sys.stderr)
    return ok


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
