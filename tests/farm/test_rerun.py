"""``likeness rerun``: exactly the expected stages recompute; plates and versions are kept."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from farm.rerun import downstream, plan_rerun
from pipeline.errors import FarmError
from pipeline.stages.graph import STAGES
from tasks.cli import main
from tests.tasks.conftest import TEST_PROFILE, make_shot

# one worker under pytest-xdist (make test), so the module-scoped reference run is made once
pytestmark = pytest.mark.xdist_group("farm-rerun")

PROFILE = {**TEST_PROFILE, "track": {"chunk_size": 4}}  # 8 frames: two track chunks


def _finished(wd: Path) -> dict[str, float]:
    return {
        str(m.parent.relative_to(wd)): json.loads(m.read_text())["finished"]
        for m in wd.rglob("_manifest.json")
        if ".superseded" not in m.parts
    }


def _label(k: str) -> str:
    parts = k.split("/")
    return parts[3] if "/stages/" in k else parts[2]


@pytest.fixture(scope="module")
def _submitted(tmp_path_factory):
    """One finished shot, and a copy of its folder to restore before each test."""
    root = tmp_path_factory.mktemp("rerun")
    spec = make_shot(root / "case" / "shot", profile=PROFILE)
    wd = root / "case" / "wd"
    assert main(["submit", str(spec), "--workdir", str(wd)]) == 0
    shutil.copytree(root / "case", root / "pristine", symlinks=True)
    return root, spec, wd


@pytest.fixture
def done_shot(_submitted):
    """The finished shot as submitted, at the same paths (plans record absolute paths);
    copy2 keeps sizes and mtimes, so the workdir's fingerprints still hold."""
    root, spec, wd = _submitted
    shutil.rmtree(root / "case")
    shutil.copytree(root / "pristine", root / "case", symlinks=True)
    return spec, wd


def _changed(before: dict, after: dict) -> list[str]:
    return sorted(k for k in after if before.get(k) != after[k])


def test_rerun_from_track_chunk_frames_recomputes_one_chunk_and_downstream(done_shot):
    spec, wd = done_shot
    before = _finished(wd)
    plate = spec.parent / "plates" / "sh010.mov"
    plate_bytes = plate.read_bytes()
    chunks = sorted(k for k in before if "/track_chunk/" in k)
    assert len(chunks) == 2
    rc = main(
        ["rerun", "sh010", "--workdir", str(wd), "--from", "track_chunk", "--frames", "1001-1003"]
        + ["--yes"]
    )
    assert rc == 0
    after = _finished(wd)
    changed = _changed(before, after)
    # the 1001-1004 chunk, everything downstream of track chunks, and a new version; ingest
    # and the other chunk are reused
    want = {s for s in downstream("track_chunk") if s != "deliver"} | {"v002"}
    assert {_label(k) for k in changed} == want, changed
    assert [k for k in changed if "/track_chunk/" in k] == [k for k in chunks if k in changed]
    assert len([k for k in changed if "/track_chunk/" in k]) == 1
    assert before["shots/sh010/v001"] == after["shots/sh010/v001"]  # finished version kept
    chunk = next(k for k in changed if "/track_chunk/" in k)
    assert json.loads((wd / chunk / "_manifest.json").read_text())["frame_range"] == "1001-1004"
    assert all(after[k] == before[k] for k in before if "/ingest/" in k)
    superseded = list(wd.glob("shots/sh010/stages/*/.superseded/*"))
    assert {p.parent.parent.name for p in superseded} == want - {"v002"}
    assert plate.read_bytes() == plate_bytes


def test_rerun_from_deliver_only_delivers_a_new_version(done_shot):
    _, wd = done_shot
    before = _finished(wd)
    assert main(["rerun", "sh010", "--workdir", str(wd), "--from", "deliver", "--yes"]) == 0
    assert [_label(k) for k in _changed(before, _finished(wd))] == ["v002"]


def test_rerun_without_from_runs_only_what_is_missing(done_shot):
    _, wd = done_shot
    before = _finished(wd)
    rp = plan_rerun(wd, "sh010")
    assert rp.invalidate == [] and rp.version == "v001"
    assert main(["rerun", "sh010", "--workdir", str(wd), "--yes"]) == 0
    assert _finished(wd) == before
    # an unfinished delivery (killed before its manifest) completes in place, same version
    (wd / "shots/sh010/v001/_manifest.json").rename(wd / "shots/sh010/v001.bak.json")
    assert plan_rerun(wd, "sh010").version == "v001"
    assert main(["rerun", "sh010", "--workdir", str(wd), "--yes"]) == 0
    changed = _changed(before, _finished(wd))
    assert [_label(k) for k in changed] == ["v001"], changed


def test_rerun_bad_arguments_raise_named_errors(done_shot, capsys):
    _, wd = done_shot
    with pytest.raises(FarmError, match="stage 'paint' is unknown"):
        plan_rerun(wd, "sh010", "paint")
    with pytest.raises(FarmError, match="outside"):
        plan_rerun(wd, "sh010", "track_chunk", "2001-2010")
    with pytest.raises(FarmError, match="no version"):
        plan_rerun(wd, "sh999")
    assert main(["rerun", "sh010", "--workdir", str(wd), "--from", "x", "--yes"]) == 2
    assert "FarmError" in capsys.readouterr().err


def test_downstream_follows_the_chain():
    names = [s.name for s in STAGES]
    assert downstream(names[0])[0] == names[0] and downstream(names[0])[-1] == "deliver"
    assert downstream("track")[0] == "track" and "ingest" not in downstream("track")
    assert "track" in downstream("track_chunk") and "track_chunk" not in downstream("track")
    assert downstream("deliver") == ["deliver"]


def test_logs_command_prints_stage_and_chunk_logs(done_shot, capsys):
    _, wd = done_shot
    assert main(["logs", "sh010", "track", "--workdir", str(wd)]) == 0
    assert "sh010 track: start" in capsys.readouterr().out
    assert main(["logs", "sh010", "track_chunk", "--workdir", str(wd), "--chunk", "2"]) == 0
    out = capsys.readouterr().out
    assert "track_chunk.1005-1008.log" in out and "track_chunk.1005-1008: start" in out
    assert main(["logs", "sh010", "track_chunk", "--workdir", str(wd), "--chunk", "1001-1004"]) == 0
    assert "track_chunk.1001-1004: start" in capsys.readouterr().out
    assert main(["logs", "sh010", "paint", "--workdir", str(wd)]) == 2
    assert "no log for sh010 paint" in capsys.readouterr().err
