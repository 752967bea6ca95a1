"""What the fuzzing found, one fixed example per bug: each failed before its fix."""

from __future__ import annotations

import io
import json
import re
import struct
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml

from engines.parity import load_golden
from pipeline.config import read_yaml
from pipeline.consent import load_consent
from pipeline.errors import (
    CheckpointError,
    ConfigError,
    ConsentError,
    DecodeError,
    EngineBuildError,
    SchemaError,
    ShotSpecError,
)
from pipeline.frames import parse_rate
from pipeline.inference.faces import load_faces
from pipeline.io import open_plate
from pipeline.io.plate_cache import load_cached_plate
from pipeline.landmarks.sidecar import load_landmarks
from pipeline.models.checkpoint import load_checkpoint
from pipeline.references.prepare import load_still
from pipeline.references.store import load_references
from pipeline.shot.profile import load_profile
from pipeline.shot.spec import load_shot
from pipeline.shot.status import format_table, workdir_status
from pipeline.tracking.chunks import load_chunk
from pipeline.workspace import MANIFEST, Workdir, manifest_matches, read_manifest
from tests.fuzz.targets import classify, seed_files, valid_plate_json, valid_spec


def _write(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def _swap(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) == 1, old
    return data.replace(old, new)


# -- media ---------------------------------------------------------------------------------------


def test_movie_without_a_decoder_is_decode_error(tmp_path: Path):
    """A damaged sample description leaves PyAV a video stream without a codec context, and
    the reader read ``None.width`` (AttributeError)."""
    data = _swap(seed_files("movie_prores")["plate.mov"], b"apch", b"zzzz")  # unknown fourcc
    (tmp_path / "plate.mov").write_bytes(data)
    with pytest.raises(DecodeError, match="no decoder for its video stream"):
        open_plate(tmp_path / "plate.mov")


def test_movie_with_a_near_zero_frame_rate_is_decode_error(tmp_path: Path):
    """A damaged time base gave 0.00001 fps, and parse_rate's ValueError escaped the reader."""
    data = bytearray(seed_files("movie_h264")["plate.mp4"])
    assert data.count(b"mdhd") == 1 and data.count(b"stts") == 1
    mdhd, stts = data.index(b"mdhd"), data.index(b"stts")
    data[mdhd + 16 : mdhd + 20] = struct.pack(">I", 1)  # timescale: 1 unit a second
    data[stts + 16 : stts + 20] = struct.pack(">I", 100_000)  # each frame lasts 100000 units
    (tmp_path / "plate.mp4").write_bytes(bytes(data))
    with pytest.raises(DecodeError, match="unusable frame rate"):
        open_plate(tmp_path / "plate.mp4")


def test_exr_with_a_negative_frame_rate_is_decode_error(tmp_path: Path):
    """framesPerSecond -24/1 in the first frame: parse_rate's ValueError escaped the reader."""

    def negative(data: bytearray) -> None:
        tag = b"framesPerSecond\0rational\0"
        at = data.index(tag) + len(tag) + 4  # size, then the numerator
        data[at : at + 4] = struct.pack("<i", -24)

    _write(tmp_path, _exr(negative))
    with pytest.raises(DecodeError, match="header frame rate -24 is unusable"):
        open_plate(tmp_path / "plate.####.exr")


def test_png_chunk_longer_than_the_file_is_refused_before_decoding(tmp_path: Path):
    """OpenCV spent 5-10 s and the memory on a 400-byte PNG whose IDAT claimed ~800 MB."""
    files = dict(seed_files("png_sequence"))
    data = bytearray(files["plate.0001.png"])
    idat = data.index(b"IDAT") - 4
    data[idat : idat + 4] = struct.pack(">I", 0x7FFFFFFF)
    files["plate.0001.png"] = bytes(data)
    t0 = time.monotonic()
    answer = classify("png_sequence", _write(tmp_path, files))
    assert answer["kind"] == "named" and "claims 2147483647 bytes" in answer["detail"], answer
    assert time.monotonic() - t0 < 2.0


def test_broken_png_chunk_in_a_reference_is_decode_error(tmp_path: Path):
    """Pillow reports a broken chunk as SyntaxError, which load_still let through."""
    data = _swap(seed_files("still_png")["ref.png"], b"IDAT", b"\xff\xff\xff\xff")
    (tmp_path / "ref.png").write_bytes(data)
    with pytest.raises(DecodeError, match="not a readable image"):
        load_still(tmp_path / "ref.png", 1 << 20)


def test_stray_far_frame_number_does_not_hang(tmp_path: Path):
    """``sh010.99999999999.png`` beside ``sh010.0001.png`` made the hole check build a set of
    10**11 frame numbers."""
    files = seed_files("png_sequence")
    _write(tmp_path, {"plate.0001.png": files["plate.0001.png"]})
    (tmp_path / "plate.99999999999.png").write_bytes(files["plate.0002.png"])
    t0 = time.monotonic()
    with pytest.raises(DecodeError, match="over the limit of 1000000 frames"):
        open_plate(tmp_path / "plate.####.png")
    assert time.monotonic() - t0 < 2.0


@pytest.mark.parametrize(
    ("head", "match"),
    [
        # directory offset 2**63: seek() raised ValueError
        (b"II" + struct.pack("<HHHQ", 43, 8, 0, 2**63), "lies past the end"),
        # 2**62 directory entries: read() raised OverflowError
        (b"II" + struct.pack("<HHHQQ", 43, 8, 0, 16, 2**62), "claims 4611686018427387904 entries"),
    ],
)
def test_bigtiff_offsets_past_the_file_are_decode_errors(head: bytes, match: str, tmp_path: Path):
    """Found once a BigTIFF seed joined the loop: 55 of 3000 cases raised one of these."""
    (tmp_path / "plate.0001.tif").write_bytes(head + bytes(64))
    with pytest.raises(DecodeError, match=match):
        open_plate(tmp_path / "plate.####.tif")


def _exr(damage: Callable[[bytearray], None], name: str = "plate.1001.exr") -> dict[str, bytes]:
    files = dict(seed_files("exr_sequence"))
    data = bytearray(files[name])
    damage(data)
    files[name] = bytes(data)
    return files


def _retype(tag: bytes) -> Callable[[bytearray], None]:
    """Misspell an attribute's type name: the binding hands back an opaque attribute."""

    def damage(data: bytearray) -> None:
        at = data.index(tag) + len(tag) - 2
        data[at] = ord("X")

    return damage


def _zero_rate_denominator(data: bytearray) -> None:
    tag = b"framesPerSecond\0rational\0"
    at = data.index(tag) + len(tag) + 4 + 4  # size, numerator, then the denominator
    data[at : at + 4] = struct.pack("<I", 0)


def _non_utf8_channel(data: bytearray) -> None:
    tag = b"channels\0chlist\0"
    data[data.index(tag) + len(tag) + 4] = 0x80  # the first channel name's first byte


@pytest.mark.parametrize(
    ("damage", "frame"),
    [
        (_retype(b"timeCode\0timecode\0"), "plate.1001.exr"),  # AttributeError: dropFrame
        (_retype(b"framesPerSecond\0rational\0"), "plate.1001.exr"),  # TypeError: Fraction
        (_zero_rate_denominator, "plate.1001.exr"),  # ZeroDivisionError in the binding
        (_non_utf8_channel, "plate.1002.exr"),  # UnicodeDecodeError on channel names
    ],
)
def test_exr_header_damage_is_decode_error(damage, frame: str, tmp_path: Path):
    """Each of these let an unnamed exception out of the EXR sequence reader."""
    answer = classify("exr_sequence", _write(tmp_path, _exr(damage, frame)))
    assert answer["kind"] == "named", answer


# -- npz sidecars and checkpoints ----------------------------------------------------------------


def _npz_damage(kind: str) -> Callable[[bytes], bytes]:
    def damage(data: bytes) -> bytes:
        out = bytearray(data)
        if kind == "crc":  # a flipped bit in a stored member: zipfile.BadZipFile (bad CRC)
            out[out.index(b".npy") + 200] ^= 1
        elif kind == "encrypted":  # the encryption flag: RuntimeError from zipfile
            out[out.index(b"PK\x01\x02") + 8] |= 1
        elif kind == "truncated":  # no central directory: zipfile.BadZipFile
            del out[len(out) // 2 :]
        elif kind == "npy":  # a bare array, not an archive: np.load returns an ndarray
            buf = io.BytesIO()
            np.save(buf, np.zeros(3))
            return buf.getvalue()
        return bytes(out)

    return damage


@pytest.mark.parametrize("kind", ["crc", "encrypted", "truncated", "npy"])
@pytest.mark.parametrize(
    ("target", "name", "reader", "error"),
    [
        ("landmarks_npz", "landmarks.npz", load_landmarks, SchemaError),
        ("refs_npz", "refs.npz", load_references, SchemaError),
        ("faces_npz", "faces.npz", load_faces, SchemaError),
        ("golden_npz", "model.golden.npz", load_golden, EngineBuildError),
        ("track_chunk_npz", "track.npz", load_chunk, SchemaError),
    ],
)
def test_damaged_npz_is_the_named_error(target, name, reader, error, kind, tmp_path: Path):
    data = _npz_damage(kind)(seed_files(target)[name])
    (tmp_path / name).write_bytes(data)
    with pytest.raises(error, match=re.escape(str(tmp_path / name))):
        reader(tmp_path / name)


def test_npz_member_without_npy_magic_is_schema_error(tmp_path: Path):
    """NpzFile hands back such a member as raw bytes: readers called .dtype on bytes."""
    with zipfile.ZipFile(io.BytesIO(seed_files("refs_npz")["refs.npz"])) as z:
        members = {n: z.read(n) for n in z.namelist()}
    with zipfile.ZipFile(tmp_path / "refs.npz", "w") as out:
        for n, data in members.items():
            out.writestr(n, b"not an npy array" if n == "sources.npy" else data)
    with pytest.raises(SchemaError, match=r"members \['sources'\] .* are not .npy arrays"):
        load_references(tmp_path / "refs.npz")


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"crops": np.zeros((2, 8, 8, 3), np.float32)}, "malformed references"),  # not uint8
        ({"points": np.zeros((2, 5, 2), np.float32)}, "malformed references"),  # not 68 points
        ({"sources": np.array(["a.png"])}, "malformed references"),  # 1 source, 2 crops
        ({"crops": None}, "lacks"),
    ],
)
def test_references_with_wrong_arrays_are_refused(arrays, match, tmp_path: Path):
    """load_references returned crops of any dtype and shape; the crash came later."""
    with np.load(io.BytesIO(seed_files("refs_npz")["refs.npz"])) as z:
        content = {k: z[k] for k in z.files}
    for k, v in arrays.items():
        if v is None:
            del content[k]
        else:
            content[k] = v
    np.savez(tmp_path / "refs.npz", **content)
    with pytest.raises(SchemaError, match=match):
        load_references(tmp_path / "refs.npz")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("crop_size", np.array([64, 64])),  # int() of an array: TypeError
        ("image_size", np.array(32)),  # image_size[0] of a scalar: IndexError
        ("gaps", np.arange(3)),  # reshape(-1, 2): ValueError
        ("points", np.zeros((3, 5, 2))),  # Landmarks.__post_init__: ValueError
        ("frames", np.array(["a", "b", "c"])),  # not numbers
        ("frames", np.array(1001)),  # len() of a scalar in Landmarks.__post_init__: TypeError
    ],
)
def test_landmarks_with_wrong_arrays_are_schema_errors(name, value, tmp_path: Path):
    with np.load(io.BytesIO(seed_files("landmarks_npz")["landmarks.npz"])) as z:
        content = {k: z[k] for k in z.files}
    content[name] = value
    np.savez(tmp_path / "landmarks.npz", **content)
    with pytest.raises(SchemaError, match=name):
        load_landmarks(tmp_path / "landmarks.npz")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("box", np.array(False)),  # len() of a scalar: TypeError
        ("points", np.zeros((3, 5, 2))),  # not 68 points per frame
        ("image_size", np.array(32)),  # image_size[0] of a scalar: IndexError
        ("backend", np.array(3)),  # not a name
        ("keyframe", None),  # missing: KeyError
    ],
)
def test_track_chunk_with_wrong_arrays_is_schema_error(name, value, tmp_path: Path):
    """load_chunk indexed and converted the arrays unchecked."""
    with np.load(io.BytesIO(seed_files("track_chunk_npz")["track.npz"])) as z:
        content = {k: z[k] for k in z.files}
    if value is None:
        del content[name]
    else:
        content[name] = value
    np.savez(tmp_path / "track.npz", **content)
    with pytest.raises(SchemaError, match=name):
        load_chunk(tmp_path / "track.npz")


def test_garbage_pickle_in_a_checkpoint_is_checkpoint_error(tmp_path: Path):
    """The weights-only unpickler fails on damaged opcodes as KeyError, IndexError, TypeError,
    UnicodeDecodeError or AssertionError; here a read of a memo slot never written."""
    with zipfile.ZipFile(io.BytesIO(seed_files("checkpoint_pt")["checkpoint.pt"])) as z:
        members = {n: z.read(n) for n in z.namelist()}
    with zipfile.ZipFile(tmp_path / "checkpoint.pt", "w", zipfile.ZIP_STORED) as out:
        for n, data in members.items():
            out.writestr(n, b"\x80\x02h\x09." if n.endswith("data.pkl") else data)
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "checkpoint.pt")


# -- JSON records --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        ({"width": None}, "width"),  # KeyError
        ({"frames": "1004-1001"}, "ends before it starts"),  # ValueError
        ({"fps": "24/0"}, "not a finite number"),  # ZeroDivisionError
        ({"fps": 24}, "fps is int"),  # parse_rate(24) passed, "24/1" expected
        ({"timecode": "99:99:99:99"}, "out of range"),  # only failed at timecode_at
    ],
)
def test_damaged_plate_json_is_decode_error(edit, match, tmp_path: Path):
    meta = valid_plate_json()
    for k, v in edit.items():
        if v is None:
            del meta[k]
        else:
            meta[k] = v
    (tmp_path / "plate.json").write_text(json.dumps(meta))
    with pytest.raises(DecodeError, match=match):
        load_cached_plate(tmp_path)


@pytest.mark.parametrize(
    "doc",
    [
        "null",  # read_manifest: AttributeError, .get on None
        "[]",
        '{"schema": "likeness.manifest/1", "key": "k", "config_digest": "c", "outputs": []}',
    ],
)
def test_damaged_manifest_reads_as_absent(doc: str, tmp_path: Path):
    """read_manifest called .get on a JSON null; manifest_matches .items() on a list."""
    (tmp_path / MANIFEST).write_text(doc)
    assert read_manifest(tmp_path) in (None, json.loads(doc))
    assert manifest_matches(tmp_path, "k", "c") is False


@pytest.mark.parametrize(
    "plan",
    [
        "[]",  # AttributeError: list has no .get
        '{"stages": {"t": {"stage": "track"}}}',  # KeyError: folder
        '{"stages": {"t": {"stage": ["deliver"]}}}',  # TypeError: unhashable list
        '{"stages": []}',  # AttributeError
    ],
)
def test_status_shows_a_damaged_plan(plan: str, tmp_path: Path):
    wd = Workdir(tmp_path)
    shot = wd.shot_dir("sh010")
    shot.mkdir(parents=True)
    (shot / "v001.json").write_text(plan)
    status = workdir_status(tmp_path)
    v = status["shots"]["sh010"]["versions"]["v001"]
    assert v["state"] == "damaged" and "v001.json is unreadable" in v["error"]
    assert "v001.json is unreadable" in format_table(status)
    assert wd.find_or_allocate_version("sh010", "k", {"stages": {}}) == "v002"


@pytest.mark.parametrize("record", ["[1]", '{"time": "yesterday"}', '{"time": null}'])
@pytest.mark.parametrize(("kind", "state"), [("failed", "failed"), ("running", "stale")])
def test_status_reads_a_damaged_state_record(record: str, kind: str, state: str, tmp_path: Path):
    """float(rec.get("time")) raised ValueError or TypeError; rec.get on a list AttributeError."""
    wd = Workdir(tmp_path)
    shot = wd.shot_dir("sh010")
    (shot / "logs").mkdir(parents=True)
    plan = {"stages": {"t": {"stage": "track", "folder": str(tmp_path / "x"), "key": "k"}}}
    (shot / "v001.json").write_text(json.dumps(plan))
    (shot / "logs" / f"t.{kind}.json").write_text(record)
    stages = workdir_status(tmp_path)["shots"]["sh010"]["versions"]["v001"]["stages"]
    assert stages["t"]["state"] == state


@pytest.mark.parametrize("cache", ["[]", '{"/x": "tag"}', "null"])
def test_damaged_fingerprint_cache_is_rebuilt(cache: str, tmp_path: Path):
    wd = Workdir(tmp_path)
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "fingerprints.json").write_text(cache)
    (tmp_path / "plate.mov").write_bytes(b"plate")
    assert len(wd.fingerprint([tmp_path / "plate.mov"])) == 64


# -- YAML inputs ---------------------------------------------------------------------------------


def test_impossible_yaml_date_is_a_config_error(tmp_path: Path):
    """yaml.safe_load raises ValueError (not YAMLError) for 2026-02-30."""
    path = tmp_path / "consent.yaml"
    path.write_text("actor: jdoe\nexpires: 2026-02-30\n")
    with pytest.raises(ConfigError, match="day is out of range"):
        read_yaml(path)
    with pytest.raises(ConsentError, match="unreadable"):
        load_consent(path, "jdoe")


@pytest.mark.parametrize("rate", ["1e400", "24/0", "1e999999999", "inf"])
def test_profile_frame_rate_out_of_range_is_config_error(rate: str, tmp_path: Path):
    """sequence_fps "1e400" raised OverflowError; "1e999999999" took minutes to build a
    billion-digit Fraction."""
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump({"ingest": {"sequence_fps": rate}}))
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match="sequence_fps"):
        load_profile(str(path))
    assert time.monotonic() - t0 < 2.0


def test_parse_rate_keeps_exact_rates():
    assert parse_rate("23.976") == parse_rate("24000/1001") == parse_rate(23.976)
    assert parse_rate("0.5") * 2 == 1


def test_shot_longer_than_the_limit_is_refused(tmp_path: Path):
    """plate.frames 1001-99999999999 passed, and planning its chunks never ended."""
    spec = valid_spec()
    spec["plate"]["frames"] = "1001-99999999999"
    path = tmp_path / "shot.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(ShotSpecError, match="over the limit of 1000000"):
        load_shot(path, check_files=False)
