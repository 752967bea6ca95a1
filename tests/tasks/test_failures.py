"""A bad shot through the real command line: refused before any work, or told as one paragraph.

Each case runs ``likeness`` in a subprocess and checks the exit status (one per kind of failure,
README "Exit status"), that the console shows no traceback, that the message names the file and
the error, that no stage ran when preflight refused the shot, and that no output path is printed
for a shot that was not delivered.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.errors import EXIT_BAD_INPUT, EXIT_CONSENT, EXIT_OK
from tests.bad_inputs.corpus import grey_plate, reference_text_as_jpg, two_faces
from tests.tasks.conftest import make_shot

REPO = Path(__file__).resolve().parents[2]


def likeness(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "tasks.cli", *args], capture_output=True, text=True, env=env,
        cwd=REPO, timeout=600,
    )  # fmt: skip


def _edit(path: Path, **changes: object) -> None:
    data = yaml.safe_load(path.read_text())
    data.update(changes)
    path.write_text(yaml.safe_dump(data))


def _no_stage_ran(wd: Path) -> bool:
    return not list(wd.glob("shots/*/stages/*/*"))


def _console_is_clean(r: subprocess.CompletedProcess[str]) -> None:
    out = r.stdout + r.stderr
    assert "Traceback" not in out, out
    assert ".exr" not in out and ".mov\n" not in r.stdout, out  # no output path


@pytest.fixture(scope="module")
def bad_input_shots(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("bad")
    return [
        reference_text_as_jpg(root / "text_ref"),
        grey_plate(root / "no_face"),
        two_faces(root / "two_faces"),
    ]


def test_bad_inputs_are_refused_before_any_stage_runs(bad_input_shots, tmp_path) -> None:
    wd = tmp_path / "wd"
    r = likeness("submit", *map(str, bad_input_shots), "--workdir", str(wd))
    assert r.returncode == EXIT_BAD_INPUT, r.stderr
    _console_is_clean(r)
    assert _no_stage_ran(wd)
    err = r.stderr
    for spec, named in zip(
        bad_input_shots,
        (
            ["DecodeError:", "astro.jpg", "is not a readable image"],
            ["NoFaceError:", "no face found on the first", "sh010.mov"],
            ["IdentityError:", "2 faces of similar size", "plate: performer"],
        ),
        strict=True,
    ):
        assert f"shot spec {spec}" in err, err
        for fragment in named:
            assert fragment in err, (fragment, err)
    assert err.count("fix: ") >= 3
    # validate says the same, and runs nothing either
    v = likeness("validate", *map(str, bad_input_shots))
    assert v.returncode == EXIT_BAD_INPUT and v.stderr == r.stderr and "ok " not in v.stdout


def test_consent_problems_are_refused_with_their_own_status(tmp_path) -> None:
    expired = make_shot(tmp_path / "expired")
    _edit(tmp_path / "expired" / "consent.yaml", expires="2001-01-01")
    other = make_shot(tmp_path / "other", shot="sh020")
    _edit(tmp_path / "other" / "consent.yaml", actor="someone-else")
    wd = tmp_path / "wd"
    r = likeness("submit", str(expired), str(other), "--workdir", str(wd))
    assert r.returncode == EXIT_CONSENT, r.stderr
    _console_is_clean(r)
    assert _no_stage_ran(wd)
    assert (
        "ConsentError: consent for actor 'astro' (test-consent) expired on 2001-01-01" in r.stderr
    )
    assert f"consent record {tmp_path / 'other' / 'consent.yaml'} is for actor" in r.stderr


def test_a_stage_failure_reads_as_one_paragraph(tmp_path) -> None:
    spec = make_shot(tmp_path / "shot")
    _edit(tmp_path / "shot" / "consent.yaml", expires="2001-01-01")
    wd = tmp_path / "wd"
    r = likeness("submit", str(spec), "--workdir", str(wd), "--no-preflight")
    assert r.returncode == EXIT_CONSENT, r.stderr
    _console_is_clean(r)
    paragraph = r.stderr[r.stderr.index("sh010 v001: not delivered") :]
    assert paragraph.splitlines() == [
        "sh010 v001: not delivered",
        "  failed: finetune: ConsentError: consent for actor 'astro' (test-consent) expired on "
        "2001-01-01",
        "  fix: renew the consent with the performer or their estate and update the record",
        f"  log: likeness logs sh010 finetune --workdir {wd.resolve()}",
        "  done, reused as they are by a rerun: ingest, track_chunk (2 chunks), track, references",
    ]
    # the command it names prints the traceback the console did not show
    logs = likeness("logs", "sh010", "finetune", "--workdir", str(wd))
    assert logs.returncode == EXIT_OK and "Traceback" in logs.stdout
    assert "ConsentError: consent for actor 'astro'" in logs.stdout


@pytest.mark.parametrize("room", ["short record", "none"])
def test_a_full_volume_still_tells_why_the_shot_failed(tmp_path, monkeypatch, capsys, room):
    """The failure record is written without its traceback when the full one does not fit, and
    kept in the process when nothing fits: the paragraph and exit status still say why."""
    from pipeline.errors import DiskFullError, NoFaceError
    from tasks import base
    from tasks.cli import main

    real = base.record_state

    def full(wd, shot, task, kind, **info):
        if kind == "failed" and ("traceback" in info or room == "none"):
            raise DiskFullError(f"disk full while writing the {task} record")
        return real(wd, shot, task, kind, **info)

    monkeypatch.setattr(base, "record_state", full)
    monkeypatch.setattr(base, "UNRECORDED", {})
    monkeypatch.setattr("tasks.run.UNRECORDED", base.UNRECORDED)
    spec, wd = grey_plate(tmp_path / "shot"), tmp_path / "wd"
    rc = main(["submit", str(spec), "--workdir", str(wd), "--no-preflight"])
    assert rc == NoFaceError.exit_code
    cap = capsys.readouterr()
    out = cap.out + cap.err
    assert "failed: track" in out and "NoFaceError" in out, out
    records = list(wd.glob("shots/*/logs/*.failed.json"))
    if room == "none":
        assert not records and len(base.UNRECORDED) == 1
    else:
        assert len(records) == 1 and "traceback" not in records[0].read_text()
