"""Crash-safety harness: kill ``likeness submit`` with SIGKILL at chosen points, rerun, compare.

A *kill point* either waits until a stage runs (its ``logs/<task>.running.json`` names the child's
pid), sleeps a seeded random delay and kills the child's whole process group, or injects the kill
at an exact call inside the child (:mod:`tests.crash.bootstrap`: the n-th EXR frame written, a
checkpoint cut off mid-file, just before a stage's manifest). A :class:`Watcher` thread scans the
workdir every few milliseconds meanwhile and validates every file it finds under a final name:
nothing partial may ever be visible there. After the kills a last run completes the chain, and
its outputs are compared with those of an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.atomic import is_temporary
from pipeline.workspace import MANIFEST

ROOT = Path(__file__).resolve().parents[2]

#: The chain's stages in the order a single local worker runs them.
STAGE_ORDER = (
    "ingest",
    "references",
    "finetune",
    "export",
    "track_chunk",
    "track",
    "synth_chunk",
    "deliver",
)

#: A profile small enough for a test, with enough fine-tune steps and checkpoints that a kill
#: lands between checkpoints and a resume is observable.
CRASH_PROFILE = {
    "finetune": {"steps": 4, "batch_size": 2, "checkpoint_every": 2, "log_every": 1},
    "engine": {"backend": "torch"},
    "synth": {"chunk_size": 4, "batch_size": 4},
    "track": {"chunk_size": 4},
}

RESUME_RE = re.compile(r"resuming fine-tune from step (\d+)")


# -- validating what is visible at final paths ------------------------------------------------
def _fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def _check_json(fd: int, data: bytes) -> str | None:
    json.loads(data)
    return None


def _check_npz(fd: int, data: bytes) -> str | None:
    import io

    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        for k in z.files:
            z[k]
    return None


def _check_exr(fd: int, data: bytes) -> str | None:
    from pipeline.io import read_exr

    chans, _ = read_exr(_fd_path(fd))
    if not {"R", "G", "B"} <= set(chans):
        return f"no R,G,B channels (has {sorted(chans)})"
    return None


def _check_png(fd: int, data: bytes) -> str | None:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im.load()
    return None


def _check_mov(fd: int, data: bytes) -> str | None:
    import io

    import av

    with av.open(io.BytesIO(data)) as c:
        n = sum(1 for _ in c.decode(video=0))
    return None if n else "no frames"


def _check_pt(fd: int, data: bytes) -> str | None:
    import io

    import torch

    blob = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or "schema" not in blob:
        return "not a likeness checkpoint"
    return None


def _check_onnx(fd: int, data: bytes) -> str | None:
    import onnx

    onnx.checker.check_model(onnx.load_model_from_string(data))
    return None


def _check_html(fd: int, data: bytes) -> str | None:
    return None if b"</html>" in data else "no closing </html>"


def _check_jsonl(fd: int, data: bytes) -> str | None:
    if data and not data.endswith(b"\n"):
        return "last line has no newline (a partial record)"
    for line in data.splitlines():
        json.loads(line)
    return None


CHECKS: dict[str, Callable[[int, bytes], str | None]] = {
    ".json": _check_json,
    ".npz": _check_npz,
    ".exr": _check_exr,
    ".png": _check_png,
    ".mov": _check_mov,
    ".pt": _check_pt,
    ".onnx": _check_onnx,
    ".html": _check_html,
}


def validate_fd(name: str, fd: int) -> str | None:
    """Why the open file ``fd`` (named ``name``) is not a complete file of its kind, or None.

    The file is read through its descriptor, so a rename or unlink racing with the check cannot
    make a complete file look partial: a failure means these very bytes were visible.
    """
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    data = b"".join(chunks)
    if name == "audit.log":
        check = _check_jsonl
    else:
        check = CHECKS.get(Path(name).suffix.lower())
    if check is None:
        return None if data else "empty file"
    try:
        return check(fd, data)
    except Exception as exc:  # any failure to read is what we look for
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"


def _is_stream_log(path: Path) -> bool:
    """Task logs are appended line by line (not outputs): never checked for completeness."""
    return path.suffix == ".log" and path.name != "audit.log"


@dataclass
class ScanReport:
    """What :class:`Watcher` saw."""

    scans: int = 0
    files_checked: int = 0
    manifests_checked: int = 0
    unmanifested_folders: set[str] = field(default_factory=set)
    violations: list[str] = field(default_factory=list)


class Watcher:
    """Scans a workdir and validates every new file under a final (non-temporary) name.

    Files are cached by (device, inode, size, mtime): an atomically replaced file is a new
    inode and is checked again; a file growing in place is checked again at every size.

    Args:
        root: the workdir.
        interval: seconds between scans of the background thread.
    """

    def __init__(self, root: Path, interval: float = 0.003) -> None:
        self.root = Path(root)
        self.interval = interval
        self.report = ScanReport()
        self._ok: set[tuple[int, int, int, int]] = set()
        self._manifests: set[tuple[int, int, int, int]] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- thread -----------------------------------------------------------------------------
    def __enter__(self) -> Watcher:
        self._thread = threading.Thread(target=self._loop, daemon=True, name="crash-watcher")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.scan()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.scan()
            self._stop.wait(self.interval)

    # -- scanning ---------------------------------------------------------------------------
    def scan(self) -> list[str]:
        """One full pass; returns the violations found in it (also kept in ``report``)."""
        with self._lock:
            before = len(self.report.violations)
            self.report.scans += 1
            self._walk(self.root)
            return self.report.violations[before:]

    def _walk(self, folder: Path) -> None:
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return
        names = {e.name for e in entries}
        for e in entries:
            path = Path(e.path)
            if is_temporary(path):
                continue
            try:
                is_dir = e.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if is_dir:
                self._walk(path)
            elif not _is_stream_log(path):
                self._check_file(path)
        if _is_stage_folder(self.root, folder) and MANIFEST not in names:
            self.report.unmanifested_folders.add(str(folder.relative_to(self.root)))

    def _check_file(self, path: Path) -> None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError):
            return
        try:
            st = os.fstat(fd)
            key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            if key in self._ok:
                return
            why = validate_fd(path.name, fd)
            self.report.files_checked += 1
            if why is not None:
                self.report.violations.append(f"{path.relative_to(self.root)}: {why}")
                return
            self._ok.add(key)
            if path.name == MANIFEST and key not in self._manifests:
                self._manifests.add(key)
                self._check_manifest(path, fd)
        finally:
            os.close(fd)

    def _check_manifest(self, path: Path, fd: int) -> None:
        """Every output a manifest lists is present under its final name with the listed hash."""
        os.lseek(fd, 0, os.SEEK_SET)
        data = json.loads(os.read(fd, 1 << 24))
        self.report.manifests_checked += 1
        for rel, sha in data.get("outputs", {}).items():
            if any(is_temporary(Path(p)) for p in Path(rel).parts):
                self.report.violations.append(f"{path}: lists a temporary file {rel}")
            got = _sha256(path.parent / rel)
            if got != sha:
                self.report.violations.append(
                    f"{path.relative_to(self.root)}: {rel} has SHA-256 {got}, manifest says {sha}"
                )


def _sha256(path: Path) -> str | None:
    try:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except FileNotFoundError:
        return None


def _is_stage_folder(root: Path, folder: Path) -> bool:
    """``shots/<shot>/stages/<stage>/<key>`` or ``shots/<shot>/vNNN``."""
    try:
        parts = folder.relative_to(root).parts
    except ValueError:
        return False
    if len(parts) == 5 and parts[0] == "shots" and parts[2] == "stages":
        return not parts[4].startswith(".")
    return (
        len(parts) == 3 and parts[0] == "shots" and re.fullmatch(r"v\d{3,}", parts[2]) is not None
    )


def temporaries(root: Path) -> list[Path]:
    """Every temporary entry (file or folder) under ``root``."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for n in [*dirnames, *filenames]:
            if is_temporary(Path(n)):
                out.append(Path(dirpath) / n)
        dirnames[:] = [d for d in dirnames if not is_temporary(Path(d))]
    return sorted(out)


# -- running the chain ------------------------------------------------------------------------
def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every ``likeness`` child: the same for reference and crash runs."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}
    env.pop("LIKENESS_CRASH", None)
    env.update(extra or {})
    return env


def submit_argv(spec: Path, workdir: Path, verbose: bool = True) -> list[str]:
    """``likeness [-v] submit SPEC --workdir WORKDIR --no-preflight`` through the crash bootstrap.

    ``-v`` logs at INFO on stderr: stage starts and fine-tune resumes are read from there. The
    harness is about what the stages do when killed or out of room, so the preflight (which
    would refuse a volume too small from the start) is skipped; ``tests/shot/test_preflight.py``
    tests it.
    """
    return [
        sys.executable,
        "-m",
        "tests.crash.bootstrap",
        *(["-v"] if verbose else []),
        "submit",
        str(spec),
        "--workdir",
        str(workdir),
        "--no-preflight",
    ]


def launch(
    spec: Path, workdir: Path, logs: Path, crash: dict | None = None, verbose: bool = True
) -> subprocess.Popen:
    """Start ``likeness submit`` in its own process group; stdout/stderr go to ``logs``."""
    logs.parent.mkdir(parents=True, exist_ok=True)
    extra = {"LIKENESS_CRASH": json.dumps(crash)} if crash else None
    with open(logs.with_suffix(".out"), "wb") as out, open(logs.with_suffix(".err"), "wb") as err:
        return subprocess.Popen(
            submit_argv(spec, workdir, verbose),
            cwd=ROOT,
            env=child_env(extra),
            stdout=out,
            stderr=err,
            start_new_session=True,
        )


def running_tasks(workdir: Path, pid: int) -> list[str]:
    """Tasks whose ``.running.json`` names process ``pid`` (what that process is running)."""
    out = []
    for p in workdir.glob("shots/*/logs/*.running.json"):
        try:
            rec = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if rec.get("pid") == pid:
            out.append(rec["task"])
    return sorted(out)


def stage_of(task: str) -> str:
    return task.split(".", 1)[0]


@dataclass(frozen=True)
class KillPoint:
    """Where one run is killed.

    Either ``stage`` with ``delay``: wait until a task of that stage runs (and ``after`` holds),
    sleep ``delay`` seconds and SIGKILL the process group; or ``crash``: an injected kill
    (:mod:`tests.crash.bootstrap`), labelled ``stage``.
    """

    stage: str
    label: str
    delay: float = 0.0
    crash: dict | None = None
    after: Callable[[Path], bool] | None = None


@dataclass
class Attempt:
    """One run of the chain and what became of it."""

    point: KillPoint | None
    rc: int | None
    killed: bool
    killed_in: list[str]
    stderr: str
    resumed_from: list[int]
    finetune_started: bool
    checkpoint_step_left: int | None
    seconds: float
    temporaries_left: list[str] = field(default_factory=list)

    @property
    def kill_stage(self) -> str:
        """The stage the kill landed in (``between stages`` when none was running)."""
        if not self.killed:
            return "none"
        if self.point is not None and self.point.crash is not None:
            return self.point.stage
        stages = sorted({stage_of(t) for t in self.killed_in})
        return "+".join(stages) or "between stages"


def finetune_checkpoint_step(workdir: Path) -> int | None:
    """Step of the checkpoint a rerun would resume from: in the work folder, or in a final
    folder that has no manifest yet (training done, stage not yet marked complete)."""
    import torch

    cands = list(workdir.glob("shots/*/stages/finetune/.*.work/checkpoint.pt"))
    cands += [
        p
        for p in workdir.glob("shots/*/stages/finetune/*/checkpoint.pt")
        if not (p.parent / MANIFEST).exists() and not p.parent.name.startswith(".")
    ]
    steps = []
    for p in cands:
        blob = torch.load(p, map_location="cpu", weights_only=True)
        steps.append(int(blob["step"]))
    return max(steps) if steps else None


def run_attempt(
    spec: Path,
    workdir: Path,
    logs: Path,
    point: KillPoint | None,
    timeout: float = 300.0,
    verbose: bool = True,
) -> Attempt:
    """Run the chain once; kill it at ``point`` (None: let it finish)."""
    t0 = time.monotonic()
    proc = launch(spec, workdir, logs, point.crash if point else None, verbose)
    killed_in: list[str] = []
    killed = False
    try:
        if point is not None and point.crash is None:
            while proc.poll() is None and time.monotonic() - t0 < timeout:
                tasks = running_tasks(workdir, proc.pid)
                if any(stage_of(t) == point.stage for t in tasks) and (
                    point.after is None or point.after(workdir)
                ):
                    time.sleep(point.delay)
                    if proc.poll() is None:
                        os.killpg(proc.pid, signal.SIGKILL)
                        proc.wait()
                        killed = True
                        # a dead process writes no more: its records are the state it died in
                        killed_in = running_tasks(workdir, proc.pid)
                    break
                time.sleep(0.002)
        rc = proc.wait(timeout=max(1.0, timeout - (time.monotonic() - t0)))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    if point is not None and point.crash is not None and rc == -signal.SIGKILL:
        killed = True
        killed_in = running_tasks(workdir, proc.pid)
    stderr = logs.with_suffix(".err").read_text(errors="replace")
    return Attempt(
        point=point,
        rc=rc,
        killed=killed,
        killed_in=killed_in,
        stderr=stderr,
        resumed_from=[int(m) for m in RESUME_RE.findall(stderr)],
        finetune_started=" finetune: start -> " in stderr,
        checkpoint_step_left=finetune_checkpoint_step(workdir) if killed else None,
        seconds=time.monotonic() - t0,
        temporaries_left=[str(t.relative_to(workdir)) for t in temporaries(workdir)],
    )


def checkpoint_exists(workdir: Path) -> bool:
    """A periodic fine-tune checkpoint has been written in the work folder."""
    return any(workdir.glob("shots/*/stages/finetune/.*.work/checkpoint.pt"))


@dataclass
class Tour:
    """A sequence of kills on one workdir, then a run to completion."""

    attempts: list[Attempt]
    watcher: ScanReport
    after_kill_violations: list[str]


def stage_complete(workdir: Path, ref: Path, stage: str) -> bool:
    """Every folder of ``stage`` in the reference run is finished in ``workdir`` too."""
    folders = [k for k, m in manifests(ref).items() if m["stage"] == stage]
    return bool(folders) and all((workdir / k / MANIFEST).is_file() for k in folders)


def run_tour(
    spec: Path,
    workdir: Path,
    logs: Path,
    points: Iterable[KillPoint],
    ref: Path | None = None,
    max_final: int = 1,
) -> Tour:
    """Kill the chain at each point in turn (a fresh run each time), then run it to the end.

    A point whose stage already finished (an earlier kill landed later than planned) is
    skipped: knowing ``ref``, the uninterrupted run, tells which folders the stage has.
    """
    attempts: list[Attempt] = []
    after_kill: list[str] = []
    with Watcher(workdir) as w:
        for i, point in enumerate(points):
            if ref is not None and stage_complete(workdir, ref, point.stage):
                continue
            a = run_attempt(spec, workdir, logs / f"{i:02d}-{point.label}", point)
            attempts.append(a)
            after_kill += [f"after {point.label}: {v}" for v in w.scan()]
            if a.rc == 0:
                break  # the chain finished before this point was reached
        for j in range(max_final):
            a = run_attempt(spec, workdir, logs / f"final-{j}", None)
            attempts.append(a)
            if a.rc == 0:
                break
    return Tour(attempts, w.report, after_kill)


def resume_problems(attempts: list[Attempt]) -> list[str]:
    """Each run that fine-tuned after a kill resumed from the checkpoint that kill left."""
    out = []
    left: int | None = None
    for a in attempts:
        if a.finetune_started:
            label = a.point.label if a.point else "final run"
            if left:
                if a.resumed_from[:1] != [left]:
                    out.append(f"{label}: expected a resume from step {left}, got {a.resumed_from}")
            elif a.resumed_from:
                out.append(f"{label}: resumed from {a.resumed_from} with no checkpoint left")
        if a.killed:
            left = a.checkpoint_step_left
        elif a.rc == 0:
            left = None
    return out


# -- comparing with an uninterrupted run ----------------------------------------------------
#: Delivery files that carry wall-clock data (stage timings, creation time) in their bytes.
DELIVERY_CLOCKED = {"qc/index.html", "qc/plot_timings.png"}
#: EXR header / movie metadata keys that differ between two uninterrupted runs.
CLOCKED_ATTRS = {"likeness:timestamp", "likeness:model_sha256"}


def manifests(workdir: Path) -> dict[str, dict[str, Any]]:
    """Folder (relative) -> manifest, for every finished stage and version."""
    out = {}
    for m in sorted(workdir.rglob(MANIFEST)):
        if ".superseded" in m.parts or any(is_temporary(Path(p)) for p in m.parts):
            continue
        out[str(m.parent.relative_to(workdir))] = json.loads(m.read_text())
    return out


def _checkpoint_without_clock(path: Path) -> dict[str, Any]:
    import torch

    blob = torch.load(path, map_location="cpu", weights_only=True)
    blob["extra"] = {k: v for k, v in blob["extra"].items() if k != "elapsed_s"}
    return blob


def _same(a: Any, b: Any) -> bool:
    import torch

    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and torch.equal(a, b)
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _exr(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    from pipeline.io import read_exr

    chans, header = read_exr(path)
    # repr: the binding's Channel and TimeCode objects compare by identity, not by value
    return chans, {k: repr(v) for k, v in header.items() if k not in CLOCKED_ATTRS}


def _movie(path: Path) -> tuple[list[np.ndarray], dict[str, str]]:
    import av

    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="rgb48le") for f in c.decode(video=0)]
        meta = {
            k: v
            for k, v in c.metadata.items()
            if k.replace("likeness_", "likeness:") not in CLOCKED_ATTRS
            and k not in ("creation_time",)
        }
    return frames, meta


def compare_runs(ref: Path, got: Path) -> tuple[list[str], dict[str, int]]:
    """Differences between two workdirs' finished outputs, and how each file was compared.

    Stage outputs must be identical byte for byte, except the fine-tune checkpoint, whose
    ``elapsed_s`` is wall-clock bookkeeping: every other entry (weights, optimizer, RNG states,
    step, loss history) must be equal. Deliveries carry a timestamp and the checkpoint's hash
    in their headers: EXR pixels and other attributes, decoded movie frames and other metadata,
    and every QC file without a clock in it must be equal.
    """
    from pipeline.io import read_exr

    diffs: list[str] = []
    how = {"bytes": 0, "checkpoint": 0, "exr": 0, "movie": 0, "present": 0}
    a, b = manifests(ref), manifests(got)
    if a.keys() != b.keys():
        diffs.append(f"stage folders differ: only ref {a.keys() - b.keys()}, only got "
                     f"{b.keys() - a.keys()}")  # fmt: skip
    for k in sorted(a.keys() & b.keys()):
        oa, ob = a[k]["outputs"], b[k]["outputs"]
        if oa.keys() != ob.keys():
            diffs.append(f"{k}: files differ: {sorted(oa.keys() ^ ob.keys())}")
            continue
        delivery = "/stages/" not in k
        for rel in sorted(oa):
            if oa[rel] == ob[rel]:
                how["bytes"] += 1
            elif rel.endswith(".pt"):
                how["checkpoint"] += 1
                if not _same(_checkpoint_without_clock(ref / k / rel),
                             _checkpoint_without_clock(got / k / rel)):  # fmt: skip
                    diffs.append(f"{k}/{rel}: checkpoint contents differ")
            elif delivery and rel.endswith(".exr"):
                how["exr"] += 1
                (ca, ha), (cb, hb) = _exr(ref / k / rel), _exr(got / k / rel)
                if ca.keys() != cb.keys() or not all(np.array_equal(ca[c], cb[c]) for c in ca):
                    diffs.append(f"{k}/{rel}: pixels differ")
                if ha != hb:
                    bad = sorted(x for x in ha.keys() | hb.keys() if ha.get(x) != hb.get(x))
                    diffs.append(f"{k}/{rel}: header differs: {bad}")
            elif delivery and rel.endswith(".mov"):
                how["movie"] += 1
                (fa, ma), (fb, mb) = _movie(ref / k / rel), _movie(got / k / rel)
                if len(fa) != len(fb) or not all(np.array_equal(x, y) for x, y in zip(fa, fb)):
                    diffs.append(f"{k}/{rel}: decoded frames differ")
                if ma != mb:
                    diffs.append(f"{k}/{rel}: metadata differs")
            elif delivery and rel in DELIVERY_CLOCKED:
                how["present"] += 1
            else:
                diffs.append(f"{k}/{rel}: bytes differ")
        if delivery:
            sha = b.get(_finetune_folder(b), {}).get("extra", {}).get("checkpoint_sha256")
            for rel in (r for r in ob if r.endswith(".exr")):
                if read_exr(got / k / rel)[1].get("likeness:model_sha256") != sha:
                    diffs.append(f"{k}/{rel}: model_sha256 is not the fine-tune's checkpoint")
                    break
    return diffs, how


def _finetune_folder(ms: dict[str, dict[str, Any]]) -> str:
    return next((k for k, m in ms.items() if m.get("stage") == "finetune"), "")


def final_state_problems(workdir: Path) -> list[str]:
    """After a completed rerun: every stage folder finished, verified, and free of temporaries."""
    from pipeline.workspace import manifest_matches

    out = []
    for d in sorted(workdir.glob("shots/*/stages/*/*")) + sorted(workdir.glob("shots/*/v[0-9]*")):
        if not d.is_dir() or is_temporary(d) or d.name.startswith("."):
            continue
        m = json.loads((d / MANIFEST).read_text()) if (d / MANIFEST).is_file() else None
        if m is None:
            out.append(f"{d.relative_to(workdir)}: no manifest after a completed run")
        elif not manifest_matches(d, m["key"], m["config_digest"], verify_hashes=True):
            out.append(f"{d.relative_to(workdir)}: outputs do not match the manifest")
    for t in temporaries(workdir / "shots"):
        if t.parent.name != "logs":  # state records' leftovers are not outputs
            out.append(f"temporary left behind: {t.relative_to(workdir)}")
    work = list(workdir.glob("shots/*/stages/finetune/.*.work"))
    out += [f"fine-tune work folder left behind: {p.relative_to(workdir)}" for p in work]
    return out


# -- kill plans ---------------------------------------------------------------------------------
def stage_durations(workdir: Path) -> dict[str, float]:
    """Stage -> longest run time of its tasks in a finished workdir (from the manifests)."""
    out: dict[str, float] = {}
    for m in manifests(workdir).values():
        out[m["stage"]] = max(out.get(m["stage"], 0.0), m["finished"] - m["started"])
    return out


def timed(stage: str, rng: random.Random, durations: dict[str, float], **kw: Any) -> KillPoint:
    """A kill at a seeded random moment inside ``stage``."""
    delay = round(rng.uniform(0.0, durations.get(stage, 0.1)), 3)
    return KillPoint(stage=stage, label=f"{stage}-at-{delay:.3f}s", delay=delay, **kw)


def injected(stage: str, label: str, **crash: Any) -> KillPoint:
    return KillPoint(stage=stage, label=label, crash=crash)


# -- a full disk --------------------------------------------------------------------------------
_NS_SCRIPT = r"""
mount -t tmpfs -o size="$CRASH_SIZE" tmpfs "$CRASH_MNT" || exit 97
mkdir -p "$CRASH_MNT/wd"
if [ -n "$CRASH_SEED" ]; then cp -a "$CRASH_SEED/." "$CRASH_MNT/wd/" || exit 98; fi
LIKENESS_CRASH="$CRASH_PLAN" "$@" > "$CRASH_OUT/1.out" 2> "$CRASH_OUT/1.err"
echo $? > "$CRASH_OUT/1.rc"
cp -a "$CRASH_MNT/wd" "$CRASH_OUT/after-full" || exit 98
if [ -n "$CRASH_RERUN" ]; then
  rm -f "$CRASH_MNT/filler.bin"
  mount -o remount,size=1g "$CRASH_MNT" || exit 97
  "$@" > "$CRASH_OUT/2.out" 2> "$CRASH_OUT/2.err"
  echo $? > "$CRASH_OUT/2.rc"
  cp -a "$CRASH_MNT/wd" "$CRASH_OUT/after-rerun" || exit 98
fi
"""


def tmpfs_unavailable(probe: Path) -> str | None:
    """Why no size-limited tmpfs can be mounted here (user and mount namespaces), or None."""
    probe.mkdir(parents=True, exist_ok=True)
    cmd = 'mount -t tmpfs -o size=1m tmpfs "$0" && test "$(stat -f -c %T "$0")" = tmpfs'
    try:
        r = subprocess.run(
            ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", cmd, str(probe)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare could not run: {exc}"
    if r.returncode != 0:
        return f"unshare --user --mount with a tmpfs was refused: {r.stderr.strip()[:200]}"
    return None


@dataclass
class FullDiskRun:
    """A run on a volume that fills, and optionally a rerun once there is room again."""

    rc: int
    stderr: str
    after_full: Path
    rerun_rc: int | None = None
    rerun_stderr: str = ""
    after_rerun: Path | None = None


def seed_workdir(ref: Path, dest: Path, stages: Iterable[str]) -> Path:
    """A workdir holding copies of the reference run's finished folders of ``stages``."""
    import shutil

    keep = set(stages)
    for k, m in manifests(ref).items():
        if m["stage"] in keep:
            shutil.copytree(ref / k, dest / k)
    return dest


def run_on_full_disk(
    spec: Path,
    base: Path,
    *,
    size: str,
    crash: dict | None = None,
    seed: Path | None = None,
    rerun: bool = False,
    timeout: float = 300.0,
) -> FullDiskRun:
    """Run ``likeness submit`` with its workdir on a tmpfs of ``size`` (``unshare`` namespace).

    ``crash`` may fill the volume at an exact point (``action: fill``, ``path`` set to the
    volume's ``filler.bin``). With ``rerun``, the filler is removed, the volume grown, and the
    chain run again. The workdir is copied out after each run (``after_full``, ``after_rerun``):
    the mount vanishes with the namespace.
    """
    mnt, out = base / "mnt", base / "out"
    mnt.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    plan = dict(crash or {})
    if plan.get("action") == "fill":
        plan["path"] = str(mnt / "filler.bin")
    env = child_env(
        {
            "CRASH_SIZE": size,
            "CRASH_MNT": str(mnt),
            "CRASH_OUT": str(out),
            "CRASH_SEED": str(seed or ""),
            "CRASH_PLAN": json.dumps(plan) if plan else "",
            "CRASH_RERUN": "1" if rerun else "",
        }
    )
    argv = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", _NS_SCRIPT, "sh"]
    r = subprocess.run(
        [*argv, *submit_argv(spec, mnt / "wd")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if r.returncode in (97, 98):
        raise RuntimeError(f"tmpfs set-up failed ({r.returncode}): {r.stderr[-2000:]}")
    res = FullDiskRun(
        rc=int((out / "1.rc").read_text()),
        stderr=(out / "1.err").read_text(errors="replace"),
        after_full=out / "after-full",
    )
    if rerun:
        res.rerun_rc = int((out / "2.rc").read_text())
        res.rerun_stderr = (out / "2.err").read_text(errors="replace")
        res.after_rerun = out / "after-rerun"
    return res


def full_disk_problems(workdir: Path, stage: str, stderr: str) -> list[str]:
    """After a run that failed on a full disk: a named error, and nothing partial left.

    ``stage`` failed, every failure record names :class:`DiskFullError`, no file under a final
    name is incomplete, no stage folder lacks its manifest, and no temporary is left in a stage
    or version folder (the fine-tune work folder, which holds the last good checkpoint, stays).
    A volume still full to the last block has no room for the failure record itself: then
    ``stderr`` must say so, with the named error for the record too.
    """
    out = []
    failed = sorted(workdir.glob("shots/*/logs/*.failed.json"))
    no_room = re.search(
        rf"DiskFullError: disk full while writing \S*/logs/{stage}\S*\.failed", stderr
    )
    if not any(p.name.split(".")[0] == stage for p in failed) and not no_room:
        out.append(f"no {stage} failure recorded")
    for p in failed:
        err = json.loads(p.read_text()).get("error", "")
        if not err.startswith("DiskFullError: disk full while writing"):
            out.append(f"{p.name}: error is {err!r}")
    rep = Watcher(workdir)
    rep.scan()
    out += rep.report.violations
    out += [f"stage folder without a manifest: {f}" for f in rep.report.unmanifested_folders]
    out += [
        f"temporary left behind: {t.relative_to(workdir)}"
        for t in temporaries(workdir / "shots")
        if t.parent.name != "logs"
    ]
    return out


def kill_counts(tours: Iterable[Tour]) -> dict[str, int]:
    """Stage -> kills that landed in it, over ``tours`` (``between stages`` counted too)."""
    out: dict[str, int] = {}
    for t in tours:
        for a in t.attempts:
            if a.killed:
                out[a.kill_stage] = out.get(a.kill_stage, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: _stage_rank(kv[0])))


def _stage_rank(stage: str) -> int:
    first = stage.split("+")[0]
    return STAGE_ORDER.index(first) if first in STAGE_ORDER else len(STAGE_ORDER)


def tour_problems(tour: Tour, ref: Path, workdir: Path) -> list[str]:
    """Everything a tour must not show: partial files seen, a missed resume, outputs that differ
    from the uninterrupted run, an unfinished or unclean workdir at the end."""
    out = list(tour.watcher.violations)  # the scans right after each kill included
    last = tour.attempts[-1]
    if last.rc != 0:
        out.append(f"the last run exited {last.rc}: {last.stderr[-2000:]}")
    out += resume_problems(tour.attempts)
    out += compare_runs(ref, workdir)[0]
    out += final_state_problems(workdir)
    return out
