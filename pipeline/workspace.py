"""The workdir: content-addressed stage outputs, stage manifests and shot versions.

Layout::

    WORKDIR/
      shots/<shot>/
        stages/<stage>/<key>/          one stage's outputs, with _manifest.json
        v001/                          one delivered version: exr/, the movie, qc/, _manifest.json
        v001.json                      the plan of that version: every stage's key and folder
        logs/<stage>[.<chunk>].log     task logs; *.failed.json / *.running.json state records
      .cache/fingerprints.json         SHA-256 of source files, keyed by path, size and mtime

A stage's key is a digest of its name, its code version, its config digest and the keys (or
content hashes) of its inputs. Changing one stage's config changes its key and the keys of every
stage downstream, so exactly those rerun; upstream stages keep their keys and are reused. A shot
version is identified by the key of its delivery: the same inputs and configs give the same
version, anything that changes delivered frames gives a new one. Source plates are never written.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.atomic import write_json
from pipeline.errors import StageError, WorkdirError
from pipeline.hashing import sha256_file

#: What a shot name (and so a workdir folder name) may be.
NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

MANIFEST = "_manifest.json"
MANIFEST_SCHEMA = "likeness.manifest/1"
KEY_LEN = 16


def stage_key(stage: str, stage_version: int, config_digest: str, inputs: dict[str, str]) -> str:
    """The content key of a stage run: same key, same outputs."""
    blob = json.dumps(
        {"stage": stage, "v": stage_version, "config": config_digest, "inputs": inputs},
        sort_keys=True,
    ).encode()
    return hashlib.sha256(blob).hexdigest()[:KEY_LEN]


class Workdir:
    """A likeness workdir. All paths it hands out stay inside ``root``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    # -- paths ------------------------------------------------------------------------------
    def shot_dir(self, shot: str) -> Path:
        if not NAME_RE.match(shot):
            raise WorkdirError(
                f"shot name {shot!r} would not stay inside the workdir",
                "use 1-64 of A-Z a-z 0-9 _ -",
            )
        return self.root / "shots" / shot

    def stage_dir(self, shot: str, stage: str, key: str) -> Path:
        return self.shot_dir(shot) / "stages" / stage / key

    def version_dir(self, shot: str, version: str) -> Path:
        return self.shot_dir(shot) / version

    def log_dir(self, shot: str) -> Path:
        return self.shot_dir(shot) / "logs"

    def shots(self) -> list[str]:
        d = self.root / "shots"
        return (
            sorted(p.name for p in d.iterdir() if p.is_dir() and NAME_RE.match(p.name))
            if d.is_dir()
            else []
        )

    # -- source fingerprints ----------------------------------------------------------------
    def fingerprint(self, paths: list[Path]) -> str:
        """A digest of source files' contents, cached by path, size and mtime.

        Source files are hashed once; a later call re-hashes only files whose size or
        modification time changed.
        """
        cache_path = self.root / ".cache" / "fingerprints.json"
        try:
            cache = json.loads(cache_path.read_text())
        except (OSError, ValueError):
            cache = {}
        if not isinstance(cache, dict):  # a damaged cache is rebuilt, never trusted
            cache = {}
        h = hashlib.sha256()
        dirty = False
        for p in sorted(Path(x).resolve() for x in paths):
            st = p.stat()
            tag = f"{st.st_size}:{st.st_mtime_ns}"
            ent = cache.get(str(p))
            if (
                not isinstance(ent, dict)
                or ent.get("tag") != tag
                or not isinstance(ent.get("sha256"), str)
            ):
                ent = {"tag": tag, "sha256": sha256_file(p)}
                cache[str(p)] = ent
                dirty = True
            h.update(f"{p.name}:{ent['sha256']}\n".encode())
        if dirty:
            write_json(cache_path, cache)
        return h.hexdigest()

    # -- versions ---------------------------------------------------------------------------
    def versions(self, shot: str) -> list[str]:
        d = self.shot_dir(shot)
        if not d.is_dir():
            return []
        return sorted(p.stem for p in d.glob("v[0-9][0-9][0-9]*.json") if p.stem[1:].isdigit())

    def read_plan(self, shot: str, version: str) -> dict[str, Any]:
        """The plan of a shot version.

        Raises:
            OSError: no such plan.
            ValueError: the plan file is damaged (not a JSON mapping).
        """
        path = self.shot_dir(shot) / f"{version}.json"
        plan = json.loads(path.read_text())
        if not isinstance(plan, dict):
            raise ValueError(f"{path} holds a JSON {type(plan).__name__}, not a plan mapping")
        return plan

    def find_or_allocate_version(
        self, shot: str, delivery_key: str, plan: dict[str, Any], *, new: bool = False
    ) -> str:
        """The newest version whose delivery key is ``delivery_key``, or a newly reserved one.

        A new version's plan file is written whole under a temporary name, then hard-linked to
        ``vNNN.json``. ``link`` fails when the name exists, so the reservation is exclusive (as
        ``O_EXCL`` is) and no reader ever sees a half-written plan. Two submitters racing for one
        shot therefore never get the same number, and the one that loses re-reads the winner's
        plan: with the same delivery key it returns the winner's version instead of reserving a
        second one. Finished versions are never reused for other delivered frames.

        Args:
            new: always reserve a new version, even when one with this delivery key exists
                (``likeness rerun`` of a finished shot: the finished version is kept as it is).
        """
        shot_dir = self.shot_dir(shot)
        shot_dir.mkdir(parents=True, exist_ok=True)

        def key_of(v: str) -> str | None:
            try:
                return self.read_plan(shot, v).get("delivery_key")
            except (OSError, ValueError):
                return None

        for v in [] if new else reversed(self.versions(shot)):
            if key_of(v) == delivery_key:
                return v
        # Walk up from v001: a version reserved by a racing submitter since the scan above is met
        # as FileExistsError and its key checked, never skipped over.
        n = 1
        while True:
            v = f"v{n:03d}"
            path = shot_dir / f"{v}.json"
            tmp = shot_dir / f".{v}.json.tmp-{os.getpid()}-{os.urandom(4).hex()}"
            with open(tmp, "x") as fh:
                json.dump(
                    {**plan, "version": v, "delivery_key": delivery_key},
                    fh,
                    indent=2,
                    sort_keys=True,
                )
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                if not new and key_of(v) == delivery_key:
                    return v
                n += 1
                continue
            finally:
                tmp.unlink(missing_ok=True)
            return v


@dataclass(frozen=True)
class StageManifest:
    """What a finished stage records about itself in ``_manifest.json``."""

    stage: str
    key: str
    shot: str
    config_digest: str
    stage_version: int
    inputs: dict[str, str]
    frame_range: str | None
    outputs: dict[str, str] = field(default_factory=dict)  # relative path -> sha256
    extra: dict[str, Any] = field(default_factory=dict)
    started: float = 0.0
    finished: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": MANIFEST_SCHEMA,
            "stage": self.stage,
            "key": self.key,
            "shot": self.shot,
            "config_digest": self.config_digest,
            "code_version": {"likeness": __version__, "stage": self.stage_version},
            "inputs": self.inputs,
            "frame_range": self.frame_range,
            "outputs": self.outputs,
            "extra": self.extra,
            "started": self.started,
            "finished": self.finished,
            "host": socket.gethostname(),
        }


def hash_outputs(folder: Path, skip: tuple[str, ...] = (MANIFEST,)) -> dict[str, str]:
    """SHA-256 of every regular file under ``folder``, keyed by relative POSIX path."""
    out: dict[str, str] = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name not in skip:
            out[p.relative_to(folder).as_posix()] = sha256_file(p)
    return out


def write_manifest(folder: Path, manifest: StageManifest) -> Path:
    """Write ``_manifest.json`` last, atomically: the stage is complete from this moment."""
    if not folder.is_dir():
        raise StageError(f"stage folder {folder} does not exist; the stage wrote no outputs")
    missing = [rel for rel in manifest.outputs if not (folder / rel).is_file()]
    if missing:
        raise StageError(f"stage {manifest.stage} lists outputs that do not exist: {missing[:5]}")
    return write_json(folder / MANIFEST, manifest.to_json())


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The stage manifest in ``folder``; ``None`` when it is missing, unreadable or foreign."""
    try:
        data = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("schema") == MANIFEST_SCHEMA else None


def manifest_matches(
    folder: Path, key: str, config_digest: str, *, verify_hashes: bool = False
) -> bool:
    """True when ``folder`` holds a finished stage with this key and config, outputs present."""
    m = read_manifest(folder)
    if m is None or m.get("key") != key or m.get("config_digest") != config_digest:
        return False
    outputs = m.get("outputs", {})
    if not isinstance(outputs, dict):
        return False
    for rel, sha in outputs.items():
        p = folder / rel
        if not p.is_file():
            return False
        if verify_hashes and sha256_file(p) != sha:
            return False
    return True


# -- task state records, for `likeness status` ------------------------------------------------
def state_path(workdir: Workdir, shot: str, task: str, kind: str) -> Path:
    return workdir.log_dir(shot) / f"{task}.{kind}.json"


def record_state(workdir: Workdir, shot: str, task: str, kind: str, **info: Any) -> None:
    """Record that ``task`` is ``running`` or ``failed``; clears the other record."""
    other = {"running": "failed", "failed": "running"}.get(kind)
    if other:
        state_path(workdir, shot, task, other).unlink(missing_ok=True)
    write_json(
        state_path(workdir, shot, task, kind),
        {
            "task": task,
            "state": kind,
            "time": time.time(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            **info,
        },
    )


def clear_state(workdir: Workdir, shot: str, task: str) -> None:
    for kind in ("running", "failed"):
        state_path(workdir, shot, task, kind).unlink(missing_ok=True)
