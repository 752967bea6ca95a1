"""A bounded mutation loop over valid media and sidecar files, for every reader.

Each target's seed files are tiny valid files made by code (:mod:`tests.fuzz.targets`); each
case mutates one of them (:func:`tests.fuzz.mutate.mutate`) and a child process reads the case
whole: open, header, every frame. A crash (the child dies on a signal), a hang (no answer within
the per-case timeout), an exception that is not a ``LikenessError``, a named error other than
the one the reader documents, or data that breaks the reader's contract fails the test, which
prints the seed, case index and mutations and keeps the case's files under ``tmp_path``.

The loop is bounded by an iteration count and a wall-clock budget per target, so it ends by
itself. ``LIKENESS_FUZZ_SEED`` picks another base seed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fuzz.mutate import Worker, record, run_campaign
from tests.fuzz.targets import TARGETS, seed_files

BASE_SEED = int(os.environ.get("LIKENESS_FUZZ_SEED", "20261124"))
#: ``(iterations, seconds)`` per target: the fast loop runs in ``make test``.
FAST = (300, 2.0)
#: The soak (``pytest -m slow``, ``make soak``).
SLOW = (4000, 15.0)


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    w = Worker(timeout_s=20.0)
    yield w
    w.close()


def _write(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def _campaign(worker: Worker, target: str, tmp_path: Path, iterations: int, budget: float):
    seeds = seed_files(target)
    seed_read = worker.read(target, _write(tmp_path / "seed", seeds))
    assert seed_read.kind == "ok", f"the valid seed of {target} does not read: {seed_read}"
    camp = run_campaign(
        worker,
        target,
        seeds,
        tmp_path / "case",
        base_seed=BASE_SEED,
        iterations=iterations,
        budget_s=budget,
        keep=tmp_path / "failing",
    )
    outcomes = ", ".join(f"{k} {n}" for k, n in sorted(camp.outcomes.items()))
    record(f"mutation: {target}", camp.iterations, camp.seconds, outcomes=outcomes)
    print(camp.summary())
    assert camp.failures == [], (
        f"{len(camp.failures)} of {camp.iterations} mutated {target} cases failed "
        f"(files kept in {tmp_path / 'failing'}); first ones:\n" + "\n".join(camp.failures[:5])
    )
    # The bound is time as well as count, but a loop that ran almost nothing proves nothing.
    assert camp.iterations >= min(iterations, 25), camp.summary()
    return camp


@pytest.mark.parametrize("target", list(TARGETS))
def test_mutated_files(worker: Worker, target: str, tmp_path: Path):
    _campaign(worker, target, tmp_path, *FAST)


@pytest.mark.slow
@pytest.mark.parametrize("target", list(TARGETS))
def test_mutated_files_soak(worker: Worker, target: str, tmp_path: Path):
    _campaign(worker, target, tmp_path, *SLOW)


# -- the harness itself --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["crash", "hang", "unnamed", "contract"])
def test_harness_reports_each_failure(kind: str, tmp_path: Path):
    """A reader that segfaults, hangs, raises KeyError or returns bad data fails the loop."""
    w = Worker(timeout_s=1.5)
    try:
        out = w.read(f"_selftest_{kind}", tmp_path)
        assert out.kind == kind, out
        if kind == "crash":
            assert "SIGSEGV" in out.detail
        # the worker is back for the next case after a crash or a hang
        assert w.read("plate_json", _write(tmp_path, seed_files("plate_json"))).kind == "ok"
    finally:
        w.close()


def test_loop_is_bounded_by_time(worker: Worker, tmp_path: Path):
    camp = run_campaign(
        worker,
        "plate_json",
        seed_files("plate_json"),
        tmp_path / "case",
        base_seed=1,
        iterations=10**9,
        budget_s=0.5,
    )
    assert 0 < camp.iterations < 10**9 and camp.seconds < 5.0
