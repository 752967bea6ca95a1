"""Whole batches through a real luigid on 127.0.0.1 with subprocess workers."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from farm.scheduler import api
from farm.worker import walk
from pipeline.io import read_exr
from pipeline.shot.status import workdir_status
from tasks.cli import main
from tasks.run import build_tasks
from tests.farm.conftest import likeness, make_shots, output_hashes, run_counts


def _wait(procs, timeout: float) -> list[int]:
    deadline = time.time() + timeout
    codes = []
    for p in procs:
        try:
            codes.append(p.wait(max(1.0, deadline - time.time())))
        except Exception:
            p.kill()
            raise
    return codes


def _history_runs(state_dir: Path) -> Counter:
    """task id -> RUNNING events in the scheduler's task history."""
    with sqlite3.connect(state_dir / "history.sqlite") as db:
        rows = db.execute(
            "SELECT t.task_id FROM task_events e JOIN tasks t ON e.task_id = t.id "
            "WHERE e.event_name = 'RUNNING'"
        ).fetchall()
    return Counter(r[0] for r in rows)


def test_two_workers_share_four_shots_each_task_once(luigid, tmp_path):
    specs = [str(s) for s in make_shots(tmp_path / "shots", 4)]
    wd = tmp_path / "wd"
    common = ["--scheduler-url", luigid.url, "--workdir", str(wd)]
    procs = [likeness("worker", *specs, *common) for _ in range(2)]
    assert _wait(procs, 180) == [0, 0]

    tops, _ = build_tasks(specs, str(wd))  # the same plans: every task of the batch
    expected = {t.task_id for t in walk(tops)}
    done = api(luigid.url, "task_list", status="DONE")
    assert set(done) == expected
    assert Counter(t["name"] for t in done.values())["Deliver"] == 4
    runs = _history_runs(luigid.state_dir)
    assert set(runs) == expected and set(runs.values()) == {1}, runs
    counts = run_counts(wd)
    assert len(counts) == len(expected) and set(counts.values()) == {1}, counts
    st = workdir_status(wd)["shots"]
    assert {s: list(v["versions"]) for s, v in st.items()} == {
        s: ["v001"] for s in ("sh010", "sh020", "sh030", "sh040")
    }
    assert all(v["versions"]["v001"]["state"] == "done" for v in st.values())


def _weights(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a checkpoint's models, by dotted name."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    return {f"{m}.{n}": t for m, sd in blob["model"].items() for n, t in _flat(sd)}


def _flat(sd: dict, prefix: str = ""):
    for n, v in sd.items():
        if isinstance(v, dict):
            yield from _flat(v, f"{prefix}{n}.")
        elif isinstance(v, torch.Tensor):
            yield f"{prefix}{n}", v


def _exr_pixels(folder: Path) -> dict[str, np.ndarray]:
    return {
        p.name: np.stack([c for _, c in sorted(read_exr(p)[0].items())])
        for p in sorted(folder.glob("exr/*.exr"))
    }


def test_killed_worker_is_taken_over_and_outputs_match_single_worker(luigid, tmp_path):
    specs = [str(s) for s in make_shots(tmp_path / "shots", 2, frames=24, size=192)]
    ref = tmp_path / "ref"
    assert main(["submit", *specs, "--workdir", str(ref)]) == 0

    wd = tmp_path / "wd"
    common = ["--scheduler-url", luigid.url, "--workdir", str(wd)]
    victim = likeness("worker", *specs, *common, start_new_session=True)
    deadline = time.time() + 120
    killed = False
    while time.time() < deadline and victim.poll() is None:
        if any(p.is_dir() for p in wd.glob("shots/*/stages/*/.*.tmp-*")):
            os.killpg(victim.pid, signal.SIGKILL)  # the node dies: worker and task processes
            killed = True
            break
        time.sleep(0.02)
    victim.wait()
    assert killed, "the worker finished before it could be killed mid-stage"
    running = api(luigid.url, "task_list", status="RUNNING")
    assert running, "the killed worker's task should still be RUNNING at the scheduler"

    # a fresh submitter and a fresh worker take over: the dead worker's task is retried
    procs = [likeness("submit", *specs, *common), likeness("worker", *specs, *common)]
    assert _wait(procs, 180) == [0, 0]

    a, b = output_hashes(ref), output_hashes(wd)
    assert a.keys() == b.keys()
    stages = [k for k in a if "/stages/" in k]
    assert len(stages) >= 6
    for k in stages:
        same = [f for f in a[k] if f != "checkpoint.pt"]
        assert all(a[k][f] == b[k][f] for f in same), k
        if "checkpoint.pt" in a[k]:  # wall-clock bookkeeping differs; the weights must not
            wa, wb = _weights(ref / k / "checkpoint.pt"), _weights(wd / k / "checkpoint.pt")
            assert wa.keys() == wb.keys() and all(torch.equal(wa[n], wb[n]) for n in wa), k
    for k in (k for k in a if "/stages/" not in k):  # deliveries: header has a timestamp
        assert a[k].keys() == b[k].keys()
        pa, pb = _exr_pixels(ref / k), _exr_pixels(wd / k)
        assert pa.keys() == pb.keys() and all(np.array_equal(pa[f], pb[f]) for f in pa)
    assert max(run_counts(wd).values()) <= 2  # only the killed task ran twice
    assert sum(v == 2 for v in run_counts(wd).values()) == 1


def test_farm_task_runs_one_stage_chunk(luigid, tmp_path):
    """What an OpenCue/Deadline/Slurm task runs: one stage's chunk, its upstream if missing."""
    from tests.tasks.conftest import TEST_PROFILE, make_shot

    spec = str(make_shot(tmp_path / "shot", profile={**TEST_PROFILE, "track": {"chunk_size": 4}}))
    wd = tmp_path / "wd"
    common = ["--scheduler-url", luigid.url, "--workdir", str(wd)]
    p = likeness("worker", *common, "--stage", "track_chunk", "--frames", "1005-1008", spec)
    assert p.wait(120) == 0
    assert sorted(run_counts(wd)) == ["sh010/ingest", "sh010/track_chunk.1005-1008"]
    p = likeness("worker", *common, "--stage", "paint", spec, stderr=-1)
    assert p.wait(60) == 2 and b"no 'paint' task" in p.stderr.read()


def test_scheduler_and_workers_listen_on_loopback_only(tmp_path):
    """`likeness scheduler` with its defaults, plus a worker: no socket open to the network."""
    from farm.scheduler import wait_until_up
    from tests import sockets
    from tests.farm.conftest import free_port

    port = free_port()
    sched = likeness("scheduler", "--port", str(port), "--state-dir", str(tmp_path / "st"))
    try:
        wait_until_up(f"http://127.0.0.1:{port}", proc=sched)
        specs = [str(s) for s in make_shots(tmp_path / "shots", 1, frames=4, size=160)]
        url = f"http://127.0.0.1:{port}"
        worker = likeness(
            "worker", *specs, "--scheduler-url", url, "--workdir", str(tmp_path / "w")
        )
        seen: set[tuple[str, int]] = set()
        deadline = time.time() + 240
        while worker.poll() is None and time.time() < deadline:
            seen |= sockets.listening(sched.pid) | sockets.listening(worker.pid)
            time.sleep(0.2)
        assert worker.wait(10) == 0
    finally:
        sched.send_signal(signal.SIGINT)
        sched.wait(20)
    assert any(p == port for _, p in seen), f"luigid was not seen listening on {port}: {seen}"
    assert all(sockets.is_loopback(a) for a, _ in seen), seen
