"""Run ``likeness`` with one injected fault at an exact point of the chain (crash tests only).

``python -m tests.crash.bootstrap ARGS...`` runs ``python -m tasks.cli ARGS...`` after wrapping
one function named by ``$LIKENESS_CRASH`` (JSON), so that the library itself carries no test
hooks. Keys:

- ``at``: the function to wrap, ``module.attr`` (``torch.save``, ``pipeline.delivery.write.write_exr``,
  ``tasks.base.write_manifest``, ...) or ``module:Class.method``. Callers must look it up at
  call time.
- ``match``: count only calls whose first path argument (``str`` or path-like) contains this
  text.
- ``nth``: act on the n-th counted call (default 1).
- ``action``:
  - ``kill`` (default): SIGKILL this process before the call runs;
  - ``kill_after``: SIGKILL it right after the call returns;
  - ``partial``: for ``torch.save``: serialise, write ``fraction`` of the bytes to the target,
    flush them to disk, then SIGKILL (a checkpoint write cut off mid-file);
  - ``fill``: fill the volume of ``path`` with a file ``path`` that leaves ``leave`` bytes free,
    then run the call (another job filling a shared disk);
  - ``fsize``: ignore SIGXFSZ and cap the size of any file written from now on at ``limit``
    bytes (``RLIMIT_FSIZE``: writes past it fail with EFBIG), then run the call.
"""

from __future__ import annotations

import functools
import importlib
import io
import json
import os
import resource
import signal
import sys
from typing import Any


def _die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _partial_save(save: Any, obj: Any, f: Any, fraction: float) -> None:
    buf = io.BytesIO()
    save(obj, buf)
    data = buf.getvalue()
    with open(f, "wb") as fh:
        fh.write(data[: int(len(data) * fraction)])
        fh.flush()
        os.fsync(fh.fileno())
    _die()


def _fill(path: str, leave: int) -> None:
    st = os.statvfs(os.path.dirname(path))
    size = max(0, st.f_bavail * st.f_frsize - leave)
    with open(path, "wb") as fh:
        fh.truncate(0)
        chunk = b"\0" * (1 << 20)
        while size > 0:
            n = min(size, len(chunk))
            fh.write(chunk[:n])
            size -= n
        fh.flush()
        os.fsync(fh.fileno())


def install(plan: dict[str, Any]) -> None:
    """Wrap ``plan["at"]`` as ``plan`` describes (see the module docstring)."""
    if ":" in plan["at"]:  # module:Class.method
        mod_name, qual = plan["at"].split(":")
    else:
        mod_name, qual = plan["at"].rsplit(".", 1)
    owner: Any = importlib.import_module(mod_name)
    *path, attr = qual.split(".")
    for name in path:
        owner = getattr(owner, name)
    real = getattr(owner, attr)
    action = plan.get("action", "kill")
    nth = int(plan.get("nth", 1))
    match = plan.get("match")
    calls = 0

    @functools.wraps(real)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        where = next((a for a in (*args, *kwargs.values()) if isinstance(a, str | os.PathLike)), "")
        if match is None or match in str(where):
            calls += 1
            if calls == nth:
                if action == "kill":
                    _die()
                if action == "partial":
                    _partial_save(real, args[0], args[1], float(plan.get("fraction", 0.5)))
                if action == "fill":
                    _fill(plan["path"], int(plan.get("leave", 0)))
                if action == "fsize":
                    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                    limit = int(plan["limit"])
                    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
                out = real(*args, **kwargs)
                if action == "kill_after":
                    _die()
                return out
        return real(*args, **kwargs)

    setattr(owner, attr, wrapper)


def main() -> int:
    raw = os.environ.get("LIKENESS_CRASH")
    if raw:
        install(json.loads(raw))
    from tasks.cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
