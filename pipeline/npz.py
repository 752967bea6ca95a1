"""Reading ``.npz`` sidecars: plain arrays only, and one named error for every kind of damage.

``np.load`` reports a damaged archive through whatever layer noticed it: ``zipfile.BadZipFile``
(bad CRC, bad magic, truncated directory), ``zlib.error`` (a corrupt deflate stream),
``EOFError``, ``NotImplementedError`` (an unknown compression method), ``RuntimeError`` (a
member flagged as encrypted), ``ValueError`` (pickled objects, a bad ``.npy`` header) or
``OSError``. :func:`read_npz` turns all of them into the
caller's named error, so a sidecar reader only has to check the arrays it got.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from pipeline.errors import LikenessError

#: What ``np.load`` and reading an archive member raise on a damaged file.
NPZ_ERRORS = (
    OSError,
    ValueError,
    EOFError,
    RuntimeError,
    NotImplementedError,
    zipfile.BadZipFile,
    zlib.error,
)


def read_npz(
    path: str | os.PathLike[str], error: type[LikenessError], what: str, hint: str
) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` archive, read without unpickling anything.

    Args:
        path: the file.
        error: the named error to raise, e.g. ``SchemaError``.
        what: what the file is, for the message (``"landmarks file"``).
        hint: how to fix it (``"rerun the track merge"``).

    Returns:
        ``{name: array}`` for every member.

    Raises:
        error: unreadable or damaged file, a bare ``.npy`` array, a member that is no ``.npy``
            array, or pickled objects.
    """
    try:
        archive = np.load(path, allow_pickle=False)
    except NPZ_ERRORS as exc:
        raise error(f"cannot read {what} {path}: {type(exc).__name__}: {exc}", hint) from exc
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise error(f"{path} holds a bare .npy array, not a {what} (.npz archive)", hint)
    try:
        with archive:
            arrays = {name: archive[name] for name in archive.files}
    except NPZ_ERRORS as exc:
        raise error(f"cannot read {what} {path}: {type(exc).__name__}: {exc}", hint) from exc
    # A member without the .npy magic comes back as its raw bytes.
    raw = sorted(name for name, value in arrays.items() if not isinstance(value, np.ndarray))
    if raw:
        raise error(f"{path}: members {raw} of the {what} are not .npy arrays", hint)
    return arrays


def read_sidecar(
    path: str | os.PathLike[str],
    error: type[LikenessError],
    what: str,
    hint: str,
    schema: str,
    required: Iterable[str],
) -> dict[str, np.ndarray]:
    """:func:`read_npz`, then the ``schema`` member and the ``required`` arrays checked.

    Raises:
        error: what :func:`read_npz` refuses, another schema, or a required array missing.
    """
    arrays = read_npz(path, error, what, hint)
    found = str(arrays.get("schema"))
    if found != schema:
        raise error(f"{path}: schema {found!r}, expected {schema!r}", hint)
    missing = sorted(set(required) - set(arrays))
    if missing:
        raise error(f"{path} ({schema}) lacks {missing}", hint)
    return arrays


def convert_arrays(
    arrays: dict[str, np.ndarray],
    converters: dict[str, Callable[[np.ndarray], Any]],
    path: str | os.PathLike[str],
    error: type[LikenessError],
    hint: str,
    text: Iterable[str] = (),
) -> dict[str, Any]:
    """Each array passed through its converter, as a reader's typed fields.

    Args:
        arrays: the file's arrays (every key of ``converters`` present).
        converters: field name → function of its array; a converter refuses a wrong shape
            with ``ValueError`` (or ``TypeError``/``IndexError``).
        path, error, hint: for the message.
        text: fields stored as strings; every other array must hold numbers or booleans.

    Raises:
        error: naming the field, its dtype and shape, and what is wrong.
    """
    text = set(text)
    values: dict[str, Any] = {}
    for name, convert in converters.items():
        a = arrays[name]
        try:
            if name not in text and a.dtype.kind not in "biuf":
                raise TypeError("expected numbers")
            values[name] = convert(a)
        # int() of an array or of NaN, a short pair, an odd number of values, a wrong shape
        except (TypeError, ValueError, IndexError, OverflowError) as exc:
            raise error(f"{path}: {name} ({a.dtype} {a.shape}) is malformed: {exc}", hint) from exc
    return values


def frame_numbers(a: np.ndarray) -> np.ndarray:
    """A converter for :func:`convert_arrays`: one int64 frame number per row."""
    if a.ndim != 1:
        raise ValueError("expected one frame number per row")
    return a.astype(np.int64)


def size_pair(a: np.ndarray) -> tuple[int, int]:
    """A converter for :func:`convert_arrays`: ``(width, height)``."""
    if a.shape != (2,):
        raise ValueError("expected (width, height)")
    return int(a[0]), int(a[1])
