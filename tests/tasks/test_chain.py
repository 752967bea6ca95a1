"""The whole chain on a tiny generated shot: consent, provenance, chunk reruns, untouched frames."""

from __future__ import annotations

import json
from pathlib import Path

import av
import yaml

from pipeline.errors import EXIT_CONSENT, EXIT_FAILED
from pipeline.io import read_exr
from pipeline.shot.status import workdir_status
from tasks.cli import main
from tests.tasks.conftest import TEST_PROFILE, make_shot

PROVENANCE = (
    "likeness:synthetic",
    "likeness:actor_id",
    "likeness:consent_id",
    "likeness:model_sha256",
    "likeness:source_plate_sha256",
    "likeness:tool_version",
    "likeness:timestamp",
)


def _starts(wd: Path) -> dict[str, int]:
    return {p.stem: p.read_text().count(": start -> ") for p in wd.glob("shots/*/logs/*.log")}


def test_provenance_in_exr_movie_and_audit_log(tmp_path):
    spec = make_shot(tmp_path / "shot")
    wd = tmp_path / "wd"
    assert main(["submit", str(spec), "--workdir", str(wd)]) == 0
    v = workdir_status(wd)["shots"]["sh010"]["versions"]["v001"]
    chans, header = read_exr(Path(v["outputs"]["exr"].replace("####", "1004")))
    assert {"R", "G", "B", "A", "face.R", "face.G", "face.B", "face.A"} <= set(chans)
    for key in PROVENANCE:
        assert header[key], key
    assert header["likeness:synthetic"] == "1" and header["likeness:actor_id"] == "astro"
    assert header["likeness:consent_id"].startswith("test-consent")
    assert chans["face.A"].max() > 0.99  # the face layer carries the matte
    with av.open(v["outputs"]["review"]) as movie:
        meta = movie.metadata
    for key in PROVENANCE:
        assert meta.get(key.replace("likeness:", "likeness_")), key
    events = [json.loads(x)["event"] for x in (wd / "audit.log").read_text().splitlines()]
    assert events == ["finetune", "deliver"]
    assert Path(v["outputs"]["qc"]).is_file()


def test_missing_or_expired_consent_stops_finetune(tmp_path, capsys):
    spec = make_shot(tmp_path / "shot")
    consent = tmp_path / "shot" / "consent.yaml"
    rec = yaml.safe_load(consent.read_text())
    rec["expires"] = "2020-01-01"
    consent.write_text(yaml.safe_dump(rec))
    wd = tmp_path / "wd"
    # refused before anything runs ...
    assert main(["submit", str(spec), "--workdir", str(wd)]) == EXIT_CONSENT
    assert not (wd / "shots").exists()
    # ... and, preflight skipped, by the fine-tune stage itself
    assert main(["submit", str(spec), "--workdir", str(wd), "--no-preflight"]) == EXIT_CONSENT
    failed = json.loads((wd / "shots" / "sh010" / "logs" / "finetune.failed.json").read_text())
    assert failed["error"].startswith("ConsentError") and "expired" in failed["error"]
    assert not list(wd.glob("shots/sh010/stages/finetune/*/checkpoint.pt"))
    assert not (wd / "shots" / "sh010" / "v001" / "exr").exists()
    # no consent record named at all
    data = yaml.safe_load(spec.read_text())
    del data["actor"]["consent"]
    spec.write_text(yaml.safe_dump(data))
    assert main(["submit", str(spec), "--workdir", str(tmp_path / "wd2"), "--no-preflight"]) == (
        EXIT_CONSENT
    )
    failed = json.loads(
        (tmp_path / "wd2" / "shots" / "sh010" / "logs" / "finetune.failed.json").read_text()
    )
    assert failed["error"].startswith("ConsentError")


def test_a_failed_chunk_reruns_alone(tmp_path, monkeypatch):
    import tasks.stages
    from pipeline.errors import StageError

    real = tasks.stages.run_synth

    def flaky(inputs, frames, *args, **kwargs):
        if str(frames) == "1005-1008":
            raise StageError("node lost during synthesis (injected)")
        return real(inputs, frames, *args, **kwargs)

    spec = make_shot(tmp_path / "shot")
    wd = tmp_path / "wd"
    monkeypatch.setattr(tasks.stages, "run_synth", flaky)
    assert main(["submit", str(spec), "--workdir", str(wd)]) == EXIT_FAILED
    stages = workdir_status(wd)["shots"]["sh010"]["versions"]["v001"]["stages"]
    assert stages["synth_chunk.1005-1008"]["state"] == "failed"
    assert "injected" in stages["synth_chunk.1005-1008"]["error"]
    assert stages["synth_chunk.1001-1004"]["state"] == "done"
    before = _starts(wd)
    monkeypatch.setattr(tasks.stages, "run_synth", real)
    assert main(["submit", str(spec), "--workdir", str(wd)]) == 0
    after = _starts(wd)
    reran = sorted(k for k in after if after[k] != before.get(k))
    assert reran == ["deliver", "synth_chunk.1005-1008"]
    assert workdir_status(wd)["shots"]["sh010"]["versions"]["v001"]["state"] == "done"


def test_untracked_frames_pass_through_untouched(tmp_path):
    import numpy as np

    from pipeline.demo.synthetic import Motion, astronaut_head, moving_portrait
    from pipeline.frames import Timecode
    from pipeline.io import ProResWriter

    folder = tmp_path / "shot"
    # The profile opts in to passing untracked frames through (the default fails the shot).
    track = {**TEST_PROFILE["track"], "on_gap": "passthrough"}
    spec = make_shot(folder, profile={**TEST_PROFILE, "track": track})
    # replace the plate: frames 1003-1004 show a grey card instead of the face
    clip, _ = moving_portrait(
        8, (160, 160), Motion(tx=2, ty=1, rot_deg=2), portrait=astronaut_head()
    )
    clip[2:4] = 128
    plate = folder / "plates" / "sh010.mov"
    with ProResWriter(
        plate,
        width=160,
        height=160,
        fps=25,
        codec="prores_422hq",
        timecode=Timecode.parse("10:00:00:00", 25),
    ) as w:
        for f in clip:
            w.write(f.astype(np.float32) / 255.0)
    wd = tmp_path / "wd"
    assert main(["submit", str(spec), "--workdir", str(wd)]) == 0
    v = workdir_status(wd)["shots"]["sh010"]["versions"]["v001"]
    manifest = json.loads((wd / "shots" / "sh010" / "v001" / "_manifest.json").read_text())
    assert manifest["extra"]["untouched_frames"] == [1003, 1004]
    ingest = next(wd.glob("shots/sh010/stages/ingest/*/plate.1003.exr"))
    plate_px, _ = read_exr(ingest)
    out_px, header = read_exr(Path(v["outputs"]["exr"].replace("####", "1003")))
    for c in "RGB":
        assert np.array_equal(out_px[c], plate_px[c])
    assert float(out_px["face.A"].max()) == 0.0 and header["likeness:synthetic"] == "0"
    assert "1003" in Path(v["outputs"]["qc"]).read_text()
