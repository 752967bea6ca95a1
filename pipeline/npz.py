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
