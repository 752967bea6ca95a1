"""pipeline.shot.preflight: every problem a shot has, found before any stage runs, all at once."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from pipeline.demo.synthetic import astronaut_head
from pipeline.errors import (
    EXIT_BAD_INPUT,
    EXIT_CONSENT,
    ColorError,
    ConsentError,
    DecodeError,
    IdentityError,
    NoFaceError,
    PreflightError,
    ShotSpecError,
    WorkdirError,
)
from pipeline.shot import preflight as pf
from pipeline.shot.preflight import preflight
from tests.bad_inputs.corpus import grey_plate, two_faces
from tests.tasks.conftest import TEST_PROFILE, make_shot


def _edit(path: Path, fn) -> None:
    data = yaml.safe_load(path.read_text())
    fn(data)
    path.write_text(yaml.safe_dump(data))


def _kinds(report) -> list[type]:
    return [type(p) for p in report.problems]


def test_a_good_shot_passes_and_its_media_checks_are_cached(tmp_path) -> None:
    spec = make_shot(tmp_path / "shot")
    wd = tmp_path / "wd"
    first = preflight(spec, wd)
    assert first.ok and not first.cached, first.problems
    assert first.spec.shot == "sh010" and first.profile is not None
    again = preflight(spec, wd)
    assert again.ok and again.cached
    # a touched input is checked again
    ref = tmp_path / "shot" / "refs" / "astro.png"
    os.utime(ref, ns=(ref.stat().st_atime_ns, ref.stat().st_mtime_ns + 10**9))
    assert not preflight(spec, wd).cached
    assert not preflight(spec).cached  # no workdir: no cache


def test_every_problem_at_once_each_with_its_file(tmp_path) -> None:
    spec = grey_plate(tmp_path / "shot")  # no face on the plate
    (tmp_path / "shot" / "refs" / "bad.jpg").write_text("not an image")
    _edit(spec, lambda d: d["actor"].update(references=["refs/bad.jpg", "refs/astro.png"]))
    _edit(tmp_path / "shot" / "consent.yaml", lambda d: d.update(expires="2001-01-01"))
    report = preflight(spec)
    assert _kinds(report) == [ConsentError, NoFaceError, DecodeError], report.problems
    text = "\n".join(str(p) for p in report.problems)
    assert "expired on 2001-01-01" in text and "first 3 frame(s) of plate" in text
    assert "sh010.mov" in text and "bad.jpg" in text and text.count("fix: ") == 3
    with pytest.raises(PreflightError) as info:
        report.raise_if_problems()
    assert info.value.exit_code == EXIT_CONSENT  # the most serious of the three
    assert "3 problem(s); nothing has run" in str(info.value)


def test_references_need_one_face_each(tmp_path) -> None:
    spec = make_shot(tmp_path / "shot")
    refs = tmp_path / "shot" / "refs"
    cv2.imwrite(str(refs / "grey.png"), np.full((128, 128, 3), 128, np.uint8))
    head = cv2.resize(astronaut_head(), (160, 160))
    pair = np.concatenate([head, head[:, ::-1]], axis=1)
    cv2.imwrite(str(refs / "pair.png"), cv2.cvtColor(pair, cv2.COLOR_RGB2BGR))
    _edit(spec, lambda d: d["actor"].update(references=["refs/grey.png", "refs/pair.png"]))
    report = preflight(spec)
    assert _kinds(report) == [NoFaceError, IdentityError]
    assert "grey.png" in report.problems[0].message
    assert "pair.png shows 2 faces of similar size" in report.problems[1].message


def test_the_performer_must_be_found_or_named(tmp_path) -> None:
    spec = two_faces(tmp_path / "a")
    (problem,) = preflight(spec).problems
    assert isinstance(problem, IdentityError) and "2 faces of similar size" in problem.message
    # a seed box names one of them; one that covers no face is refused
    _edit(spec, lambda d: d["plate"].update(performer={"seed_box": [0, 0, 120, 160]}))
    assert preflight(spec).ok
    _edit(spec, lambda d: d["plate"].update(performer={"seed_box": [0, 150, 10, 160]}))
    (problem,) = preflight(spec).problems
    assert isinstance(problem, NoFaceError) and "seed box" in problem.message


def test_consent_names_the_actor_and_covers_the_use(tmp_path) -> None:
    spec = make_shot(tmp_path / "shot", profile={**TEST_PROFILE, "use": "revival"})
    consent = tmp_path / "shot" / "consent.yaml"
    (problem,) = preflight(spec).problems
    assert isinstance(problem, ConsentError) and "not 'revival'" in problem.message
    _edit(consent, lambda d: d.update(scope=["test", "revival"]))
    assert preflight(spec).ok
    _edit(consent, lambda d: d.update(actor="someone-else"))
    (problem,) = preflight(spec).problems
    assert "is for actor 'someone-else', not 'astro'" in problem.message
    _edit(consent, lambda d: d.update(actor="astro", expires="2030-01-01"))
    assert preflight(spec, today=dt.date(2029, 12, 31)).ok
    (problem,) = preflight(spec, today=dt.date(2030, 1, 2)).problems
    assert "expired on 2030-01-01" in problem.message


def test_the_plate_must_hold_the_frames_asked_for(tmp_path) -> None:
    spec = make_shot(tmp_path / "shot")
    _edit(spec, lambda d: d["plate"].update(frames="1001-1020"))
    (problem,) = preflight(spec).problems
    assert isinstance(problem, DecodeError) and "holds frames 1001-1008" in problem.message
    assert problem.exit_code == EXIT_BAD_INPUT


def test_an_unreadable_spec_is_the_only_problem(tmp_path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("shot: [unclosed\n")
    (problem,) = preflight(spec).problems
    assert isinstance(problem, ShotSpecError)


def test_the_workdir_must_be_writable_and_have_room(tmp_path, monkeypatch) -> None:
    spec = make_shot(tmp_path / "shot")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    (problem,) = preflight(spec, blocker / "wd").problems
    assert isinstance(problem, WorkdirError) and "cannot be created or written" in problem.message

    class Usage:
        free = 1 << 20

    monkeypatch.setattr(pf.shutil, "disk_usage", lambda path: Usage())
    (problem,) = preflight(spec, tmp_path / "wd").problems
    assert isinstance(problem, WorkdirError)
    # 8 frames of 160×160 at most 24 bytes a pixel
    assert "has 1.0 MB free; shot sh010 needs up to 4.9 MB (8 frames of 160×160" in problem.message


def test_the_review_transform_is_checked(tmp_path) -> None:
    spec = make_shot(tmp_path / "shot")
    _edit(spec, lambda d: d["output"]["review"].update(display="Rec.1886 Rec.709"))
    report = preflight(spec)
    assert _kinds(report) == [ColorError], report.problems
    assert "review" in str(report.problems[0]) and "Rec.1886 Rec.709 - Display" in str(
        report.problems[0].hint
    )
    _edit(spec, lambda d: d["output"]["review"].update(display=None, look="luts/none.cube"))
    report = preflight(spec)
    assert _kinds(report) == [ShotSpecError] and "output.review.look" in str(report.problems[0])
