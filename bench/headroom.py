"""Where the quality goal's margin can come from: the warp input, region by region, and two
learned corrections of it.

Usage::

    python bench/headroom.py [CLIP...] [--k 8] [--steps 300] [--episodes 60] [--json OUT]

Defaults to every clip in ``../shared/media/videos``. Each clip is tracked, aligned and split
exactly as ``bench/quality.py`` does (:func:`pipeline.eval.clips.load_clip`,
:func:`pipeline.eval.clips.pick_frames`: K references spread evenly, held-out driving frames), and the
same driving frames are scored four ways against the true aligned crop:

- ``warp``: the issue's baseline, the nearest reference warped (``warp_baseline``);
- ``fused``: G's warp input, the references blended as ``ActorModel`` does, with the blend chosen
  by leave-one-out over the references (``select_fusion``), flow alignment included. An untrained
  G returns it (to within 1e-3, ``synth_from_warp``), so it is what the learned model scores at
  step 0;
- ``clip_refiner``: a small convolutional correction of the fused warp (5 layers, 24 channels,
  zero-initialised output, input = the fused warp plus the 3 nearest single warps, so it cannot
  redraw a face from landmarks), trained ``--steps`` steps on the clip's own references: each
  reference rebuilt from the others, as the fine-tune's training pairs are;
- ``cross_refiner``: the same network trained instead on the *other* clips given, on test-like
  episodes (their K references fused onto ``--episodes`` of their other frames): a miniature
  meta-trained base that has never seen the scored clip.

A fifth row, ``plate_oracle``, is not a system: it keeps ``fused`` inside the face matte and,
outside it, blends the same references resampled through the plate (each crop pixel taken back to
the plate by the frame's own alignment, then into the reference's crop by the reference's). It
uses the truth's plate alignment, which no model is given, and assumes a locked-off camera. It
measures how much of the margin outside the face is the head's motion in the plate.

Each is scored by SSIM and PSNR over the whole crop (the goal metrics), and by SSIM inside and
outside the production face matte (:func:`pipeline.eval.metrics.face_weights`). No dlib scoring, so a
clip takes a minute or two, not twenty: a fast check of an idea before a ``bench/quality.py`` run.
The last line prints the headline: mean Δ of each system against ``warp`` (SSIM, PSNR, SSIM in
the face matte and outside it) and the clips where fused beats warp by the goal's 0.03 SSIM.
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
SYSTEMS = ("warp", "fused", "clip_refiner", "cross_refiner", "plate_oracle")
NEAREST = 3  # single warps beside the fused one in the refiner's input


def warp_stack(images, points, target, fusion):
    """The refiner's input: the fused warp and the NEAREST nearest single warps of ``images``
    (K×S×S×3 float32 sRGB, K×68×2 crop pixels) onto ``target`` → S×S×(3 + 3·NEAREST) float32."""
    from pipeline.models.fusion import fusion_weights
    from pipeline.warping.blend import blend_warps
    from pipeline.warping.image import warp_image
    from pipeline.warping.shapes import shape_distance

    d = np.array([shape_distance(p, target) for p in points])
    warps = [warp_image(im, p, target, fusion.spline) for im, p in zip(images, points)]
    w = fusion_weights(d, fusion.top, fusion.temperature)
    used = np.nonzero(w)[0]
    fused = blend_warps([warps[i] for i in used], w[used], fusion.flow)
    order = np.argsort(d, kind="stable")[:NEAREST]
    picked = [warps[o] for o in order] + [warps[order[-1]]] * (NEAREST - len(order))
    return np.concatenate([fused] + picked, axis=2).astype(np.float32)


def make_refiner(channels_in: int, width: int = 24):
    """Zero-initialised residual on the first 3 input channels (the fused warp), clamped to 0..1."""
    import torch
    from torch import nn

    class Refiner(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers: list[nn.Module] = []
            cin = channels_in
            for dil in (1, 2, 4, 1):
                layers += [nn.Conv2d(cin, width, 3, padding=dil, dilation=dil), nn.ReLU()]
                cin = width
            layers.append(nn.Conv2d(width, 3, 3, padding=1))
            nn.init.zeros_(layers[-1].weight)
            nn.init.zeros_(layers[-1].bias)
            self.net = nn.Sequential(*layers)

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # B×C×H×W → B×3×H×W
            return (x[:, :3] + self.net(x)).clamp(0.0, 1.0)

    return Refiner()


def train_refiner(inputs: np.ndarray, targets: np.ndarray, steps: int, seed: int):
    """Fit a refiner: N×S×S×C inputs, N×S×S×3 targets (float32 sRGB) → the trained module."""
    import torch

    from pipeline.train.losses import multiscale_l1, ssim_loss

    torch.manual_seed(seed)
    x = torch.from_numpy(np.ascontiguousarray(inputs.transpose(0, 3, 1, 2)))
    y = torch.from_numpy(np.ascontiguousarray(targets.transpose(0, 3, 1, 2)))
    net = make_refiner(x.shape[1])
    opt = torch.optim.Adam(net.parameters(), 5e-4)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (min(8, len(x)),), generator=gen)
        out = net(x[idx])
        loss = multiscale_l1(out, y[idx]) + ssim_loss(out, y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net


def apply_refiner(net, inputs: np.ndarray) -> np.ndarray:
    """N×S×S×C float32 → N×S×S×3 float32 sRGB."""
    import torch

    with torch.no_grad():
        out = net(torch.from_numpy(np.ascontiguousarray(inputs.transpose(0, 3, 1, 2))))
    return out.numpy().transpose(0, 2, 3, 1)


def prepare(clip: Path, k: int, episodes: int, cache: Path) -> dict:
    """Track and split a clip; build the refiners' inputs (driving, own pairs, episodes)."""
    from pipeline.eval.clips import load_clip, pick_frames
    from pipeline.models.fusion import Fusion
    from pipeline.train.fusion_choice import select_fusion
    from pipeline.warping.shapes import shape_distance

    faces = load_clip(clip, 128, None, cache)
    ref_rows, runs = pick_frames(faces.frames, k, 40, 8, 5)
    drive = np.concatenate(runs)
    images, points = faces.crops[ref_rows], faces.points[ref_rows].astype(np.float64)
    fusion, _ = select_fusion(images, points, Fusion())
    pts = faces.points.astype(np.float64)
    # The clip's own training pairs: each reference rebuilt from the others, dropping the j
    # nearest for j = 0..3 (coverage as good as, then worse than, a driving frame's).
    own_x, own_y = [], []
    for t in range(len(images)):
        others = sorted((s for s in range(len(images)) if s != t),
                        key=lambda s: shape_distance(points[s], points[t]))  # fmt: skip
        for j in range(min(4, len(others))):
            srcs = others[j:]
            own_x.append(warp_stack(images[srcs], points[srcs], points[t], fusion))
            own_y.append(images[t])
    # Test-like episodes for the other clips' cross refiner.
    gap = np.abs(faces.frames[:, None] - faces.frames[ref_rows][None, :]).min(axis=1)
    cand = np.nonzero(gap >= 3)[0]
    ep = cand[np.linspace(0, len(cand) - 1, min(episodes, len(cand))).round().astype(int)]
    return {
        "name": faces.name,
        "top": fusion.top,
        "temperature": fusion.temperature,
        "spline": fusion.spline,
        "flow": fusion.flow,
        "images": images,
        "points": points,
        "drive_pts": pts[drive],
        "drive_fwd": faces.transforms[drive],
        "ref_fwd": faces.transforms[ref_rows],
        "drive_truth": faces.crops[drive],
        "drive_x": np.stack([warp_stack(images, points, pts[i], fusion) for i in drive]),
        "own_x": np.stack(own_x),
        "own_y": np.stack(own_y),
        "ep_x": np.stack([warp_stack(images, points, pts[i], fusion) for i in ep]),
        "ep_y": faces.crops[ep],
    }


def plate_oracle(data: dict, fused: np.ndarray) -> np.ndarray:
    """The oracle row: ``fused`` (N×S×S×3) inside the face matte, the references blended through
    the plate outside it → N×S×S×3 float32 sRGB."""
    import cv2

    from pipeline.align import invert_affine
    from pipeline.eval.metrics import face_weights
    from pipeline.models.fusion import fusion_weights
    from pipeline.warping.shapes import shape_distance

    out = []
    size = fused.shape[1]
    for j, (tp, fwd) in enumerate(zip(data["drive_pts"], data["drive_fwd"])):
        back = np.vstack([invert_affine(fwd), [0.0, 0.0, 1.0]])  # target crop → plate, 3×3
        d = np.array([shape_distance(p, tp) for p in data["points"]])
        w = fusion_weights(d, data["top"], data["temperature"])
        rest = np.zeros_like(fused[j])
        for k in np.nonzero(w)[0]:
            m = data["ref_fwd"][k] @ back  # target crop → reference crop, 2×3
            rest += np.float32(w[k]) * cv2.warpAffine(
                data["images"][k], m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_REPLICATE,
            )  # fmt: skip
        matte = face_weights(tp, size)[..., None]
        out.append(matte * fused[j] + (1.0 - matte) * rest)
    return np.stack(out).astype(np.float32)


def score(outputs: dict[str, np.ndarray], data: dict) -> dict[str, dict[str, float]]:
    """Mean SSIM/PSNR over the crop, and SSIM in and out of the face matte, per system."""
    from pipeline.eval.metrics import face_weights, psnr, ssim_full

    res: dict[str, dict[str, list[float]]] = {}
    for j, (truth, tp) in enumerate(zip(data["drive_truth"], data["drive_pts"])):
        w = face_weights(tp, truth.shape[0]).astype(np.float64)
        for name, imgs in outputs.items():
            r = res.setdefault(name, {"ssim": [], "psnr": [], "ssim_face": [], "ssim_rest": []})
            mean, full = ssim_full(imgs[j], truth)  # one SSIM map for all three figures
            r["ssim"].append(mean)
            r["psnr"].append(psnr(imgs[j], truth))
            r["ssim_face"].append(float((full * w).sum() / w.sum()))
            r["ssim_rest"].append(float((full * (1.0 - w)).sum() / (1.0 - w).sum()))
    return {n: {m: float(np.mean(v)) for m, v in r.items()} for n, r in res.items()}


def main(argv: list[str] | None = None) -> int:
    """Run the bench; 0 when every clip ran."""
    import torch

    from pipeline.warping.image import warp_baseline

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", nargs="*", type=Path, help=f"clips (default: all in {MEDIA})")
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--steps", type=int, default=300, help="refiner training steps")
    ap.add_argument("--episodes", type=int, default=60, help="episodes per clip (cross refiner)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/likeness_quality/landmarks"))
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    clips = args.clips or sorted(p for p in MEDIA.iterdir() if p.suffix.lower() in SUFFIXES)
    start = time.time()
    data = []
    for clip in clips:
        t0 = time.time()
        data.append(prepare(clip, args.k, args.episodes, args.cache))
        print(f"{data[-1]['name']}: prepared in {time.time() - t0:.0f} s", flush=True)
    results = []
    for i, d in enumerate(data):
        t0 = time.time()
        outputs = {
            "warp": np.stack(
                [warp_baseline(d["images"], d["points"], p)[0] for p in d["drive_pts"]]
            ),
            "fused": d["drive_x"][..., :3],
        }
        net = train_refiner(d["own_x"], d["own_y"], args.steps, seed=i)
        outputs["clip_refiner"] = apply_refiner(net, d["drive_x"])
        others = [o for o in data if o is not d]
        if others:
            net = train_refiner(
                np.concatenate([o["ep_x"] for o in others]),
                np.concatenate([o["ep_y"] for o in others]),
                args.steps,
                seed=i,
            )
            outputs["cross_refiner"] = apply_refiner(net, d["drive_x"])
        outputs["plate_oracle"] = plate_oracle(d, outputs["fused"])
        res = {
            "clip": d["name"],
            "fusion": [d["top"], d["temperature"], d["spline"], d["flow"]],
            **score(outputs, d),
        }
        results.append(res)
        print(f"{d['name']} (fusion top {d['top']}, T {d['temperature']}, spline {d['spline']}, "
              f"flow {d['flow']}, {time.time() - t0:.0f} s)", flush=True)  # fmt: skip
        for name in SYSTEMS:
            if name in res:
                r = res[name]
                print(f"  {name:14s} SSIM {r['ssim']:.4f}  PSNR {r['psnr']:6.2f}  "
                      f"SSIM face {r['ssim_face']:.4f}  rest {r['ssim_rest']:.4f}", flush=True)  # fmt: skip
    if args.json:
        from pipeline.atomic import write_json

        args.json.parent.mkdir(parents=True, exist_ok=True)
        write_json(args.json, {
            "schema": "likeness.bench.headroom/1", "date": datetime.date.today().isoformat(),
            "argv": sys.argv, "steps": args.steps, "episodes": args.episodes,
            "wall_s": round(time.time() - start, 1), "clips": results,
        })  # fmt: skip
    parts = []
    for name in SYSTEMS[1:]:
        rows = [r for r in results if name in r]
        if not rows:
            continue
        delta = {m: np.mean([r[name][m] - r["warp"][m] for r in rows]) for m in rows[0]["warp"]}
        parts.append(f"{name} ΔSSIM {delta['ssim']:+.4f} ΔPSNR {delta['psnr']:+.2f} "
                     f"(face {delta['ssim_face']:+.4f}, rest {delta['ssim_rest']:+.4f})")  # fmt: skip
    won = sum(r["fused"]["ssim"] - r["warp"]["ssim"] >= 0.03 for r in results)
    print(f"HEADROOM {len(results)} clips vs warp: " + "; ".join(parts)
          + f"; fused ΔSSIM ≥ 0.03 on {won}/{len(results)}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
