"""The whole chain on a real clip: frames per minute, with a breakdown by stage.

For each clip, a shot spec is written in a temporary folder (plate = the clip, references = the
photo of the same person when MANIFEST.tsv names one, else frames of the clip itself, and a
consent record), ``likeness submit`` runs it with the local scheduler, and the stage manifests
give each stage's wall time. Delivery is split into compositing and writing (EXR + ProRes + QC).

Goal (issue 6): no stage outside the model (ingest, tracking, compositing, writing) takes more
than 10% of the total.

Usage:
    python bench/e2e.py [MEDIA...] [--frames N] [--profile P [P ...]] [--height H] [--minutes M]
        [--json OUT]

``--profile cpu-preview cpu-preview-128`` runs the plate-resolution render and the 128-px path
in one workdir (the fine-tune once) and reports both; ``--height 1080`` first scales the clip
to a 1080-line 16:9 canvas (issue 20's timing: synthesis, composite and writing per frame).

With no MEDIA, ``../shared/media/videos/v01_obama_fomm.mp4`` is used (with photo p01). The last
line prints the headline figures.
"""

from __future__ import annotations

import argparse
import csv
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

from pipeline.color import SRGB_TAGS  # noqa: E402
from pipeline.delivery.devca import write_dev_ca  # noqa: E402
from pipeline.io import ProResWriter, open_plate  # noqa: E402
from pipeline.shot.plan import build_plan  # noqa: E402
from pipeline.workspace import read_manifest  # noqa: E402
from tasks.cli import main as likeness  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"
MODEL_STAGES = {"references", "finetune", "export", "synth_chunk"}


def _same_person_photo(clip: Path) -> Path | None:
    manifest = MEDIA / "MANIFEST.tsv"
    if not manifest.is_file():
        return None
    rows = list(csv.DictReader(manifest.open(), delimiter="\t"))
    mine = next((r for r in rows if Path(r["local_file"]).name == clip.name), None)
    if not mine or not mine.get("same_person_pair"):
        return None
    tag = mine["same_person_pair"].split()[0]
    for r in rows:
        if r["kind"] == "photo" and r.get("same_person_pair", "").startswith(tag):
            return MEDIA / r["local_file"]
    return None


def upscaled_plate(clip: Path, frames: int, height: int, out: Path) -> Path:
    """The clip's first frames scaled to ``height`` (bicubic) and centred on a 16:9 canvas of
    that height, as ProRes 422 HQ tagged sRGB: a plate of delivery size for timing."""
    width = (height * 16 // 9) // 2 * 2
    with (
        open_plate(clip, first_frame=1001) as r,
        ProResWriter(
            out, width=width, height=height, fps=r.info.fps, codec="prores_422hq", tags=SRGB_TAGS
        ) as w,
    ):
        for i, (_, img) in enumerate(r.read()):
            if i >= frames:
                break
            h0, w0 = img.shape[:2]
            nw = round(w0 * height / h0)
            big = cv2.resize(img, (nw, height), interpolation=cv2.INTER_CUBIC)
            canvas = np.zeros((height, width, 3), np.float32)
            x0 = max((width - nw) // 2, 0)
            canvas[:, x0 : x0 + min(nw, width)] = big[:, : min(nw, width)]
            w.write(np.clip(canvas, 0.0, 1.0))
    return out


def _profile(name: str, minutes: float, folder: Path, certs: Path | None = None) -> Path:
    """A profile file: the named profile with the fine-tune's wall-time budget set (and, with
    ``certs``, signing with a development CA's certificate)."""
    prof = yaml.safe_load((ROOT / "configs" / "profiles" / f"{name}.yaml").read_text())
    prof["finetune"] = {**prof["finetune"], "max_minutes": minutes, "steps": 100000}
    if certs is not None:
        prof["deliver"] = {**prof.get("deliver", {}), "c2pa": {
            "cert": str(certs / "chain.pem"), "key": str(certs / "key.pem"),
            "trust": str(certs / "ca.pem")}}  # fmt: skip
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(prof))
    return path


def _stage_seconds(spec_path: Path, wd: Path) -> tuple[dict[str, float], dict]:
    """Seconds per stage of the version this spec plans (chunks summed), from the manifests of
    exactly its stage folders, and the deliver stage's extras."""
    plan = build_plan(spec_path, wd)
    stages: dict[str, float] = {}
    extra: dict = {}
    for sp in plan.stages.values():
        folder = sp.folder if sp.name != "deliver" else None
        m = read_manifest(folder) if folder is not None else None
        if sp.name == "deliver":
            version = next(
                f.stem for f in sorted((wd / "shots" / plan.spec.shot).glob("v*.json"))
                if json.loads(f.read_text()).get("delivery_key") == plan.delivery_key
            )  # fmt: skip
            m = read_manifest(wd / "shots" / plan.spec.shot / version)
            extra = (m or {}).get("extra", {})
        if m:
            stages[sp.name] = stages.get(sp.name, 0.0) + m["finished"] - m["started"]
    deliver_s = stages.pop("deliver")
    stages["composite"] = extra.get("composite_s", 0.0)
    creds = extra.get("credentials")
    sign_s = creds.get("sign_s", 0.0) if isinstance(creds, dict) else 0.0
    stages["write (EXR+ProRes+QC)"] = deliver_s - stages["composite"] - sign_s
    if sign_s:
        stages["sign (C2PA)"] = sign_s
    return stages, extra


def run_clip(
    clip: Path,
    frames: int,
    profiles: list[str],
    minutes: float,
    work: Path,
    height: int | None,
    sign: bool = False,
) -> list[dict]:
    """Every profile on one clip, in one workdir (the stages they share run once); one result
    per profile."""
    shot = "e2e_" + "".join(ch if ch.isalnum() else "_" for ch in clip.stem)[:40]
    folder = work / shot
    folder.mkdir(parents=True)
    photo = _same_person_photo(clip)
    refs = [str(photo)] if photo else [str(clip)]
    plate = upscaled_plate(clip, frames, height, folder / "plate.mov") if height else clip
    (folder / "consent.yaml").write_text(
        yaml.safe_dump(
            {
                "actor": "bench",
                "granted_by": "benchmark (public demo media, see MANIFEST.tsv)",
                "scope": ["benchmark"],
                "expires": "2099-12-31",
                "reference": "bench-e2e",
            }
        )
    )
    wd = work / "wd"
    certs = write_dev_ca(folder / "certs").ca.parent if sign else None
    rows = []
    for name in profiles:
        spec = {
            "shot": shot,
            "plate": {
                "path": str(plate),
                "frames": f"1001-{1000 + frames}",
                "colorspace": "sRGB Encoded Rec.709 (sRGB)",
            },
            "actor": {"id": "bench", "references": refs, "consent": "consent.yaml"},
            "profile": str(_profile(name, minutes, folder, certs)),
        }
        spec_path = folder / f"{shot}_{name}.yaml"
        spec_path.write_text(yaml.safe_dump(spec))
        t0 = time.perf_counter()
        rc = likeness(["submit", str(spec_path), "--workdir", str(wd)])
        wall = time.perf_counter() - t0
        if rc != 0:
            raise SystemExit(f"likeness submit failed on {clip} with {name} (exit {rc})")
        stages, extra = _stage_seconds(spec_path, wd)
        row = _figures(clip, frames, refs, name, wall, stages)
        if isinstance(extra.get("credentials"), dict):
            row["sign_s"] = extra["credentials"]["sign_s"]
        rows.append(row)
    return rows


def _figures(
    clip: Path, frames: int, refs: list[str], profile: str, wall: float, stages: dict
) -> dict:
    total = sum(stages.values())
    # Per-actor work (references, fine-tune, export) is done once per actor and shared by every
    # shot of that actor; the per-shot render is the rest. Both views are reported.
    render = {k: v for k, v in stages.items() if k not in ("references", "finetune", "export")}
    render_total = sum(render.values())
    # synthesis, composite and writing (signing excluded, reported apart): the issue-20 figure
    draw = sum(v for k, v in stages.items() if k in ("synth_chunk", "composite")
               or k.startswith("write"))  # fmt: skip
    return {
        "clip": clip.name,
        "profile": profile,
        "frames": frames,
        "references": refs,
        "wall_s": wall,
        "stage_s": stages,
        "stage_share": {k: v / total for k, v in stages.items()},
        "frames_per_minute": frames / (total / 60.0),
        "worst_non_model": max(
            ((k, v / total) for k, v in stages.items() if k not in MODEL_STAGES),
            key=lambda kv: kv[1],
        ),
        "render_share": {k: v / render_total for k, v in render.items()},
        "render_frames_per_minute": frames / (render_total / 60.0),
        "worst_non_model_render": max(
            ((k, v / render_total) for k, v in render.items() if k not in MODEL_STAGES),
            key=lambda kv: kv[1],
        ),
        "synth_composite_write_fps": frames / draw if draw > 0 else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("media", nargs="*", type=Path)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument(
        "--profile",
        nargs="+",
        default=["cpu-preview"],
        help="profiles run in one workdir (the stages they share run once)",
    )
    ap.add_argument(
        "--height",
        type=int,
        default=None,
        help="scale the clip to this height on a 16:9 canvas first (e.g. 1080)",
    )
    ap.add_argument("--minutes", type=float, default=4.0, help="fine-tune wall-time budget")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    clips = args.media or [MEDIA / "videos" / "v01_obama_fomm.mp4"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="likeness-e2e-") as tmp:
        for clip in clips:
            for r in run_clip(clip.resolve(), args.frames, args.profile, args.minutes,
                              Path(tmp), args.height, args.sign):  # fmt: skip
                rows.append(r)
                share = r["stage_share"]
                parts = ", ".join(
                    f"{k} {v:.1f}s ({100 * share[k]:.1f}%)" for k, v in r["stage_s"].items()
                )
                print(
                    f"{r['clip']} [{r['profile']}]: {r['frames']} frames, "
                    f"{r['frames_per_minute']:.1f} frames/min; {parts}"
                )
    if args.json:
        args.json.write_text(json.dumps({"command": " ".join(sys.argv), "runs": rows}, indent=2))
    worst = max((r["worst_non_model"] for r in rows), key=lambda kv: kv[1])
    worst_r = max((r["worst_non_model_render"] for r in rows), key=lambda kv: kv[1])
    for r in rows:
        parts = ", ".join(f"{k} {100 * v:.1f}%" for k, v in r["render_share"].items())
        print(
            f"{r['clip']} [{r['profile']}] per-shot render only (no fine-tune): {r['render_frames_per_minute']:.1f} frames/min; {parts}"
        )
    verdict = lambda x: "met" if x <= 0.10 else "NOT met"  # noqa: E731
    speeds = ", ".join(
        f"{r['clip']} [{r['profile']}] {r['frames_per_minute']:.1f} frames/min, synthesis + "
        f"composite + write {r['synth_composite_write_fps']:.2f} frames/s"
        + (f", signing {r['sign_s']:.2f} s" if "sign_s" in r else "")
        for r in rows
    )
    print(
        f"HEADLINE {speeds}; "
        f"largest non-model stage: {worst[0]} {100 * worst[1]:.1f}% of the whole chain ({verdict(worst[1])}), "
        f"{worst_r[0]} {100 * worst_r[1]:.1f}% of the per-shot render without fine-tune ({verdict(worst_r[1])}); goal <= 10%"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
