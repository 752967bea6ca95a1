import os

import pytest

from pipeline.errors import StageError, WorkdirError
from pipeline.workspace import (
    StageManifest,
    Workdir,
    hash_outputs,
    manifest_matches,
    stage_key,
    write_manifest,
)


def test_stage_key_changes_with_each_part():
    k = stage_key("track", 1, "cfg", {"ingest": "abc"})
    assert k == stage_key("track", 1, "cfg", {"ingest": "abc"})
    assert (
        len(
            {
                k,
                stage_key("track", 2, "cfg", {"ingest": "abc"}),
                stage_key("track", 1, "cfg2", {"ingest": "abc"}),
                stage_key("track", 1, "cfg", {"ingest": "abd"}),
                stage_key("trick", 1, "cfg", {"ingest": "abc"}),
            }
        )
        == 5
    )


def test_paths_stay_inside(tmp_path):
    wd = Workdir(tmp_path)
    assert wd.stage_dir("sh010", "ingest", "k").is_relative_to(tmp_path)
    with pytest.raises(WorkdirError):
        wd.shot_dir("../../etc")


def test_manifest_completeness(tmp_path):
    folder = tmp_path / "stage"
    folder.mkdir()
    (folder / "out.bin").write_bytes(b"data")
    m = StageManifest(
        "ingest", "k1", "sh", "c1", 1, {"source": "s"}, "1-2", outputs=hash_outputs(folder)
    )
    assert not manifest_matches(folder, "k1", "c1")
    write_manifest(folder, m)
    assert manifest_matches(folder, "k1", "c1", verify_hashes=True)
    assert not manifest_matches(folder, "k2", "c1")
    assert not manifest_matches(folder, "k1", "c2")
    (folder / "out.bin").write_bytes(b"tampered")
    assert manifest_matches(folder, "k1", "c1") and not manifest_matches(
        folder, "k1", "c1", verify_hashes=True
    )
    (folder / "out.bin").unlink()
    assert not manifest_matches(folder, "k1", "c1")


def test_manifest_refuses_missing_outputs(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    with pytest.raises(StageError):
        write_manifest(
            folder, StageManifest("x", "k", "sh", "c", 1, {}, None, outputs={"gone.exr": "0"})
        )


def test_versions_allocated_once_per_delivery_key(tmp_path):
    wd = Workdir(tmp_path)
    v1 = wd.find_or_allocate_version("sh010", "key-a", {"stages": {}})
    assert v1 == "v001"
    assert wd.find_or_allocate_version("sh010", "key-a", {"stages": {}}) == "v001"
    assert wd.find_or_allocate_version("sh010", "key-b", {"stages": {}}) == "v002"
    assert wd.versions("sh010") == ["v001", "v002"]


def test_fingerprint_rehashes_only_changed(tmp_path):
    wd = Workdir(tmp_path / "wd")
    f = tmp_path / "plate.mov"
    f.write_bytes(b"a" * 10)
    a = wd.fingerprint([f])
    assert wd.fingerprint([f]) == a
    f.write_bytes(b"b" * 10)
    os.utime(f, ns=(1, 1))
    assert wd.fingerprint([f]) != a
