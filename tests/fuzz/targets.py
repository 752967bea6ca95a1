"""Every reader under fuzz: how to make its valid seed files, and how to read a case whole.

:data:`TARGETS` maps a name to a :class:`Target`: ``make(folder)`` writes tiny valid files with
the library's own writers (or PyAV, OpenCV and Pillow for plates the library only reads), and
``read(folder)`` reads them the way the pipeline does (open, header, decode every frame) and
checks what comes back against the reader's documented contract, raising
:class:`ContractViolation` when it breaks.

Run as ``python -m tests.fuzz.targets MEM_LIMIT`` this module is the worker of
:class:`tests.fuzz.mutate.Worker`: one JSON request per line on stdin, one JSON answer per line.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import sys
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pipeline.errors import LikenessError

FPS = Fraction(24)
W, H = 32, 16  # plate frames: tiny, even width for 4:2:2 and 4:2:0


class ContractViolation(Exception):
    """A reader returned data its docstring rules out."""


def expect(ok: bool, what: str) -> None:
    if not ok:
        raise ContractViolation(what)


@dataclass(frozen=True)
class Target:
    """One reader under fuzz.

    Attributes:
        make: writes the valid seed files into a folder.
        read: reads the case in a folder whole; raises on failure.
    """

    make: Callable[[Path], None]
    read: Callable[[Path], Any]


# -- plates -------------------------------------------------------------------------------------


def _gradient(i: int, dtype: type = np.float32) -> np.ndarray:
    """H×W×3 smooth colour ramp; ``dtype`` float32 0..1, uint8 or uint16 codes."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    rgb = np.stack([x / W, y / H, np.full_like(x, 0.1 * i + 0.2)], axis=-1) * 0.8 + 0.1
    if dtype is np.float32:
        return rgb.astype(np.float32)
    top = np.iinfo(dtype).max
    return np.round(rgb * top).astype(dtype)


def _make_prores(folder: Path) -> None:
    from pipeline.frames import Timecode
    from pipeline.io import ProResWriter

    tc = Timecode.parse("01:00:00:00", FPS)
    with ProResWriter(
        folder / "plate.mov", width=W, height=H, fps=FPS, codec="prores_422hq", timecode=tc
    ) as w:
        for i in range(3):
            w.write(_gradient(i))


def _make_h264(folder: Path) -> None:
    import av

    with av.open(str(folder / "plate.mp4"), "w") as out:
        s = out.add_stream("libx264", rate=25, options={"g": "2", "crf": "10"})
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        for i in range(4):
            f = av.VideoFrame.from_ndarray(_gradient(i, np.uint8), format="rgb24")
            f.pts = i
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)


def _make_exr_sequence(folder: Path) -> None:
    from pipeline.frames import Timecode
    from pipeline.io import write_exr

    tc = Timecode.parse("01:00:00:00", FPS)
    for n in (1001, 1002):
        write_exr(
            folder / f"plate.{n}.exr",
            {"": _gradient(n) * 4.0 - 0.5},
            fps=FPS,
            timecode=tc + (n - 1001),
        )


def _make_exr_layers(folder: Path) -> None:
    from pipeline.io import write_exr

    rgba = np.concatenate([_gradient(0), np.ones((H, W, 1), np.float32)], axis=-1)
    write_exr(
        folder / "frame.exr",
        {"": rgba, "face": _gradient(1)},
        compression="piz",
        attrs={"likeness:shot": "sh010"},
    )


def _make_png_sequence(folder: Path) -> None:
    import cv2

    for n in (1, 2):
        cv2.imwrite(str(folder / f"plate.{n:04d}.png"), _gradient(n, np.uint8)[..., ::-1].copy())


def _make_tiff_sequence(folder: Path) -> None:
    import cv2

    for n in (1, 2):
        cv2.imwrite(str(folder / f"plate.{n:04d}.tif"), _gradient(n, np.uint16)[..., ::-1].copy())


def _make_bigtiff_sequence(folder: Path) -> None:
    from PIL import Image

    for n in (1, 2):  # 8-bit RGB BigTIFF: 64-bit offsets and counts in the header
        Image.fromarray(_gradient(n, np.uint8)).save(folder / f"plate.{n:04d}.tif", big_tiff=True)


def _make_dpx_sequence(folder: Path) -> None:
    import av

    for n in (1, 2):
        path = folder / f"plate.{n:04d}.dpx"
        with av.open(str(path), "w", format="image2") as out:
            s = out.add_stream("dpx", rate=24)
            s.width, s.height, s.pix_fmt = W, H, "rgb48le"
            frame = av.VideoFrame.from_ndarray(_gradient(n, np.uint16), format="rgb48le")
            for p in s.encode(frame):
                out.mux(p)
            for p in s.encode():
                out.mux(p)


def _read_plate(pattern: Path, *, bounded: bool) -> None:
    """Open a plate, read its header and decode every frame, checking the reader's contract."""
    from pipeline.frames import MAX_PLATE_FRAMES
    from pipeline.io import open_plate

    with open_plate(pattern) as plate:
        info = plate.info
        expect(info.width > 0 and info.height > 0, f"size {info.width}×{info.height}")
        expect(len(info.frames) <= MAX_PLATE_FRAMES, f"{len(info.frames)} frames claimed")
        numbers = []
        for number, arr in plate.read():
            numbers.append(number)
            expect(
                isinstance(arr, np.ndarray)
                and arr.dtype == np.float32
                and arr.shape == (info.height, info.width, 3)
                and arr.flags.c_contiguous,
                f"frame {number}: {getattr(arr, 'dtype', type(arr))} "
                f"{getattr(arr, 'shape', '')}, info says {info.width}×{info.height}",
            )
            if bounded:  # integer codes normalised to 0..1 (EXR values are as stored)
                expect(
                    bool(np.all(arr >= 0.0) and np.all(arr <= 1.0)), f"frame {number} outside 0..1"
                )
        expect(numbers == list(info.frames), f"read frames {numbers}, info says {info.frames}")


def _read_exr_layers(folder: Path) -> None:
    from pipeline.io import read_exr

    channels, header = read_exr(folder / "frame.exr")
    expect(isinstance(header, dict), f"header is {type(header).__name__}")
    shapes = {np.shape(a) for a in channels.values()}
    expect(len(shapes) <= 1 and all(len(s) == 2 for s in shapes), f"channel shapes {shapes}")


# -- reference stills ---------------------------------------------------------------------------


def _make_still(fmt: str) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        from PIL import Image

        Image.fromarray(_gradient(0, np.uint8)).save(folder / f"ref.{fmt}")

    return make


def _read_still(fmt: str) -> Callable[[Path], None]:
    def read(folder: Path) -> None:
        from pipeline.references.prepare import load_still

        arr = load_still(folder / f"ref.{fmt}", 8192 * 8192)
        expect(
            arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[-1] == 3,
            f"still is {arr.dtype} {arr.shape}, want H×W×3 uint8",
        )

    return read


# -- sidecars -----------------------------------------------------------------------------------


def valid_landmarks(n: int = 3) -> Any:
    from pipeline.landmarks.sidecar import Landmarks

    rng = np.random.default_rng(0)
    eye = np.tile(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), (n, 1, 1))
    return Landmarks(
        frames=np.arange(1001, 1001 + n, dtype=np.int64),
        points=rng.uniform(0, 30, (n, 68, 2)).astype(np.float32),
        raw_points=rng.uniform(0, 30, (n, 68, 2)).astype(np.float32),
        confidence=np.ones(n, np.float32),
        box=np.tile(np.array([1, 2, 20, 22], np.float32), (n, 1)),
        transform=eye,
        inverse=eye.copy(),
        tracked=np.ones(n, bool),
        interpolated=np.zeros(n, bool),
        gaps=[(1003, 1003)],
        crop_size=64,
        image_size=(W, H),
    )


def valid_chunk(n: int = 3) -> Any:
    from pipeline.tracking.chunks import ChunkTrack

    rng = np.random.default_rng(1)
    return ChunkTrack(
        frames=np.arange(1001, 1001 + n, dtype=np.int64),
        points=rng.uniform(0, 30, (n, 68, 2)).astype(np.float32),
        confidence=np.ones(n, np.float32),
        box=np.tile(np.array([1, 2, 20, 22], np.float32), (n, 1)),
        keyframe=np.array([True] + [False] * (n - 1)),
        cut=np.zeros(n, bool),
        descriptor=np.zeros(128, np.float32),
        face_chip=np.zeros((0, 0, 3), np.uint8),
        image_size=(W, H),
        backend="dlib",
    )


def valid_references(k: int = 2, size: int = 8) -> Any:
    from pipeline.references.store import References

    rng = np.random.default_rng(2)
    return References(
        rng.integers(0, 255, (k, size, size, 3), dtype=np.uint8),
        rng.uniform(0, size, (k, 68, 2)).astype(np.float32),
        tuple(f"ref{i}.png" for i in range(k)),
    )


def valid_faces(n: int = 3, size: int = 8) -> Any:
    from pipeline.inference.faces import Faces

    rng = np.random.default_rng(3)
    eye = np.tile(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), (n, 1, 1))
    return Faces(
        np.arange(1001, 1001 + n, dtype=np.int64),
        rng.uniform(0, 1, (n, size, size, 3)).astype(np.float16),
        rng.uniform(0, size, (n, 68, 2)).astype(np.float32),
        eye,
        np.ones(n, bool),
    )


def valid_golden() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    rng = np.random.default_rng(4)
    inputs = {"landmarks": rng.uniform(0, 1, (2, 3, 8, 8)).astype(np.float32)}
    outputs = {"image": rng.uniform(0, 1, (2, 3, 8, 8)).astype(np.float32)}
    return inputs, outputs


def save_tiny_checkpoint(path: Path) -> str:
    import torch

    from pipeline.models.checkpoint import save_checkpoint

    # The checkpoint holds every RNG state: seed them all so that the bytes are reproducible,
    # and put them back afterwards.
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    try:
        net = torch.nn.Linear(3, 2)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        net(torch.ones(1, 3)).sum().backward()
        opt.step()
        return save_checkpoint(
            path,
            kind="finetune",
            step=2,
            models={"generator": net},
            model_args={"generator": {"network": "generator", "params": {}}},
            optimizers={"generator": opt},
            config={"steps": 4},
            actor_id="jdoe",
            extra={"loss": [1.0, 0.5]},
        )
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


def _make_landmarks(folder: Path) -> None:
    from pipeline.landmarks.sidecar import save_landmarks

    save_landmarks(folder / "landmarks.npz", valid_landmarks())


def check_landmarks(lm: Any) -> None:
    from pipeline.landmarks.sidecar import Landmarks

    expect(isinstance(lm, Landmarks), f"got {type(lm).__name__}")
    expect(isinstance(lm.crop_size, int), f"crop_size {lm.crop_size!r}")
    expect(all(isinstance(v, int) for g in lm.gaps for v in g), f"gaps {lm.gaps!r}")


def _read_landmarks(folder: Path) -> None:
    from pipeline.landmarks.sidecar import load_landmarks

    check_landmarks(load_landmarks(folder / "landmarks.npz"))


def _make_chunk(folder: Path) -> None:
    from pipeline.tracking.chunks import save_chunk

    save_chunk(folder / "track.npz", valid_chunk())


def _read_chunk(folder: Path) -> None:
    from pipeline.tracking.chunks import load_chunk

    load_chunk(folder / "track.npz")


def _make_refs(folder: Path) -> None:
    from pipeline.references.store import save_references

    save_references(folder / "refs.npz", valid_references())


def check_references(refs: Any) -> None:
    """``crops`` K×S×S×3 uint8, ``points`` K×68×2 float32, K ``sources`` (module docstring)."""
    k = len(refs.sources)
    shape = np.shape(refs.crops)
    expect(
        len(shape) == 4 and shape[0] == k and shape[1] == shape[2] and shape[3] == 3,
        f"crops {shape} for {k} sources",
    )
    expect(refs.crops.dtype == np.uint8, f"crops dtype {refs.crops.dtype}")
    expect(np.shape(refs.points) == (k, 68, 2), f"points {np.shape(refs.points)}")
    expect(np.issubdtype(refs.points.dtype, np.floating), f"points dtype {refs.points.dtype}")


def _read_refs(folder: Path) -> None:
    from pipeline.references.store import load_references

    check_references(load_references(folder / "refs.npz"))


def _make_faces(folder: Path) -> None:
    from pipeline.inference.faces import save_faces

    save_faces(folder / "faces.npz", valid_faces())


def check_faces(faces: Any) -> None:
    n = len(faces.frames)
    expect(np.ndim(faces.frames) == 1, f"frames {np.shape(faces.frames)}")
    fs = np.shape(faces.faces)
    expect(len(fs) == 4 and fs[0] == n and fs[3] == 3, f"faces {fs} for {n} frames")
    expect(np.shape(faces.points) == (n, 68, 2), f"points {np.shape(faces.points)}")
    expect(np.shape(faces.inverse) == (n, 2, 3), f"inverse {np.shape(faces.inverse)}")
    expect(np.shape(faces.valid) == (n,), f"valid {np.shape(faces.valid)}")
    for name in ("frames", "faces", "points", "inverse", "valid"):
        kind = getattr(faces, name).dtype.kind
        expect(kind in "biuf", f"{name} dtype {getattr(faces, name).dtype}")


def _read_faces(folder: Path) -> None:
    from pipeline.inference.faces import load_faces

    check_faces(load_faces(folder / "faces.npz"))


def _make_golden(folder: Path) -> None:
    from engines.parity import save_golden

    save_golden(folder / "model.golden.npz", *valid_golden())


def _read_golden(folder: Path) -> None:
    from engines.parity import load_golden

    ins, outs = load_golden(folder / "model.golden.npz")
    expect(isinstance(ins, dict) and isinstance(outs, dict), "golden is not two dicts")


def _make_checkpoint(folder: Path) -> None:
    import torch

    # torch.save names the archive's root folder after the file it writes, which for
    # save_checkpoint is a randomly named temporary: save the same blob again under a fixed name
    # so that a case's bytes depend only on its seed.
    save_tiny_checkpoint(folder / "written.pt")
    blob = torch.load(folder / "written.pt", weights_only=True)
    (folder / "written.pt").unlink()
    torch.save(blob, folder / "checkpoint.pt")


def _read_checkpoint(folder: Path) -> None:
    from pipeline.models.checkpoint import SCHEMA, load_checkpoint

    blob = load_checkpoint(folder / "checkpoint.pt")
    expect(isinstance(blob, dict) and blob.get("schema") == SCHEMA, "not a checkpoint dict")


def valid_plate_json() -> dict[str, Any]:
    from pipeline.io.plate_cache import PLATE_SCHEMA

    return {
        "schema": PLATE_SCHEMA,
        "width": W,
        "height": H,
        "frames": "1001-1004",
        "fps": "24000/1001",
        "timecode": "01:00:00:00",
        "source": "/plates/sh010.mov",
        "source_colorspace": "sRGB Encoded Rec.709 (sRGB)",
        "working_space": "ACEScg",
    }


def _make_plate_json(folder: Path) -> None:
    (folder / "plate.json").write_text(json.dumps(valid_plate_json(), indent=2))


def check_cached_plate(plate: Any) -> None:
    from pipeline.frames import FrameRange

    expect(isinstance(plate.width, int) and isinstance(plate.height, int), "size not int")
    expect(isinstance(plate.frames, FrameRange), f"frames {plate.frames!r}")
    expect(isinstance(plate.fps, Fraction) and plate.fps > 0, f"fps {plate.fps!r}")
    for name in ("source", "source_colorspace", "working_space"):
        expect(isinstance(getattr(plate, name), str), f"{name} {getattr(plate, name)!r}")
    expect(plate.timecode is None or isinstance(plate.timecode, str), f"tc {plate.timecode!r}")


def _read_plate_json(folder: Path) -> None:
    from pipeline.io.plate_cache import load_cached_plate

    check_cached_plate(load_cached_plate(folder))


def valid_manifest() -> dict[str, Any]:
    from pipeline.workspace import StageManifest

    return StageManifest(
        stage="track",
        key="0123456789abcdef",
        shot="sh010",
        config_digest="c" * 64,
        stage_version=1,
        inputs={"plate": "d" * 64},
        frame_range="1001-1004",
        outputs={"landmarks.npz": "e" * 64},
        extra={"frames": 4},
        started=1.0,
        finished=2.0,
    ).to_json()


def _make_manifest(folder: Path) -> None:
    (folder / "landmarks.npz").write_bytes(b"x")
    (folder / "_manifest.json").write_text(json.dumps(valid_manifest(), indent=2))


def _read_manifest(folder: Path) -> None:
    from pipeline.workspace import manifest_matches, read_manifest

    m = read_manifest(folder)
    expect(m is None or isinstance(m, dict), f"manifest is {type(m).__name__}")
    for verify in (False, True):
        ok = manifest_matches(folder, "0123456789abcdef", "c" * 64, verify_hashes=verify)
        expect(isinstance(ok, bool), f"manifest_matches gave {ok!r}")


ENGINE_KEY = "cpu-smcpu-ort-fp32-0123"
ENGINE_PARTS = {"model_sha256": "a" * 64, "precision": "fp32", "profile_shapes": {}}


def _make_engine_meta(folder: Path) -> None:
    from engines.cache import CACHE_SCHEMA, META_NAME, PLAN_NAME
    from pipeline.hashing import sha256_file

    (folder / PLAN_NAME).write_bytes(b"plan bytes")
    meta = {
        "schema": CACHE_SCHEMA,
        "key": ENGINE_KEY,
        "parts": ENGINE_PARTS,
        "backend": "onnxruntime",
        "plan_sha256": sha256_file(folder / PLAN_NAME),
        "psnr_db": 60.0,
        "parity_gate_db": 40.0,
        "onnx": "model.onnx",
    }
    (folder / META_NAME).write_text(json.dumps(meta, indent=2))


def _read_engine_meta(folder: Path) -> None:
    from engines.cache import _verified_entry

    got = _verified_entry(folder, ENGINE_KEY, ENGINE_PARTS, 40.0)
    expect(got is None or (isinstance(got, float) and got >= 40.0), f"figure {got!r}")


# -- YAML inputs --------------------------------------------------------------------------------


def valid_spec() -> dict[str, Any]:
    return {
        "shot": "sh010",
        "plate": {
            "path": "plates/sh010.####.exr",
            "frames": "1001-1010",
            "colorspace": "ACEScg",
            "performer": {"seed_box": [1.0, 2.0, 30.0, 40.0]},
        },
        "actor": {"id": "jdoe", "references": ["refs/a.png"], "consent": "consent.yaml"},
        "profile": "cpu-preview",
        "output": {"exr": {"compression": "piz"}, "review": {"codec": "prores_4444"}},
    }


def valid_profile() -> dict[str, Any]:
    return {
        "description": "fuzz",
        "ingest": {"working_space": "ACEScg", "sequence_fps": "24000/1001", "max_pixels": 1 << 20},
        "track": {"chunk_size": 4},
        "finetune": {"steps": 3, "batch_size": 2, "checkpoint_every": 2},
        "engine": {"backend": "torch"},
        "synth": {"chunk_size": 4, "same_person_threshold": 0.6},
        "references": {"max_references": 8},
    }


def valid_consent() -> dict[str, Any]:
    return {
        "actor": "jdoe",
        "granted_by": "Jane Doe",
        "scope": ["de-aging"],
        "expires": dt.date(2099, 12, 31),
        "reference": "contract 2026-114",
    }


def _make_yaml(name: str, data: Callable[[], dict[str, Any]]) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        (folder / name).write_text(yaml.safe_dump(data(), sort_keys=False))

    return make


def read_spec(path: Path, check_files: bool) -> Any:
    from pipeline.errors import ShotSpecError
    from pipeline.frames import MAX_PLATE_FRAMES
    from pipeline.shot.spec import NAME_RE, ShotSpec, load_shot

    try:
        spec = load_shot(path, check_files=check_files)
    except ShotSpecError as err:
        expect(bool(err.problems), "ShotSpecError without problems")
        raise
    expect(isinstance(spec, ShotSpec), f"got {type(spec).__name__}")
    expect(bool(NAME_RE.match(spec.shot)), f"shot {spec.shot!r} passed")
    expect(bool(NAME_RE.match(spec.actor_id)), f"actor {spec.actor_id!r} passed")
    expect(all(isinstance(p, Path) for p in spec.references), "references not paths")
    expect(spec.frames is None or len(spec.frames) <= MAX_PLATE_FRAMES, f"frames {spec.frames}")
    return spec


def read_profile(path: Path) -> Any:
    from pipeline.shot.profile import Profile, load_profile

    prof = load_profile(str(path))
    expect(isinstance(prof, Profile), f"got {type(prof).__name__}")
    return prof


def read_consent(path: Path) -> Any:
    from pipeline.consent import ConsentRecord, load_consent

    rec = load_consent(path, "jdoe", today=dt.date(2026, 11, 24))
    expect(isinstance(rec, ConsentRecord), f"got {type(rec).__name__}")
    expect(rec.expires >= dt.date(2026, 11, 24), f"expired record {rec.expires} accepted")
    return rec


# -- the registry -------------------------------------------------------------------------------

TARGETS: dict[str, Target] = {
    "movie_prores": Target(_make_prores, lambda f: _read_plate(f / "plate.mov", bounded=True)),
    "movie_h264": Target(_make_h264, lambda f: _read_plate(f / "plate.mp4", bounded=True)),
    "exr_sequence": Target(
        _make_exr_sequence, lambda f: _read_plate(f / "plate.####.exr", bounded=False)
    ),
    "exr_layers": Target(_make_exr_layers, _read_exr_layers),
    "png_sequence": Target(
        _make_png_sequence, lambda f: _read_plate(f / "plate.####.png", bounded=True)
    ),
    "tiff_sequence": Target(
        _make_tiff_sequence, lambda f: _read_plate(f / "plate.####.tif", bounded=True)
    ),
    "bigtiff_sequence": Target(
        _make_bigtiff_sequence, lambda f: _read_plate(f / "plate.####.tif", bounded=True)
    ),
    "dpx_sequence": Target(
        _make_dpx_sequence, lambda f: _read_plate(f / "plate.####.dpx", bounded=True)
    ),
    "still_jpeg": Target(_make_still("jpg"), _read_still("jpg")),
    "still_png": Target(_make_still("png"), _read_still("png")),
    "still_tiff": Target(_make_still("tif"), _read_still("tif")),
    "landmarks_npz": Target(_make_landmarks, _read_landmarks),
    "track_chunk_npz": Target(_make_chunk, _read_chunk),
    "refs_npz": Target(_make_refs, _read_refs),
    "faces_npz": Target(_make_faces, _read_faces),
    "golden_npz": Target(_make_golden, _read_golden),
    "checkpoint_pt": Target(_make_checkpoint, _read_checkpoint),
    "plate_json": Target(_make_plate_json, _read_plate_json),
    "manifest_json": Target(_make_manifest, _read_manifest),
    "engine_meta_json": Target(_make_engine_meta, _read_engine_meta),
    "shot_spec_yaml": Target(
        _make_yaml("shot.yaml", valid_spec), lambda f: read_spec(f / "shot.yaml", False)
    ),
    "profile_yaml": Target(
        _make_yaml("profile.yaml", valid_profile), lambda f: read_profile(f / "profile.yaml")
    ),
    "consent_yaml": Target(
        _make_yaml("consent.yaml", valid_consent), lambda f: read_consent(f / "consent.yaml")
    ),
}


def _expected_error(name: str) -> type[LikenessError]:
    from pipeline.errors import (
        CheckpointError,
        ConfigError,
        ConsentError,
        DecodeError,
        EngineBuildError,
        SchemaError,
        ShotSpecError,
    )

    return {
        "landmarks_npz": SchemaError,
        "track_chunk_npz": SchemaError,
        "refs_npz": SchemaError,
        "faces_npz": SchemaError,
        "golden_npz": EngineBuildError,
        "checkpoint_pt": CheckpointError,
        "plate_json": DecodeError,
        "shot_spec_yaml": ShotSpecError,
        "profile_yaml": ConfigError,
        "consent_yaml": ConsentError,
    }.get(name, DecodeError)


@cache
def seed_files(name: str) -> dict[str, bytes]:
    """The valid seed files of a target, made once per process: ``{file name: bytes}``."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        TARGETS[name].make(folder)
        return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# -- the worker ---------------------------------------------------------------------------------


def classify(name: str, folder: Path) -> dict[str, str]:
    """Read one case; the answer's ``kind`` is ok, named, unnamed or contract."""
    try:
        TARGETS[name].read(folder)
    except ContractViolation as exc:
        return {"kind": "contract", "detail": str(exc)}
    except LikenessError as exc:
        want = _expected_error(name)
        if not isinstance(exc, want):
            return {
                "kind": "contract",
                "detail": f"{type(exc).__name__} where {want.__name__} is documented: {exc}",
            }
        return {"kind": "named", "detail": f"{type(exc).__name__}: {str(exc)[:200]}"}
    except BaseException as exc:  # noqa: BLE001 - the point is to report anything else
        tb = "".join(traceback.format_exception(exc)[-6:])
        return {
            "kind": "unnamed",
            "detail": f"{type(exc).__name__}: {exc}\n{tb}"[:3000],
            "where": _library_frame(exc),
        }
    return {"kind": "ok"}


def _library_frame(exc: BaseException) -> str:
    """``path:function`` of the innermost traceback frame in the library's packages."""
    root = Path(__file__).resolve().parents[2]
    where = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        path = Path(frame.filename)
        if path.is_relative_to(root) and path.relative_to(root).parts[0] in _LIBRARY:
            where = f"{path.relative_to(root).as_posix()}:{frame.name}"
    return where


_LIBRARY = ("pipeline", "engines", "tasks", "farm")


def _selftest(kind: str) -> Callable[[Path], None]:
    """Readers that misbehave on purpose, to prove the harness catches each failure."""

    def read(folder: Path) -> None:
        import signal
        import time

        if kind == "crash":
            os.kill(os.getpid(), signal.SIGSEGV)
        if kind == "hang":
            time.sleep(3600)
        if kind == "unnamed":
            raise KeyError("selftest")
        raise ContractViolation("selftest")

    return read


def main(argv: list[str]) -> None:
    import resource

    mem_limit = int(argv[0]) if argv else 6 << 30
    resource.setrlimit(resource.RLIMIT_AS, (mem_limit, mem_limit))
    for kind in ("crash", "hang", "unnamed", "contract"):
        TARGETS[f"_selftest_{kind}"] = Target(lambda f: None, _selftest(kind))
    # Answers go to a private copy of stdout; decoders that print land on stderr.
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    answers.write("ready\n")
    for line in sys.stdin:
        req = json.loads(line)
        answers.write(json.dumps(classify(req["target"], Path(req["folder"]))) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
