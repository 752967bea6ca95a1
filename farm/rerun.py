"""Rerun part of a shot: invalidate exactly the stage outputs that must be recomputed.

``likeness rerun SHOT --from STAGE [--frames A-B]`` invalidates STAGE and every stage downstream
of it (by the stage graph's inputs); ``--frames`` narrows chunked stages to the chunks that
overlap the range (a merged stage downstream is invalidated whole). Then it runs the chain:
everything still valid is reused (the run is :func:`tasks.run.rerun`).

What it never does:

- touch a source plate: only folders under ``shots/<shot>/stages/`` are moved, and one that
  holds the plate is refused;
- delete anything: an invalidated stage folder is moved aside to
  ``stages/<stage>/.superseded/<key>.<stamp>`` (delete those when the rerun is approved);
- change a finished version: when the shot's version is delivered, the rerun delivers a new
  version (``v002``...) and the finished one stays as it is. An unfinished version (failed,
  killed) is completed in place.

Without ``--from`` nothing finished is invalidated: failed and missing stages run again.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import FarmError
from pipeline.frames import FrameRange
from pipeline.shot.plan import ShotPlan, StagePlan, cached_plan
from pipeline.stages.graph import STAGES
from pipeline.stages.graph import downstream as graph_downstream
from pipeline.workspace import Workdir, clear_state, manifest_matches

log = logging.getLogger("likeness.farm")

SUPERSEDED = ".superseded"


@dataclass
class RerunPlan:
    """What a rerun will do; :func:`plan_rerun` computes it without touching anything.

    Attributes:
        shot: the shot.
        spec: its spec path.
        plan: the shot's current plan.
        base_version: the version the rerun starts from.
        version: the version the rerun delivers (None: a new one is reserved when applied).
        invalidate: the stage tasks whose outputs are moved aside, upstream first.
    """

    shot: str
    spec: str
    plan: ShotPlan
    base_version: str
    version: str | None
    invalidate: list[StagePlan] = field(default_factory=list)

    def describe(self) -> str:
        """A few lines for the terminal."""
        v = self.version or "a new version"
        lines = [f"rerun {self.shot} from {self.base_version}: delivers {v}"]
        lines += [f"  invalidate {s.task_name:<24} {s.folder}" for s in self.invalidate]
        if not self.invalidate:
            lines.append("  (nothing finished is invalidated: failed and missing stages run)")
        return "\n".join(lines)


def downstream(stage: str) -> list[str]:
    """``stage`` and every stage that depends on it, directly or not, in chain order
    (:func:`pipeline.stages.graph.downstream`).

    Raises:
        FarmError: ``stage`` is not a stage of the chain.
    """
    names = [s.name for s in STAGES]
    if stage not in names:
        raise FarmError(f"stage {stage!r} is unknown", f"use one of: {', '.join(names)}")
    return graph_downstream(stage)


def _latest_version(wd: Workdir, shot: str) -> str:
    versions = wd.versions(shot)
    if not versions:
        raise FarmError(
            f"shot {shot!r} has no version in {wd.root}",
            "submit it first: likeness submit SPEC --workdir ...",
        )
    return versions[-1]


def plan_rerun(
    workdir: str | os.PathLike[str],
    shot: str,
    from_stage: str | None = None,
    frames: str | None = None,
) -> RerunPlan:
    """Work out a rerun without changing anything.

    Raises:
        FarmError: unknown shot, version or stage, a bad frame range, or frames outside the
            shot.
    """
    wd = Workdir(workdir)
    base = _latest_version(wd, shot)
    spec = str(wd.read_plan(shot, base)["spec"])
    if not Path(spec).is_file():
        raise FarmError(f"the spec of {shot} {base} is gone: {spec}", "restore it, or resubmit")
    plan = cached_plan(spec, str(wd.root))
    want: FrameRange | None = None
    if frames:
        try:
            want = FrameRange.parse(frames)
        except (ValueError, TypeError) as exc:
            raise FarmError(
                f"frame range {frames!r} is not A-B", "e.g. --frames 1001-1048"
            ) from exc
        if want.last < plan.frames.first or want.first > plan.frames.last:
            raise FarmError(
                f"frames {frames} lie outside {shot}'s range {plan.frames}",
                f"choose frames within {plan.frames}",
            )
    invalidate: list[StagePlan] = []
    stages = downstream(from_stage) if from_stage else []
    for st in plan.stages.values():
        if st.name not in stages or st.name == "deliver":
            continue  # a version folder is never invalidated: a rerun delivers a new one
        if st.chunk is not None and want is not None:
            if st.frames.last < want.first or st.frames.first > want.last:
                continue
        if (st.folder / "_manifest.json").exists():
            invalidate.append(st)
    existing = _version_for(wd, plan)
    delivered = existing is not None and _delivered(wd, plan, existing)
    version = None if (delivered and (invalidate or "deliver" in stages)) else existing
    return RerunPlan(shot, spec, plan, base, version, invalidate)


def _version_for(wd: Workdir, plan: ShotPlan) -> str | None:
    for v in reversed(wd.versions(plan.spec.shot)):
        try:
            if wd.read_plan(plan.spec.shot, v).get("delivery_key") == plan.delivery_key:
                return v
        except (OSError, ValueError):
            continue
    return None


def _delivered(wd: Workdir, plan: ShotPlan, version: str) -> bool:
    st = plan.stage("deliver")
    return manifest_matches(
        wd.version_dir(plan.spec.shot, version), plan.delivery_key, st.config_digest
    )


def _move_aside(wd: Workdir, plan: ShotPlan, st: StagePlan) -> Path:
    shot = plan.spec.shot
    stages_root = (wd.shot_dir(shot) / "stages").resolve()
    folder = st.folder.resolve()
    if not folder.is_relative_to(stages_root):
        raise FarmError(f"refusing to move {folder}: it is not a stage folder of {shot}")
    plate = Path(plan.spec.plate_path).resolve()
    if plate.is_relative_to(folder):
        raise FarmError(f"refusing to move {folder}: it holds the source plate {plate}")
    dest = folder.parent / SUPERSEDED / f"{folder.name}.{time.strftime('%Y%m%dT%H%M%S')}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    while dest.exists():
        n += 1
        dest = dest.with_name(f"{dest.name.split('~')[0]}~{n}")
    os.rename(folder, dest)  # atomic: the stage is complete or absent, never half-invalid
    return dest


def apply_rerun(rp: RerunPlan) -> str:
    """Move the invalidated stage folders aside, clear their state records, pick the version.

    Returns:
        the version the rerun delivers (reserved here when new).
    """
    wd = rp.plan.workdir
    for st in rp.invalidate:
        if st.folder.exists():
            dest = _move_aside(wd, rp.plan, st)
            log.info("%s %s: moved aside to %s", rp.shot, st.task_name, dest)
    for st in rp.plan.stages.values():
        clear_state(wd, rp.shot, st.task_name)  # stale running/failed records of the old run
    if rp.version is None:
        rp.version = wd.find_or_allocate_version(
            rp.shot, rp.plan.delivery_key, rp.plan.to_json(), new=True
        )
    return rp.version
