"""Benchmark the farm: chunked-stage throughput with 1 and 2 workers, and the scheduler's cost.

Usage::

    python bench/farm.py [MEDIA...] [--frames N] [--repeat R] [--json OUT]

Defaults to the clips in ``../shared/media/videos/*.mp4``. Every clip becomes a shot spec in a
temporary folder (its first ``--frames`` frames, via ``plate.frames``), all shots are ingested
once (untimed), then every ``track_chunk`` task (``--chunk-size`` frames each) of every shot runs through a real ``luigid`` on
127.0.0.1:

- with 1 worker process and with 2, each in a fresh workdir holding only the ingest caches;
- ``--repeat`` times each, interleaved (1, 2, 1, 2, ...): the machine is shared, the best run
  counts.

Each task process uses one thread (OMP, OpenBLAS, OpenCV). The scheduler's own overhead is
measured with trivial no-op tasks: the same batch through ``luigid`` and through Luigi's local
scheduler, one worker, the difference divided by the task count. The last line prints the
headline.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import datetime  # noqa: E402
import importlib.metadata  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import luigi  # noqa: E402
import yaml  # noqa: E402

from farm.scheduler import SchedulerProcess, SchedulerSettings  # noqa: E402
from farm.worker import run_shared, walk  # noqa: E402
from tasks.run import build_tasks, luigi_config  # noqa: E402

SHARED_MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"


def make_specs(clips: list[Path], folder: Path, frames: int, chunk: int) -> list[str]:
    """One shot spec per clip, limited to its first ``frames`` frames, ``chunk`` per task."""
    refs = folder / "refs"
    refs.mkdir(parents=True, exist_ok=True)
    (folder / "profile.yaml").write_text(yaml.safe_dump({"track": {"chunk_size": chunk}}))
    (refs / "a.png").write_bytes(b"\x89PNG")  # only existence is checked before references
    specs = []
    for i, clip in enumerate(clips):
        shot = f"b{i + 1:02d}0"
        spec = {
            "shot": shot,
            "plate": {
                "path": str(clip.resolve()),
                "colorspace": "sRGB Encoded Rec.709 (sRGB)",
                "frames": f"1001-{1000 + frames}",
            },
            "actor": {"id": "bench", "references": ["refs/a.png"]},
            "profile": "profile.yaml",
        }
        p = folder / f"{shot}.yaml"
        p.write_text(yaml.safe_dump(spec))
        specs.append(str(p))
    return specs


def chunk_tasks(specs: list[str], workdir: Path) -> tuple[list, list]:
    """(every Ingest task, every TrackChunk task) of the shots."""
    tops, _ = build_tasks(specs, str(workdir))
    every = walk(tops)
    return (
        [t for t in every if t.stage_name == "ingest"],
        [t for t in every if t.stage_name == "track_chunk"],
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Noop(luigi.Task):
    """A task that does nothing (its completion lives in memory)."""

    i = luigi.IntParameter()
    tag = luigi.Parameter()
    _done: set = set()

    def complete(self) -> bool:
        return (self.tag, self.i) in Noop._done

    def run(self) -> None:
        Noop._done.add((self.tag, self.i))


class NoopAll(luigi.WrapperTask):
    n = luigi.IntParameter()
    tag = luigi.Parameter()

    def requires(self) -> list[Noop]:
        return [Noop(i=i, tag=self.tag) for i in range(self.n)]


def noop_batch(n: int, url: str | None) -> float:
    tag = f"{url}-{time.perf_counter_ns()}"
    kw = {"scheduler_url": url} if url else {"local_scheduler": True}
    t0 = time.perf_counter()
    ok = luigi.build([NoopAll(n=n, tag=tag)], workers=1, **kw)
    dt = time.perf_counter() - t0
    if not ok:
        raise SystemExit("no-op batch failed")
    return dt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("media", nargs="*", type=Path)
    ap.add_argument("--frames", type=int, default=120, help="frames per clip (the shortest: 122)")
    ap.add_argument("--chunk-size", type=int, default=24, help="frames per track_chunk task")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--noop", type=int, default=200, help="no-op tasks for the overhead figure")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    clips = args.media or sorted((SHARED_MEDIA / "videos").glob("*.mp4"))
    if not clips:
        raise SystemExit(f"no clips: pass some, or put them in {SHARED_MEDIA / 'videos'}")
    luigi_config()
    import logging

    logging.getLogger("luigi-interface").setLevel(logging.WARNING)
    logging.getLogger("likeness").setLevel(logging.WARNING)

    tmp = Path(tempfile.mkdtemp(prefix="bench-farm-"))
    try:
        specs = make_specs(clips, tmp / "specs", args.frames, args.chunk_size)
        base = tmp / "base"
        ingests, _ = chunk_tasks(specs, base)
        if not luigi.build(ingests, local_scheduler=True, workers=2):
            raise SystemExit("ingest failed")
        settings = SchedulerSettings(retry_count=0)
        with SchedulerProcess(tmp / "luigid", port=free_port(), settings=settings) as sp:
            runs: dict[int, list[float]] = {1: [], 2: []}
            n_chunks = n_frames = 0
            for r in range(args.repeat):
                for workers in (1, 2):
                    wd = tmp / f"wd-{workers}-{r}"
                    shutil.copytree(base, wd)
                    for d in wd.glob("shots/*/stages/track_chunk"):
                        shutil.rmtree(d)
                    _, chunks = chunk_tasks(specs, wd)
                    n_chunks = len(chunks)
                    n_frames = sum(len(t.stage.frames) for t in chunks)
                    t0 = time.perf_counter()
                    if not run_shared(chunks, sp.url, workers, wait_interval=0.2, wait_jitter=0.1):
                        raise SystemExit(f"track chunks failed with {workers} worker(s)")
                    runs[workers].append(time.perf_counter() - t0)
                    print(f"  run {r + 1}: {workers} worker(s) {runs[workers][-1]:.1f}s")
                    shutil.rmtree(wd)
            noop_local, noop_luigid = [], []
            for _ in range(args.repeat):
                noop_local.append(noop_batch(args.noop, None))
                noop_luigid.append(noop_batch(args.noop, sp.url))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    t1, t2 = min(runs[1]), min(runs[2])
    fps1, fps2 = n_frames / t1, n_frames / t2
    ratio = t1 / t2
    per_task_local = min(noop_local) / args.noop * 1e3
    per_task_luigid = min(noop_luigid) / args.noop * 1e3
    overhead = per_task_luigid - per_task_local
    load = os.getloadavg()[0]
    print(f"clips {len(clips)}, {n_chunks} track chunks, {n_frames} frames; load {load:.1f}")
    print(f"1 worker : {t1:7.1f}s  {fps1:6.1f} frames/s  (baseline)")
    print(f"2 workers: {t2:7.1f}s  {fps2:6.1f} frames/s  {ratio:.2f}x")
    print(
        f"no-op tasks ({args.noop}): local {per_task_local:.1f} ms/task, "
        f"luigid {per_task_luigid:.1f} ms/task, scheduler overhead {overhead:.1f} ms/task"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "date": datetime.date.today().isoformat(),
                    "python": platform.python_version(),
                    "luigi": importlib.metadata.version("luigi"),
                    "clips": [str(c) for c in clips],
                    "frames_per_clip": args.frames,
                    "chunk_size": args.chunk_size,
                    "chunks": n_chunks,
                    "frames": n_frames,
                    "seconds": {"1": runs[1], "2": runs[2]},
                    "ratio": ratio,
                    "noop_ms_per_task": {"local": per_task_local, "luigid": per_task_luigid},
                    "load": load,
                },
                indent=2,
            )
        )
    goal = "met" if ratio >= 1.7 else "NOT met"
    print(
        f"HEADLINE track_chunk 2 workers {ratio:.2f}x 1 worker ({fps1:.1f} -> {fps2:.1f} "
        f"frames/s; goal >=1.7: {goal}); luigid overhead {overhead:.1f} ms/task"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
