"""Strict, typed configuration: YAML mappings into frozen dataclasses.

Every key is checked against the dataclass fields. Unknown keys, wrong types and values out of
range are collected, not raised one by one, so a user sees every problem in one run. YAML is read
with ``yaml.safe_load`` only.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from pipeline.errors import ConfigError

T = TypeVar("T")

#: Largest YAML document accepted, in bytes. Shot specs and profiles are small; a huge document
#: is a mistake or an attack.
MAX_YAML_BYTES = 1 << 20

#: Documents already parsed, by the SHA-256 of their bytes (least recently used dropped first).
#: Luigi asks each task for its plan many times, and every ask re-reads the spec; reading the
#: bytes is cheap, parsing them is not. Keyed by content, so an edited file is always re-parsed.
_PARSED: collections.OrderedDict[bytes, Any] = collections.OrderedDict()
_PARSED_MAX = 256


def _add(probs: list[str], source: str, key: str, what: str) -> None:
    line = f"{source}: {key or '<top>'}: {what}"
    if line not in probs:  # a nested section's problem is found by it and by its parent
        probs.append(line)


def read_yaml(path: Path, error_cls: type[ConfigError] = ConfigError) -> Any:
    """Read one YAML document with ``safe_load``, refusing huge files, aliases and custom tags.

    A document whose bytes were parsed before in this process is not parsed again: a deep copy of
    the earlier result is returned, so callers may change what they get.

    Args:
        path: the file.
        error_cls: the ``ConfigError`` subclass to raise.

    Raises:
        error_cls: unreadable file, oversized document, YAML syntax error, anchors or tags.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error_cls([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    if len(data) > MAX_YAML_BYTES:
        raise error_cls(
            [f"{path}: document is {len(data)} bytes, over the {MAX_YAML_BYTES}-byte limit"],
            "shot specs and profiles are small; check that this is the right file",
        )
    key = hashlib.sha256(data).digest()
    if key in _PARSED:
        _PARSED.move_to_end(key)
        return copy.deepcopy(_PARSED[key])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error_cls([f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from exc
    try:
        events = list(yaml.parse(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise error_cls([f"{path}: YAML syntax error: {exc}"]) from exc
    for ev in events:
        if isinstance(ev, yaml.AliasEvent) or getattr(ev, "anchor", None):
            raise error_cls(
                [
                    f"{path}: YAML anchors and aliases are not accepted (line {ev.start_mark.line + 1})"
                ],
                "write the values out in full",
            )
        tag = getattr(ev, "tag", None)
        if tag and not getattr(ev, "implicit", True) and not str(tag).startswith("tag:yaml.org"):
            raise error_cls(
                [f"{path}: YAML tag {tag!r} is not accepted (line {ev.start_mark.line + 1})"]
            )
    try:
        parsed = yaml.safe_load(text)
    # A timestamp that matches YAML's pattern but is no date (2026-02-30) fails in datetime.
    except (yaml.YAMLError, ValueError) as exc:
        raise error_cls([f"{path}: YAML error: {exc}"]) from exc
    _PARSED[key] = parsed
    while len(_PARSED) > _PARSED_MAX:
        _PARSED.popitem(last=False)
    return copy.deepcopy(parsed)


def from_mapping(
    cls: type[T],
    data: Any,
    *,
    source: str = "<config>",
    prefix: str = "",
    problems: list[str] | None = None,
) -> T | None:
    """Build a frozen dataclass from a mapping, collecting problems instead of raising.

    Args:
        cls: the dataclass type.
        data: the parsed YAML mapping.
        source: the file name, for messages.
        prefix: the dotted key path of ``data``, for messages.
        problems: a list to append ``"file: key: what"`` strings to. When ``None``, a
            ``ConfigError`` is raised if any problem is found.

    Returns:
        the instance, or ``None`` when problems were found (only when ``problems`` is given).
    """
    own = problems is None
    probs: list[str] = [] if own else problems  # type: ignore[assignment]
    n0 = len(probs)
    value = _convert(cls, data, source, prefix, probs)
    if own and probs:
        raise ConfigError(list(probs))
    return value if len(probs) == n0 else None


def _convert(tp: Any, value: Any, source: str, key: str, probs: list[str]) -> Any:
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _convert_dataclass(tp, value, source, key, probs)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _convert(inner[0], value, source, key, probs)
        for a in inner:
            sub = []
            out = _convert(a, value, source, key, sub)
            if not sub:
                return out
        _add(probs, source, key, f"got {value!r}, expected one of {inner}")
        return None
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            _add(
                probs,
                source,
                key,
                f"got {value!r}, expected one of {', '.join(map(repr, allowed))}",
            )
        return value
    if origin is tuple:
        args = get_args(tp)
        if not isinstance(value, (list, tuple)):
            _add(probs, source, key, f"got {type(value).__name__} {value!r}, expected a list")
            return ()
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(
                _convert(args[0], v, source, f"{key}[{i}]", probs) for i, v in enumerate(value)
            )
        if len(value) != len(args):
            _add(probs, source, key, f"got {len(value)} items, expected {len(args)}")
            return tuple(value)
        return tuple(
            _convert(a, v, source, f"{key}[{i}]", probs)
            for i, (a, v) in enumerate(zip(args, value))
        )
    if origin is dict:
        kt, vt = get_args(tp)
        if not isinstance(value, dict):
            _add(probs, source, key, f"got {type(value).__name__}, expected a mapping")
            return {}
        return {
            _convert(kt, k, source, key, probs): _convert(vt, v, source, f"{key}.{k}", probs)
            for k, v in value.items()
        }
    if tp is bool:
        if not isinstance(value, bool):
            _add(probs, source, key, f"got {value!r}, expected true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            _add(probs, source, key, f"got {value!r}, expected an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _add(probs, source, key, f"got {value!r}, expected a number")
            return value
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            _add(probs, source, key, f"got {type(value).__name__} {value!r}, expected a string")
        return value
    if tp is Path:
        if not isinstance(value, str):
            _add(probs, source, key, f"got {value!r}, expected a path string")
            return value
        return Path(value)
    _add(probs, source, key, f"unsupported config type {tp!r}")
    return value


def _convert_dataclass(cls: Any, value: Any, source: str, key: str, probs: list[str]) -> Any:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        _add(probs, source, key, f"got {type(value).__name__} {value!r}, expected a mapping")
        return None
    n0 = len(probs)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    renamed = getattr(cls, "RENAMED_KEYS", {})
    for k in value:
        if k not in fields:
            near = [f for f in fields if f.lower() == str(k).lower().replace("-", "_")]
            tip = f" (did you mean {near[0]!r}?)" if near else ""
            if k in renamed:
                tip = f" (renamed to {renamed[k]!r})"
            _add(
                probs,
                source,
                f"{key}.{k}" if key else str(k),
                f"unknown key{tip}; known keys: {', '.join(fields)}",
            )
    kwargs = {}
    for name, f in fields.items():
        sub = f"{key}.{name}" if key else name
        if name in value:
            kwargs[name] = _convert(hints[name], value[name], source, sub, probs)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            _add(probs, source, sub, "required key is missing")
    if len(probs) > n0:
        return None
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        _add(probs, source, key, str(exc))
        return None
    check = getattr(obj, "validate", None)
    if callable(check):
        for k, what in check():
            _add(probs, source, f"{key}.{k}" if key else k, what)
    return obj


def to_jsonable(obj: Any) -> Any:
    """Plain JSON data for a config dataclass (paths as strings, tuples as lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def digest(obj: Any) -> str:
    """A stable SHA-256 hex digest of a config (or any JSON-able value)."""
    blob = json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()
