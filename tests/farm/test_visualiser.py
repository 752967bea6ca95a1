"""Headless chromium loads luigid's visualiser during a run and finds the running task."""

from __future__ import annotations

import re
import shutil
import subprocess
import time

import pytest

from farm.scheduler import api
from tests.farm.conftest import likeness, make_shots

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.mark.skipif(not shutil.which("chromium"), reason="/usr/bin/chromium is not installed")
def test_visualiser_shows_running_tasks(luigid, tmp_path):
    specs = [str(s) for s in make_shots(tmp_path / "shots", 1, frames=48, size=192)]
    wd = tmp_path / "wd"
    proc = likeness("worker", *specs, "--scheduler-url", luigid.url, "--workdir", str(wd))
    try:
        deadline = time.time() + 60
        running = {}
        while time.time() < deadline and not running:
            running = api(luigid.url, "task_list", status="RUNNING")
            time.sleep(0.05)
        assert running, "no task was seen running"
        dom = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={tmp_path / 'chrome'}",
                "--virtual-time-budget=4000",
                "--dump-dom",
                f"{luigid.url}/static/visualiser/index.html#tab=tasks&status=RUNNING",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
    finally:
        assert proc.wait(120) == 0
    # The page was rendered between the two queries: the task it shows running was running
    # before it, or still is, or has finished since.
    families = {t["name"] for t in running.values()}
    for status in ("RUNNING", "DONE"):
        families |= {t["name"] for t in api(luigid.url, "task_list", status=status).values()}
    rows = [
        " ".join(re.sub(r"<[^>]+>", " ", r).split())
        for r in re.findall(r"<tr[^>]*>.*?</tr>", dom, re.S)
    ]
    shown = [r for r in rows if r.startswith("RUNNING ")]
    assert shown, f"no RUNNING row in the visualiser's task table: {rows[:5]}"
    assert any(r.split()[1] in families and "sh010.yaml" in r for r in shown), (families, shown)
