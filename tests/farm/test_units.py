"""Farm pieces without a scheduler: config, resources, timelines, versions, adapters."""

from __future__ import annotations

import logging
import multiprocessing
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import opentimelineio as otio
import pytest

from farm import adapters
from farm.adapters import FarmBatch, ShotJob, StageJob
from farm.scheduler import (
    SchedulerProcess,
    SchedulerSettings,
    is_loopback,
    luigid_command,
    scheduler_url,
    write_scheduler_config,
)
from farm.timeline import expand_specs, timeline_specs
from farm.worker import accepts, parse_resources
from pipeline.errors import FarmError
from pipeline.workspace import Workdir
from tests.farm.conftest import make_shots

GOLDEN = Path(__file__).parent / "golden"
REGEN = os.environ.get("LIKENESS_REGEN_GOLDEN") == "1"


# -- scheduler ----------------------------------------------------------------------------------
def test_scheduler_config_has_history_and_policy(tmp_path):
    cfg = write_scheduler_config(tmp_path / "st", SchedulerSettings(resources={"gpu": 4}))
    text = cfg.read_text()
    assert (tmp_path / "st" / "logs").is_dir()  # luigid's --logdir must exist
    assert "record_task_history = true" in text
    assert f"db_connection = sqlite:///{tmp_path / 'st' / 'history.sqlite'}" in text
    assert "retry_count = 3" in text and "gpu = 4" in text
    cmd = luigid_command("127.0.0.1", 8082, tmp_path / "st")
    assert cmd[cmd.index("--address") + 1] == "127.0.0.1"


@pytest.mark.parametrize(
    "addr,loop",
    [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True)]
    + [("0.0.0.0", False), ("::", False), ("10.1.2.3", False), ("farm-sched", False)],
)
def test_is_loopback(addr, loop):
    assert is_loopback(addr) is loop


def test_scheduler_url_for_wildcard_binds():
    assert scheduler_url("0.0.0.0", 9) == "http://127.0.0.1:9"
    assert scheduler_url("::1", 9) == "http://[::1]:9"


def test_wide_bind_logs_a_warning(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr("farm.scheduler.wait_until_up", lambda *a, **k: None)
    monkeypatch.setattr("farm.scheduler.subprocess.Popen", lambda *a, **k: None)
    with caplog.at_level(logging.WARNING, logger="likeness.farm"):
        SchedulerProcess(tmp_path, address="0.0.0.0", port=1).start()
    assert "beyond this machine" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="likeness.farm"):
        SchedulerProcess(tmp_path, port=1).start()
    assert caplog.text == ""


# -- worker resources ---------------------------------------------------------------------------
def test_parse_resources():
    assert parse_resources(["gpu=2", "lic=1,mem=3"]) == {"gpu": 2, "lic": 1, "mem": 3}
    for bad in (["gpu"], ["gpu=-1"], ["=2"], ["gpu=x"]):
        with pytest.raises(FarmError, match="NAME=COUNT"):
            parse_resources(bad)


def test_accepts_by_node_and_lane():
    gpu1 = {"gpu": 1}
    assert accepts({}, {}) and accepts(None, {})
    assert not accepts({"gpu": 1}, {})  # a CPU node never takes GPU work
    assert accepts({"gpu": 1}, gpu1) and not accepts({"gpu": 2}, gpu1)
    assert accepts({"licence": 1}, {})  # not node-local: a farm-wide total only
    assert accepts({}, gpu1, "cpu") and not accepts({"gpu": 1}, gpu1, "cpu")
    assert accepts({"gpu": 1}, gpu1, "gpu") and not accepts({}, gpu1, "gpu")
    with pytest.raises(FarmError, match="lane"):
        accepts({}, {}, "tpu")


# -- versions -----------------------------------------------------------------------------------
def _allocate(args: tuple[str, str]) -> str:
    root, key = args
    return Workdir(root).find_or_allocate_version("sh010", key, {"shot": "sh010"})


def test_racing_submitters_get_one_version(tmp_path):
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(8) as pool:
        got = pool.map(_allocate, [(str(tmp_path), "k1")] * 32)
    assert set(got) == {"v001"}
    assert Workdir(tmp_path).versions("sh010") == ["v001"]
    with ctx.Pool(4) as pool:
        other = pool.map(_allocate, [(str(tmp_path), "k2")] * 16)
    assert set(other) == {"v002"}
    assert not [p for p in (tmp_path / "shots" / "sh010").iterdir() if p.name.startswith(".")]


def test_new_version_keeps_the_finished_one(tmp_path):
    wd = Workdir(tmp_path)
    assert wd.find_or_allocate_version("sh010", "k", {}) == "v001"
    assert wd.find_or_allocate_version("sh010", "k", {}, new=True) == "v002"
    assert wd.find_or_allocate_version("sh010", "k", {}) == "v002"  # the newest wins


# -- timeline -----------------------------------------------------------------------------------
def _timeline(path: Path, clips: list[tuple[str, dict]]) -> Path:
    tl = otio.schema.Timeline(name="reel1")
    track = otio.schema.Track(name="V1")
    tl.tracks.append(track)
    rate = 25
    for name, meta in clips:
        track.append(
            otio.schema.Clip(
                name=name,
                metadata=meta,
                source_range=otio.opentime.TimeRange(
                    otio.opentime.RationalTime(0, rate), otio.opentime.RationalTime(8, rate)
                ),
            )
        )
        track.append(otio.schema.Gap(duration=otio.opentime.RationalTime(2, rate)))
    otio.adapters.write_to_file(tl, str(path))
    return path


def test_timeline_expands_to_specs_in_edit_order(tmp_path):
    s10, s20 = make_shots(tmp_path, 2)
    (tmp_path / "other").mkdir()
    moved = (tmp_path / "other" / "hero.yaml").resolve()
    moved.write_text(s20.read_text())
    tl = _timeline(
        tmp_path / "reel1.otio",
        [("sh020", {}), ("sh010", {}), ("any", {"likeness": {"spec": "other/hero.yaml"}})]
        + [("sh020", {})],
    )
    assert timeline_specs(tl) == [str(s20.resolve()), str(s10.resolve()), str(moved)]
    assert expand_specs([str(s10), str(tl)]) == [str(s10), str(s20.resolve()), str(moved)]


def test_timeline_with_unknown_clip_names_it(tmp_path):
    tl = _timeline(tmp_path / "r.otio", [("sh999", {})])
    with pytest.raises(FarmError, match="clip 'sh999'"):
        timeline_specs(tl)
    (tmp_path / "bad.otio").write_text("not json")
    with pytest.raises(FarmError, match="cannot read timeline"):
        timeline_specs(tmp_path / "bad.otio")


def test_submit_takes_a_timeline(tmp_path, monkeypatch):
    from tasks import cli

    specs = make_shots(tmp_path, 2)
    tl = _timeline(tmp_path / "r.otio", [("sh020", {}), ("sh010", {})])
    seen = {}
    monkeypatch.setattr(
        cli, "build_tasks", lambda s, w: (seen.setdefault("specs", s), []) and ([], [])
    )
    monkeypatch.setattr(cli, "run", lambda *a: True)
    monkeypatch.setattr(cli, "preflight_all", lambda *a: ([], 0))
    monkeypatch.setattr(cli, "_report", lambda *a: 0)
    assert cli.main(["submit", str(tl), "--workdir", str(tmp_path / "wd")]) == 0
    assert seen["specs"] == [str(specs[1].resolve()), str(specs[0].resolve())]


# -- adapters -----------------------------------------------------------------------------------
CHAIN = (
    ("ingest", False, ()),
    ("track_chunk", True, ("ingest",)),
    ("track", False, ("ingest", "track_chunk")),
    ("deliver", False, ("ingest", "track")),
)


def golden_batch() -> FarmBatch:
    """Two shots as the farm sees them: fixed paths, no timestamps."""

    def shot(name: str, frames: str) -> ShotJob:
        stages = tuple(
            StageJob(n, frames if chunked else None, 48 if chunked else 1, after)
            for n, chunked, after in CHAIN
        )
        return ShotJob(name, f"/jobs/show/shots/{name}/{name}.yaml", stages)

    return FarmBatch(
        "reel1",
        (shot("sh010", "1001-1100"), shot("sh020", "1001-1024")),
        "http://farm-sched:8082",
        "/jobs/show/likeness_work",
        likeness="/opt/likeness/bin/likeness",
        pool="comp",
    )


@pytest.mark.parametrize("name", sorted(adapters.ADAPTERS))
def test_adapter_matches_golden(name, tmp_path):
    files = adapters.render(name, golden_batch())
    folder = GOLDEN / name
    if REGEN:
        for rel, text in files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_text(text)
    want = {str(p.relative_to(folder)): p.read_text() for p in folder.rglob("*") if p.is_file()}
    assert files.keys() == want.keys()
    for rel in files:
        assert files[rel] == want[rel], rel
    written = adapters.write(name, golden_batch(), tmp_path)
    assert sorted(str(p.relative_to(tmp_path)) for p in written) == sorted(files)


def test_opencue_spec_follows_cjsl_order():
    spec = ET.fromstring(adapters.render("opencue", golden_batch())["sh010.cuejob.xml"])
    assert [c.tag for c in spec] == ["show", "shot", "user", "job", "depends"]
    job = spec.find("job")
    assert [c.tag for c in job] == ["paused", "priority", "maxretries", "autoeat", "layers"]
    order = ["cmd", "range", "chunk", "cores", "gpus", "services"]
    for layer in job.iter("layer"):
        tags = [c.tag for c in layer]
        assert tags == [t for t in order if t in tags] and layer.get("type") == "Render"
    chunks = job.find("layers/layer[@name='track_chunk']")
    assert chunks.findtext("range") == "1001-1100" and chunks.findtext("chunk") == "48"
    assert "--frames #FRAME_START#-#FRAME_END#" in chunks.findtext("cmd")
    deps = {(d.findtext("deplayer"), d.findtext("onlayer")) for d in spec.iter("depend")}
    assert ("track", "track_chunk") in deps and ("deliver", "track") in deps


def test_deadline_job_info_uses_documented_keys():
    files = adapters.render("deadline", golden_batch())
    known = {"Plugin", "Name", "BatchName", "Comment", "Frames", "ChunkSize", "Priority", "Pool"}
    known |= {"Group", "OnJobComplete", "ExtraInfo0", "ExtraInfo1"}
    for rel, text in files.items():
        if rel.endswith(".job"):
            keys = {line.split("=", 1)[0] for line in text.splitlines()}
            assert keys <= known and "Plugin" in keys
        if rel.endswith(".plugin"):
            assert {line.split("=", 1)[0] for line in text.splitlines()} == {
                "Executable",
                "Arguments",
                "Shell",
            }
    assert "<STARTFRAME>-<ENDFRAME>" in files["sh010/02_track_chunk.plugin"]


def test_gpu_stage_asks_each_manager_for_a_gpu():
    b = golden_batch()
    gpu = StageJob("synth", "1001-1024", 24, ("track",), {"gpu": 1})
    shot = ShotJob("sh030", "/s/sh030.yaml", (gpu,))
    b = FarmBatch(b.name, (shot,), b.scheduler_url, b.workdir)
    assert "<gpus>1</gpus>" in adapters.render("opencue", b)["sh030.cuejob.xml"]
    assert "Group=gpu" in adapters.render("deadline", b)["sh030/01_synth.job"]
    slurm = adapters.render("slurm", b)["sh030/01_synth.sbatch"]
    assert "#SBATCH --gres=gpu:1" in slurm and "--resources gpu=1" in slurm


def test_unknown_adapter_is_a_named_error():
    with pytest.raises(FarmError, match="'lsf' is unknown"):
        adapters.get_adapter("lsf")


def test_batch_from_specs_plans_real_shots(tmp_path):
    specs = make_shots(tmp_path / "s", 2)
    b = adapters.batch_from_specs([str(s) for s in specs], str(tmp_path / "wd"), "http://x:1")
    assert [s.shot for s in b.shots] == ["sh010", "sh020"]
    names = [st.name for st in b.shots[0].stages]
    assert names == [
        "ingest", "track_chunk", "track", "references", "finetune", "export", "synth_chunk", "deliver",
    ]  # fmt: skip
    gpu = {st.name: st.gpus for st in b.shots[0].stages}
    # the test profile pins inference to torch on the CPU; fine-tuning stays on "auto" (GPU)
    assert gpu["finetune"] == 1 and gpu["synth_chunk"] == gpu["export"] == gpu["ingest"] == 0
    assert b.shots[0].stages[1].frames == "1001-1008"
    assert Workdir(tmp_path / "wd").versions("sh010") == ["v001"]  # reserved at submission
