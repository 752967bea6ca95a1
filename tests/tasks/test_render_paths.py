"""Both render paths through the real chain on one tiny shot: the face at the plate's resolution
(the default) and the network's own crop (``synth.render: network``), one fine-tune for both."""

from __future__ import annotations

import json

import yaml

from pipeline.inference.faces import FACES_FILE, load_faces
from pipeline.io import read_exr
from pipeline.shot.status import workdir_status
from tasks.cli import main
from tests.tasks.conftest import TEST_PROFILE, make_shot


def _synth_manifests(wd, shot="sh010"):
    return [
        json.loads(p.read_text())
        for p in wd.glob(f"shots/{shot}/stages/synth_chunk/*/_manifest.json")
    ]


def test_plate_resolution_and_network_paths(tmp_path):
    wd = tmp_path / "wd"
    spec = make_shot(tmp_path / "shot", size=320)  # a face of about 200 plate pixels
    assert main(["submit", str(spec), "--workdir", str(wd)]) == 0
    plate_runs = _synth_manifests(wd)
    size = plate_runs[0]["extra"]["render_size"]
    assert size > 128 and size % 32 == 0  # about one crop pixel per plate pixel
    assert {m["extra"]["render_size"] for m in plate_runs} == {size}  # one size per shot
    faces = load_faces(next(wd.glob("shots/sh010/stages/synth_chunk/*")) / FACES_FILE)
    assert faces.faces.shape[1] == size and not faces.flags.any()  # the same person

    profile = dict(TEST_PROFILE, synth={**TEST_PROFILE["synth"], "render": "network"})
    (tmp_path / "shot" / "profile.yaml").write_text(yaml.safe_dump(profile))
    assert main(["submit", str(spec), "--workdir", str(wd)]) == 0
    sizes = {load_faces(d / FACES_FILE).faces.shape[1]
             for d in wd.glob("shots/sh010/stages/synth_chunk/*")}  # fmt: skip
    assert sizes == {size, 128}  # the network's own 128-px crop beside the plate-resolution one
    versions = workdir_status(wd)["shots"]["sh010"]["versions"]
    assert set(versions) == {"v001", "v002"}
    starts = (wd / "shots" / "sh010" / "logs" / "finetune.log").read_text().count(": start -> ")
    assert starts == 1  # the fine-tune ran once for both
    for v in ("v001", "v002"):
        exr = versions[v]["outputs"]["exr"].replace("####", "1004")
        chans, _ = read_exr(exr)
        assert chans["face.A"].max() > 0.99
