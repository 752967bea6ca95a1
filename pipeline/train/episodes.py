"""The meta-training corpus: its index (``likeness.corpus/1``) and the episodes drawn from it.

Corpus index, a JSON file; paths are relative to the index's folder::

    {
      "schema": "likeness.corpus/1",
      "videos": [
        {"identity": "id00012",
         "video": "abc",
         "frames": ["id00012/abc/frames/000000.png", "..."],
         "landmarks": "id00012/abc/landmarks.npz"}
      ]
    }

The corpus is laid out like VoxCeleb, ``identity/video/frames/*.png`` plus
``identity/video/landmarks.npz``, whose ``points`` array is F×68×2 float32: the landmarks of the
F frames in the listed order, in the frame's pixel coordinates (from the tracking stage). Frames
are square aligned face crops of any size (resized to the network's ``image_size``).
:func:`build_corpus_index` writes the index for such a folder. Each video is one identity
column W_i of D, as in the paper.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from pipeline.atomic import write_json
from pipeline.errors import CorpusError
from pipeline.models.fusion import NEAREST, Fusion, fused_warp
from pipeline.models.rasterize import rasterize

log = logging.getLogger(__name__)

CORPUS_SCHEMA = "likeness.corpus/1"


_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclasses.dataclass(frozen=True)
class VideoEntry:
    """One corpus video: its frame files and landmarks file (absolute paths)."""

    identity: str
    video: str
    frames: tuple[Path, ...]
    landmarks: Path


def build_corpus_index(root: str | Path, out: str | Path | None = None) -> dict[str, Any]:
    """Scan ``root/identity/video/{frames/*.png, landmarks.npz}`` into a corpus index.

    Args:
        root: the corpus folder.
        out: where to write the index JSON (atomically); ``root/index.json`` by default.

    Returns:
        the index (paths relative to ``root``).

    Raises:
        CorpusError: no usable video found.
    """
    root = Path(root)
    videos = []
    for lm in sorted(root.glob("*/*/landmarks.npz")):
        vdir = lm.parent
        frames = sorted(
            p for p in (vdir / "frames").iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES
        )
        if not frames:
            continue
        videos.append(
            {
                "identity": vdir.parent.name,
                "video": vdir.name,
                "frames": [str(p.relative_to(root)) for p in frames],
                "landmarks": str(lm.relative_to(root)),
            }
        )
    if not videos:
        raise CorpusError(
            f"no videos under {root}",
            "lay the corpus out as identity/video/frames/*.png + landmarks.npz",
        )
    index = {"schema": CORPUS_SCHEMA, "videos": videos}
    write_json(Path(out) if out else root / "index.json", index)
    return index


def read_corpus_index(path: str | Path, min_frames: int) -> list[VideoEntry]:
    """Read and check a corpus index; videos with fewer than ``min_frames`` frames are dropped.

    Raises:
        CorpusError: unreadable, wrong schema, missing files, or no video long enough.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CorpusError(f"cannot read corpus index {path}: {exc}") from exc
    if not isinstance(data, dict) or data.get("schema") != CORPUS_SCHEMA:
        raise CorpusError(
            f"{path} is not a {CORPUS_SCHEMA} index", "write one with build_corpus_index(root)"
        )
    base = path.parent
    out = []
    for i, v in enumerate(data.get("videos", [])):
        try:
            entry = VideoEntry(
                str(v["identity"]),
                str(v["video"]),
                tuple(base / f for f in v["frames"]),
                base / v["landmarks"],
            )
        except (KeyError, TypeError) as exc:
            raise CorpusError(f"{path}: videos[{i}] lacks {exc}") from exc
        if not entry.landmarks.is_file():
            raise CorpusError(f"{path}: videos[{i}]: landmarks file {entry.landmarks} is missing")
        if len(entry.frames) < min_frames:
            log.warning(
                "skipping %s/%s: %d frames < %d",
                entry.identity,
                entry.video,
                len(entry.frames),
                min_frames,
            )
            continue
        out.append(entry)
    if not out:
        raise CorpusError(
            f"{path}: no video has the {min_frames} frames an episode needs", "lower k"
        )
    return out


def _load_frame(path: Path, size: int) -> tuple[np.ndarray, float]:
    """Read a crop, resize to size → (S×S×3 float32 0..1 display sRGB, scale factor)."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise CorpusError(f"cannot read frame {path}")
    scale = size / bgr.shape[1]
    if bgr.shape[:2] != (size, size):
        bgr = cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0, scale


def sample_episodes(
    videos: list[VideoEntry],
    k: int,
    count: int,
    size: int,
    seed: int,
    step: int,
    rank: int,
    fusion: Fusion = NEAREST,
) -> dict[str, torch.Tensor]:
    """Draw ``count`` episodes of K+1 frames, deterministically from ``(seed, step, rank)``.

    The warp is the episode's ``fusion.top`` references nearest the target, warped to it and
    blended (:func:`pipeline.models.fusion.fused_warp`), as G gets it when fine-tuned and run.

    Returns:
        ``refs`` B×K×3×S×S and ``ref_lms`` B×K×3×S×S (float32 0..1 display sRGB),
        ``target``, ``target_lm``, ``warp`` B×3×S×S, ``identity`` B int64.
    """
    rng = np.random.default_rng([seed, step, rank])
    refs, ref_lms, tgts, tgt_lms, warps, ids = [], [], [], [], [], []
    for _ in range(count):
        vi = int(rng.integers(len(videos)))
        v = videos[vi]
        pick = rng.choice(len(v.frames), size=k + 1, replace=False)
        with np.load(v.landmarks, allow_pickle=False) as npz:
            all_pts = npz["points"]
        imgs, pts = [], []
        for j in pick:
            img, scale = _load_frame(v.frames[j], size)
            imgs.append(img)
            pts.append(all_pts[j].astype(np.float32) * scale)
        lms = [rasterize(p, size) for p in pts]
        warps.append(fused_warp(np.stack(imgs[:k]), np.stack(pts[:k]), pts[k], fusion))
        refs.append(np.stack(imgs[:k]))
        ref_lms.append(np.stack(lms[:k]))
        tgts.append(imgs[k])
        tgt_lms.append(lms[k])
        ids.append(vi)

    def chw(a: list[np.ndarray]) -> torch.Tensor:
        x = np.stack(a)
        return torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, -3)))  # …×3×S×S

    return {
        "refs": chw(refs),
        "ref_lms": chw(ref_lms),
        "target": chw(tgts),
        "target_lm": chw(tgt_lms),
        "warp": chw(warps),
        "identity": torch.tensor(ids, dtype=torch.int64),
    }
