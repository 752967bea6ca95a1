"""Quality bench: the fine-tuned model against the warp baseline, self-reenactment on real clips.

    python bench/quality.py [CLIP...] [--k 8] [--minutes 20] [--json OUT] [--max-frames N]
                            [--tests 40] [--network cpu-preview] [--out DIR] [--threads 2]
                            [--base CHECKPOINT] [--set KEY=VALUE ...] [--resume]

Defaults: every clip in ``../shared/media/videos`` (next to the repository), K = 8, the
cpu-preview network config, at most 20 minutes of fine-tuning per clip, 2 torch threads. Each clip runs
:func:`pipeline.eval.run.evaluate_clip` (see its docstring for the metrics); the bench prints both
systems side by side per clip and, last, the headline: mean Δ (learned − warp) of SSIM, PSNR,
landmark error and identity distance, and how many clips the learned model wins on all four
goal criteria (ΔSSIM ≥ 0.03, ΔPSNR ≥ 1 dB, lower landmark error, lower identity distance).
In brackets it adds the mean Δ of SSIM and PSNR inside the production face matte (``ssim_face``,
``psnr_face``): the region a composite keeps, a diagnostic beside the goal metrics.

A clip that cannot be scored (no face, too short, unreadable) is reported with its named error
and skipped; it counts as not won. ``--json`` is rewritten atomically after every clip, and
``--resume`` keeps the clips it already holds (same settings) instead of scoring them again.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from pipeline.errors import LikenessError  # noqa: E402

MEDIA = REPO.parent / "shared" / "media" / "videos"
SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".m4v", ".mxf"}
METRICS = ("psnr", "ssim", "landmark_error", "identity", "jitter", "ssim_face", "psnr_face")


class BenchError(LikenessError):
    """The ``--json`` file given to ``--resume`` cannot be resumed."""


def goal_met(delta: dict[str, float]) -> bool:
    """The issue's per-clip goal: ΔSSIM ≥ 0.03, ΔPSNR ≥ 1 dB, lower landmark error and identity."""
    return (
        delta["ssim"] >= 0.03
        and delta["psnr"] >= 1.0
        and delta["landmark_error"] < 0
        and delta["identity"] < 0
    )


def headline(results: list[dict], failed: list[dict] | None = None) -> str:
    """The last line: mean deltas and clips won (a clip that failed counts as not won)."""
    import numpy as np

    failed = failed or []
    total = len(results) + len(failed)
    note = f" ({len(failed)} failed: {', '.join(f['name'] for f in failed)})" if failed else ""
    if not results:
        return f"HEADLINE 0 of {total} clips scored{note}  goal NOT MET"
    mean = {m: float(np.mean([r["delta"][m] for r in results])) for m in METRICS}
    won = sum(goal_met(r["delta"]) for r in results)
    overall = goal_met(mean) and won > total / 2
    return (
        f"HEADLINE {len(results)} clips: ΔSSIM {mean['ssim']:+.4f}  ΔPSNR {mean['psnr']:+.2f} dB  "
        f"Δlandmark {mean['landmark_error']:+.4f}  Δidentity {mean['identity']:+.4f}  "
        f"clips won {won}/{total}{note}  goal {'MET' if overall else 'NOT MET'}  "
        f"(face matte: ΔSSIM {mean['ssim_face']:+.4f} ΔPSNR {mean['psnr_face']:+.2f} dB)"
    )


def print_clip(res: dict) -> None:
    """One clip's block: steps, then each metric learned / warp / delta."""
    tr = res["train"]
    print(
        f"{res['name']}: {res['driving_frames']} driving frames, {tr['steps']} steps in "
        f"{tr['seconds']:.0f} s (kept step {tr['best_step']}), wall {res['wall_s']:.0f} s",
        flush=True,
    )
    print(f"  {'metric':16s} {'learned':>9s} {'warp':>9s} {'delta':>9s}", flush=True)
    for m in METRICS:
        lr, wp = res["learned"][m], res["warp"][m]
        print(f"  {m:16s} {lr:9.4f} {wp:9.4f} {lr - wp:+9.4f}", flush=True)


def previous_results(path: Path, settings: dict) -> dict[str, dict]:
    """Clips already scored in an earlier ``--json`` file with the same settings, by clip path.

    Raises:
        BenchError: the file is unreadable, or was made with other settings.
    """
    if not path.is_file():
        return {}
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BenchError(
            f"{path} is not a quality bench JSON file ({exc})", "pass another --json"
        ) from exc
    mismatch = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v}
    if mismatch:
        raise BenchError(
            f"{path} was made with other settings: "
            + ", ".join(f"{k} {a!r} (now {b!r})" for k, (a, b) in mismatch.items()),
            "rerun with the same settings, or pass a new --json path",
        )
    return {c["clip"]: c for c in old.get("clips", [])}


def parse_overrides(items: list[str], ap: argparse.ArgumentParser) -> dict[str, object]:
    """``KEY=VALUE`` pairs as FinetuneParams overrides, each VALUE read as YAML."""
    import dataclasses

    import yaml

    from pipeline.train.finetune import FinetuneParams

    fields = {f.name for f in dataclasses.fields(FinetuneParams)}
    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in fields:
            ap.error(f"--set {item!r}: expected KEY=VALUE with KEY one of {sorted(fields)}")
        parsed = yaml.safe_load(value)
        if isinstance(parsed, str):  # YAML 1.1 reads 1e-4 as text
            try:
                parsed = float(parsed)
            except ValueError:
                pass
        out[key] = parsed
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the bench; 0 when every clip ran, 1 when a clip failed, 2 when --resume cannot."""
    import torch

    from pipeline.atomic import write_json
    from pipeline.eval.run import evaluate_clip

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", nargs="*", type=Path, help=f"clips (default: all in {MEDIA})")
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--minutes", type=float, default=20.0, help="fine-tuning budget per clip")
    ap.add_argument("--network", default="cpu-preview", help="network config (configs/networks)")
    ap.add_argument("--tests", type=int, default=40, help="driving frames per clip")
    ap.add_argument("--max-frames", "--frames", type=int, dest="max_frames")
    ap.add_argument("--json", type=Path, help="write every clip's result here")
    ap.add_argument("--out", type=Path, default=Path("/tmp/likeness_quality"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--base",
        type=Path,
        help="meta-trained base to fine-tune from (likeness train-base); it must not have seen "
        "the clips scored",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a FinetuneParams field for every clip, VALUE read as YAML (e.g. holdout=0)",
    )
    ap.add_argument(
        "--resume",
        action="store_true",
        help="keep the clips already scored in --json (same settings) instead of rerunning them",
    )
    args = ap.parse_args(argv)
    if args.resume and not args.json:
        ap.error("--resume needs --json, the file that holds the clips already scored")
    overrides = parse_overrides(args.set, ap)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    if not args.clips and not MEDIA.is_dir():
        ap.error(f"no clips given, and the default media folder {MEDIA} does not exist")
    clips = args.clips or sorted(p for p in MEDIA.iterdir() if p.suffix.lower() in SUFFIXES)
    settings = {
        "schema": "likeness.bench.quality/2",
        "minutes": args.minutes,
        "k": args.k,
        "network": args.network,
        "tests": args.tests,
        "max_frames": args.max_frames,
        "base": str(args.base) if args.base else None,
        "finetune_overrides": overrides,
    }
    try:
        done = previous_results(args.json, settings) if args.resume else {}
    except BenchError as exc:
        print(f"quality bench: {exc}", flush=True)
        return 2
    results: list[dict] = []
    failed: list[dict] = []
    start = time.time()

    def save() -> None:
        """Rewrite --json (atomically) with every clip so far: a kill loses no finished clip."""
        if args.json:
            write_json(
                args.json,
                {
                    **settings,
                    "date": datetime.date.today().isoformat(),
                    "argv": sys.argv,
                    "wall_s": round(time.time() - start, 1),
                    "clips": results,
                    "failed": failed,
                },
            )

    for clip in clips:
        if str(clip) in done:
            res = done[str(clip)]
            print(f"{res['name']}: kept from {args.json} (--resume)", flush=True)
        else:
            t0 = time.time()
            try:
                res = evaluate_clip(
                    clip, args.k, args.minutes, args.network, "self",
                    max_frames=args.max_frames, tests=args.tests, out_dir=args.out / clip.stem,
                    cache=args.out / "landmarks", base=args.base, finetune_overrides=overrides,
                )  # fmt: skip
            except LikenessError as exc:
                # A bad clip is reported and skipped; the clips already scored are kept.
                failed.append(
                    {"clip": str(clip), "name": clip.stem, "error": type(exc).__name__,
                     "message": exc.message, "fix": exc.hint}
                )  # fmt: skip
                print(f"{clip.stem}: FAILED, {type(exc).__name__}: {exc}", flush=True)
                save()
                continue
            res = {k: v for k, v in res.items() if k != "frames"}
            res["wall_s"] = round(time.time() - t0, 1)
        results.append(res)
        print_clip(res)
        save()
    print(headline(results, failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
