"""The review movie against the plate, outside the face (issue 23).

For each clip a shot is delivered through the real chain (``likeness submit``, local scheduler):
plate = the clip (display sRGB), references = the photo of the same person when MANIFEST.tsv
names one, else the clip itself. The fine-tune is cut to a few steps: what is measured is the
part of the frame the face does not touch, which the model cannot change. The shot is delivered
three times (only the delivery is redone):

- ``default``: the shipped profile (review in the plate's own encoding, burn-ins on);
- ``clean``: the same without burn-ins;
- ``old``: the previous default (display ``Rec.1886 Rec.709 - Display``, view ``ACES 2.0 - SDR
  100 nits (Rec.709)``), without burn-ins: the baseline, measured in the same run.

Each frame of each review movie is decoded (its tagged matrix, exact rounding) and compared with
the plate as FFmpeg decodes it, over the pixels the face matte (the EXR ``face.A``, grown by
3 px) does not touch: the mean absolute difference in 8-bit code values. A side-by-side PNG of
the middle frame (plate | review | old review, 1:1) is written for looking at.

Usage:
    python bench/review.py [MEDIA...] [--frames N] [--out DIR] [--json OUT]

With no MEDIA, every clip in ``../shared/media/videos``. The last line is the headline.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import av
import cv2
import numpy as np
import yaml
from av.video.reformatter import Interpolation, VideoReformatter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.e2e import MEDIA, _same_person_photo  # noqa: E402
from pipeline.io import open_plate, read_exr  # noqa: E402
from pipeline.shot.status import workdir_status  # noqa: E402
from tasks.cli import main as likeness  # noqa: E402

OLD = {"display": "Rec.1886 Rec.709 - Display", "view": "ACES 2.0 - SDR 100 nits (Rec.709)"}
RUNS = {
    "default": {},
    "clean": {"burn_in": False},
    "old": {"burn_in": False, "review": OLD},
}


def _decode_review(path: Path) -> np.ndarray:
    """N×H×W×3 float64 in 8-bit code values, by the movie's own tagged matrix."""
    fmt, out = VideoReformatter(), []
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            rgb = fmt.reformat(
                frame, format="rgb48le",
                interpolation=Interpolation.BILINEAR | Interpolation.ACCURATE_RND,
            )  # fmt: skip
            out.append(rgb.to_ndarray().astype(np.float64) / 257.0)
    return np.stack(out)


def _plate(clip: Path, frames: int) -> np.ndarray:
    """The plate's first frames as FFmpeg decodes them: N×H×W×3 float64 8-bit code values."""
    with open_plate(clip, first_frame=1001) as r:
        return np.stack([img * 255.0 for _, img in r.read()][:frames]).astype(np.float64)


def _outside(exr_pattern: str, numbers: list[int]) -> np.ndarray:
    masks = []
    for n in numbers:
        chans, _ = read_exr(Path(exr_pattern.replace("####", f"{n:04d}")))
        grown = cv2.dilate((chans["face.A"] > 0).astype(np.uint8), np.ones((7, 7), np.uint8))
        masks.append(grown == 0)
    return np.stack(masks)


def run_clip(clip: Path, frames: int, work: Path, out: Path | None) -> dict:
    shot = "rv_" + "".join(ch if ch.isalnum() else "_" for ch in clip.stem)[:40]
    folder = work / shot
    folder.mkdir(parents=True)
    photo = _same_person_photo(clip)
    (folder / "consent.yaml").write_text(
        yaml.safe_dump(
            {"actor": "bench", "granted_by": "benchmark (public demo media, see MANIFEST.tsv)",
             "scope": ["benchmark"], "expires": "2099-12-31", "reference": "bench-review"}
        )
    )  # fmt: skip
    base = yaml.safe_load((ROOT / "configs" / "profiles" / "cpu-preview.yaml").read_text())
    base["finetune"] = {**base["finetune"], "steps": 2, "max_minutes": 1}
    base["engine"] = {"backend": "torch"}
    wd = work / "wd"
    spec = {
        "shot": shot,
        "plate": {
            "path": str(clip), "frames": f"1001-{1000 + frames}",
            "colorspace": "sRGB Encoded Rec.709 (sRGB)",
        },
        "actor": {"id": "bench", "references": [str(photo or clip)], "consent": "consent.yaml"},
        "profile": "profile.yaml",
    }  # fmt: skip
    (folder / f"{shot}.yaml").write_text(yaml.safe_dump(spec))
    plate = _plate(clip, frames)
    numbers = list(range(1001, 1001 + len(plate)))
    result: dict = {"clip": clip.name, "frames": len(plate), "size": list(plate.shape[1:3])}
    reviews = {}
    for i, (name, deliver) in enumerate(RUNS.items(), start=1):
        (folder / "profile.yaml").write_text(
            yaml.safe_dump({**base, "deliver": {**base["deliver"], **deliver}})
        )
        if likeness(["submit", str(folder / f"{shot}.yaml"), "--workdir", str(wd)]) != 0:
            raise SystemExit(f"likeness submit failed on {clip} ({name})")
        v = workdir_status(wd)["shots"][shot]["versions"][f"v{i:03d}"]["outputs"]
        review = reviews[name] = _decode_review(Path(v["review"]))
        if name == "default":
            outside = _outside(v["exr"], numbers)
            result["outside_fraction"] = float(outside.mean())
            with av.open(v["review"]) as c:
                result["tags"] = c.metadata.get("likeness_review_tags")
                result["transform"] = c.metadata.get("likeness_review_transform")
        per_frame = [float(np.abs(r - p).mean(-1)[m].mean()) for r, p, m in
                     zip(review, plate, outside)]  # fmt: skip
        result[name] = {"mean": float(np.mean(per_frame)), "worst_frame": max(per_frame)}
    if out is not None:
        mid = len(plate) // 2
        side = np.hstack([plate[mid], reviews["default"][mid], reviews["old"][mid]])
        out.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out / f"{shot}.png"),
                    cv2.cvtColor(np.clip(side + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR))  # fmt: skip
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("media", nargs="*", type=Path)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--out", type=Path, default=None, help="folder for side-by-side PNGs")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    clips = args.media or sorted((MEDIA / "videos").glob("*.mp4"))
    if not clips:
        raise SystemExit(f"no clips given and none in {MEDIA / 'videos'}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="likeness-review-") as tmp:
        for clip in clips:
            r = run_clip(clip.resolve(), args.frames, Path(tmp), args.out)
            rows.append(r)
            print(
                f"{r['clip']} {r['size'][1]}x{r['size'][0]}, {r['frames']} frames, "
                f"{100 * r['outside_fraction']:.0f}% outside the face: mean |review - plate| "
                f"{r['default']['mean']:.2f} with burn-ins (worst frame "
                f"{r['default']['worst_frame']:.2f}), {r['clean']['mean']:.2f} without "
                f"(worst {r['clean']['worst_frame']:.2f}); old ACES view {r['old']['mean']:.2f}"
            )
    if args.json:
        args.json.write_text(json.dumps({"command": " ".join(sys.argv), "runs": rows}, indent=2))
    worst_in = max(r["default"]["worst_frame"] for r in rows)
    worst_out = max(r["clean"]["worst_frame"] for r in rows)
    mean_clean = float(np.mean([r["clean"]["mean"] for r in rows]))
    mean_old = float(np.mean([r["old"]["mean"] for r in rows]))
    verdict = "met" if max(worst_in, worst_out) <= 2.0 else "NOT met"
    print(
        f"HEADLINE review vs plate outside the face, {len(rows)} clips: worst frame "
        f"{worst_in:.2f} code values with burn-ins, {worst_out:.2f} without (goal <= 2: "
        f"{verdict}); mean {mean_clean:.2f} against {mean_old:.2f} for the old ACES view "
        f"({mean_old / max(mean_clean, 1e-9):.0f}x closer)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
