"""Write tests/RELIABILITY.md's bad-input table from a fresh run of the corpus.

Usage: ``.venv/bin/python -m tests.bad_inputs.report > /tmp/table.md``
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path

from tasks.cli import main
from tests.bad_inputs.corpus import CASES


def first_error(text: str, name: str) -> str:
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if f"{name}: " in line:
            msg = line.split(f"{name}: ", 1)[1].strip()
            if msg.endswith("problem(s) in config:") and i + 1 < len(lines):
                msg = lines[i + 1].strip(" -").split(": ", 1)[-1]  # the first problem, sans file
            return msg
    return "(not found)"


def run() -> list[str]:
    rows = ["| case | stage | exit | error | message (first line) |", "|---|---|---|---|---|"]
    for case in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            spec = case.build(Path(tmp) / "case")
            wd = Path(tmp) / "wd"
            buf = io.StringIO()
            with contextlib.redirect_stderr(buf), contextlib.redirect_stdout(io.StringIO()):
                rc = main(["submit", str(spec), "--workdir", str(wd)])
            text, where = buf.getvalue(), "submit (refused)"
            recs = [json.loads(p.read_text()) for p in wd.rglob("*.failed.json")]
            recs = [r for r in recs if r["error"].startswith(case.error.__name__)]
            if recs:
                text, where = recs[0]["error"], f"run: {recs[0].get('task', 'stage')}"
            msg = first_error(text, case.error.__name__).replace("|", "\\|")
            msg = msg.replace(tmp, "$TMP")[:140]
            rows.append(f"| {case.name} | {where} | {rc} | {case.error.__name__} | {msg} |")
    return rows


if __name__ == "__main__":
    print("\n".join(run()))
