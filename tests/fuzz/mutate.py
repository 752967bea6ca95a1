"""Seeded byte mutations and a crash-proof runner for the media mutation loop.

A *case* is one mutated copy of a valid seed file, reproducible from ``(base seed, target,
index)``: :func:`case_rng` seeds the RNG and :func:`mutate` applies one to four mutations (bit
flips, interesting bytes and integers, truncation, chunk deletion, duplication and insertion),
biased towards the header and the tail where parsers keep their tables.

Readers are C decoders (FFmpeg, OpenEXR, libpng, libtiff, libjpeg, miniz) that can crash or
hang, so every case is read by a :class:`Worker`: a child process (``python -m
tests.fuzz.targets``) that reads one case per request. A child killed by a signal is a *crash*;
no answer within the per-case timeout is a *hang* (the child is killed and restarted); an
exception that is not a :class:`~pipeline.errors.LikenessError` is *unnamed*; data that breaks
the reader's documented contract is a *contract* failure. :func:`run_campaign` is bounded by an
iteration count and a wall-clock budget, so it always ends by itself.

A failing case is reproduced with ``python -m tests.fuzz.mutate TARGET SEED CASE DIR``.
"""

from __future__ import annotations

import json
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

#: Outcomes that fail a campaign.
FAILURES = ("unnamed", "contract", "crash", "hang")

#: Iterations that ran, by test: ``{name: {"iterations": n, "seconds": s, ...}}``. Printed at the
#: end of the pytest session by ``tests/fuzz/conftest.py``.
COUNTS: dict[str, dict[str, Any]] = {}


def record(name: str, iterations: int, seconds: float, **extra: Any) -> None:
    """Add ``iterations`` to the tally of ``name``."""
    entry = COUNTS.setdefault(name, {"iterations": 0, "seconds": 0.0})
    entry["iterations"] += iterations
    entry["seconds"] += seconds
    entry.update(extra)


def counted(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a hypothesis test body so that every example it runs is tallied under ``name``."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        import functools

        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            t0 = time.monotonic()
            try:
                return fn(*args, **kwargs)
            finally:
                record(name, 1, time.monotonic() - t0)

        return inner

    return wrap


# -- mutations ----------------------------------------------------------------------------------

#: Byte values that sit on boundaries: sign bits, all ones, zero.
INTERESTING_8 = (0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF)
#: Integers that break size and offset arithmetic.
INTERESTING_32 = (
    0,
    1,
    2,
    0x7F,
    0x80,
    0xFF,
    0x100,
    0x7FFF,
    0x8000,
    0xFFFF,
    0x10000,
    0x7FFFFFFF,
    0x80000000,
    0xFFFFFFFE,
    0xFFFFFFFF,
)


def case_rng(base_seed: int, target: str, index: int) -> random.Random:
    """The RNG of one case: the same arguments give the same mutations on every machine."""
    return random.Random(f"{base_seed}:{target}:{index}")


def _pos(rng: random.Random, n: int) -> int:
    """A position in ``0..n-1``, biased towards the first and last 512 bytes."""
    r = rng.random()
    if r < 0.45:
        return rng.randrange(min(n, 512))
    if r < 0.6:
        return max(0, n - 1 - rng.randrange(min(n, 512)))
    return rng.randrange(n)


def _span(rng: random.Random, n: int) -> int:
    return min(n, rng.choice((1, 2, 4, 8, 16, 64, 256, 1024, rng.randrange(1, n + 1))))


def _bitflip(data: bytearray, rng: random.Random) -> str:
    at, bit = _pos(rng, len(data)), rng.randrange(8)
    data[at] ^= 1 << bit
    return f"bitflip@{at}.{bit}"


def _byte(data: bytearray, rng: random.Random) -> str:
    at, value = _pos(rng, len(data)), rng.choice(INTERESTING_8)
    data[at] = value
    return f"byte@{at}=0x{value:02x}"


def _integer(data: bytearray, rng: random.Random) -> str:
    width = rng.choice((2, 4, 8))
    if len(data) < width:
        return _byte(data, rng)
    at = min(_pos(rng, len(data)), len(data) - width)
    value = rng.choice(INTERESTING_32) & ((1 << (8 * width)) - 1)
    order = rng.choice(("little", "big"))
    data[at : at + width] = value.to_bytes(width, order)
    return f"int{8 * width}{order[0]}e@{at}=0x{value:x}"


def _random_bytes(data: bytearray, rng: random.Random) -> str:
    at, n = _pos(rng, len(data)), _span(rng, len(data))
    data[at : at + n] = rng.randbytes(len(data[at : at + n]))
    return f"random@{at}+{n}"


def _fill(data: bytearray, rng: random.Random) -> str:
    at, n, value = _pos(rng, len(data)), _span(rng, len(data)), rng.choice(INTERESTING_8)
    data[at : at + n] = bytes([value]) * len(data[at : at + n])
    return f"fill@{at}+{n}=0x{value:02x}"


def _truncate(data: bytearray, rng: random.Random) -> str:
    keep = rng.choice((0, 1, 4, 8, 16, rng.randrange(len(data)), len(data) - _span(rng, len(data))))
    keep = max(0, min(keep, len(data) - 1))
    del data[keep:]
    return f"truncate@{keep}"


def _delete(data: bytearray, rng: random.Random) -> str:
    at, n = _pos(rng, len(data)), _span(rng, len(data))
    del data[at : at + n]
    return f"delete@{at}+{n}"


def _duplicate(data: bytearray, rng: random.Random) -> str:
    at, n = _pos(rng, len(data)), _span(rng, len(data))
    chunk = bytes(data[at : at + n])
    to = _pos(rng, len(data))
    data[to:to] = chunk
    return f"duplicate@{at}+{len(chunk)}->{to}"


def _insert(data: bytearray, rng: random.Random) -> str:
    at, n = _pos(rng, len(data)), rng.choice((1, 4, 16, 256))
    fill = rng.choice((b"\x00", b"\xff", None))
    data[at:at] = fill * n if fill else rng.randbytes(n)
    return f"insert@{at}+{n}"


def _overwrite_copy(data: bytearray, rng: random.Random) -> str:
    at, n = _pos(rng, len(data)), _span(rng, len(data))
    to = _pos(rng, len(data))
    chunk = bytes(data[at : at + n])[: len(data) - to]  # overwrite in place: the size is kept
    data[to : to + len(chunk)] = chunk
    return f"copy@{at}+{len(chunk)}->{to}"


#: ``(weight, mutation)``: single-byte edits dominate, as in AFL's havoc stage.
MUTATIONS: tuple[tuple[int, Callable[[bytearray, random.Random], str]], ...] = (
    (5, _bitflip),
    (5, _byte),
    (5, _integer),
    (2, _random_bytes),
    (1, _fill),
    (2, _truncate),
    (2, _delete),
    (2, _duplicate),
    (1, _insert),
    (1, _overwrite_copy),
)


def fix_png_crcs(data: bytes) -> bytes:
    """Recompute the CRC of every whole PNG chunk, so that a mutation gets past the CRC check
    into the chunk parsers and the inflater."""
    out = bytearray(data)
    pos = 8
    while pos + 12 <= len(out):
        length = int.from_bytes(out[pos : pos + 4], "big")
        end = pos + 8 + length
        if end + 4 > len(out):
            break
        out[end : end + 4] = zlib.crc32(out[pos + 4 : end]).to_bytes(4, "big")
        pos = end + 4
    return bytes(out)


def mutate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Apply one to four seeded mutations to ``data``.

    A PNG gets its chunk CRCs recomputed half of the time (``+crc`` in the description).

    Returns:
        ``(mutated bytes, description)``; the description lists every mutation, e.g.
        ``bitflip@12.3; truncate@4000``.
    """
    out = bytearray(data)
    steps = []
    weights = [w for w, _ in MUTATIONS]
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
        if not out:
            break
        (op,) = rng.choices([m for _, m in MUTATIONS], weights)
        steps.append(op(out, rng))
    if bytes(out) == data:  # a no-op (e.g. a byte set to its own value): force a change
        out.append(rng.choice(INTERESTING_8))
        steps.append("append")
    result = bytes(out)
    if data.startswith(b"\x89PNG\r\n\x1a\n") and rng.random() < 0.5:
        result = fix_png_crcs(result)
        steps.append("+crc")
    return result, "; ".join(steps)


# -- the child-process worker -------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What reading one case did.

    Attributes:
        kind: ``ok`` (read whole), ``named`` (a LikenessError), ``unnamed``, ``contract``,
            ``crash`` or ``hang``.
        detail: the error type and message, the signal, or the timeout.
        where: for ``unnamed``, ``path:function`` of the innermost library frame.
    """

    kind: str
    detail: str = ""
    where: str = ""  # for ``unnamed``: ``path:function`` of the innermost library frame


class Worker:
    """A child process that reads cases on request; restarted after a crash or a hang.

    Args:
        timeout_s: seconds a case may take before it counts as a hang.
        mem_limit: address-space limit of the child in bytes (a runaway allocation then fails
            inside the child instead of swapping the machine).
    """

    def __init__(self, timeout_s: float = 20.0, mem_limit: int = 6 << 30) -> None:
        self.timeout_s = timeout_s
        self.mem_limit = mem_limit
        self.restarts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: Any = None

    def _start(self) -> None:
        self._stderr = tempfile.TemporaryFile()
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONFAULTHANDLER="1")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fuzz.targets", str(self.mem_limit)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        line = self._readline(120.0)
        if line != b"ready\n":
            raise RuntimeError(f"fuzz worker did not start: {line!r}; stderr: {self.stderr_tail()}")

    def _readline(self, timeout: float) -> bytes | None:
        """One line from the child, ``b""`` at EOF, ``None`` after ``timeout`` seconds."""
        assert self._proc is not None and self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], timeout)
        if not ready:
            return None
        return self._proc.stdout.readline()

    def stderr_tail(self, n: int = 1500) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")[-n:]

    def read(self, target: str, folder: Path) -> Outcome:
        """Have the child read the case in ``folder`` with ``target``'s reader."""
        if self._proc is None or self._proc.poll() is not None:
            self._start()
        assert self._proc is not None and self._proc.stdin is not None
        request = json.dumps({"target": target, "folder": str(folder)}) + "\n"
        try:
            self._proc.stdin.write(request.encode())
            self._proc.stdin.flush()
        except BrokenPipeError:
            return self._died()
        line = self._readline(self.timeout_s)
        if line is None:
            tail = self.stderr_tail()
            self._kill()
            return Outcome("hang", f"no answer in {self.timeout_s:.0f} s; stderr: {tail}")
        if not line:
            return self._died()
        answer = json.loads(line)
        return Outcome(answer["kind"], answer.get("detail", ""), answer.get("where", ""))

    def _died(self) -> Outcome:
        assert self._proc is not None
        code = self._proc.wait()
        tail = self.stderr_tail()
        self._proc = None
        self.restarts += 1
        what = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with {code}"
        return Outcome("crash", f"worker {what}; stderr: {tail}")

    def _kill(self) -> None:
        if self._proc is not None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._proc.wait()
            self._proc = None
            self.restarts += 1

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._kill()
        self._proc = None


# -- campaigns ----------------------------------------------------------------------------------


@dataclass
class Campaign:
    """The result of one bounded mutation run over one target."""

    target: str
    base_seed: int
    iterations: int = 0
    seconds: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    slowest: tuple[float, str] = (0.0, "")

    def summary(self) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.outcomes.items()))
        return (
            f"{self.target}: {self.iterations} cases in {self.seconds:.1f} s ({kinds}); "
            f"slowest {self.slowest[0]:.2f} s"
        )


def write_case(seeds: dict[str, bytes], folder: Path, rng: random.Random) -> tuple[str, str]:
    """Write one case into ``folder``: every seed file, one of them mutated.

    Returns:
        ``(name of the mutated file, its mutations)``.
    """
    names = sorted(seeds)
    victim = rng.choice(names)
    data, how = mutate(seeds[victim], rng)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).write_bytes(data if name == victim else seeds[name])
    return victim, how


def run_campaign(
    worker: Worker,
    target: str,
    seeds: dict[str, bytes],
    folder: Path,
    *,
    base_seed: int,
    iterations: int,
    budget_s: float,
    keep: Path | None = None,
) -> Campaign:
    """Mutate one of ``seeds`` per case and read the case folder, until either bound is hit.

    Args:
        worker: the child that reads cases.
        target: a name of ``tests.fuzz.targets.TARGETS``.
        seeds: file name → valid bytes; the case folder holds all of them, one mutated.
        folder: the case folder (rewritten for every case).
        base_seed: with ``target`` and the case index, seeds each case's mutations.
        iterations: at most this many cases.
        budget_s: stop starting new cases after this many seconds.
        keep: where to copy the files of a failing case (its folder name gives the case).

    Returns:
        the campaign, with every failure described as ``case i (mutations): outcome``.
    """
    camp = Campaign(target, base_seed)
    t0 = time.monotonic()
    for i in range(iterations):
        if time.monotonic() - t0 > budget_s:
            break
        victim, how = write_case(seeds, folder, case_rng(base_seed, target, i))
        t_case = time.monotonic()
        out = worker.read(target, folder)
        took = time.monotonic() - t_case
        if took > camp.slowest[0]:
            camp.slowest = (took, f"case {i} ({victim}: {how})")
        camp.iterations += 1
        kind = out.kind if out.kind != "named" else out.detail.split(":")[0]
        camp.outcomes[kind] += 1
        if out.kind in FAILURES:
            camp.failures.append(
                f"case {i} of seed {base_seed} ({victim}: {how}): {out.kind}: {out.detail}\n"
                f"  reproduce: python -m tests.fuzz.mutate {target} {base_seed} {i} CASE_DIR"
            )
            if keep is not None:
                shutil.copytree(folder, keep / f"{target}-{base_seed}-{i}", dirs_exist_ok=True)
    camp.seconds = time.monotonic() - t0
    return camp


def main(argv: list[str]) -> None:
    """``python -m tests.fuzz.mutate TARGET SEED CASE DIR``: write one case and read it in this
    process (a crash or a hang shows directly), printing the outcome."""
    from tests.fuzz.targets import classify, seed_files

    target, seed, index, folder = argv[0], int(argv[1]), int(argv[2]), Path(argv[3])
    victim, how = write_case(seed_files(target), folder, case_rng(seed, target, index))
    print(f"{folder}: {victim} mutated by {how}", flush=True)
    answer = classify(target, folder)
    print(f"{answer['kind']}: {answer.get('detail', '')}")


if __name__ == "__main__":
    main(sys.argv[1:])
