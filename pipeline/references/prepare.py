"""Reading an actor's reference stills and clips, finding the face in each and aligning it."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import dlib
import numpy as np
from PIL import Image, UnidentifiedImageError

from pipeline.align import align_image
from pipeline.errors import DecodeError, NoFaceError
from pipeline.io import open_plate
from pipeline.io.movie import MOVIE_SUFFIXES
from pipeline.landmarks import get_backend
from pipeline.landmarks.base import Detection
from pipeline.references.store import References


def load_still(path: Path, max_pixels: int) -> np.ndarray:
    """Read a still image. Returns: H×W×3 uint8, display sRGB as encoded in the file.

    Raises:
        DecodeError: not an image, corrupt, or larger than ``max_pixels`` (checked on the header
            before decoding).
    """

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


@dataclass(frozen=True)
class ReferencesParams:
    """How references are read and aligned.

    Attributes:
        frames_per_clip: evenly spaced frames taken from each reference clip.
        max_references: at most this many references (K) are kept, in the order given.
        max_pixels: the largest image read (checked on the header, before decoding).
        upsample: dlib HOG pyramid upsampling for stills (small faces in paintings).
        hires_max: the largest full-resolution crop kept per reference (the render's source of
            detail); below it, the largest reference's own resolution, rounded up to 32.
    """

    frames_per_clip: int = 8
    max_references: int = 32
    max_pixels: int = 8192 * 8192
    upsample: int = 1
    hires_max: int = 1024

    def validate(self) -> list[tuple[str, str]]:
        out = []
        if not 128 <= self.hires_max <= 4096:
            out.append(("hires_max", f"got {self.hires_max}, expected 128..4096 pixels"))
        if not 1 <= self.max_references <= 32:
            out.append(("max_references", f"got {self.max_references}, expected 1..32 (K)"))
        if self.frames_per_clip < 1:
            out.append(("frames_per_clip", f"got {self.frames_per_clip}, expected at least 1"))
        return out


def read_reference(path: Path, cfg: ReferencesParams) -> list[tuple[str, np.ndarray]]:
    """The images a reference gives: a still, or ``frames_per_clip`` evenly spaced frames of a
    clip; each ``(name, H×W×3 uint8 display sRGB)``, named ``file`` or ``file@frame``.

    Raises:
        DecodeError: not an image or clip, unreadable, or over ``max_pixels``.
    """
    if path.suffix.lower() in MOVIE_SUFFIXES:
        return _clip_frames(path, cfg.frames_per_clip, cfg.max_pixels)
    return [(path.name, load_still(path, cfg.max_pixels))]


class FaceFinder:
    """dlib's faces in a reference: the HOG detector, then, for paintings and small faces, one
    more try with its upsampled pyramid (the largest face it finds there)."""

    def __init__(self, upsample: int) -> None:
        self.backend = get_backend("dlib", detect_max_side=2048, upsample=upsample)
        self.detector = dlib.get_frontal_face_detector()

    def __call__(self, img: np.ndarray) -> list[Detection]:
        """Faces in ``img`` (H×W×3 uint8 display sRGB), largest first."""
        dets = self.backend.detect(img)
        if not dets:
            rects = self.detector(img, 2)
            if rects:
                r = max(rects, key=lambda r: r.area())
                dets = [self.backend.fit(img, (r.left(), r.top(), r.right(), r.bottom()))]
        return sorted(dets, key=lambda d: -(d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))


def prepare_references(paths: list[Path], cfg: ReferencesParams, size: int) -> References:
    """Detect, align and stack an actor's references.

    Args:
        paths: stills and clips, as listed in the shot spec (already expanded).
        cfg: how they are read and aligned.
        size: the crop side, the fine-tuned network's image size.

    Raises:
        DecodeError: a reference that is not an image or clip.
        NoFaceError: references in which no face is found (all are listed).
    """
    find = FaceFinder(cfg.upsample)
    images = [im for p in paths for im in read_reference(p, cfg)]
    found, faceless = [], []
    for name, img in images[: cfg.max_references]:
        dets = find(img)
        if not dets:
            faceless.append(name)
            continue
        found.append((name, img, dets[0].points))  # the largest face
    if faceless:
        raise NoFaceError(
            f"no face found in {len(faceless)} reference(s): {', '.join(faceless)}",
            "remove them from actor.references, or crop them closer to the face",
        )
    faces = [align_image(img, pts, size) for _, img, pts in found]
    # the crop side at which each reference is 1:1: size / (crop pixels per image pixel)
    native = np.array(
        [size / np.sqrt(abs(np.linalg.det(f.transform[:, :2]))) for f in faces], np.float32
    )
    hi = int(min(cfg.hires_max, max(size, 32 * int(np.ceil(float(native.max()) / 32)))))
    hires = [align_image(img, pts, hi).crop for _, img, pts in found] if hi > size else None
    return References(
        np.stack([f.crop for f in faces]).astype(np.uint8),
        np.stack([f.points_in_crop.astype(np.float32) for f in faces]),
        tuple(name for name, _, _ in found),
        None if hires is None else np.stack(hires).astype(np.uint8),
        native,
    )
