"""Load: 20 tiny shots through a real luigid and 2 worker processes on loopback (``-m slow``).

Run by ``make soak`` (``pytest -m slow``). Every shot must deliver ``v001`` within the time
bound, every task must run exactly once (the scheduler's history and the task logs agree), and
every output must be well-formed: manifests whose hashes match their files, EXR frames with the
expected layers and consecutive timecodes, a ProRes review movie with every frame, a QC page.
"""

from __future__ import annotations

import json
import time
from fractions import Fraction
from pathlib import Path

import av
import pytest

from farm.scheduler import api
from farm.worker import walk
from pipeline.frames import Timecode
from pipeline.hashing import sha256_file
from pipeline.io import read_exr
from pipeline.io.exr import timecode_from_exr
from pipeline.shot.status import workdir_status
from pipeline.workspace import MANIFEST
from tasks.run import build_tasks
from tests.farm.conftest import likeness, make_shots, run_counts
from tests.farm.test_farm_run import _history_runs, _wait

SHOTS = 20
FRAMES = 6
#: The bound on the whole batch: ~3× what it took on a loaded 2-core machine.
TIME_LIMIT_S = 900


def check_manifests(workdir: Path) -> int:
    """Every stage and version folder has a manifest whose hashes match its files."""
    n = 0
    for m in sorted(workdir.rglob(MANIFEST)):
        outputs = json.loads(m.read_text())["outputs"]
        assert outputs, m
        for rel, sha in outputs.items():
            assert sha256_file(m.parent / rel) == sha, f"{m.parent / rel} differs from {m}"
        n += 1
    return n


def check_delivery(version_dir: Path, shot: str) -> None:
    """EXR frames with R,G,B,A + face.*, consecutive timecodes; a full ProRes movie; a QC page."""
    exrs = sorted((version_dir / "exr").glob(f"{shot}.*.exr"))
    assert len(exrs) == FRAMES, version_dir
    codes = []
    for p in exrs:
        channels, header = read_exr(p)
        assert {"R", "G", "B", "A", "face.R", "face.G", "face.B", "face.A"} <= set(channels), p
        tc = timecode_from_exr(header.get("timeCode"), Fraction(25))
        assert tc is not None, f"{p} has no timeCode ({sorted(header)})"
        codes.append(tc.frames)
    start = Timecode.parse("10:00:00:00", Fraction(25)).frames  # make_shot's plate timecode
    assert codes == list(range(start, start + FRAMES)), codes
    movies = list(version_dir.glob("*.mov"))
    assert len(movies) == 1
    with av.open(str(movies[0])) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "prores"
        assert sum(1 for _ in c.decode(stream)) == FRAMES
    assert (version_dir / "qc" / "index.html").is_file()


@pytest.mark.slow
def test_twenty_shots_two_workers_one_scheduler(luigid, tmp_path):
    specs = [str(s) for s in make_shots(tmp_path / "shots", SHOTS, frames=FRAMES)]
    wd = tmp_path / "wd"
    common = ["--scheduler-url", luigid.url, "--workdir", str(wd)]
    t0 = time.monotonic()
    procs = [likeness("worker", *specs, *common) for _ in range(2)]
    assert _wait(procs, TIME_LIMIT_S) == [0, 0]
    elapsed = time.monotonic() - t0

    tops, _ = build_tasks(specs, str(wd))
    expected = {t.task_id for t in walk(tops)}
    done = api(luigid.url, "task_list", status="DONE")
    assert set(done) == expected
    runs = _history_runs(luigid.state_dir)
    assert set(runs) == expected and set(runs.values()) == {1}, runs
    counts = run_counts(wd)
    assert len(counts) == len(expected) and set(counts.values()) == {1}

    st = workdir_status(wd)["shots"]
    assert sorted(st) == sorted(f"sh{10 * (i + 1):03d}" for i in range(SHOTS))
    for shot, info in st.items():
        assert list(info["versions"]) == ["v001"], shot
        assert info["versions"]["v001"]["state"] == "done", shot
        check_delivery(wd / "shots" / shot / "v001", shot)
    manifests = check_manifests(wd)
    print(
        f"soak: {SHOTS} shots, {len(expected)} tasks each run once, {manifests} manifests "
        f"verified, {elapsed:.0f} s with 2 workers"
    )
