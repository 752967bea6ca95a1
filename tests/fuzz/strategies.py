"""Hypothesis strategies for the fuzz tests: YAML and JSON values, npz contents, raw bytes.

Valid documents are the best starting points: :func:`edited` applies random edits (set, delete,
add an unknown key) at the key paths of a valid mapping, so most examples get past the first
checks and reach the deeper ones. Fully random documents and raw bytes cover the rest.
"""

from __future__ import annotations

import copy
import datetime as dt
import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.fuzz.mutate import counted

#: Examples per property: the fast run is part of ``make test``; the soak runs under ``-m slow``.
FAST_EXAMPLES = 200
SLOW_EXAMPLES = 4000

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]


def fuzz_pair(
    name: str,
    fast: int = FAST_EXAMPLES,
    slow: int = SLOW_EXAMPLES,
    **strategies: Any,
) -> Callable[[Callable[..., None]], tuple[Callable[..., None], Callable[..., None]]]:
    """Turn a property into two tests: a derandomized fast one and a ``slow`` soak.

    The fast test has a fixed example sequence (``derandomize=True``, no example database), so
    CI runs are reproducible; the soak draws new examples on every run. Each example run is
    tallied under ``name`` (see :mod:`tests.fuzz.conftest`).
    """

    def make(fn: Callable[..., None]) -> tuple[Callable[..., None], Callable[..., None]]:
        body = counted(name)(fn)
        common: dict[str, Any] = {
            "deadline": None,
            "database": None,
            "suppress_health_check": _QUIET,
        }
        quick = settings(max_examples=fast, derandomize=True, **common)(given(**strategies)(body))
        soak = settings(max_examples=slow, **common)(given(**strategies)(body))
        return quick, pytest.mark.slow(soak)

    return make


# -- YAML / JSON values -------------------------------------------------------------------------

#: Strings that mean something somewhere in a spec, a profile or a sidecar.
PLAUSIBLE_STRINGS = (
    "",
    " ",
    "sh010",
    "jdoe",
    "../../etc",
    "sh010; rm -rf ~",
    "a" * 65,
    "1001-1100",
    "1100-1001",
    "1001",
    "-5",
    "0-0",
    "1001-",
    "99999999999999999999-1",
    "24",
    "24000/1001",
    "23.976",
    "1/0",
    "0/1",
    "-24",
    "1e400",
    "nan",
    "inf",
    "01:00:00:00",
    "25:61:61:99",
    "sRGB Encoded Rec.709 (sRGB)",
    "ACEScg",
    "zip",
    "piz",
    "dwaa",
    "lzw",
    "prores_422hq",
    "prores_4444",
    "plates/sh010.####.exr",
    "plates/sh010.mov",
    "plates/%04d.dpx",
    "refs/*.png",
    "refs/",
    "refs/a.png",
    "/dev/null",
    "~/nowhere",
    "cpu-preview",
    "farm-256",
    "no-such-profile",
    "profile.yaml",
    "auto",
    "torch",
    "tensorrt",
    "cuda",
    "fp16",
    "2027-12-31",
    "1999-01-01",
    "2026-02-30",
    "likeness.landmarks/1",
    "likeness.plate/1",
    "likeness.manifest/1",
    "\x00",
    "\udcff",
)

ints = st.one_of(
    st.integers(-3, 300),
    st.sampled_from([1001, 4096, 8192 * 8192, 2**31, 2**63, -(2**63), 10**30]),
    st.integers(),
)
floats = st.one_of(st.floats(), st.sampled_from([0.0, -0.0, 0.5, 1.0, 2.0, 60.0, 1e308]))
texts = st.one_of(st.sampled_from(PLAUSIBLE_STRINGS), st.text(max_size=20))


def yaml_scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        ints,
        floats,
        texts,
        st.dates(min_value=dt.date(1, 1, 1)),
        st.datetimes(),
    )


def json_scalars() -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), st.booleans(), ints, floats, texts)


def nested(scalars: st.SearchStrategy[Any], keys: st.SearchStrategy[Any]) -> st.SearchStrategy:
    """Lists and mappings of ``scalars``, a few levels deep."""
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)
        ),
        max_leaves=12,
    )


def key_paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path of a nested mapping/list, e.g. ``("plate", "frames")``."""
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += key_paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += key_paths(v, (*prefix, i))
    return out


def apply_edits(doc: Any, edits: list[tuple[tuple[Any, ...], str, Any]]) -> Any:
    """A copy of ``doc`` with each ``(path, op, value)`` edit applied: set, delete or add."""
    doc = copy.deepcopy(doc)
    for path, op, value in edits:
        parent = doc
        for k in path[:-1]:
            try:
                parent = parent[k]
            except (KeyError, IndexError, TypeError):
                parent = None
                break
        if not isinstance(parent, (dict, list)):
            continue
        last = path[-1]
        if isinstance(parent, list) and not (isinstance(last, int) and last < len(parent)):
            continue
        if op == "delete":
            if isinstance(parent, dict):
                parent.pop(last, None)
            else:
                del parent[last]
        elif op == "add" and isinstance(parent, dict) and isinstance(parent.get(last), dict):
            parent[last]["unknown_key"] = value
        else:
            parent[last] = value
    return doc


def edited(valid: dict[str, Any], values: st.SearchStrategy[Any]) -> st.SearchStrategy:
    """``valid`` with one to four random edits at its key paths."""
    paths = key_paths(valid)
    edit = st.tuples(st.sampled_from(paths), st.sampled_from(["set", "delete", "add"]), values)
    return st.lists(edit, min_size=1, max_size=4).map(lambda e: apply_edits(valid, e))


def byte_edits(valid: bytes) -> st.SearchStrategy[bytes]:
    """``valid`` with a few bytes overwritten, or cut short."""

    def apply(data: tuple[list[tuple[int, bytes]], int | None]) -> bytes:
        edits, cut = data
        out = bytearray(valid)
        for at, chunk in edits:
            out[at : at + len(chunk)] = chunk
        return bytes(out[:cut] if cut is not None else out)

    n = len(valid)
    edit = st.tuples(st.integers(0, n - 1), st.binary(min_size=1, max_size=4))
    return st.tuples(st.lists(edit, max_size=4), st.one_of(st.none(), st.integers(0, n - 1))).map(
        apply
    )


# -- npz contents -------------------------------------------------------------------------------

_DTYPES = [
    np.bool_,
    np.int8,
    np.uint8,
    np.int16,
    np.int32,
    np.int64,
    np.uint64,
    np.float16,
    np.float32,
    np.float64,
    np.complex64,
    np.dtype("<U6"),
    np.dtype("S4"),
    np.dtype("<M8[s]"),
]


class Pickled:
    """An object array: ``np.savez`` pickles it, and readers must refuse it."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def array(self) -> np.ndarray:
        out = np.empty(1, dtype=object)
        out[0] = self.value
        return out


def random_arrays() -> st.SearchStrategy[Any]:
    return st.one_of(
        hnp.arrays(
            dtype=st.sampled_from(_DTYPES),
            shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4),
        ),
        st.builds(Pickled, st.one_of(st.none(), st.dictionaries(st.text(max_size=3), ints))),
    )


_RESHAPES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "scalar": lambda a: np.asarray(a.reshape(-1)[0] if a.size else 0),
    "empty": lambda a: np.atleast_1d(a)[:0],
    "first": lambda a: np.atleast_1d(a)[:1],
    "flat": lambda a: a.reshape(-1),
    "extra_dim": lambda a: a[None],
    "drop_last": lambda a: a[..., :-1] if a.ndim else a,
    "transpose": lambda a: a.T,
    "as_str": lambda a: a.astype(str),
    "as_bool": lambda a: a.astype(bool),
    "as_f16": lambda a: a.astype(np.float16) if a.dtype.kind in "biuf" else a,
    "as_u8": lambda a: a.astype(np.uint8) if a.dtype.kind in "biuf" else a,
    "nan": lambda a: np.full(a.shape, np.nan),
    "huge": lambda a: np.full(a.shape, 1e300),
    "negative": lambda a: -np.abs(a.astype(np.float64)) if a.dtype.kind in "biuf" else a,
}


def npz_contents(valid: dict[str, np.ndarray]) -> st.SearchStrategy[dict[str, Any]]:
    """``{name: array}`` to save: random, or ``valid`` with keys dropped, replaced or reshaped."""
    names = sorted(valid)
    key = st.one_of(st.sampled_from(names), st.from_regex(r"[a-z_:]{1,8}", fullmatch=True))
    random_doc = st.dictionaries(key, random_arrays(), max_size=8)
    change = st.one_of(st.none(), random_arrays(), st.sampled_from(sorted(_RESHAPES)))
    edits = st.lists(st.tuples(key, change), min_size=1, max_size=4)

    def apply(changes: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = dict(valid)
        for name, what in changes:
            if what is None:
                out.pop(name, None)
            elif isinstance(what, str):
                if name in out and isinstance(out[name], np.ndarray):
                    out[name] = _RESHAPES[what](out[name])
            else:
                out[name] = what
        return out

    return st.one_of(random_doc, edits.map(apply))


def npz_bytes(contents: dict[str, Any]) -> bytes:
    """``contents`` as ``np.savez`` writes them (object arrays pickled)."""
    arrays = {k: v.array() if isinstance(v, Pickled) else v for k, v in contents.items()}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def npy_bytes() -> st.SearchStrategy[bytes]:
    """A bare ``.npy`` file: ``np.load`` returns an array, not an archive, for it."""

    def save(a: np.ndarray) -> bytes:
        buf = io.BytesIO()
        np.save(buf, a)
        return buf.getvalue()

    return hnp.arrays(np.float32, hnp.array_shapes(max_dims=2, max_side=3)).map(save)


def npz_files(valid: dict[str, np.ndarray]) -> st.SearchStrategy[bytes]:
    """The bytes of an npz file: re-saved contents, edited valid bytes, a bare npy, or noise."""
    good = npz_bytes(valid)
    return st.one_of(
        npz_contents(valid).map(npz_bytes),
        npz_contents(valid).map(npz_bytes),
        byte_edits(good),
        npy_bytes(),
        st.binary(max_size=256),
    )
