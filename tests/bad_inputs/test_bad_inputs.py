"""Every bad input gives a named error, exits non-zero, writes nothing outside the workdir,
changes nothing in the input, and leaves no partial file at a final path."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from tasks.cli import main
from tests.bad_inputs.corpus import CASES, Case


def _snapshot(root: Path) -> dict[str, str]:
    """Relative path (as bytes-safe str) → SHA-256 of every file under ``root``."""
    out = {}
    for dirpath, _dirs, files in os.walk(os.fsencode(root)):
        for f in files:
            p = os.path.join(dirpath, f)
            rel = os.fsdecode(os.path.relpath(p, os.fsencode(root)))
            with open(p, "rb") as fh:
                out[rel] = hashlib.sha256(fh.read()).hexdigest()
    return out


def _failed_records(wd: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in wd.rglob("*.failed.json")]


def run_case(case: Case, tmp_path: Path, capsys) -> dict:
    """Build and run one case. Returns what the report needs."""
    folder = tmp_path / "case"
    spec = case.build(folder)
    before = _snapshot(tmp_path)
    wd = tmp_path / "wd"
    rcs, err = [], ""
    if case.mode == "validate":
        # `validate` prints the message without the class name; `submit` names the class.
        rcs.append(main(["validate", str(spec)]))
        err += capsys.readouterr().err
    rcs.append(main(["submit", str(spec), "--workdir", str(wd)]))
    err += capsys.readouterr().err
    records = _failed_records(wd) if wd.exists() else []
    after = _snapshot(tmp_path)
    return {
        "rcs": rcs,
        "stderr": err,
        "records": records,
        "before": before,
        "after": after,
        "wd": wd,
    }


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, tmp_path, capsys):
    r = run_case(case, tmp_path, capsys)
    name = case.error.__name__
    assert all(rc != 0 for rc in r["rcs"]), r["stderr"]
    # the named error and its message: stderr for refusals, the failed record for stage errors
    texts = [r["stderr"]] + [rec["error"] + "\n" + rec.get("traceback", "") for rec in r["records"]]
    named = [t for t in texts if f"{name}: " in t]
    assert named, f"{name} not reported; stderr={r['stderr']!r} records={r['records']!r}"
    text = named[0]
    assert case.fragment.lower() in text.lower(), text
    if case.hint:
        assert "fix: " in text, text
    assert "Traceback" not in r["stderr"]
    # inputs unchanged, nothing new beside them: every new file is under the workdir
    inputs = {k: v for k, v in r["after"].items() if not k.startswith("wd" + os.sep)}
    assert inputs == r["before"]
    # no partial file at a final path
    assert _partial_outputs(r["wd"]) == []


def _partial_outputs(wd: Path) -> list[str]:
    """Final stage or version folders without their ``_manifest.json`` (temporaries excepted)."""
    if not wd.exists():
        return []
    finals = [*wd.glob("shots/*/stages/*/*"), *wd.glob("shots/*/v[0-9]*")]
    return [
        str(p.relative_to(wd))
        for p in finals
        if p.is_dir() and ".tmp-" not in p.name and not (p / "_manifest.json").is_file()
    ]
