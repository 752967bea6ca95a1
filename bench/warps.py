"""Which warp makes the best floor and the best warp input: piecewise-affine, thin-plate spline,
and their leave-one-out blends, plain or flow-aligned.

Usage::

    python bench/warps.py [CLIP...] [--k 8] [--tests 40] [--json OUT]

Defaults to every clip in ``../shared/media/videos``. Each clip is tracked, aligned and split
exactly as ``bench/quality.py`` does (:func:`pipeline.eval.clips.load_clip`,
:func:`pipeline.eval.clips.pick_frames`), and the same held-out driving frames are scored against the
true aligned crop, five ways, with no training and no dlib scoring (a minute a clip):

- ``warp``: the issue's baseline and the quality bench's, the nearest reference warped
  piecewise-affine (``warp_baseline``);
- ``warp_tps``: the nearest reference warped by the thin-plate spline instead, the other floor the
  issue allows;
- ``fused_affine``: the references blended, piecewise-affine warps only, the blend chosen by
  leave-one-out over the references (G's warp input before the spline was added);
- ``fused_mean``: the blend and the spline weight chosen by leave-one-out, the warps averaged as
  they are (G's warp input before the flow alignment was added);
- ``fused``: G's warp input as fine-tuned now: the blend, the spline weight and the flow
  alignment (:func:`pipeline.warping.blend.blend_warps`) chosen by leave-one-out
  (:func:`pipeline.train.fusion_choice.select_fusion`). An untrained G returns it (to within 1e-3,
  ``synth_from_warp``), so it is what the learned model scores when early stopping keeps step 0.

The last line prints the headline: the mean Δ SSIM and Δ PSNR of each row against ``warp``, and
the clips where ``fused`` beats ``warp`` by the goal's 0.03 SSIM.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

MEDIA = REPO.parent / "shared" / "media" / "videos"
SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".m4v", ".mxf"}
SYSTEMS = ("warp", "warp_tps", "fused_affine", "fused_mean", "fused")


def score_clip(clip: Path, k: int, tests: int, cache: Path) -> dict:
    """Every system's mean SSIM and PSNR on one clip's driving frames, and the fusions chosen."""
    from pipeline.eval.clips import load_clip, pick_frames
    from pipeline.eval.metrics import psnr, ssim
    from pipeline.models.fusion import Fusion, fused_warp
    from pipeline.train.fusion_choice import select_fusion
    from pipeline.warping.image import warp_image
    from pipeline.warping.shapes import nearest_reference

    faces = load_clip(clip, 128, None, cache)
    ref_rows, runs = pick_frames(faces.frames, k, tests, 8, 5)
    drive = np.concatenate(runs)
    images = faces.crops[ref_rows]  # K×128×128×3 float32 display sRGB
    points = faces.points[ref_rows].astype(np.float64)  # K×68×2 crop pixels
    cfg = Fusion()
    affine, _ = select_fusion(images, points, cfg, splines=(0.0,), flows=(0.0,))
    mean, _ = select_fusion(images, points, cfg, flows=(0.0,))
    chosen, _ = select_fusion(images, points, cfg)
    rows: dict[str, dict[str, list[float]]] = {s: {"ssim": [], "psnr": []} for s in SYSTEMS}
    for i in drive:
        target, truth = faces.points[i].astype(np.float64), faces.crops[i]
        n = nearest_reference(points, target)
        out = {
            "warp": warp_image(images[n], points[n], target, 0.0),
            "warp_tps": warp_image(images[n], points[n], target, 1.0),
            "fused_affine": fused_warp(
                images, points, target, Fusion(affine.top, affine.temperature)
            ),
            "fused_mean": fused_warp(
                images, points, target, Fusion(mean.top, mean.temperature, mean.spline)
            ),
            "fused": fused_warp(images, points, target, chosen),
        }
        for name, img in out.items():
            rows[name]["ssim"].append(ssim(img, truth))
            rows[name]["psnr"].append(psnr(img, truth))
    return {
        "clip": faces.name,
        "frames": len(drive),
        "fusion_affine": [affine.top, affine.temperature, affine.spline],
        "fusion_mean": [mean.top, mean.temperature, mean.spline],
        "fusion": [chosen.top, chosen.temperature, chosen.spline, chosen.flow],
        **{name: {m: float(np.mean(v)) for m, v in r.items()} for name, r in rows.items()},
    }


def headline(results: list[dict], failed: list[dict]) -> str:
    """The last line: each system's mean Δ against ``warp``, and the clips fused wins by 0.03."""
    if not results:
        return f"HEADLINE 0 of {len(failed)} clips scored"
    parts = []
    for name in SYSTEMS[1:]:
        ds = np.mean([r[name]["ssim"] - r["warp"]["ssim"] for r in results])
        dp = np.mean([r[name]["psnr"] - r["warp"]["psnr"] for r in results])
        parts.append(f"{name} ΔSSIM {ds:+.4f} ΔPSNR {dp:+.2f}")
    wins = sum(r["fused"]["ssim"] - r["warp"]["ssim"] >= 0.03 for r in results)
    failed_note = f", {len(failed)} failed" if failed else ""
    return (
        f"HEADLINE {len(results)} clips vs warp: {'; '.join(parts)}; "
        f"fused ΔSSIM ≥ 0.03 on {wins}/{len(results)}{failed_note}"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the bench; 0 when every clip was scored, 1 when one failed."""
    import torch

    from pipeline.atomic import write_json
    from pipeline.errors import LikenessError

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", nargs="*", type=Path, help=f"clips (default: all in {MEDIA})")
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--tests", type=int, default=40, help="driving frames per clip")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/likeness_quality/landmarks"))
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    clips = args.clips or sorted(p for p in MEDIA.iterdir() if p.suffix.lower() in SUFFIXES)
    start = time.time()
    results, failed = [], []
    for clip in clips:
        t0 = time.time()
        try:
            r = score_clip(clip, args.k, args.tests, args.cache)
        except LikenessError as e:  # a named error: report it, go on with the next clip
            failed.append({"clip": str(clip), "error": type(e).__name__, "message": str(e)})
            print(f"{clip.name}: {type(e).__name__}: {e}", flush=True)
            continue
        results.append(r)
        cells = " | ".join(f"{s} {r[s]['ssim']:.4f}/{r[s]['psnr']:.2f}" for s in SYSTEMS)
        print(f"{r['clip']} ({time.time() - t0:.0f} s, fusion {r['fusion']}): {cells}", flush=True)
    if args.json:
        write_json(
            args.json,
            {
                "schema": "likeness.bench.warps/1",
                "date": datetime.date.today().isoformat(),
                "k": args.k,
                "tests": args.tests,
                "seconds": round(time.time() - start, 1),
                "results": results,
                "failed": failed,
            },
        )
    print(headline(results, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
