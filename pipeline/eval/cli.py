"""``likeness eval``: the harness's command line."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from pipeline.atomic import write_json
from pipeline.errors import LikenessError
from pipeline.eval.run import evaluate_clip


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``likeness eval``."""
    ap = argparse.ArgumentParser(
        prog="likeness eval",
        description="Self-reenactment (or cross-identity) quality harness: fine-tuned model "
        "against the warp baseline on a real clip.",
    )
    ap.add_argument("clip", type=Path, help="clip giving the references (and the truth)")
    ap.add_argument("--k", type=int, default=8, help="reference frames (default 8)")
    ap.add_argument("--minutes", type=float, default=20.0, help="fine-tuning budget (20)")
    ap.add_argument("--network", default="cpu-preview", help="network config (cpu-preview)")
    ap.add_argument("--mode", choices=("self", "cross"), default="self")
    ap.add_argument("--driving", type=Path, help="performer clip for --mode cross")
    ap.add_argument("--tests", type=int, default=40, help="driving frames scored (40)")
    ap.add_argument("--run-length", type=int, default=8, help="consecutive frames per run (8)")
    ap.add_argument(
        "--min-gap",
        type=int,
        default=5,
        help="driving frames are more than this many frames from a reference (5)",
    )
    ap.add_argument("--max-frames", type=int, help="read only the first N frames")
    ap.add_argument("--out", type=Path, help="output folder (fine-tune, eval.json, eval.png)")
    ap.add_argument("--json", type=Path, help="also write the result JSON here")
    ap.add_argument("--cache", type=Path, help="landmark cache folder")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--base", type=Path, help="meta-trained base checkpoint to fine-tune from (train-base)"
    )
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """``likeness eval``: run :func:`evaluate_clip` and print the summary; 0 on success."""

    args = build_parser().parse_args(None if argv is None else list(argv))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    out = args.out or Path(f"eval_{args.clip.stem}")
    try:
        res = evaluate_clip(
            args.clip, args.k, args.minutes, args.network, args.mode, args.driving,
            tests=args.tests, run_length=args.run_length, min_gap=args.min_gap,
            max_frames=args.max_frames, out_dir=out, cache=args.cache, seed=args.seed,
            base=args.base,
        )  # fmt: skip
    except LikenessError as exc:
        print(f"likeness eval: {exc}")
        return 2
    if args.json:
        write_json(args.json, res)
    print(format_summary(res))
    return 0


def format_summary(res: dict[str, Any]) -> str:
    """One block of text: each metric, learned vs warp."""
    lines = [
        f"{res['name']} ({res['mode']}, K={res['k']}, {res['train']['steps']} steps, "
        f"{res['train']['seconds']:.0f} s, best step {res['train']['best_step']})"
    ]
    for m in res["warp"]:
        lines.append(
            f"  {m:20s} learned {res['learned'][m]:8.4f}   warp {res['warp'][m]:8.4f}"
            f"   Δ {res['delta'][m]:+.4f}"
        )
    return "\n".join(lines)
