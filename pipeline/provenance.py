"""Provenance: what made a synthetic frame, written into every output and an audit log.

Every synthesized EXR carries ``likeness:*`` header attributes (synthetic flag, actor id, consent
id, model hash, source-plate hash, tool version, timestamp); the review movie carries the same in
its metadata; each run appends one JSON line to the workdir's append-only ``audit.log``.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import socket
from pathlib import Path
from typing import Any

from pipeline import __version__

AUDIT_LOG = "audit.log"


def provenance_attrs(
    *,
    synthetic: bool,
    actor_id: str | None = None,
    consent_id: str | None = None,
    model_sha256: str | None = None,
    source_plate_sha256: str | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The ``likeness:*`` attributes for an output. All values are strings."""
    attrs = {
        "likeness:synthetic": "1" if synthetic else "0",
        "likeness:tool_version": __version__,
        "likeness:timestamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    for k, v in (
        ("likeness:actor_id", actor_id),
        ("likeness:consent_id", consent_id),
        ("likeness:model_sha256", model_sha256),
        ("likeness:source_plate_sha256", source_plate_sha256),
    ):
        if v:
            attrs[k] = str(v)
    for k, v in (extra or {}).items():
        attrs[k if k.startswith("likeness:") else f"likeness:{k}"] = str(v)
    return attrs


def append_audit(workdir: str | os.PathLike[str], event: str, **fields: Any) -> Path:
    """Append one JSON line to ``<workdir>/audit.log``.

    The file is opened in append mode and each record is written with a single ``write`` of less
    than the pipe buffer size, so concurrent workers on one filesystem do not interleave lines.
    Existing lines are never rewritten.
    """
    path = Path(workdir) / AUDIT_LOG
    path.parent.mkdir(parents=True, exist_ok=True)
    rec = {
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "event": event,
        "user": _user(),
        "host": socket.gethostname(),
        "tool_version": __version__,
        **fields,
    }
    line = (json.dumps(rec, sort_keys=True, default=str) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
