"""Frames per second of the generator G on every available backend, with parity, in one run.

    python bench/engines.py [MEDIA...] [--json OUT] [--network cpu-preview] [--seconds 3]

Grid: backend (torch eager, ONNX Runtime, TensorRT where present) × batch (1, 8) × crop size
(128, 256). The network is the real generator G built from the network config's
``generator_params`` (cpu-preview by default), folded with a fixed identity embedding exactly as
the engine-export stage does. Its weights are untrained (seeded; the zero-initialised output head
gets small random weights so the output is a real picture): speed does not depend on the values,
and parity is measured on a non-trivial image.

Inputs: landmark images are generated line drawings (golden frames); the warp input is taken
from real media when given (frames of clips or photos, centre-cropped and resized), else from the
default media folder, else generated. Each cell's parity figure is the PSNR of the backend's
output against torch eager on the same batch.

The 2-core bench machine is shared, so backends are timed in interleaved rounds (torch, ORT,
torch, ORT, ...) and the median round is reported; load drifts hit both alike. The last printed
line is the headline.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engines import available_backends  # noqa: E402
from engines.base import Engine  # noqa: E402
from engines.export import export_generator, fold_generator  # noqa: E402
from engines.parity import golden_landmark_images, golden_warp_images, psnr  # noqa: E402
from engines.torch_engine import TorchEngine  # noqa: E402
from pipeline.inference.engine import EngineConfig  # noqa: E402

DEFAULT_MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


def media_frames(paths: list[Path], n: int, size: int) -> tuple[np.ndarray | None, list[str]]:
    """Up to ``n`` real frames as warp inputs.

    Args:
        paths: clips, photos or folders of them.
        n: frames wanted.
        size: crop size S.

    Returns:
        (n×3×S×S float32 display sRGB in [0, 1] or ``None`` when nothing decoded, files used).
    """
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(
                f for f in p.rglob("*") if f.suffix.lower() in VIDEO_SUFFIXES | IMAGE_SUFFIXES
            )
        elif p.is_file():
            files.append(p)
    frames: list[np.ndarray] = []
    used: list[str] = []
    for f in files:
        if len(frames) >= n:
            break
        got = _decode(f, n - len(frames))
        if got:
            frames += got
            used.append(f.name)
    if not frames:
        return None, []
    out = np.stack([_square(f, size) for f in frames])  # N×3×S×S float32, display sRGB
    reps = -(-n // len(out))
    return np.concatenate([out] * reps)[:n], used


def _square(frame: np.ndarray, size: int) -> np.ndarray:
    """H×W×3 uint8 RGB → 3×S×S float32 in [0, 1]: centre square crop, antialiased resize."""
    h, w = frame.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = torch.from_numpy(np.ascontiguousarray(frame[top : top + side, left : left + side]))
    img = crop.permute(2, 0, 1)[None].float() / 255.0  # 1×3×side×side
    img = torch.nn.functional.interpolate(img, size=(size, size), mode="bilinear", antialias=True)
    return img[0].clamp(0, 1).numpy().astype(np.float32)


def _decode(path: Path, n: int) -> list[np.ndarray]:
    """Up to ``n`` H×W×3 uint8 RGB frames from a clip or photo; [] when it cannot be read."""
    try:
        if path.suffix.lower() in IMAGE_SUFFIXES:
            import cv2

            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            return [] if img is None else [img[:, :, ::-1].copy()]
        import av

        out: list[np.ndarray] = []
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                out.append(frame.to_ndarray(format="rgb24"))
                if len(out) >= n:
                    break
        return out
    except (OSError, ValueError, ImportError) as exc:
        print(f"  skipping {path.name}: {exc}", file=sys.stderr)
        return []


def build_generator(network: str, seed: int = 0) -> tuple[torch.nn.Module, torch.Tensor, bool]:
    """The real G from a network config, seeded, and a fixed unit-norm embedding.

    Returns:
        (G in eval mode, 1×E float32 embedding, use_warp).
    """
    from pipeline.models.networks import build, load_network_config

    prof = load_network_config(network)
    torch.manual_seed(seed)
    g = build("generator", prof.params("generator"))
    torch.nn.init.normal_(g.head.weight, std=0.05)  # zero-initialised head: give it a picture
    emb = torch.randn(1, prof.embed_dim)
    emb = emb / emb.norm()  # 1×E float32
    return g.eval(), emb, bool(getattr(g, "use_warp", False))


def time_interleaved(
    engines: dict[str, Engine], feeds: dict[str, np.ndarray], seconds: float, min_rounds: int = 5
) -> dict[str, list[float]]:
    """Per-backend call times (s), measured in alternating rounds after one warm-up call each."""
    for e in engines.values():
        e(**feeds)
    times: dict[str, list[float]] = {k: [] for k in engines}
    start = time.perf_counter()
    rounds = 0
    while rounds < min_rounds or time.perf_counter() - start < seconds * len(engines):
        for name, e in engines.items():
            t0 = time.perf_counter()
            e(**feeds)
            times[name].append(time.perf_counter() - t0)
        rounds += 1
        if rounds >= 50:
            break
    return times


def run(args: argparse.Namespace) -> dict[str, Any]:
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    g, emb, use_warp = build_generator(args.network)
    backends = [b for b in available_backends() if b in args.backends]
    media = [Path(m) for m in args.media] or ([DEFAULT_MEDIA] if DEFAULT_MEDIA.is_dir() else [])
    cells: list[dict[str, Any]] = []
    media_used: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-engines-") as tmp:
        for size in args.sizes:
            onnx_path = Path(tmp) / f"g{size}.onnx"
            t0 = time.perf_counter()
            export_generator(g, emb, onnx_path, crop_size=size, use_warp=use_warp)
            export_s = time.perf_counter() - t0
            folded = fold_generator(g, emb, use_warp)
            for batch in args.batches:
                feeds = {"landmarks": golden_landmark_images(batch, size, seed=batch)}
                if use_warp:
                    warp, used = media_frames(media, batch, size) if media else (None, [])
                    media_used = sorted(set(media_used) | set(used))
                    feeds["warp"] = warp if warp is not None else golden_warp_images(batch, size)
                spec_inputs = {k: torch.from_numpy(v) for k, v in feeds.items()}
                engines: dict[str, Engine] = {
                    "torch": TorchEngine.from_module(folded, spec_inputs, ["image"])
                }
                engines |= open_backends(backends, onnx_path, threads, tmp, args)
                ref = engines["torch"](**feeds)["image"]
                times = time_interleaved(engines, feeds, args.seconds)
                for name, e in engines.items():
                    out = e(**feeds)["image"]
                    med = statistics.median(times[name])
                    cells.append(
                        {
                            "backend": name,
                            "batch": batch,
                            "size": size,
                            "fps": batch / med,
                            "fps_best": batch / min(times[name]),
                            "rounds": len(times[name]),
                            "psnr_db": psnr(out, ref) if name != "torch" else math.inf,
                            "export_s": export_s,
                        }
                    )
                    c = cells[-1]
                    print(
                        f"{name:>12} b{batch:<2} {size:>3}px  {c['fps']:7.2f} fps "
                        f"(best {c['fps_best']:.2f}, {c['rounds']} rounds)  "
                        f"parity {c['psnr_db']:.1f} dB",
                        flush=True,
                    )
                for e in engines.values():
                    e.close()
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python bench/engines.py " + " ".join(sys.argv[1:]),
        "network": args.network,
        "threads": threads,
        "cpu": _cpu(),
        "torch": torch.__version__,
        "onnxruntime": _version("onnxruntime"),
        "ort_options": {"graph_optimization": args.ort_opt, "spin": args.ort_spin},
        "backends": ["torch", *backends],
        "media": media_used,
        "cells": cells,
    }


def open_backends(
    backends: list[str], onnx_path: Path, threads: int, tmp: str, args: argparse.Namespace
) -> dict[str, Engine]:
    """Engines for the non-torch backends of one cell."""
    out: dict[str, Engine] = {}
    if "onnxruntime" in backends:
        from engines.onnx_engine import OnnxEngine

        out["onnxruntime"] = OnnxEngine.load(
            onnx_path,
            intra_op_threads=threads,
            graph_optimization=args.ort_opt,
            providers=["CPUExecutionProvider"],
            spin=args.ort_spin,
        )
    if "tensorrt" in backends:
        from engines.cache import build_engine_for_node

        for precision in ("fp32", "fp16"):
            cfg = EngineConfig(backend="tensorrt", precision=precision, cache_dir=Path(tmp) / "trt")
            out[f"tensorrt-{precision}"] = build_engine_for_node(onnx_path, cfg).open()
    return out


def headline(result: dict[str, Any]) -> str:
    """The one-line summary: ORT vs torch eager at batch 8, 256 px, with parity."""

    def cell(backend: str, batch: int, size: int) -> dict[str, Any] | None:
        for c in result["cells"]:
            if (c["backend"], c["batch"], c["size"]) == (backend, batch, size):
                return c
        return None

    t, o = cell("torch", 8, 256), cell("onnxruntime", 8, 256)
    if t is None or o is None:
        return "headline: no torch/onnxruntime cell at batch 8, 256 px in this run"
    ratio = o["fps"] / t["fps"]
    verdict = "goal met" if ratio >= 1.5 and o["psnr_db"] >= 45.0 else "goal NOT met"
    return (
        f"headline: b8 256px onnxruntime {o['fps']:.2f} fps vs torch eager {t['fps']:.2f} fps = "
        f"{ratio:.2f}x (goal 1.5x, {verdict}), parity {o['psnr_db']:.1f} dB (gate 45)"
    )


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f" ×{os.cpu_count()}"
    except OSError:
        pass
    return f"{os.cpu_count()} cpus"


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except ImportError:
        return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("media", nargs="*", help="clips, photos or folders for the warp input")
    ap.add_argument("--json", type=Path, help="write all cells to this JSON file")
    ap.add_argument("--network", default="cpu-preview", help="network config for G's params")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--backends", nargs="+", default=["onnxruntime", "tensorrt"])
    ap.add_argument("--seconds", type=float, default=3.0, help="timing budget per backend per cell")
    ap.add_argument("--threads", type=int, default=0, help="threads for torch and ORT (0: all)")
    ap.add_argument("--ort-opt", default="all", choices=["disable", "basic", "extended", "all"])
    ap.add_argument("--ort-spin", action="store_true", help="let ORT's idle threads spin")
    args = ap.parse_args(argv)
    try:
        import pipeline.models  # noqa: F401
    except ImportError as exc:
        print(f"the real generator G is not available ({exc}); nothing to bench", file=sys.stderr)
        return 2
    result = run(args)
    if args.json:
        from pipeline.atomic import write_json

        write_json(args.json, result)
    print(headline(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
