"""The checkpointed Luigi spine, end to end on a tiny generated shot with the local scheduler."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from pipeline.errors import EXIT_BAD_INPUT
from pipeline.io import read_exr
from pipeline.io.exr import timecode_from_exr
from pipeline.shot.status import workdir_status
from tasks.cli import main
from tests.tasks.conftest import TEST_PROFILE, make_shot


def _manifests(workdir: Path) -> dict[str, float]:
    """stage folder -> finished time of its manifest."""
    out = {}
    for m in workdir.rglob("_manifest.json"):
        out[str(m.parent.relative_to(workdir))] = json.loads(m.read_text())["finished"]
    return out


def test_submit_runs_chain_and_keeps_timecode(tmp_path, capsys):
    spec = make_shot(tmp_path / "shot", tc="10:00:00:00")
    wd = tmp_path / "wd"
    assert main(["submit", str(spec), "--workdir", str(wd)]) == 0
    st = workdir_status(wd)
    v = st["shots"]["sh010"]["versions"]["v001"]
    assert v["state"] == "done", v
    exr = Path(v["outputs"]["exr"].replace("####", "1001"))
    chans, header = read_exr(exr)
    assert {"R", "G", "B", "A"} <= set(chans)
    assert float(header["framesPerSecond"]) == 25.0
    assert str(timecode_from_exr(header["timeCode"], header["framesPerSecond"])) == "10:00:00:00"
    last = Path(v["outputs"]["exr"].replace("####", "1008"))
    h_last = read_exr(last)[1]
    assert str(timecode_from_exr(h_last["timeCode"], h_last["framesPerSecond"])) == "10:00:00:07"
    assert Path(v["outputs"]["review"]).is_file()
    # the source plate was never written
    assert not any(p.name.startswith(".") for p in (tmp_path / "shot" / "plates").iterdir())
    # a second submit computes nothing and reuses v001
    before = _manifests(wd)
    assert main(["submit", str(spec), "--workdir", str(wd)]) == 0
    assert _manifests(wd) == before
    assert list(workdir_status(wd)["shots"]["sh010"]["versions"]) == ["v001"]


def test_config_change_reruns_exactly_downstream(tmp_path):
    prof = {**TEST_PROFILE, "ingest": {"cache_compression": "zip"}, "deliver": {"burn_in": True}}
    spec = make_shot(tmp_path / "shot", profile=prof)
    wd = tmp_path / "wd"
    assert main(["submit", str(spec), "--workdir", str(wd)]) == 0
    first = _manifests(wd)
    # a deliver-only change: ingest is reused, a new version is delivered
    prof["deliver"]["burn_in"] = False
    (tmp_path / "shot" / "profile.yaml").write_text(yaml.safe_dump(prof))
    assert main(["submit", str(spec), "--workdir", str(wd)]) == 0
    second = _manifests(wd)
    upstream = [k for k in first if "/stages/" in k]
    # ingest, 2 track chunks, track, references, finetune, export, 2 synth chunks
    assert len(upstream) == 9
    assert all(second[k] == first[k] for k in upstream)
    assert "shots/sh010/v002" in second and second["shots/sh010/v001"] == first["shots/sh010/v001"]
    # an ingest change reruns ingest and everything downstream of it
    prof["ingest"]["cache_compression"] = "piz"
    (tmp_path / "shot" / "profile.yaml").write_text(yaml.safe_dump(prof))
    assert main(["submit", str(spec), "--workdir", str(wd)]) == 0
    third = _manifests(wd)
    new = set(third) - set(second)
    assert {k.split("/")[3] if "/stages/" in k else k for k in new} == {
        "ingest",
        "track_chunk",
        "track",
        "synth_chunk",
        "shots/sh010/v003",
    }
    # the actor stages (references, fine-tune, export) did not rerun
    for k in upstream:
        if any(f"/stages/{st}/" in k for st in ("references", "finetune", "export")):
            assert third[k] == first[k]


def test_kill_mid_stage_leaves_no_final_file_and_rerun_completes(tmp_path):
    spec = make_shot(tmp_path / "shot", frames=48, size=192)
    wd = tmp_path / "wd"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tasks.cli", "submit", str(spec), "--workdir", str(wd)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stages = wd / "shots" / "sh010" / "stages" / "ingest"
    deadline = time.time() + 120
    killed = False
    while time.time() < deadline and proc.poll() is None:
        tmp = [p for p in stages.glob(".*.tmp-*")] if stages.is_dir() else []
        if tmp and any(tmp[0].glob("plate.*.exr")):
            proc.send_signal(signal.SIGKILL)
            killed = True
            break
        time.sleep(0.01)
    proc.wait()
    assert killed, "ingest finished before it could be killed; make the test plate longer"
    finals = [p for p in stages.iterdir() if not p.name.startswith(".")]
    assert finals == [], f"partial stage output visible at a final path: {finals}"
    assert not (wd / "shots" / "sh010" / "v001" / "exr").exists()
    assert main(["submit", str(spec), "--workdir", str(wd)]) == 0
    assert not list(stages.glob(".*.tmp-*")), "temporaries of the killed run were not swept"
    assert workdir_status(wd)["shots"]["sh010"]["versions"]["v001"]["state"] == "done"


def test_status_json_shape(tmp_path, capsys):
    spec = make_shot(tmp_path / "shot")
    wd = tmp_path / "wd"
    assert main(["submit", str(spec), "--workdir", str(wd)]) == 0
    capsys.readouterr()
    assert main(["status", "--workdir", str(wd), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    v = data["shots"]["sh010"]["versions"]["v001"]
    assert set(v["stages"]) >= {"ingest", "deliver"}
    assert v["outputs"]["exr"].endswith("sh010.####.exr") and v["outputs"]["review"].endswith(
        ".mov"
    )


def test_validate_reports_unknown_key(tmp_path, capsys):
    spec = make_shot(tmp_path / "shot")
    data = yaml.safe_load(spec.read_text())
    data["plate"]["fps"] = 24
    spec.write_text(yaml.safe_dump(data))
    assert main(["validate", str(spec)]) == EXIT_BAD_INPUT
    assert "plate.fps: unknown key" in capsys.readouterr().err
