"""The delivered face at the plate's resolution, scored against the plate (issue 20).

Self-reenactment: for each clip, the first ``--frames`` frames are the plate and the truth; the
references are frames of the same clip at least 5 frames past the last scored one (K = 1: the
middle of that range; K = 8: eight spread over it), written out as stills. Each shot goes
through the real chain (``likeness submit``) twice in one workdir, with the same fine-tune:

- ``render``: the shipped ``cpu-preview`` profile (the face rendered at the plate's resolution);
- ``baseline``: ``cpu-preview-128`` (the network's 128-px output scaled up: the render before).

A cross mode puts another person's photo on the clip (``--cross``; a photo of someone of the
same sex from ``../shared/media/photos`` by default) with the shipped profile.

Every delivered EXR frame (ACEScg → sRGB) is scored against the plate frame, over the plate
face's 68-landmark hull (from the track stage) or its bounding box:

- detail: mean |LoG σ = 1| of luma in the hull, delivered / plate, median over frames (goal
  ≥ 0.85);
- face PSNR / SSIM in the landmark box (goal ≥ baseline + 1.5 dB and + 0.04);
- flicker: mean |frame-to-frame change| in the hull (of both frames), delivered / plate, over
  the shot (goal 0.8–1.25);
- matte: share of the hull where ``face.A`` > 0.5 (goal ≥ 0.9);
- identity: dlib descriptor distance to the truth (goal: no worse than the baseline); in the
  cross mode, to the actor's photo (< 0.45) and to the performer (> 0.7).

``--out DIR`` writes, per shot, the middle frame's face at 1:1: plate | delivered | baseline.

Usage:
    python bench/render.py [MEDIA...] [--frames N] [--k 1 8] [--minutes M] [--out DIR]
        [--json OUT]

With no MEDIA, every clip in ``../shared/media/videos``. The last line is the headline.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.e2e import MEDIA  # noqa: E402
from pipeline.color import ColorPipeline  # noqa: E402
from pipeline.eval.metrics import psnr, ssim  # noqa: E402
from pipeline.io import open_plate, read_exr  # noqa: E402
from pipeline.landmarks.sidecar import load_landmarks  # noqa: E402
from pipeline.shot.plan import build_plan  # noqa: E402
from pipeline.shot.status import workdir_status  # noqa: E402
from pipeline.tracking.identity import descriptor_distance, face_descriptor  # noqa: E402
from tasks.cli import main as likeness  # noqa: E402

PROFILES = {"render": "cpu-preview", "baseline": "cpu-preview-128"}
#: Another person of the same sex, for the cross mode (MANIFEST.tsv's clips).
CROSS = {
    "v01_obama_fomm.mp4": "p05_biden_official_fr.jpg",
    "v02_trump_fomm.mp4": "p05_biden_official_fr.jpg",
    "v09_man_mapbg_retalking.mp4": "p05_biden_official_fr.jpg",
    "v05_aoc_hdtf_sadtalker.mp4": "p09_hathaway_sadtalker.png",
    "v11_woman_glasses_retalking.mp4": "p09_hathaway_sadtalker.png",
    "x02_woman_expr_liveportrait.mp4": "p09_hathaway_sadtalker.png",
}
SRGB = "sRGB Encoded Rec.709 (sRGB)"
GAP = 5  # references at least this many frames from any scored frame


def _frames(clip: Path) -> list[np.ndarray]:
    """Every frame of a clip as H×W×3 float32 0..1 display sRGB (as ingest decodes it)."""
    with open_plate(clip, first_frame=1001) as r:
        return [img for _, img in r.read()]


def _write_refs(frames: list[np.ndarray], scored: int, k: int, folder: Path) -> list[str]:
    """K stills from past the scored frames (≥ GAP away), evenly spread; their file names."""
    lo, hi = scored - 1 + GAP, len(frames) - 1
    if hi < lo:
        raise SystemExit(f"the clip has {len(frames)} frames: too few past {scored} + {GAP}")
    picks = [(lo + hi) // 2] if k == 1 else np.linspace(lo, hi, k).round().astype(int).tolist()
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in picks:
        path = folder / f"ref_{i:04d}.png"
        cv2.imwrite(str(path), cv2.cvtColor(np.uint8(frames[i] * 255 + 0.5), cv2.COLOR_RGB2BGR))
        names.append(str(path))
    return names


def _profile(name: str, minutes: float, folder: Path) -> Path:
    data = yaml.safe_load((ROOT / "configs" / "profiles" / f"{name}.yaml").read_text())
    data["finetune"] = {**data["finetune"], "max_minutes": minutes}
    data["engine"] = {"backend": "torch"}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _submit(work: Path, shot: str, clip: Path, refs: list[str], profile: Path, scored: int) -> dict:
    spec = {
        "shot": shot,
        "plate": {"path": str(clip), "frames": f"1001-{1000 + scored}", "colorspace": SRGB},
        "actor": {"id": "bench", "references": refs, "consent": str(work / "consent.yaml")},
        "profile": str(profile),
    }
    path = work / f"{shot}.yaml"
    path.write_text(yaml.safe_dump(spec))
    wd = work / "wd"
    if likeness(["submit", str(path), "--workdir", str(wd)]) != 0:
        raise SystemExit(f"likeness submit failed: {shot}")
    key = build_plan(path, wd).delivery_key  # the version this submit delivered (or reused)
    version = next(
        f.stem for f in sorted((wd / "shots" / shot).glob("v*.json"))
        if json.loads(f.read_text()).get("delivery_key") == key
    )  # fmt: skip
    outputs = workdir_status(wd)["shots"][shot]["versions"][version]["outputs"]
    return outputs | {"workdir": str(wd), "shot": shot}


def _delivered(out: dict, n: int, color: ColorPipeline) -> tuple[list[np.ndarray], list]:
    """The delivered frames (H×W×3 float32 sRGB) and mattes (H×W)."""
    imgs, mattes = [], []
    for f in range(1001, 1001 + n):
        chans, _ = read_exr(Path(out["exr"].replace("####", f"{f:04d}")))
        lin = np.dstack([chans["R"], chans["G"], chans["B"]]).astype(np.float32)
        imgs.append(np.clip(color.convert(lin, "ACEScg", SRGB), 0, 1))
        mattes.append(chans.get("face.A", np.zeros(lin.shape[:2], np.float32)))
    return imgs, mattes


def _landmarks(out: dict):
    path = next(Path(out["workdir"]).glob(f"shots/{out['shot']}/stages/track/*/landmarks.npz"))
    return load_landmarks(path)


def _log_detail(img: np.ndarray, mask: np.ndarray) -> float:
    y = img @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    log = cv2.Laplacian(cv2.GaussianBlur(y, (0, 0), 1.0), cv2.CV_32F)
    return float(np.abs(log)[mask].mean())


def score(delivered, mattes, plate, lm, photo_desc=None) -> dict:
    """Per-frame measures, averaged; see the module docstring."""
    rows = []
    prev = None
    for i, (d, m, p) in enumerate(zip(delivered, mattes, plate)):
        if not lm.tracked[i]:
            continue
        pts = lm.points[i].astype(np.float32)
        hull = np.zeros(p.shape[:2], np.uint8)
        cv2.fillConvexPoly(hull, cv2.convexHull(pts).astype(np.int32), 1)
        hull = hull.astype(bool)
        x0, y0 = np.floor(pts.min(0)).astype(int)
        x1, y1 = np.ceil(pts.max(0)).astype(int) + 1
        box = (slice(max(y0, 0), y1), slice(max(x0, 0), x1))
        u8 = lambda a: np.uint8(np.clip(a, 0, 1) * 255 + 0.5)  # noqa: E731
        row = {
            "detail": _log_detail(d, hull) / max(_log_detail(p, hull), 1e-9),
            "psnr": psnr(d[box], p[box]),
            "ssim": ssim(d[box], p[box]),
            "matte": float((m[hull] > 0.5).mean()),
            "identity": descriptor_distance(
                face_descriptor(u8(d), lm.points[i]), face_descriptor(u8(p), lm.points[i])
            ),
        }
        if photo_desc is not None:
            row["to_actor"] = descriptor_distance(face_descriptor(u8(d), lm.points[i]), photo_desc)
        if prev is not None:
            pd, pp, ph = prev
            both = hull & ph
            row["change"] = float(np.abs(d - pd)[both].mean())
            row["plate_change"] = float(np.abs(p - pp)[both].mean())
        prev = (d, p, hull)
        rows.append(row)
    keys = sorted({k for r in rows for k in r} - {"change", "plate_change", "detail"})
    out = {k: float(np.mean([r[k] for r in rows if k in r])) for k in keys}
    out["detail"] = float(np.median([r["detail"] for r in rows]))  # median over frames
    changes = [(r["change"], r["plate_change"]) for r in rows if "change" in r]
    out["flicker"] = float(sum(a for a, _ in changes) / max(sum(b for _, b in changes), 1e-9))
    return out


def _side_by_side(plate, outs: list, lm, i: int, path: Path) -> None:
    pts = lm.points[i]
    c = pts.mean(0)
    half = int(0.8 * (pts.max(0) - pts.min(0)).max())
    y0, x0 = (np.maximum(c[::-1] - half, 0)).astype(int)
    tiles = [a[y0 : y0 + 2 * half, x0 : x0 + 2 * half] for a in [plate[i]] + [o[i] for o in outs]]
    img = np.uint8(np.clip(np.hstack(tiles), 0, 1) * 255 + 0.5)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))


def run_clip(clip: Path, args: argparse.Namespace, work: Path) -> dict:
    color = ColorPipeline()
    frames = _frames(clip)
    n = min(args.frames, len(frames) - GAP - 1)
    plate = frames[:n]
    work.mkdir(parents=True)
    (work / "consent.yaml").write_text(yaml.safe_dump({
        "actor": "bench", "granted_by": "benchmark (public demo media, see MANIFEST.tsv)",
        "scope": ["benchmark"], "expires": "2099-12-31", "reference": "bench-render"}))  # fmt: skip
    profiles = {k: _profile(v, args.minutes, work) for k, v in PROFILES.items()}
    stem = "".join(ch if ch.isalnum() else "_" for ch in clip.stem)[:32]
    result: dict = {"clip": clip.name, "frames": n, "size": list(plate[0].shape[:2])}
    for k in args.k:
        refs = _write_refs(frames, n, k, work / f"refs_k{k}")
        got, outs = {}, {}
        for mode, prof in profiles.items():
            t0 = time.perf_counter()
            out = _submit(work, f"{stem}_k{k}", clip, refs, prof, n)
            delivered, mattes = _delivered(out, n, color)
            lm = _landmarks(out)
            got[mode] = score(delivered, mattes, plate, lm) | {"wall_s": time.perf_counter() - t0}
            outs[mode] = delivered
        if args.out:
            _side_by_side(plate, [outs["render"], outs["baseline"]], lm, n // 2,
                          args.out / f"{stem}_k{k}.png")  # fmt: skip
        result[f"k{k}"] = got
    photo = args.cross or (MEDIA / "photos" / CROSS.get(clip.name, "p09_hathaway_sadtalker.png"))
    if photo and Path(photo).is_file():
        from pipeline.references.prepare import FaceFinder, load_still

        img = load_still(Path(photo), 8192 * 8192)
        det = FaceFinder(1)(img)[0]
        desc = face_descriptor(img, det.points)
        out = _submit(work, f"{stem}_x", clip, [str(photo)], profiles["render"], n)
        delivered, mattes = _delivered(out, n, color)
        lm = _landmarks(out)
        result["cross"] = score(delivered, mattes, plate, lm, desc) | {"actor": Path(photo).name}
        if args.out:
            _side_by_side(plate, [delivered], lm, n // 2, args.out / f"{stem}_cross.png")
    return result


GOALS = (
    "detail ≥ 0.85, PSNR ≥ baseline + 1.5 dB, SSIM ≥ baseline + 0.04, flicker 0.8–1.25, matte ≥ 0.9"
)


def verdicts(r: dict, k: int) -> dict[str, bool]:
    new, base = r[f"k{k}"]["render"], r[f"k{k}"]["baseline"]
    return {
        "detail": new["detail"] >= 0.85,
        "psnr": new["psnr"] >= base["psnr"] + 1.5,
        "ssim": new["ssim"] >= base["ssim"] + 0.04,
        "flicker": 0.8 <= new["flicker"] <= 1.25,
        "matte": new["matte"] >= 0.9,
        "identity": new["identity"] <= base["identity"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("media", nargs="*", type=Path)
    ap.add_argument("--frames", type=int, default=24, help="scored frames per clip")
    ap.add_argument("--k", type=int, nargs="+", default=[1, 8], help="reference counts")
    ap.add_argument("--minutes", type=float, default=1.0, help="fine-tune budget per actor")
    ap.add_argument("--cross", type=Path, default=None, help="the cross mode's actor photo")
    ap.add_argument("--out", type=Path, default=None, help="folder for 1:1 side-by-sides")
    ap.add_argument("--keep", type=Path, default=None, help="keep the workdirs in this folder")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    clips = args.media or sorted((MEDIA / "videos").glob("*.mp4"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="likeness-render-") as tmp:
        base = args.keep or Path(tmp)
        for j, clip in enumerate(clips):
            r = run_clip(clip.resolve(), args, base / f"c{j}")
            rows.append(r)
            for k in args.k:
                for mode in ("render", "baseline"):
                    m = r[f"k{k}"][mode]
                    print(f"{r['clip']} K={k} {mode:8s} detail {m['detail']:.2f} PSNR "
                          f"{m['psnr']:.2f} SSIM {m['ssim']:.3f} flicker {m['flicker']:.2f} "
                          f"matte {m['matte']:.2f} identity {m['identity']:.3f}")  # fmt: skip
            if "cross" in r:
                c = r["cross"]
                print(f"{r['clip']} cross ({c['actor']}) detail {c['detail']:.2f} flicker "
                      f"{c['flicker']:.2f} matte {c['matte']:.2f} to actor {c['to_actor']:.3f} "
                      f"to performer {c['identity']:.3f}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"command": " ".join(sys.argv), "runs": rows}, indent=2))
    met = {g: 0 for g in ("detail", "psnr", "ssim", "flicker", "matte", "identity")}
    total = 0
    for r in rows:
        for k in args.k:
            total += 1
            for g, ok in verdicts(r, k).items():
                met[g] += ok
    cross = [r["cross"] for r in rows if "cross" in r]
    cross_ok = sum(c["to_actor"] < 0.45 and c["identity"] > 0.7 for c in cross)
    mean = lambda key, mode, k: np.mean([r[f"k{k}"][mode][key] for r in rows])  # noqa: E731
    k0 = args.k[-1]
    print(
        f"HEADLINE render vs 128-px baseline, {len(rows)} clips, K={k0}: detail "
        f"{mean('detail', 'render', k0):.2f} vs {mean('detail', 'baseline', k0):.2f}, PSNR "
        f"{mean('psnr', 'render', k0):.2f} vs {mean('psnr', 'baseline', k0):.2f} dB, SSIM "
        f"{mean('ssim', 'render', k0):.3f} vs {mean('ssim', 'baseline', k0):.3f}, matte "
        f"{mean('matte', 'render', k0):.2f} vs {mean('matte', 'baseline', k0):.2f}; goals met "
        f"(of {total} clip×K): "
        + ", ".join(f"{g} {n}" for g, n in met.items())
        + f"; cross identity {cross_ok}/{len(cross)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
