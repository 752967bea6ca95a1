"""What a workdir holds: every shot version's stages with their state, timings and outputs.

Read-only: status never writes, so a wrangler can run it at any time on a live farm.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pipeline.stages.graph import STAGES
from pipeline.workspace import MANIFEST, Workdir, manifest_matches, read_manifest, state_path

#: A running record older than this, with no manifest, is reported as stale ("running?").
STALE_RUNNING_S = 6 * 3600


def _chain_order(item: tuple[str, dict[str, Any]]) -> tuple[int, str]:
    """Sort key: the stage's place in the chain, then the chunk's frames."""

    order = {sd.name: i for i, sd in enumerate(STAGES)}
    task, st = item
    return order.get(str(st.get("stage", "")), len(order)), task


def _number(value: Any) -> float:
    """A JSON number as a float; 0 for anything else (records are written by other processes)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _plan_stages(plan: dict[str, Any], vdir: Path) -> list[tuple[str, Path, str, str]]:
    """``(task, folder, key, config digest)`` of every stage of a plan, in chain order.

    Raises:
        ValueError: the plan is damaged.
    """
    stages = plan.get("stages", {})
    if not isinstance(stages, dict) or not all(isinstance(st, dict) for st in stages.values()):
        raise ValueError("the plan's stages are not a mapping of stage records")
    out = []
    for task, st in sorted(stages.items(), key=_chain_order):
        try:
            if st["stage"] == "deliver":
                folder, key = vdir, plan["delivery_key"]
            else:
                folder, key = Path(st["folder"]), st["key"]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"stage {task} of the plan is damaged: {exc!r}") from exc
        out.append((task, folder, str(key), str(st.get("config_digest", ""))))
    return out


def _stage_state(
    wd: Workdir, shot: str, task: str, folder: Path, key: str, cdig: str
) -> dict[str, Any]:
    info: dict[str, Any] = {"folder": str(folder)}
    if manifest_matches(folder, key, cdig):
        m = read_manifest(folder) or {}
        info.update(
            state="done",
            seconds=round(_number(m.get("finished")) - _number(m.get("started")), 2),
            frames=m.get("frame_range"),
        )
        return info
    for kind in ("failed", "running"):
        p = state_path(wd, shot, task, kind)
        try:
            rec = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(rec, dict):
            rec = {}
        info["state"] = kind
        if kind == "failed":
            info["error"] = str(rec.get("error", ""))
            for k in ("message", "hint", "exit_code"):
                if rec.get(k) is not None:
                    info[k] = rec[k]
        else:
            info["since"] = rec.get("time")
            if time.time() - _number(rec.get("time")) > STALE_RUNNING_S:
                info["state"] = "stale"
        return info
    info["state"] = "pending"
    return info


def shot_status(wd: Workdir, shot: str) -> dict[str, Any]:
    """Status of every version of one shot."""
    versions: dict[str, Any] = {}
    for v in wd.versions(shot):
        vdir = wd.version_dir(shot, v)
        try:
            plan = wd.read_plan(shot, v)
            plan_stages = _plan_stages(plan, vdir)
        except (OSError, ValueError) as exc:
            # Shown, not hidden: a wrangler must see the version a damaged plan stands for.
            versions[v] = {
                "state": "damaged",
                "frames": None,
                "error": f"plan {wd.shot_dir(shot) / f'{v}.json'} is unreadable: {exc}",
                "stages": {},
                "outputs": {"exr": None, "review": None},
            }
            continue
        stages: dict[str, Any] = {}
        for task, folder, key, cdig in plan_stages:
            stages[task] = _stage_state(wd, shot, task, folder, key, cdig)
        # Outputs are listed once the version is delivered: never paths that do not exist.
        outputs: dict[str, Any] = {"exr": None, "review": None}
        m = read_manifest(vdir) if (vdir / MANIFEST).is_file() else None
        if m:
            extra = m.get("extra") if isinstance(m.get("extra"), dict) else {}
            outputs["exr"] = extra.get("exr")
            outputs["review"] = extra.get("review")
            if extra.get("qc"):
                outputs["qc"] = extra["qc"]
        states = [s["state"] for s in stages.values()]
        overall = (
            "done"
            if states and all(s == "done" for s in states)
            else "failed"
            if "failed" in states
            else "running"
            if "running" in states
            else "pending"
        )
        versions[v] = {
            "state": overall,
            "frames": plan.get("frames"),
            "stages": stages,
            "outputs": outputs,
        }
    return {"shot": shot, "versions": versions}


def workdir_status(root: str | Path) -> dict[str, Any]:
    """Status of every shot in a workdir, as JSON-able data.

    Shape: ``{"workdir": str, "shots": {shot: {"versions": {v: {"state", "frames",
    "stages": {task: {"state", ...}}, "outputs": {"exr", "review", "qc"?}, "error"?}}}}}``;
    a version whose plan cannot be read has state ``"damaged"`` and an ``error``.
    """
    wd = Workdir(root)
    return {"workdir": str(wd.root), "shots": {s: shot_status(wd, s) for s in wd.shots()}}


def format_table(status: dict[str, Any]) -> str:
    """A plain-text table of shots × stages for a terminal."""
    lines = [f"workdir {status['workdir']}"]
    if not status["shots"]:
        lines.append("  (no shots)")
    for shot, info in status["shots"].items():
        for v, vinfo in info["versions"].items():
            lines.append(f"{shot} {v}  [{vinfo['state']}]  frames {vinfo['frames']}")
            if vinfo.get("error"):
                lines.append(f"    {vinfo['error']}")
            for task, st in vinfo["stages"].items():
                detail = ""
                if st["state"] == "done":
                    detail = f"{st.get('seconds', 0):.1f}s"
                elif st["state"] == "failed":
                    detail = st.get("error", "")
                lines.append(f"    {task:<28} {st['state']:<8} {detail}")
            outputs = [(k, p) for k, p in vinfo["outputs"].items() if p]
            for k, p in outputs:
                lines.append(f"    -> {k}: {p}")
            if not outputs:
                lines.append("    (not delivered)")
    return "\n".join(lines)
