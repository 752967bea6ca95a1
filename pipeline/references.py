"""Prepare an actor's references: find the face in each still (paintings included) or clip,
align it to the canonical template at the profile's crop size, and keep its landmarks.

The result, ``refs.npz`` (schema ``likeness.refs/1``), is what fine-tuning and the warp path
read. Reference files are only read; a file that is not an image, or shows no face, is a named
error naming the file, never silently dropped.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.atomic import atomic_dir, atomic_path, write_npz
from pipeline.errors import DecodeError, NoFaceError, SchemaError
from pipeline.npz import read_sidecar
from pipeline.shotspec import MOVIE_SUFFIXES

REFS_SCHEMA = "likeness.refs/1"
REFS_FILE = "refs.npz"


@dataclass(frozen=True)
class ReferencesConfig:
    """The ``references:`` section of a profile."""

    frames_per_clip: int = 8  # evenly spaced frames taken from each reference clip
    max_references: int = 32
    max_pixels: int = 8192 * 8192
    upsample: int = 1  # dlib HOG pyramid upsampling for stills (small faces in paintings)

    def validate(self) -> list[tuple[str, str]]:
        out = []
        if not 1 <= self.max_references <= 32:
            out.append(("max_references", f"got {self.max_references}, expected 1..32 (K)"))
        if self.frames_per_clip < 1:
            out.append(("frames_per_clip", f"got {self.frames_per_clip}, expected at least 1"))
        return out


@dataclass(frozen=True)
class References:
    """Aligned references of one actor.

    Attributes:
        crops: K×S×S×3 uint8, display sRGB, aligned to the canonical template.
        points: K×68×2 float32 landmarks in crop pixels.
        sources: K strings, ``file`` or ``file@frame`` for clip frames.
    """

    crops: np.ndarray
    points: np.ndarray
    sources: tuple[str, ...]

    @property
    def size(self) -> int:
        return int(self.crops.shape[1])


def load_still(path: Path, max_pixels: int) -> np.ndarray:
    """Read a still image. Returns: H×W×3 uint8, display sRGB as encoded in the file.

    Raises:
        DecodeError: not an image, corrupt, or larger than ``max_pixels`` (checked on the header
            before decoding).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h > max_pixels:
                raise DecodeError(
                    f"reference {path} claims {w}×{h} pixels, over the limit of {max_pixels}",
                    "downscale the reference; faces need only a few hundred pixels",
                )
            im.load()
            rgb = im.convert("RGB")
            arr = np.asarray(rgb, dtype=np.uint8)
    # Pillow reports some damaged files as SyntaxError ("broken PNG file"), EOFError or
    # struct.error rather than OSError.
    except (
        UnidentifiedImageError,
        OSError,
        ValueError,
        SyntaxError,
        EOFError,
        struct.error,
        Image.DecompressionBombError,
    ) as exc:
        raise DecodeError(
            f"reference {path} is not a readable image ({type(exc).__name__}: {exc})",
            "give JPEG, PNG or TIFF stills, or movie clips, in actor.references",
        ) from exc
    return np.ascontiguousarray(arr)


def _clip_frames(path: Path, n: int, max_pixels: int) -> list[tuple[str, np.ndarray]]:
    from pipeline.io import open_plate

    with open_plate(path, max_pixels=max_pixels) as reader:
        frames = reader.info.frames
        picks = set(
            np.linspace(frames.first, frames.last, num=min(n, len(frames)))
            .round()
            .astype(int)
            .tolist()
        )
        out = []
        for number, img in reader.read(frames):
            if number in picks:
                out.append(
                    (f"{path.name}@{number}", (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))
                )
    return out


def prepare_references(paths: list[Path], cfg: ReferencesConfig, size: int) -> References:
    """Detect, align and stack an actor's references.

    Args:
        paths: stills and clips, as listed in the shot spec (already expanded).
        cfg: the references config.
        size: the crop side, the fine-tuned model's image size.

    Raises:
        DecodeError: a reference that is not an image or clip.
        NoFaceError: references in which no face is found (all are listed).
    """
    import dlib

    from pipeline.align import align_image
    from pipeline.landmarks import get_backend

    backend = get_backend("dlib", detect_max_side=2048, upsample=cfg.upsample)
    detector = dlib.get_frontal_face_detector()
    images: list[tuple[str, np.ndarray]] = []
    for p in paths:
        if p.suffix.lower() in MOVIE_SUFFIXES:
            images.extend(_clip_frames(p, cfg.frames_per_clip, cfg.max_pixels))
        else:
            images.append((p.name, load_still(p, cfg.max_pixels)))
    crops, points, sources, faceless = [], [], [], []
    for name, img in images[: cfg.max_references]:
        dets = backend.detect(img)
        if not dets:
            # Paintings and small faces: one more try with dlib's upsampled HOG pyramid.
            rects = detector(img, 2)
            if rects:
                r = max(rects, key=lambda r: r.area())
                dets = [backend.fit(img, (r.left(), r.top(), r.right(), r.bottom()))]
        if not dets:
            faceless.append(name)
            continue
        det = max(dets, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
        face = align_image(img, det.points, size)
        crops.append(face.crop)
        points.append(face.points_in_crop.astype(np.float32))
        sources.append(name)
    if faceless:
        raise NoFaceError(
            f"no face found in {len(faceless)} reference(s): {', '.join(faceless)}",
            "remove them from actor.references, or crop them closer to the face",
        )
    return References(np.stack(crops).astype(np.uint8), np.stack(points), tuple(sources))


def save_references(path: Path, refs: References) -> Path:
    return write_npz(
        path,
        schema=np.array(REFS_SCHEMA),
        crops=refs.crops,
        points=refs.points,
        sources=np.array(refs.sources),
    )


def load_references(path: Path) -> References:
    """Read ``refs.npz`` without unpickling anything.

    Raises:
        SchemaError: unreadable or damaged file, unknown schema, missing arrays, or arrays of
            the wrong type or shape.
    """
    fix = "rerun the references stage"
    z = read_sidecar(
        path, SchemaError, "references file", fix, REFS_SCHEMA, ("crops", "points", "sources")
    )
    crops, points, sources = z["crops"], z["points"], z["sources"]
    k = len(sources) if sources.ndim == 1 and sources.dtype.kind == "U" else -1
    if (
        crops.dtype != np.uint8
        or crops.shape[:1] != (k,)
        or crops.ndim != 4
        or crops.shape[1] != crops.shape[2]
        or crops.shape[3] != 3
        or points.shape != (k, 68, 2)
        or points.dtype.kind != "f"
    ):
        raise SchemaError(
            f"{path}: malformed references: crops {crops.dtype} {crops.shape}, points "
            f"{points.dtype} {points.shape}, sources {sources.dtype} {sources.shape} (want K×S×S×3 "
            "uint8, K×68×2 float, K strings)",
            fix,
        )
    return References(crops, points, tuple(str(s) for s in sources))


def run_references(
    paths: list[Path], cfg: ReferencesConfig, size: int, out_dir: Path
) -> dict[str, Any]:
    """The references stage: ``refs.npz`` and a contact sheet, in a folder that appears whole."""
    import cv2

    refs = prepare_references(paths, cfg, size)
    with atomic_dir(out_dir) as tmp:
        save_references(tmp / REFS_FILE, refs)
        sheet = np.concatenate(list(refs.crops), axis=1)
        with atomic_path(tmp / "references.png") as p:
            cv2.imwrite(str(p), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return {"count": len(refs.sources), "sources": list(refs.sources), "crop_size": refs.size}
