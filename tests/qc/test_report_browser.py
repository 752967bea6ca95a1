"""Headless-browser check: Debian's chromium renders the QC page to a non-trivial PNG."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

import cv2
import pytest

from pipeline.qc.report import write_report

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file(),
    reason="/usr/bin/chromium is absent (install Debian's chromium: apt-get install -y chromium)",
)


def _full_context():
    """``full_context`` of test_report.py, loaded by path (works with or without __init__.py)."""
    spec = importlib.util.spec_from_file_location(
        "_qc_test_report", Path(__file__).with_name("test_report.py")
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.full_context()


def test_chromium_renders_the_page(tmp_path):
    index = write_report(tmp_path / "qc", _full_context())
    png = tmp_path / "shot.png"
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={png}",
        "--window-size=1280,2000",
        index.resolve().as_uri(),
    ]
    env = {**os.environ, "HOME": str(tmp_path)}  # keep chromium's caches out of the real home
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert png.is_file() and png.stat().st_size > 20_000
    img = cv2.imread(str(png))
    assert img.shape[:2] == (2000, 1280)
    # Non-trivial: not a blank page: many distinct colours and a real spread of values.
    assert img.std() > 20
    assert len({tuple(p) for p in img[::8, ::8].reshape(-1, 3)}) > 200
    keep = os.environ.get("LIKENESS_KEEP_SCREENSHOT")
    if keep:  # to look at the render by eye
        Path(keep).write_bytes(png.read_bytes())
