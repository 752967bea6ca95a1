"""A shot's stage logs in the workdir, and the failure record beside each (``likeness logs``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.errors import FarmError
from pipeline.workspace import Workdir, state_path


def log_paths(workdir: str, shot: str, stage: str, chunk: str | None) -> list[Path]:
    """The log files of one stage of a shot (one per chunk for a chunked stage).

    Args:
        chunk: a chunk's frame range (``1001-1048``) or its 1-based index; None: all chunks.

    Raises:
        FarmError: no such log.
    """
    logs = Workdir(workdir).log_dir(shot)
    if (logs / f"{stage}.log").is_file() and chunk is None:
        return [logs / f"{stage}.log"]
    found = sorted(logs.glob(f"{stage}.*.log"), key=lambda p: _chunk_first(p.name, stage))
    found = [p for p in found if p.name.count(".") == 2]  # stage.CHUNK.log, not state records
    if chunk is not None:
        if chunk.isdigit() and "-" not in chunk and 1 <= int(chunk) <= len(found):
            found = [found[int(chunk) - 1]]
        else:
            found = [p for p in found if p.name == f"{stage}.{chunk}.log"]
    if not found:
        have = sorted(p.name for p in logs.glob("*.log")) if logs.is_dir() else []
        raise FarmError(
            f"no log for {shot} {stage}" + (f" chunk {chunk}" if chunk else "") + f" in {logs}",
            f"logs there: {', '.join(have) or '(none)'}",
        )
    return found


def _chunk_first(name: str, stage: str) -> int:
    part = name[len(stage) + 1 :].split("-")[0]
    return int(part) if part.isdigit() else 0


def failure_record(workdir: str, shot: str, task: str) -> dict[str, Any] | None:
    """The failure record of a stage task (``host``, ``pid``, ``error``, ``traceback``), if it
    failed and has not run again since."""
    failed = state_path(Workdir(workdir), shot, task, "failed")
    if not failed.is_file():
        return None
    return json.loads(failed.read_text())
