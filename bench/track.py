"""Benchmark face tracking on one CPU core: ``track_chunk`` against a bare per-frame loop.

Usage::

    python bench/track.py [MEDIA...] [--frames N] [--json OUT]

Defaults to ``../shared/media/videos/*.mp4`` plus a 1080p plate made from the first 512² clip
(upscaled to 1080² and centred on a 1920×1080 canvas). For each clip, the same decoded frames go
through:

- ``track_chunk`` in chunks of ``chunk_size`` frames with keyframes every 10 frames (what a farm
  task runs, per-chunk identity descriptor included);
- a bare loop: HOG detector + 68-point shape predictor on every frame, with the same detector
  downscale (``detect_max_side``), i.e. ``DlibBackend.detect`` per frame.

Each loop runs ``--repeat`` times, interleaved, and the best run counts (the machine is shared).
Decoding and the one-off model loading (a warm-up before the first clip) are not timed. Everything runs on one thread (OMP, OpenCV, torch). The last line prints
the headline figures.
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"

import argparse  # noqa: E402
import datetime  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.landmarks import get_backend  # noqa: E402
from pipeline.stages.track import TrackConfig  # noqa: E402
from pipeline.tracking.tracker import track_chunk  # noqa: E402

SHARED_MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"
PLATE_1080 = "plate_1080p"


def decode(path: Path, limit: int) -> np.ndarray:
    """First ``limit`` frames of a movie: n×H×W×3 uint8 display sRGB."""
    import av

    out = []
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            out.append(frame.to_ndarray(format="rgb24"))
            if len(out) >= limit:
                break
    return np.stack(out)


def plate_1080(frames: np.ndarray) -> np.ndarray:
    """Upscale square frames to 1080² and centre them on a grey 1920×1080 canvas."""
    out = np.full((len(frames), 1080, 1920, 3), 60, np.uint8)
    for i, f in enumerate(frames):
        out[i, :, 420:1500] = cv2.resize(f, (1080, 1080), interpolation=cv2.INTER_CUBIC)
    return out


def bench_clip(name: str, frames: np.ndarray, cfg: TrackConfig, repeat: int) -> dict:
    """Time both loops ``repeat`` times, interleaved, and keep each one's best run."""
    n = len(frames)
    backend = get_backend("dlib", detect_max_side=cfg.detect_max_side, upsample=cfg.detect_upsample)
    t_track = t_bare = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        tracked = keyframes = 0
        for s in range(0, n, cfg.chunk_size):
            chunk = track_chunk(
                ((i, frames[i]) for i in range(s, min(n, s + cfg.chunk_size))), cfg, None
            )
            tracked += int(np.isfinite(chunk.points).all((1, 2)).sum())
            keyframes += int(chunk.keyframe.sum())
        t_track = min(t_track, time.perf_counter() - t0)
        t0 = time.perf_counter()
        found = sum(1 for f in frames if backend.detect(f))
        t_bare = min(t_bare, time.perf_counter() - t0)
    h, w = frames.shape[1:3]
    row = {
        "media": name,
        "size": f"{w}x{h}",
        "frames": n,
        "track_fps": n / t_track,
        "bare_fps": n / t_bare,
        "ratio": t_bare / t_track,
        "tracked_frames": tracked,
        "keyframes": keyframes,
        "bare_found": found,
    }
    print(
        f"{name:34s} {w:>4}x{h:<4} {n:4d} fr  track {row['track_fps']:6.1f} fps  "
        f"bare {row['bare_fps']:6.1f} fps  ×{row['ratio']:4.1f}  "
        f"tracked {tracked}/{n} (keyframes {keyframes}), bare found {found}/{n}",
        flush=True,
    )
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("media", nargs="*", type=Path, help="movies (default: ../shared/media/videos)")
    ap.add_argument("--frames", type=int, default=100, help="frames per clip (default 100)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per clip, best kept (default 3)")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args(argv)

    cv2.setNumThreads(1)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass

    media = args.media or sorted((SHARED_MEDIA / "videos").glob("*.mp4"))
    if not media:
        print(f"no media given and none found in {SHARED_MEDIA / 'videos'}", file=sys.stderr)
        return 2
    cfg = TrackConfig(keyframe_interval=10)
    rows = []
    source_1080 = None
    for k, path in enumerate(media):
        frames = decode(path, args.frames)
        if k == 0:
            # Warm-up: model files load once per process, not per clip.
            track_chunk(((i, frames[i]) for i in range(2)), cfg, None)
        rows.append(bench_clip(path.name, frames, cfg, args.repeat))
        if source_1080 is None and frames.shape[1] == frames.shape[2] == 512:
            source_1080 = (path.name, frames)
    if source_1080 is None and not args.media:
        source_1080 = (media[0].name, decode(media[0], args.frames))
    if source_1080 is not None:
        name, frames = source_1080
        rows.append(bench_clip(f"{PLATE_1080} ({name})", plate_1080(frames), cfg, args.repeat))

    result = {
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "threads": 1,
        "keyframe_interval": cfg.keyframe_interval,
        "chunk_size": cfg.chunk_size,
        "repeat": args.repeat,
        "detect_max_side": cfg.detect_max_side,
        "rows": rows,
    }
    if args.json:
        from pipeline.atomic import write_json

        write_json(args.json, result)
    head = [r for r in rows if r["media"].startswith(PLATE_1080)] or rows
    small = [r for r in rows if not r["media"].startswith(PLATE_1080)]
    h = head[-1]
    print(
        f"HEADLINE 1080p: track {h['track_fps']:.1f} fps (goal 25), bare {h['bare_fps']:.1f} fps, "
        f"ratio ×{h['ratio']:.1f} (goal 3); clips: median track "
        f"{np.median([r['track_fps'] for r in small] or [0]):.1f} fps, median ratio "
        f"×{np.median([r['ratio'] for r in small] or [0]):.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
