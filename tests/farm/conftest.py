"""A real luigid on 127.0.0.1 (free port), started per test and torn down; tiny shots."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from farm.scheduler import SchedulerProcess, SchedulerSettings
from tests.tasks.conftest import make_shot

ROOT = Path(__file__).resolve().parents[2]

#: Fast failure recovery for tests: a dead worker is noticed in 3 s, retried 1 s later.
TEST_SETTINGS = SchedulerSettings(retry_delay=1.0, worker_disconnect_delay=3.0, retry_count=5)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def luigid(tmp_path):
    sp = SchedulerProcess(tmp_path / "luigid", port=free_port(), settings=TEST_SETTINGS)
    sp.start()
    try:
        yield sp
    finally:
        sp.stop()


def likeness(*args: str, **kw) -> subprocess.Popen:
    """Start ``likeness ARGS`` as a subprocess (unbuffered, in the repo root)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONHASHSEED": "0"}
    return subprocess.Popen([sys.executable, "-m", "tasks.cli", *args], cwd=ROOT, env=env, **kw)


def make_shots(folder: Path, n: int, **kw) -> list[Path]:
    """``n`` tiny shots sh010, sh020, ... sharing one folder."""
    return [make_shot(folder, shot=f"sh{10 * (i + 1):03d}", **kw) for i in range(n)]


def output_hashes(workdir: Path) -> dict[str, dict[str, str]]:
    """Stage folder (relative) -> its manifest's output hashes (timestamps left out)."""
    out = {}
    for m in sorted(workdir.rglob("_manifest.json")):
        if ".superseded" in m.parts:
            continue
        out[str(m.parent.relative_to(workdir))] = json.loads(m.read_text())["outputs"]
    return out


def run_counts(workdir: Path) -> dict[str, int]:
    """Task log -> how many times the task started (each run appends a 'start' line)."""
    return {
        f"{p.parent.parent.name}/{p.stem}": p.read_text().count(": start -> ")
        for p in workdir.glob("shots/*/logs/*.log")
    }
