"""The whole chain on a real clip: frames per minute, with a breakdown by stage.

For each clip, a shot spec is written in a temporary folder (plate = the clip, references = the
photo of the same person when MANIFEST.tsv names one, else frames of the clip itself, and a
consent record), ``likeness submit`` runs it with the local scheduler, and the stage manifests
give each stage's wall time. Delivery is split into compositing and writing (EXR + ProRes + QC).

Goal (issue 6): no stage outside the model (ingest, tracking, compositing, writing) takes more
than 10% of the total.

Usage:
    python bench/e2e.py [MEDIA...] [--frames N] [--profile cpu-preview] [--minutes M] [--json OUT]

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

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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


def run_clip(clip: Path, frames: int, profile: str, minutes: float, work: Path) -> dict:
    shot = "e2e_" + "".join(ch if ch.isalnum() else "_" for ch in clip.stem)[:40]
    folder = work / shot
    folder.mkdir(parents=True)
    photo = _same_person_photo(clip)
    refs = [str(photo)] if photo else [str(clip)]
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
    prof = {"finetune": {"network": profile, "max_minutes": minutes, "steps": 100000}}
    base = yaml.safe_load((ROOT / "configs" / "profiles" / f"{profile}.yaml").read_text())
    for k, v in base.items():
        if isinstance(v, dict):
            prof[k] = {**v, **prof.get(k, {})}
    prof["finetune"]["max_minutes"] = minutes
    prof["finetune"]["steps"] = 100000
    (folder / "profile.yaml").write_text(yaml.safe_dump(prof))
    spec = {
        "shot": shot,
        "plate": {
            "path": str(clip),
            "frames": f"1001-{1000 + frames}",
            "colorspace": "sRGB Encoded Rec.709 (sRGB)",
        },
        "actor": {"id": "bench", "references": refs, "consent": "consent.yaml"},
        "profile": "profile.yaml",
    }
    spec_path = folder / f"{shot}.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    wd = work / "wd"
    t0 = time.perf_counter()
    rc = likeness(["submit", str(spec_path), "--workdir", str(wd)])
    wall = time.perf_counter() - t0
    if rc != 0:
        raise SystemExit(f"likeness submit failed on {clip} (exit {rc})")
    stages: dict[str, float] = {}
    deliver_extra: dict = {}
    for m in (wd / "shots" / shot).rglob("_manifest.json"):
        data = json.loads(m.read_text())
        secs = data["finished"] - data["started"]
        stages[data["stage"]] = stages.get(data["stage"], 0.0) + secs
        if data["stage"] == "deliver":
            deliver_extra = data["extra"]
    deliver_s = stages.pop("deliver")
    stages["composite"] = deliver_extra.get("composite_s", 0.0)
    stages["write (EXR+ProRes+QC)"] = deliver_s - stages["composite"]
    total = sum(stages.values())
    # Per-actor work (references, fine-tune, export) is done once per actor and shared by every
    # shot of that actor; the per-shot render is the rest. Both views are reported.
    render = {k: v for k, v in stages.items() if k not in ("references", "finetune", "export")}
    render_total = sum(render.values())
    return {
        "clip": clip.name,
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
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("media", nargs="*", type=Path)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--profile", default="cpu-preview")
    ap.add_argument("--minutes", type=float, default=4.0, help="fine-tune wall-time budget")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    clips = args.media or [MEDIA / "videos" / "v01_obama_fomm.mp4"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="likeness-e2e-") as tmp:
        for clip in clips:
            r = run_clip(clip.resolve(), args.frames, args.profile, args.minutes, Path(tmp))
            rows.append(r)
            share = r["stage_share"]
            parts = ", ".join(
                f"{k} {v:.1f}s ({100 * share[k]:.1f}%)" for k, v in r["stage_s"].items()
            )
            print(
                f"{r['clip']}: {r['frames']} frames, {r['frames_per_minute']:.1f} frames/min; {parts}"
            )
    if args.json:
        args.json.write_text(json.dumps({"command": " ".join(sys.argv), "runs": rows}, indent=2))
    worst = max((r["worst_non_model"] for r in rows), key=lambda kv: kv[1])
    worst_r = max((r["worst_non_model_render"] for r in rows), key=lambda kv: kv[1])
    for r in rows:
        parts = ", ".join(f"{k} {100 * v:.1f}%" for k, v in r["render_share"].items())
        print(
            f"{r['clip']} per-shot render only (no fine-tune): {r['render_frames_per_minute']:.1f} frames/min; {parts}"
        )
    verdict = lambda x: "met" if x <= 0.10 else "NOT met"  # noqa: E731
    speeds = ", ".join(f"{r['clip']} {r['frames_per_minute']:.1f} frames/min" for r in rows)
    print(
        f"HEADLINE {speeds}; "
        f"largest non-model stage: {worst[0]} {100 * worst[1]:.1f}% of the whole chain ({verdict(worst[1])}), "
        f"{worst_r[0]} {100 * worst_r[1]:.1f}% of the per-shot render without fine-tune ({verdict(worst_r[1])}); goal <= 10%"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
