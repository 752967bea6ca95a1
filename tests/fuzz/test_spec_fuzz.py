"""Hypothesis over the YAML inputs: shot specs, render profiles and consent records.

Property: the loader returns its typed result or raises its named error (``ShotSpecError``,
``ConfigError``, ``ConsentError``), never anything else; a spec error lists at least one problem
and every problem names the spec file.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import strategies as st

from pipeline.errors import ConfigError, ConsentError, ShotSpecError
from tests.fuzz import strategies as fz
from tests.fuzz.targets import (
    read_consent,
    read_profile,
    read_spec,
    valid_consent,
    valid_profile,
    valid_spec,
)

SPEC_KEYS = sorted({str(p[-1]) for p in fz.key_paths(valid_spec())} | {"performer", "reference"})
PROFILE_KEYS = sorted({str(p[-1]) for p in fz.key_paths(valid_profile())} | {"deliver"})
CONSENT_KEYS = sorted(valid_consent()) + ["notes", "granted_on"]

YAML_TOKENS = (
    "shot: sh010\n",
    "plate:\n",
    "  path: plates/sh010.mov\n",
    "  frames: 1001-1010\n",
    "actor: {id: jdoe, references: [refs/a.png]}\n",
    "- ",
    ": ",
    "\n",
    "  ",
    "\t",
    "{",
    "}",
    "[",
    "]",
    ",",
    "'",
    '"',
    "#",
    "&a ",
    "*a",
    "!!python/object/apply:os.system ['true']",
    "!shot ",
    "!!binary ",
    "? ",
    "|\n",
    ">-\n",
    "---\n",
    "...\n",
    "%YAML 1.1\n",
    "<<: ",
    "~",
    ".nan",
    "0x1F",
    "1_000",
    "2026-11-24",
    "expires: 2026-02-30\n",
    "\ufeff",
)


def _layout(folder: Path) -> None:
    """The files a valid spec names, so that ``check_files=True`` passes on it."""
    (folder / "plates").mkdir()
    (folder / "plates" / "sh010.1001.exr").write_bytes(b"\0")
    (folder / "refs").mkdir()
    (folder / "refs" / "a.png").write_bytes(b"\0")
    (folder / "consent.yaml").write_text("actor: jdoe\n")


def _check_spec(data: bytes, check_files: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _layout(folder)
        path = folder / "shot.yaml"
        path.write_bytes(data)
        try:
            read_spec(path, check_files)
        except ShotSpecError as err:
            src = str(path.resolve())
            unnamed = [p for p in err.problems if not p.startswith(src)]
            assert not unnamed, f"problems that do not name the spec file: {unnamed}"


def _dump(doc: Any) -> bytes:
    return yaml.safe_dump(doc, allow_unicode=True).encode("utf-8", "surrogatepass")


spec_values = fz.nested(fz.yaml_scalars(), st.one_of(st.sampled_from(SPEC_KEYS), fz.texts, fz.ints))


@fz.fuzz_pair(
    "shot spec: edited valid specs",
    doc=fz.edited(valid_spec(), spec_values),
    check_files=st.booleans(),
)
def _spec_edited(doc: dict[str, Any], check_files: bool) -> None:
    _check_spec(_dump(doc), check_files)


test_spec_edited, test_spec_edited_soak = _spec_edited


@fz.fuzz_pair("shot spec: random mappings", doc=spec_values, check_files=st.booleans())
def _spec_random(doc: Any, check_files: bool) -> None:
    _check_spec(_dump(doc), check_files)


test_spec_random, test_spec_random_soak = _spec_random


@fz.fuzz_pair(
    "shot spec: YAML-ish text",
    text=st.lists(st.one_of(st.sampled_from(YAML_TOKENS), st.text(max_size=6)), max_size=30).map(
        "".join
    ),
)
def _spec_text(text: str) -> None:
    _check_spec(text.encode("utf-8", "surrogatepass"), True)


test_spec_text, test_spec_text_soak = _spec_text


@fz.fuzz_pair(
    "shot spec: raw bytes",
    data=st.one_of(st.binary(max_size=600), fz.byte_edits(_dump(valid_spec()))),
)
def _spec_bytes(data: bytes) -> None:
    _check_spec(data, True)


test_spec_bytes, test_spec_bytes_soak = _spec_bytes


def test_valid_spec_loads(tmp_path: Path):
    """The seed of the edits is itself valid, so the edits start from a spec that passes."""
    _layout(tmp_path)
    path = tmp_path / "shot.yaml"
    path.write_bytes(_dump(valid_spec()))
    spec = read_spec(path, True)
    assert spec.shot == "sh010" and spec.seed_box == (1.0, 2.0, 30.0, 40.0)


# -- profiles -----------------------------------------------------------------------------------

profile_values = fz.nested(
    fz.yaml_scalars(), st.one_of(st.sampled_from(PROFILE_KEYS), fz.texts, fz.ints)
)


def _check_profile(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "profile.yaml"
        path.write_bytes(data)
        try:
            read_profile(path)
        except ConfigError as err:
            assert err.problems, "ConfigError without problems"


@fz.fuzz_pair(
    "profile: edited and random",
    doc=st.one_of(fz.edited(valid_profile(), profile_values), profile_values),
)
def _profile(doc: Any) -> None:
    _check_profile(_dump(doc))


test_profile, test_profile_soak = _profile


@fz.fuzz_pair(
    "profile: raw bytes",
    fast=60,
    data=st.one_of(st.binary(max_size=400), fz.byte_edits(_dump(valid_profile()))),
)
def _profile_bytes(data: bytes) -> None:
    _check_profile(data)


test_profile_bytes, test_profile_bytes_soak = _profile_bytes


def test_valid_profile_loads(tmp_path: Path):
    path = tmp_path / "profile.yaml"
    path.write_bytes(_dump(valid_profile()))
    assert read_profile(path).track.chunk_size == 4


# -- consent records ----------------------------------------------------------------------------

consent_values = fz.nested(
    fz.yaml_scalars(), st.one_of(st.sampled_from(CONSENT_KEYS), fz.texts, fz.ints)
)


def _check_consent(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "consent.yaml"
        path.write_bytes(data)
        try:
            read_consent(path)
        except ConsentError as err:
            assert str(path) in str(err) or "jdoe" in str(err), (
                f"names neither file nor actor: {err}"
            )


@fz.fuzz_pair(
    "consent: edited, random and raw bytes",
    data=st.one_of(
        fz.edited(valid_consent(), consent_values).map(_dump),
        consent_values.map(_dump),
        fz.byte_edits(_dump(valid_consent())),
    ),
)
def _consent(data: bytes) -> None:
    _check_consent(data)


test_consent, test_consent_soak = _consent


def test_valid_consent_loads(tmp_path: Path):
    path = tmp_path / "consent.yaml"
    path.write_bytes(_dump(valid_consent()))
    assert read_consent(path).expires == dt.date(2099, 12, 31)


@pytest.mark.parametrize(
    "doc",
    [
        # found by hand while writing the strategies; kept as fixed examples
        {"ingest": {"sequence_fps": "1e400"}},
        {"ingest": {"sequence_fps": "1/0"}},
    ],
)
def test_profile_examples(doc: dict[str, Any]):
    _check_profile(_dump(doc))
