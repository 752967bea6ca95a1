"""Hypothesis over the sidecar readers: npz sidecars, checkpoints and the workdir's JSON records.

Property: a reader returns what it documents or raises its named error (``SchemaError``,
``EngineBuildError``, ``CheckpointError``, ``DecodeError``) naming the file; the workdir's record
readers, which treat a damaged record as absent, never raise. Contents come from valid sidecars
with keys dropped, replaced, reshaped or retyped, from random archives, bare ``.npy`` arrays,
pickled object arrays, edited bytes and noise.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import strategies as st

from engines.cache import META_NAME, PLAN_NAME, CachedEngine, _verified_entry
from engines.parity import load_golden, save_golden
from pipeline.errors import (
    CheckpointError,
    DecodeError,
    EngineBuildError,
    LikenessError,
    SchemaError,
)
from pipeline.inference.faces import load_faces, save_faces
from pipeline.io.plate_cache import load_cached_plate
from pipeline.landmarks.sidecar import load_landmarks, save_landmarks
from pipeline.models.checkpoint import SCHEMA as CKPT_SCHEMA
from pipeline.models.checkpoint import load_checkpoint
from pipeline.references.store import load_references, save_references
from pipeline.shot.status import workdir_status
from pipeline.tracking.chunks import load_chunk, save_chunk
from pipeline.workspace import MANIFEST, Workdir, manifest_matches, read_manifest
from tests.fuzz import strategies as fz
from tests.fuzz import targets as tg


def _arrays_of(save: Callable[[Path], Any]) -> dict[str, np.ndarray]:
    """The arrays a library writer puts in its npz: the starting point of the edits."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.npz"
        save(path)
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}


def _read_file(
    data: bytes, reader: Callable[[Path], Any], error: type[LikenessError], name: str = "x.npz"
) -> Any:
    """Write ``data`` to a file and read it: the result, or ``None`` after the named error."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        try:
            return reader(path)
        except error as err:
            assert str(path) in str(err), f"the error does not name the file: {err}"
            return None


# -- npz sidecars -------------------------------------------------------------------------------

LANDMARKS = _arrays_of(lambda p: save_landmarks(p, tg.valid_landmarks()))
CHUNK = _arrays_of(lambda p: save_chunk(p, tg.valid_chunk()))
REFS = _arrays_of(lambda p: save_references(p, tg.valid_references()))
FACES = _arrays_of(lambda p: save_faces(p, tg.valid_faces()))
GOLDEN = _arrays_of(lambda p: save_golden(p, *tg.valid_golden()))


@fz.fuzz_pair("npz: landmarks (load_landmarks)", data=fz.npz_files(LANDMARKS))
def _landmarks(data: bytes) -> None:
    lm = _read_file(data, load_landmarks, SchemaError)
    if lm is not None:
        tg.check_landmarks(lm)


test_landmarks, test_landmarks_soak = _landmarks


@fz.fuzz_pair("npz: track chunk (load_chunk)", data=fz.npz_files(CHUNK))
def _chunk(data: bytes) -> None:
    _read_file(data, load_chunk, SchemaError)


test_track_chunk, test_track_chunk_soak = _chunk


@fz.fuzz_pair("npz: references (load_references)", data=fz.npz_files(REFS))
def _refs(data: bytes) -> None:
    refs = _read_file(data, load_references, SchemaError)
    if refs is not None:
        tg.check_references(refs)


test_references, test_references_soak = _refs


@fz.fuzz_pair("npz: synthesized faces (load_faces)", data=fz.npz_files(FACES))
def _faces(data: bytes) -> None:
    faces = _read_file(data, load_faces, SchemaError)
    if faces is not None:
        tg.check_faces(faces)


test_faces, test_faces_soak = _faces


@fz.fuzz_pair("npz: golden frames (load_golden)", data=fz.npz_files(GOLDEN))
def _golden(data: bytes) -> None:
    got = _read_file(data, load_golden, EngineBuildError)
    if got is not None:
        ins, outs = got
        assert ins and outs
        assert all(v.dtype.kind == "f" for v in [*ins.values(), *outs.values()])


test_golden, test_golden_soak = _golden


# -- checkpoints --------------------------------------------------------------------------------


def _checkpoint_bytes() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.pt"
        tg.save_tiny_checkpoint(path)
        return path.read_bytes()


CHECKPOINT = _checkpoint_bytes()

tensors = st.builds(
    torch.tensor,
    st.lists(st.floats(allow_nan=True, width=32), max_size=4),
)
blob_values = fz.nested(st.one_of(fz.json_scalars(), tensors), fz.texts)


class _NotWeights:
    """A class ``weights_only`` must refuse to rebuild."""


def _torch_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


checkpoint_files = st.one_of(
    st.dictionaries(
        st.sampled_from(["schema", "kind", "step", "model", "optimizer", "rng", "extra"]),
        st.one_of(blob_values, st.just(CKPT_SCHEMA)),
    ).map(_torch_bytes),
    blob_values.map(_torch_bytes),
    st.just({"schema": CKPT_SCHEMA, "x": _NotWeights()}).map(_torch_bytes),
    fz.byte_edits(CHECKPOINT),
    st.binary(max_size=256),
)


@fz.fuzz_pair("checkpoint (load_checkpoint)", data=checkpoint_files)
def _checkpoint(data: bytes) -> None:
    blob = _read_file(data, load_checkpoint, CheckpointError, "checkpoint.pt")
    if blob is not None:
        assert isinstance(blob, dict) and blob["schema"] == CKPT_SCHEMA


test_checkpoint, test_checkpoint_soak = _checkpoint


# -- JSON records -------------------------------------------------------------------------------

json_values = fz.nested(fz.json_scalars(), fz.texts)


def json_files(valid: dict[str, Any]) -> st.SearchStrategy[bytes]:
    """Edited and random JSON documents, edited bytes of the valid one, and noise."""
    text = json.dumps(valid, indent=2).encode()
    return st.one_of(
        fz.edited(valid, json_values).map(lambda d: json.dumps(d).encode()),
        json_values.map(lambda d: json.dumps(d).encode()),
        fz.byte_edits(text),
        st.binary(max_size=200),
    )


@fz.fuzz_pair("json: ingest plate.json (load_cached_plate)", data=json_files(tg.valid_plate_json()))
def _plate_json(data: bytes) -> None:
    plate = _read_file(data, lambda p: load_cached_plate(p.parent), DecodeError, "plate.json")
    if plate is not None:
        tg.check_cached_plate(plate)


test_plate_json, test_plate_json_soak = _plate_json


@fz.fuzz_pair("json: stage _manifest.json (read_manifest)", data=json_files(tg.valid_manifest()))
def _manifest(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "landmarks.npz").write_bytes(b"x")
        (folder / MANIFEST).write_bytes(data)
        m = read_manifest(folder)
        assert m is None or isinstance(m, dict)
        for verify in (False, True):
            assert manifest_matches(folder, "0123456789abcdef", "c" * 64, verify_hashes=verify) in (
                True,
                False,
            )


test_manifest, test_manifest_soak = _manifest


def _valid_meta() -> dict[str, Any]:
    from pipeline.hashing import sha256_file

    with tempfile.TemporaryDirectory() as tmp:
        tg._make_engine_meta(Path(tmp))
        return json.loads((Path(tmp) / META_NAME).read_text()) | {
            "plan_sha256": sha256_file(Path(tmp) / PLAN_NAME)
        }


@fz.fuzz_pair(
    "json: engine cache meta.json (_verified_entry, open)", data=json_files(_valid_meta())
)
def _engine_meta(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        tg._make_engine_meta(folder)
        (folder / META_NAME).write_bytes(data)
        got = _verified_entry(folder, tg.ENGINE_KEY, tg.ENGINE_PARTS, 40.0)
        assert got is None or got >= 40.0
        if got is None:  # an entry the lookup refuses must not load either
            entry = CachedEngine(tg.ENGINE_KEY, "onnxruntime", "fp32", folder / PLAN_NAME, 0, True)
            with pytest.raises(EngineBuildError):
                entry.open()


test_engine_meta, test_engine_meta_soak = _engine_meta


def _plan(version: str) -> dict[str, Any]:
    return {
        "version": version,
        "delivery_key": "k" * 16,
        "frames": "1001-1004",
        "spec": "/shots/sh010.yaml",
        "stages": {
            "track": {
                "stage": "track",
                "key": "0123456789abcdef",
                "folder": "stages/track/0123456789abcdef",
                "config_digest": "c" * 64,
            },
            "deliver": {"stage": "deliver", "key": "k" * 16, "config_digest": "d" * 64},
        },
    }


@fz.fuzz_pair(
    "json: workdir plans, manifests, state records (status, versions)",
    plan=json_files(_plan("v001")),
    manifest=json_files(tg.valid_manifest()),
    record=json_files({"error": "DecodeError: x", "time": 1.0, "pid": 7}),
    cache=json_files({"/x": {"tag": "1:2", "sha256": "a" * 64}}),
)
def _workdir(plan: bytes, manifest: bytes, record: bytes, cache: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        wd = Workdir(tmp)
        shot = wd.shot_dir("sh010")
        (shot / "v001").mkdir(parents=True)
        (shot / "v001.json").write_bytes(plan)
        (shot / "v001" / MANIFEST).write_bytes(manifest)
        (shot / "logs").mkdir()
        for kind in ("failed", "running"):
            (shot / "logs" / f"track.{kind}.json").write_bytes(record)
        (wd.root / ".cache").mkdir()
        (wd.root / ".cache" / "fingerprints.json").write_bytes(cache)
        source = wd.root / "plate.mov"
        source.write_bytes(b"plate")
        status = workdir_status(wd.root)
        assert isinstance(status, dict) and set(status["shots"]) == {"sh010"}
        assert len(wd.fingerprint([source])) == 64
        version = wd.find_or_allocate_version("sh010", "k" * 16, _plan("v00x"))
        assert version in ("v001", "v002")


test_workdir, test_workdir_soak = _workdir


def test_valid_sidecars_read_back(tmp_path: Path):
    """The starting points of the edits are valid, so the edits begin from files that pass."""
    for name in ("landmarks_npz", "refs_npz", "faces_npz", "golden_npz", "checkpoint_pt"):
        folder = tmp_path / name
        folder.mkdir()
        tg.TARGETS[name].make(folder)
        assert tg.classify(name, folder) == {"kind": "ok"}, name
    cache = tg.seed_files("plate_json")
    (tmp_path / "plate.json").write_bytes(cache["plate.json"])
    tg.check_cached_plate(load_cached_plate(tmp_path))
