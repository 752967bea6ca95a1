"""Atomic writes: nothing partial is ever visible at a final path.

A file is written to a temporary sibling and renamed over the final name; a directory is filled
as a temporary sibling and renamed whole. A crash (SIGKILL included) leaves at most a temporary
``.*.tmp-*`` entry, which :func:`sweep_temporaries` removes and which no reader looks at.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import ctypes.util
import errno
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import DiskFullError

TMP_MARK = ".tmp-"

#: Set while an :func:`atomic_dir` body runs: files written inside it skip their own fsync, and
#: the directory flushes its whole filesystem once before it is renamed (one journal commit per
#: stage instead of one per frame; a rename is already safe against a killed process).
_BATCH_ROOT: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "_BATCH_ROOT", default=None
)
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def _syncfs(path: Path) -> None:
    """Flush the filesystem holding ``path`` (Linux ``syncfs``; ``os.sync`` elsewhere)."""
    fn = getattr(_libc, "syncfs", None)
    if fn is None:
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        fn(fd)
    finally:
        os.close(fd)


def _tmp_sibling(final: Path) -> Path:
    return final.with_name(f".{final.name}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


#: A write ran out of room: the device is full, a quota or a file-size limit (EFBIG) was hit.
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_FULL_TEXTS = tuple(os.strerror(e) for e in _FULL_ERRNOS)


def _out_of_room(exc: BaseException, folder: Path) -> str | None:
    """Why a failed write ran out of room, or ``None`` when it did not.

    Writers report a full disk in three ways: an ``OSError`` with ``ENOSPC`` somewhere in the
    exception chain (Python, numpy, PyAV), the C library's text in another exception's message
    (OpenEXR raises ``RuntimeError("... No space left on device.")``), or nothing useful at all
    (``torch.save`` says ``unexpected pos``, ``cv2.imwrite`` returns False). For the last, the
    volume is asked: no free block left means the disk filled. Call this before the temporary
    is removed, while it still holds the space.
    """
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in _FULL_ERRNOS:
            return os.strerror(e.errno)
        text = next((t for t in _FULL_TEXTS if t in str(e)), None)
        if text is not None:
            return text
        e = e.__cause__ or e.__context__
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    return os.strerror(errno.ENOSPC) if st.f_bavail == 0 else None


def _raise_if_full(exc: BaseException, final: Path, folder: Path) -> None:
    """Raise :class:`DiskFullError` from ``exc`` when the write failed for want of room.

    A :class:`DiskFullError` from a file inside an :func:`atomic_dir` is raised again naming
    the directory's final path, not the file's temporary one.
    """
    if not isinstance(exc, Exception):
        return
    why = _out_of_room(exc, folder)
    if why is not None:
        raise DiskFullError(
            f"disk full while writing {final}: {why}",
            "free space on that volume (or raise its quota or file-size limit), or point "
            "--workdir at a larger one, then rerun: completed stages are kept",
        ) from exc


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str], *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path; on success, rename it to ``final``.

    Args:
        final: the final file path. Its parent is created.
        suffix: extension for the temporary file (some writers pick the format by suffix);
            defaults to the final file's suffix.

    Raises:
        DiskFullError: the device filled up; the temporary file is removed.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(final)
    tmp = tmp.with_name(tmp.name + (suffix if suffix is not None else final.suffix))
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"writer produced no file at {tmp}")
        batch = _BATCH_ROOT.get()
        batched = batch is not None and final.is_relative_to(batch)
        if not batched:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, final)
        if not batched:
            _fsync_dir(final.parent)
    except BaseException as exc:
        try:
            _raise_if_full(exc, final, final.parent)
        finally:
            tmp.unlink(missing_ok=True)
        raise


def write_bytes(final: str | os.PathLike[str], data: bytes) -> Path:
    """Write bytes atomically to ``final``."""
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)
    return Path(final)


def write_text(final: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 text atomically to ``final``."""
    return write_bytes(final, text.encode("utf-8"))


def write_json(final: str | os.PathLike[str], obj: Any) -> Path:
    """Write JSON atomically to ``final`` (sorted keys, two-space indent)."""
    return write_text(final, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_npz(final: str | os.PathLike[str], *, compress: bool = False, **arrays: Any) -> Path:
    """Write numpy arrays atomically as ``.npz`` (plain arrays only: readers never unpickle)."""

    with atomic_path(final) as tmp:
        with open(tmp, "wb") as fh:
            (np.savez_compressed if compress else np.savez)(fh, **arrays)
    return Path(final)


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory; on success, rename it whole to ``final``.

    An existing ``final`` is replaced only after the new one is complete (it is moved aside and
    removed after the rename).

    Raises:
        DiskFullError: the device filled up; the temporary directory is removed.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(final)
    tmp.mkdir()
    token = _BATCH_ROOT.set(tmp)
    try:
        try:
            yield tmp
        finally:
            _BATCH_ROOT.reset(token)
        _syncfs(tmp)
        old = None
        if final.exists():
            old = _tmp_sibling(final.with_name(final.name + ".old"))
            os.replace(final, old)
        os.replace(tmp, final)
        _fsync_dir(final.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException as exc:
        try:
            _raise_if_full(exc, final, final.parent)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        raise


def is_temporary(path: Path) -> bool:
    """True for names made by this module's temporary writers."""
    return path.name.startswith(".") and TMP_MARK in path.name


def sweep_temporaries(root: str | os.PathLike[str], name: str | None = None) -> list[Path]:
    """Remove temporaries left by killed writers under ``root``. Returns what was removed.

    Args:
        root: the folder to sweep (recursively).
        name: only sweep the temporaries of this final name (a stage sweeps its own output
            folder's leftovers, never those of a sibling chunk that may be running elsewhere).
    """
    removed: list[Path] = []
    root = Path(root)
    if not root.exists():
        return removed
    if name:  # its temporaries, and a replaced copy a killed atomic_dir had moved aside
        found = [*root.glob(f".{name}{TMP_MARK}*"), *root.glob(f".{name}.old{TMP_MARK}*")]
    else:
        found = list(root.rglob(f".*{TMP_MARK}*"))
    for p in sorted(found, key=lambda q: len(q.parts), reverse=True):
        if not is_temporary(p) or not p.exists():
            continue
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed
