"""AWS Thinkbox Deadline: CommandLine jobs, a job-info and a plugin-info file per stage.

A chunked stage is one job whose tasks cover ``ChunkSize`` frames each; Deadline replaces
``<STARTFRAME>`` and ``<ENDFRAME>`` in the arguments with each task's range. A shot's stage
jobs are chained by ``deadlinecommand -SubmitMultipleJobs -dependent`` (each job depends on the
one before it), one line per shot in ``submit.sh``; the jobs share a ``BatchName``.
"""

from __future__ import annotations

import shlex

from farm.adapters.base import FarmBatch, ShotJob, StageJob


def _kv(pairs: list[tuple[str, str | int]]) -> str:
    return "".join(f"{k}={v}\n" for k, v in pairs)


def job_info(batch: FarmBatch, shot: ShotJob, st: StageJob) -> str:
    pairs: list[tuple[str, str | int]] = [
        ("Plugin", "CommandLine"),
        ("Name", f"{shot.shot} {st.name}"),
        ("BatchName", f"{batch.name} {shot.shot}"),
        ("Comment", f"likeness {shot.shot} {st.name}"),
        ("Frames", st.frames if st.frames is not None else "0"),
        ("ChunkSize", st.chunk_size if st.frames is not None else 1),
        ("Priority", batch.priority),
    ]
    if batch.pool:
        pairs.append(("Pool", batch.pool))
    if st.gpus:
        pairs.append(("Group", "gpu"))
    pairs += [("OnJobComplete", "Nothing"), ("ExtraInfo0", shot.shot), ("ExtraInfo1", st.name)]
    return _kv(pairs)


def plugin_info(batch: FarmBatch, shot: ShotJob, st: StageJob) -> str:
    cmd = batch.command(shot, st, "<STARTFRAME>-<ENDFRAME>" if st.frames else None)
    exe, _, args = cmd.partition(" ")
    return _kv([("Executable", exe), ("Arguments", args), ("Shell", "default")])


def render(batch: FarmBatch) -> dict[str, str]:
    """Job-info and plugin-info files per shot and stage, plus ``submit.sh``."""
    files: dict[str, str] = {}
    lines = [
        "#!/bin/sh",
        "# Submit each shot's stage jobs, each depending on the one before.",
        "set -e",
    ]
    for shot in batch.shots:
        parts = ["deadlinecommand -SubmitMultipleJobs -dependent"]
        for i, st in enumerate(shot.stages, 1):
            stem = f"{shot.shot}/{i:02d}_{st.name}"
            files[f"{stem}.job"] = job_info(batch, shot, st)
            files[f"{stem}.plugin"] = plugin_info(batch, shot, st)
            parts.append(f"-job {shlex.quote(stem + '.job')} {shlex.quote(stem + '.plugin')}")
        lines.append(" \\\n  ".join(parts))
    files["submit.sh"] = "\n".join(lines) + "\n"
    return files
