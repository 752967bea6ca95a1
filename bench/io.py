"""Plate I/O throughput against the bare library loops, measured in the same run.

(a) Ingest: ``open_plate(clip).read()`` (H×W×3 float32 out) against a bare PyAV loop
    ``for f in container.decode(video=0): f.to_ndarray(format="rgb24")`` on the same file.
(b) EXR write: ``write_exr`` of a sequence inside an ``atomic_dir``, as ingest and delivery write
    frames (float32 in, half out, one flush and rename for the folder), against a bare
    ``OpenEXR.File(header, {"RGB": half}).write(path)`` loop on the same frames (zip), plus a
    synthetic 1080p frame.

Each measurement is the best of ``--repeats`` runs, the two sides interleaved so that load from
other processes hits both alike. The last line prints the headline ratios (goal: ≥ 0.8).

Usage:
    python bench/io.py [MEDIA...] [--json OUT] [--repeats 3]

With no MEDIA, the clips in ``../shared/media/videos/*.mp4`` (beside the repository) are used.
Photos (``.jpg``, ``.png``) given as MEDIA join the EXR write frames.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np
import OpenEXR

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.atomic import atomic_dir  # noqa: E402
from pipeline.io import open_plate, write_exr  # noqa: E402

SHARED_MEDIA = ROOT.parent / "shared" / "media"
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff"}


def best_of(fn: Callable[[], int], repeats: int) -> tuple[float, int]:
    """Run ``fn`` (returns a count) ``repeats`` times. Returns (best seconds, count)."""
    best, count = math.inf, 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        count = fn()
        best = min(best, time.perf_counter() - t0)
    return best, count


def interleaved(
    a: Callable[[], int], b: Callable[[], int], repeats: int
) -> tuple[tuple[float, int], tuple[float, int]]:
    """Best-of for two functions, alternating a, b, a, b, ..."""
    ra, rb = (math.inf, 0), (math.inf, 0)
    for _ in range(repeats):
        ta = best_of(a, 1)
        tb = best_of(b, 1)
        ra = min(ra, ta)
        rb = min(rb, tb)
    return ra, rb


def bare_decode(path: Path) -> int:
    n = 0
    with av.open(str(path)) as container:
        for f in container.decode(video=0):
            f.to_ndarray(format="rgb24")
            n += 1
    return n


def ours_decode(path: Path) -> int:
    n = 0
    with open_plate(path) as plate:
        for _ in plate.read():
            n += 1
    return n


def bench_ingest(clips: list[Path], repeats: int) -> list[dict]:
    rows = []
    for clip in clips:
        ours_decode(clip)  # warm the page cache and codec init for both sides
        (tb, nb), (to, no) = interleaved(
            lambda c=clip: bare_decode(c), lambda c=clip: ours_decode(c), repeats
        )
        if nb != no:
            raise SystemExit(f"{clip}: bare loop decoded {nb} frames, open_plate {no}")
        with open_plate(clip) as plate:
            info = plate.info
        rows.append(
            {
                "media": clip.name,
                "size": f"{info.width}x{info.height}",
                "codec": info.codec,
                "frames": nb,
                "bare_fps": nb / tb,
                "ours_fps": no / to,
                "ratio": (no / to) / (nb / tb),
            }
        )
    return rows


def exr_frames(
    clips: list[Path], photos: list[Path], per_clip: int
) -> list[tuple[str, np.ndarray]]:
    """Frames for the EXR write bench: H×W×3 float32 (display codes 0..1; content is irrelevant)."""
    frames: list[tuple[str, np.ndarray]] = []
    for clip in clips:
        with open_plate(clip) as plate:
            for i, (_, arr) in enumerate(plate.read()):
                if i >= per_clip:
                    break
                frames.append((clip.name, arr))
    for photo in photos:
        bgr = cv2.imread(str(photo), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SystemExit(f"cannot read photo {photo}")
        frames.append((photo.name, bgr[..., ::-1].astype(np.float32) / 255.0))
    y, x = np.mgrid[0:1080, 0:1920].astype(np.float32)
    synth = np.stack([x / 1920, y / 1080, (x + y) / 3000], axis=-1).astype(np.float32)
    synth += np.random.default_rng(0).normal(0.0, 0.01, synth.shape).astype(np.float32)  # grain
    frames.append(("synthetic-1080p", synth))
    return frames


def bench_exr(frames: list[tuple[str, np.ndarray]], repeats: int, folder: Path) -> list[dict]:
    groups: dict[str, list[np.ndarray]] = {}
    for name, arr in frames:
        groups.setdefault(name, []).append(arr)
    rows = []
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    for name, arrs in groups.items():
        halves = [a.astype(np.float16) for a in arrs]

        def bare(halves=halves) -> int:
            for i, h in enumerate(halves):
                OpenEXR.File(dict(header), {"RGB": h}).write(str(folder / f"bare.{i:04d}.exr"))
            return len(halves)

        def bare_durable(halves=halves) -> int:
            # What atomic_path adds, by hand: temp name, fsync, rename, fsync of the folder.
            for i, h in enumerate(halves):
                final = folder / f"durable.{i:04d}.exr"
                tmp = folder / f".durable.{i:04d}.exr.tmp"
                OpenEXR.File(dict(header), {"RGB": h}).write(str(tmp))
                fd = os.open(tmp, os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)
                os.replace(tmp, final)
                fd = os.open(folder, os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)
            return len(halves)

        # As the pipeline writes a sequence: into an atomic_dir, renamed whole at the end, with
        # one filesystem flush for the folder (timed) instead of one fsync per frame.
        def ours_f32(arrs=arrs) -> int:
            with atomic_dir(folder / "ours_seq") as d:
                for i, a in enumerate(arrs):
                    write_exr(d / f"ours.{i:04d}.exr", {"": a}, compression="zip")
            return len(arrs)

        def ours_f16(halves=halves) -> int:
            with atomic_dir(folder / "ours16_seq") as d:
                for i, h in enumerate(halves):
                    write_exr(d / f"ours16.{i:04d}.exr", {"": h}, compression="zip")
            return len(halves)

        # A lone file (no enclosing atomic_dir): fsync of the file and its folder per frame.
        def ours_standalone(arrs=arrs) -> int:
            for i, a in enumerate(arrs):
                write_exr(folder / f"ours.{i:04d}.exr", {"": a}, compression="zip")
            return len(arrs)

        bare()  # warm-up
        (tb, n), (to, _) = interleaved(bare, ours_f32, repeats)
        (tb2, _), (to16, _) = interleaved(bare, ours_f16, repeats)
        (td, _), (to2, _) = interleaved(bare_durable, ours_standalone, repeats)
        tb = min(tb, tb2)
        h, w = arrs[0].shape[:2]
        rows.append(
            {
                "media": name,
                "size": f"{w}x{h}",
                "frames": n,
                "bare_fps": n / tb,
                "ours_fps": n / to,
                "ours_half_in_fps": n / to16,
                "ratio": tb / to,
                "ratio_half_in": tb / to16,
                "bare_durable_fps": n / td,
                "ratio_vs_durable": td / to2,
            }
        )
    return rows


def geomean(values: list[float]) -> float:
    return float(math.exp(sum(math.log(v) for v in values) / len(values)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("media", nargs="*", type=Path, help="clips and photos (default: shared media)")
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--repeats", type=int, default=5, help="best-of count (default 5)")
    ap.add_argument("--exr-frames", type=int, default=4, help="frames per clip for EXR writes")
    args = ap.parse_args(argv)

    media = args.media or sorted((SHARED_MEDIA / "videos").glob("*.mp4"))
    if not media:
        ap.error(f"no media given and none found in {SHARED_MEDIA / 'videos'}")
    photos = [m for m in media if m.suffix.lower() in PHOTO_SUFFIXES]
    clips = [m for m in media if m not in photos]

    ingest = bench_ingest(clips, args.repeats)
    for r in ingest:
        print(
            f"ingest {r['media']:<36} {r['size']:>9} {r['codec']:<6} {r['frames']:>4} fr  "
            f"bare {r['bare_fps']:7.0f} fps  ours {r['ours_fps']:7.0f} fps  ratio {r['ratio']:.2f}"
        )
    tmp = Path(tempfile.mkdtemp(prefix="bench-io-"))
    try:
        exr = bench_exr(exr_frames(clips, photos, args.exr_frames), args.repeats, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for r in exr:
        print(
            f"exr    {r['media']:<36} {r['size']:>9} {r['frames']:>3} fr  "
            f"bare {r['bare_fps']:6.1f} fps  ours {r['ours_fps']:6.1f} fps (f32 in)  "
            f"ratio {r['ratio']:.2f}  (half in: {r['ratio_half_in']:.2f}; vs bare+fsync+rename: "
            f"{r['ratio_vs_durable']:.2f})"
        )

    ingest_ratio = geomean([r["ratio"] for r in ingest]) if ingest else float("nan")
    exr_ratio = geomean([r["ratio"] for r in exr])
    exr_1080 = next(r["ratio"] for r in exr if r["media"] == "synthetic-1080p")
    exr_durable = geomean([r["ratio_vs_durable"] for r in exr])
    figures = {
        "command": "python bench/io.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()} {platform.processor() or ''} python {platform.python_version()}",
        "av": av.__version__,
        "ingest": ingest,
        "exr_write": exr,
        "headline": {
            "ingest_ratio_geomean": ingest_ratio,
            "exr_write_ratio_geomean": exr_ratio,
            "exr_write_ratio_1080p": exr_1080,
            "exr_write_ratio_vs_durable_geomean": exr_durable,
        },
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    ok = ingest_ratio >= 0.8 and exr_ratio >= 0.8
    print(
        f"HEADLINE ingest {ingest_ratio:.2f}x bare PyAV, EXR write {exr_ratio:.2f}x bare OpenEXR "
        f"(1080p {exr_1080:.2f}x; {exr_durable:.2f}x bare+fsync+rename); "
        f"goal >=0.8: {'met' if ok else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
