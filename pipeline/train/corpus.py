"""Prepare a meta-training corpus: VoxCeleb-like videos → aligned crops + tracked landmarks.

Input: ``CORPUS/identity/video/`` holding either image frames (``*.png``/``*.jpg``, in name
order) or one or more movie files (each movie is read whole). Landmarks come from the tracking
stage's library (keyframe detection, tracking, smoothing), so the base model trains on the same
kind of landmarks it is driven with in production. Each tracked frame is aligned to the canonical
template at the model's image size.

Output, the layout :func:`pipeline.train.episodes.build_corpus_index` reads:
``OUT/identity/video/frames/000000.png`` and ``OUT/identity/video/landmarks.npz`` (``points``:
F×68×2 float32 crop pixels). A prepared video is skipped on a rerun (its ``landmarks.npz`` is
written last, atomically), so a killed preparation resumes where it stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline.atomic import atomic_dir, write_npz
from pipeline.errors import DecodeError, NoFaceError
from pipeline.io import open_plate
from pipeline.io.movie import MOVIE_SUFFIXES
from pipeline.references.prepare import load_still
from pipeline.tracking.merge import merge_chunks
from pipeline.tracking.tracker import track_chunk
from pipeline.train.episodes import build_corpus_index

log = logging.getLogger("likeness")

_STILLS = (".png", ".jpg", ".jpeg")


def _video_frames(folder: Path, max_frames: int) -> Iterator[np.ndarray]:
    """Frames of one corpus video. Yields: H×W×3 uint8 display sRGB."""

    stills = sorted(p for p in folder.iterdir() if p.suffix.lower() in _STILLS)
    movies = sorted(p for p in folder.iterdir() if p.suffix.lower() in MOVIE_SUFFIXES)
    n = 0
    for p in stills:
        if n >= max_frames:
            return
        yield load_still(p, 8192 * 8192)
        n += 1
    for m in movies:
        with open_plate(m) as reader:
            for _, img in reader.read():
                if n >= max_frames:
                    return
                yield (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
                n += 1


def prepare_video(src: Path, dst: Path, size: int, track_cfg: Any, max_frames: int) -> int:
    """Track and align one video into ``dst``. Returns the number of frames kept.

    Raises:
        NoFaceError: no frame of the video shows a trackable face.
    """

    frames = list(_video_frames(src, max_frames))
    if not frames:
        raise DecodeError(
            f"{src} holds no frames or movies", "put *.png/*.jpg frames or a movie file in it"
        )
    h, w = frames[0].shape[:2]
    chunk = track_chunk(((1 + i, f) for i, f in enumerate(frames)), track_cfg, None)
    lm = merge_chunks([chunk], track_cfg, (w, h))
    keep = np.flatnonzero(lm.tracked)
    if not len(keep):
        raise NoFaceError(f"no face tracked in {src}", "drop the video from the corpus")
    s = size / float(lm.crop_size)
    points = []
    with atomic_dir(dst / "frames") as tmp:
        for j, i in enumerate(keep):
            m = lm.transform[i] * s  # image → crop at the model's size
            crop = cv2.warpAffine(
                frames[i], m, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE
            )
            cv2.imwrite(str(tmp / f"{j:06d}.png"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
            points.append(lm.points[i] @ m[:, :2].T + m[:, 2])
    write_npz(dst / "landmarks.npz", points=np.asarray(points, np.float32))
    return len(keep)


def prepare_corpus(
    src: Path, out: Path, size: int, track_cfg: Any, max_frames: int = 300
) -> dict[str, Any]:
    """Prepare every ``identity/video`` under ``src`` into ``out`` and write ``out/index.json``.

    Videos already prepared are skipped; videos with no trackable face are skipped with a
    warning and listed in the result.

    Raises:
        CorpusError: nothing usable was found.
    """

    done, skipped = 0, []
    for vdir in sorted(p for p in src.glob("*/*") if p.is_dir()):
        dst = out / vdir.parent.name / vdir.name
        if (dst / "landmarks.npz").is_file():
            done += 1
            continue
        try:
            n = prepare_video(vdir, dst, size, track_cfg, max_frames)
        except (NoFaceError, DecodeError) as exc:
            log.warning("corpus: skipping %s: %s", vdir, exc.message)
            skipped.append(str(vdir.relative_to(src)))
            continue
        log.info("corpus: %s/%s: %d frames", vdir.parent.name, vdir.name, n)
        done += 1
    index = build_corpus_index(out)
    return {
        "videos": done,
        "skipped": skipped,
        "index": str(out / "index.json"),
        "entries": len(index["videos"]),
    }
