"""One evaluation: fine-tune on K frames of a clip, drive it and the warp baseline with held-out
frames, score both against the truth."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pipeline.errors import EvalError
from pipeline.eval.clips import ClipFaces, load_clip, pick_frames
from pipeline.eval.metrics import (
    error_jitter,
    face_psnr,
    face_ssim,
    face_weights,
    inter_ocular,
    landmark_error,
    psnr,
    ssim,
)
from pipeline.eval.plot import plot_result
from pipeline.eval.probe import FaceProbe, descriptor_distance_
from pipeline.hashing import sha256_file

SCHEMA = "likeness.eval/1"


def _summary(rows: list[dict[str, Any]], keys: Sequence[str]) -> dict[str, float]:
    out = {}
    for key in keys:
        vals = [r[key] for r in rows if key in r and r[key] is not None and np.isfinite(r[key])]
        out[key] = float(np.mean(vals)) if vals else float("nan")
    return out


def _driving_cross(
    target: ClipFaces, ref_rows: np.ndarray, driving: ClipFaces, runs: list[np.ndarray]
) -> np.ndarray:
    """The driving clip's landmarks retargeted onto the target's mean reference shape.

    Returns: N×68×2 float32 crop pixels, one per row of ``driving`` (aligned crop space).
    """
    from pipeline.inference.retarget import mean_shape, retarget

    target_mean = mean_shape(target.points[ref_rows])
    return retarget(driving.points, target_mean).astype(np.float32)


def evaluate_clip(
    clip: str | Path,
    k: int = 8,
    minutes: float = 20.0,
    network: str = "cpu-preview",
    mode: Literal["self", "cross"] = "self",
    driving: str | Path | None = None,
    *,
    tests: int = 40,
    run_length: int = 8,
    min_gap: int = 5,
    max_frames: int | None = None,
    out_dir: str | Path | None = None,
    cache: str | Path | None = None,
    seed: int = 0,
    finetune_overrides: dict[str, Any] | None = None,
    base: str | Path | None = None,
) -> dict[str, Any]:
    """Fine-tune on K frames of ``clip`` and score it against the warp baseline.

    Args:
        clip: the clip whose frames are the references (and, in self mode, the truth).
        k: references, spread evenly over the tracked frames.
        minutes: fine-tuning wall-time budget.
        network: network config (``configs/networks``); its ``image_size`` is the crop size.
        mode: ``"self"`` (self-reenactment) or ``"cross"`` (drive with ``driving``).
        driving: the performer's clip, for ``mode="cross"``.
        tests: driving frames scored.
        run_length: consecutive frames per run of driving frames (temporal jitter needs ≥ 2).
        min_gap: driving frames are more than this many frames from every reference (self mode).
        max_frames: read only the first this many frames of each clip.
        out_dir: where the fine-tune, ``eval.json`` and ``eval.png`` go; a temporary folder
            (deleted) when ``None``.
        cache: landmark cache folder; ``None`` tracks every time.
        seed: fine-tuning seed.
        finetune_overrides: extra :class:`~pipeline.train.finetune.FinetuneParams` fields.
        base: a meta-trained base checkpoint (``likeness train-base``) to fine-tune from; from
            scratch when ``None``. Its SHA-256 is recorded in the result. A base meant for a
            fair score must not have seen ``clip``.

    Returns:
        the JSON-able result: ``{"schema", "clip", "mode", "k", "network", "size", "minutes",
        "train": {...}, "frames": [per-frame rows], "learned": {...}, "warp": {...},
        "delta": {...}, "wins": {...}}``; ``learned``/``warp`` hold the means of ``psnr``,
        ``ssim``, ``identity``, ``landmark_error``, ``jitter``, ``jitter_raw`` (self) or
        ``identity_target``, ``identity_performer``, ``expression_error``, ``jitter_raw``
        (cross).

    Raises:
        EvalError: bad arguments, a missing base, too short a clip.
        NoFaceError: no face tracked.
    """
    import tempfile

    from pipeline.config import to_jsonable
    from pipeline.inference.actor import ActorModel
    from pipeline.models.networks import load_network_config
    from pipeline.train.finetune import FinetuneParams, finetune
    from pipeline.warping.image import warp_baseline

    if mode not in ("self", "cross"):
        raise EvalError(f"unknown mode {mode!r}", "use 'self' or 'cross'")
    if mode == "cross" and driving is None:
        raise EvalError("cross-identity mode needs a driving clip", "pass driving=PATH")
    if not minutes > 0:
        raise EvalError(f"minutes must be positive, got {minutes}", "pass e.g. 20")
    if base is not None and not Path(base).is_file():
        raise EvalError(
            f"base checkpoint {base} does not exist",
            "train one with `likeness train-base CORPUS --out DIR` (on clips other than the one "
            "scored), or leave --base out to fine-tune from scratch",
        )
    size = load_network_config(network).image_size
    faces = load_clip(clip, size, max_frames, cache)
    ref_rows, runs = pick_frames(
        faces.frames, k, tests, run_length, min_gap if mode == "self" else -1
    )
    drive_pts: np.ndarray
    if mode == "cross":
        perf = load_clip(driving, size, max_frames, cache)  # type: ignore[arg-type]
        _, runs = pick_frames(perf.frames, 1, tests, run_length, -1)
        drive_pts = _driving_cross(faces, ref_rows, perf, runs)
    else:
        perf = faces
        drive_pts = faces.points
    refs = [(faces.crops[i], faces.points[i]) for i in ref_rows]
    ref_imgs, ref_pts = faces.crops[ref_rows], faces.points[ref_rows]

    tmp = None
    if out_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="likeness_eval_")
        out_dir = tmp.name
    out_dir = Path(out_dir)
    try:
        cfg = FinetuneParams(
            **{
                "network": network,
                "steps": 1_000_000,
                "max_minutes": minutes,
                "checkpoint_every": 500,
                "log_every": 100,
                "device": "auto",
                "seed": seed,
                **(finetune_overrides or {}),
            }
        )
        base_sha = sha256_file(base) if base is not None else None
        res = finetune(
            refs, cfg, out_dir / "finetune", base_checkpoint=base, base_sha256=base_sha,
            resume=False, actor_id=faces.name,
        )  # fmt: skip
        model = ActorModel.from_checkpoint(res.checkpoint, res.sha256)
        probe = FaceProbe()
        target_desc = None
        if mode == "cross":
            descs = [probe.descriptor(im, pt) for im, pt in zip(ref_imgs, ref_pts)]
            target_desc = np.mean(descs, axis=0)
        rows: list[dict[str, Any]] = []
        tracks: dict[str, list[list[np.ndarray]]] = {"learned": [], "warp": [], "truth": []}
        examples = []
        for r, run in enumerate(runs):
            for key in tracks:
                tracks[key].append([])
            for i in run:
                pts = drive_pts[i]
                truth = perf.crops[i]
                outputs = {
                    "learned": model(pts),
                    "warp": warp_baseline(ref_imgs, ref_pts, pts)[0],
                }
                truth_box = probe.box(truth, perf.points[i])
                truth_fit = probe.fit(truth, truth_box)
                # Self mode: every image is fitted in the truth's face box, so the detector's
                # box noise cancels; cross mode: the outputs share the warp's box.
                box = truth_box if mode == "self" else probe.box(outputs["warp"], pts)
                tracks["truth"][r].append(truth_fit if mode == "self" else pts)
                row: dict[str, Any] = {"frame": int(perf.frames[i]), "run": r}
                truth_desc = probe.descriptor(truth, truth_fit)
                face_w = face_weights(perf.points[i], size) if mode == "self" else None
                for name, img in outputs.items():
                    fit = probe.fit(img, box)
                    tracks[name][r].append(fit)
                    desc = probe.descriptor(img, fit)
                    if mode == "self":
                        row[f"{name}_psnr"] = psnr(img, truth)
                        row[f"{name}_ssim"] = ssim(img, truth)
                        row[f"{name}_ssim_face"] = face_ssim(img, truth, face_w)
                        row[f"{name}_psnr_face"] = face_psnr(img, truth, face_w)
                        row[f"{name}_identity"] = descriptor_distance_(desc, truth_desc)
                        row[f"{name}_landmark_error"] = landmark_error(fit, truth_fit)
                    else:
                        row[f"{name}_identity_target"] = descriptor_distance_(desc, target_desc)
                        row[f"{name}_identity_performer"] = descriptor_distance_(desc, truth_desc)
                        row[f"{name}_expression_error"] = landmark_error(fit, pts)
                rows.append(row)
                if len(examples) < 4 and i == run[len(run) // 2]:
                    examples.append((truth, outputs["warp"], outputs["learned"]))
        from pipeline.qc.tracking import jitter

        result_sys: dict[str, dict[str, float]] = {}
        metric_keys = (
            ("psnr", "ssim", "identity", "landmark_error", "ssim_face", "psnr_face")
            if mode == "self"
            else ("identity_target", "identity_performer", "expression_error")
        )
        for name in ("learned", "warp"):
            summ = {m: _summary(rows, [f"{name}_{m}"])[f"{name}_{m}"] for m in metric_keys}
            jit, raw = [], []
            for run_pts, run_ref in zip(tracks[name], tracks["truth"]):
                p, q = np.stack(run_pts), np.stack(run_ref)
                jit.append(error_jitter(p, q))
                iod = float(np.mean([inter_ocular(x) for x in q]))
                raw.append(float(np.nanmean(jitter(p)[1:])) / max(iod, 1e-9))
            summ["jitter"] = float(np.nanmean(jit))
            summ["jitter_raw"] = float(np.nanmean(raw))
            result_sys[name] = summ
        delta = {m: result_sys["learned"][m] - result_sys["warp"][m] for m in result_sys["warp"]}
        lower_better = {
            "identity",
            "landmark_error",
            "jitter",
            "identity_target",
            "expression_error",
            "jitter_raw",
        }
        wins = {
            m: bool(d > 0) if m not in lower_better else bool(d < 0)
            for m, d in delta.items()
            if m != "identity_performer"
        }
        result: dict[str, Any] = {
            "schema": SCHEMA,
            "clip": str(clip),
            "name": faces.name,
            "mode": mode,
            "driving": None if driving is None else str(driving),
            "k": k,
            "network": network,
            "size": size,
            "minutes": minutes,
            "reference_frames": [int(faces.frames[i]) for i in ref_rows],
            "driving_frames": len(rows),
            "metrics": {
                "ssim": "skimage structural_similarity, gaussian sigma 1.5 (11x11), "
                "population covariance, data_range 1, mean over RGB",
                "psnr": "dB over the whole aligned crop, sRGB 0..1",
                "identity": "L2 of dlib 128-d descriptors, output vs truth (<0.6 same person)",
                "landmark_error": "dlib 68 points re-fitted in the truth's face box, mean "
                "distance / truth inter-ocular distance",
                "jitter": "RMS frame-to-frame change of the landmark error / inter-ocular",
                "ssim_face": "the SSIM map averaged inside the production face matte of the "
                "truth's landmarks (68-point hull plus forehead, feathered): the region a "
                "composite keeps; diagnostic, not a goal metric",
                "psnr_face": "dB of the face-matte-weighted mean squared error; diagnostic",
            },
            "train": {
                "steps": res.step,
                "stopped_by": res.stopped_by,
                "seconds": round(res.elapsed_s, 1),
                "best_step": res.best_step,
                "holdout_loss": res.holdout_loss,
                "fusion": model.fusion.to_json(),  # G's warp input, as chosen by the fine-tune
                "base": str(base) if base is not None else None,
                "base_sha256": base_sha,
                "config": to_jsonable(cfg),
            },
            "learned": result_sys["learned"],
            "warp": result_sys["warp"],
            "delta": delta,
            "wins": wins,
            "frames": rows,
        }
        from pipeline.atomic import write_json

        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / "eval.json", result)
        plot_result(result, examples, out_dir / "eval.png")
        if tmp is None:
            result["json"] = str(out_dir / "eval.json")
            result["plot"] = str(out_dir / "eval.png")
        return result
    finally:
        if tmp is not None:
            tmp.cleanup()
