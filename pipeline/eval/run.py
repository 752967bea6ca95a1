"""One evaluation: fine-tune on K frames of a clip, drive it and the warp baseline with held-out
frames, score both against the truth (see :mod:`pipeline.eval` for the measures).

The steps, in order: :func:`_setup` (track and align the clips, pick references and driving
runs), :func:`_finetune`, :func:`_score` (every driving frame through both systems), and
:func:`_summarise` (means, jitter, deltas and wins) into the result :func:`_result` assembles.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pipeline.atomic import write_json
from pipeline.config import to_jsonable
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
from pipeline.inference.actor import ActorModel
from pipeline.inference.retarget import mean_shape, retarget
from pipeline.models.networks import load_network_config
from pipeline.qc.tracking import jitter
from pipeline.train.finetune import FinetuneParams, FinetuneResult, finetune
from pipeline.warping.image import warp_baseline

SCHEMA = "likeness.eval/1"

#: Measures where lower is better (the others: higher is better).
LOWER_BETTER = frozenset(
    {"identity", "landmark_error", "jitter", "identity_target", "expression_error", "jitter_raw"}
)

#: What each goal measure is, recorded in every result.
METRICS = {
    "ssim": "skimage structural_similarity, gaussian sigma 1.5 (11x11), population covariance, "
    "data_range 1, mean over RGB",
    "psnr": "dB over the whole aligned crop, sRGB 0..1",
    "identity": "L2 of dlib 128-d descriptors, output vs truth (<0.6 same person)",
    "landmark_error": "dlib 68 points re-fitted in the truth's face box, mean distance / truth "
    "inter-ocular distance",
    "jitter": "RMS frame-to-frame change of the landmark error / inter-ocular",
    "ssim_face": "the SSIM map averaged inside the production face matte of the truth's landmarks "
    "(68-point hull plus forehead, feathered): the region a composite keeps; diagnostic, not a "
    "goal metric",
    "psnr_face": "dB of the face-matte-weighted mean squared error; diagnostic",
}


@dataclass
class _Setup:
    """The evaluation's frames: the reference clip, the performer's clip and what drives.

    Attributes:
        faces: the clip whose frames are the references (and, in self mode, the truth).
        perf: the performer's clip (``faces`` itself in self mode).
        ref_rows: K row indices of the references in ``faces``.
        runs: row indices in ``perf`` of consecutive driving frames.
        drive_pts: N×68×2 float32 crop-pixel driving landmarks, one per row of ``perf``.
    """

    faces: ClipFaces
    perf: ClipFaces
    ref_rows: np.ndarray
    runs: list[np.ndarray]
    drive_pts: np.ndarray


@dataclass
class _Scores:
    """Per-frame rows and, per system and run, the re-fitted landmarks (for jitter)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    tracks: dict[str, list[list[np.ndarray]]] = field(
        default_factory=lambda: {"learned": [], "warp": [], "truth": []}
    )
    examples: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)


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
    _check_arguments(mode, driving, minutes, base)
    size = load_network_config(network).image_size
    setup = _setup(clip, size, mode, driving, k, tests, run_length, min_gap, max_frames, cache)
    tmp = tempfile.TemporaryDirectory(prefix="likeness_eval_") if out_dir is None else None
    out = Path(tmp.name if tmp is not None else out_dir)  # type: ignore[arg-type]
    try:
        base_sha = sha256_file(base) if base is not None else None
        res, model, cfg = _finetune(
            setup, network, minutes, seed, finetune_overrides, base, base_sha, out
        )
        scores = _score(model, setup, mode, size)
        result = _result(
            clip, mode, driving, k, network, size, minutes, setup, scores, res, model, cfg, base,
            base_sha,
        )  # fmt: skip
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "eval.json", result)
        plot_result(result, scores.examples, out / "eval.png")
        if tmp is None:
            result["json"] = str(out / "eval.json")
            result["plot"] = str(out / "eval.png")
        return result
    finally:
        if tmp is not None:
            tmp.cleanup()


def _check_arguments(
    mode: str, driving: str | Path | None, minutes: float, base: str | Path | None
) -> None:
    """Raises: EvalError naming the bad argument and the fix."""
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


def _setup(
    clip: str | Path,
    size: int,
    mode: str,
    driving: str | Path | None,
    k: int,
    tests: int,
    run_length: int,
    min_gap: int,
    max_frames: int | None,
    cache: str | Path | None,
) -> _Setup:
    """Track and align the clip(s); pick the references and the driving runs."""
    faces = load_clip(clip, size, max_frames, cache)
    ref_rows, runs = pick_frames(
        faces.frames, k, tests, run_length, min_gap if mode == "self" else -1
    )
    if mode == "cross":
        perf = load_clip(driving, size, max_frames, cache)  # type: ignore[arg-type]
        _, runs = pick_frames(perf.frames, 1, tests, run_length, -1)
        # the performer's landmarks retargeted onto the target's mean reference shape
        target_mean = mean_shape(faces.points[ref_rows])
        drive = retarget(perf.points, target_mean).astype(np.float32)
        return _Setup(faces, perf, ref_rows, runs, drive)
    return _Setup(faces, faces, ref_rows, runs, faces.points)


def _finetune(
    setup: _Setup,
    network: str,
    minutes: float,
    seed: int,
    overrides: dict[str, Any] | None,
    base: str | Path | None,
    base_sha: str | None,
    out: Path,
) -> tuple[FinetuneResult, ActorModel, FinetuneParams]:
    """Fine-tune on the references for ``minutes`` (from ``base`` when given)."""
    cfg = FinetuneParams(
        **{
            "network": network, "steps": 1_000_000, "max_minutes": minutes,
            "checkpoint_every": 500, "log_every": 100, "device": "auto", "seed": seed,
            **(overrides or {}),
        }
    )  # fmt: skip
    refs = [(setup.faces.crops[i], setup.faces.points[i]) for i in setup.ref_rows]
    res = finetune(
        refs, cfg, out / "finetune", base_checkpoint=base, base_sha256=base_sha, resume=False,
        actor_id=setup.faces.name,
    )  # fmt: skip
    return res, ActorModel.from_checkpoint(res.checkpoint, res.sha256), cfg


def _score(model: ActorModel, setup: _Setup, mode: str, size: int) -> _Scores:
    """Every driving frame through the learned model and the warp baseline, scored."""
    probe = FaceProbe()
    ref_imgs, ref_pts = setup.faces.crops[setup.ref_rows], setup.faces.points[setup.ref_rows]
    target_desc = None
    if mode == "cross":
        descs = [probe.descriptor(im, pt) for im, pt in zip(ref_imgs, ref_pts)]
        target_desc = np.mean(descs, axis=0)
    scores = _Scores()
    for r, run in enumerate(setup.runs):
        for key in scores.tracks:
            scores.tracks[key].append([])
        for i in run:
            pts = setup.drive_pts[i]  # 68×2 crop pixels
            outputs = {"learned": model(pts), "warp": warp_baseline(ref_imgs, ref_pts, pts)[0]}
            row = _score_frame(probe, setup.perf, i, pts, outputs, mode, size, target_desc)
            for name in ("learned", "warp", "truth"):
                scores.tracks[name][r].append(row.pop(f"_{name}_fit"))
            scores.rows.append({"frame": int(setup.perf.frames[i]), "run": r, **row})
            if len(scores.examples) < 4 and i == run[len(run) // 2]:
                scores.examples.append((setup.perf.crops[i], outputs["warp"], outputs["learned"]))
    return scores


def _score_frame(
    probe: FaceProbe,
    perf: ClipFaces,
    i: int,
    pts: np.ndarray,
    outputs: dict[str, np.ndarray],
    mode: str,
    size: int,
    target_desc: np.ndarray | None,
) -> dict[str, Any]:
    """One driving frame's measures for each system, and the re-fitted landmarks (``_*_fit``).

    Args:
        perf: the performer's clip; row ``i`` is the truth.
        pts: 68×2 crop-pixel driving landmarks.
        outputs: ``{"learned", "warp"}``: S×S×3 float32 display sRGB.
    """
    truth = perf.crops[i]
    truth_box = probe.box(truth, perf.points[i])
    truth_fit = probe.fit(truth, truth_box)
    # Self mode: every image is fitted in the truth's face box, so the detector's box noise
    # cancels; cross mode: the outputs share the warp's box.
    box = truth_box if mode == "self" else probe.box(outputs["warp"], pts)
    row: dict[str, Any] = {"_truth_fit": truth_fit if mode == "self" else pts}
    truth_desc = probe.descriptor(truth, truth_fit)
    face_w = face_weights(perf.points[i], size) if mode == "self" else None
    for name, img in outputs.items():
        fit = probe.fit(img, box)
        row[f"_{name}_fit"] = fit
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
    return row


def _means(rows: list[dict[str, Any]], keys: Sequence[str]) -> dict[str, float]:
    """The mean of each key over the rows that hold a finite value of it (NaN for none)."""
    out = {}
    for key in keys:
        vals = [r[key] for r in rows if key in r and r[key] is not None and np.isfinite(r[key])]
        out[key] = float(np.mean(vals)) if vals else float("nan")
    return out


def _summarise(scores: _Scores, mode: str) -> dict[str, dict[str, float]]:
    """Each system's mean measures and jitter over the runs."""
    metric_keys = (
        ("psnr", "ssim", "identity", "landmark_error", "ssim_face", "psnr_face")
        if mode == "self"
        else ("identity_target", "identity_performer", "expression_error")
    )
    out: dict[str, dict[str, float]] = {}
    for name in ("learned", "warp"):
        summ = {m: _means(scores.rows, [f"{name}_{m}"])[f"{name}_{m}"] for m in metric_keys}
        jit, raw = [], []
        for run_pts, run_ref in zip(scores.tracks[name], scores.tracks["truth"]):
            p, q = np.stack(run_pts), np.stack(run_ref)  # T×68×2 each
            jit.append(error_jitter(p, q))
            iod = float(np.mean([inter_ocular(x) for x in q]))
            raw.append(float(np.nanmean(jitter(p)[1:])) / max(iod, 1e-9))
        summ["jitter"] = float(np.nanmean(jit))
        summ["jitter_raw"] = float(np.nanmean(raw))
        out[name] = summ
    return out


def _result(
    clip: str | Path,
    mode: str,
    driving: str | Path | None,
    k: int,
    network: str,
    size: int,
    minutes: float,
    setup: _Setup,
    scores: _Scores,
    res: FinetuneResult,
    model: ActorModel,
    cfg: FinetuneParams,
    base: str | Path | None,
    base_sha: str | None,
) -> dict[str, Any]:
    """The JSON-able result (see :func:`evaluate_clip`)."""
    systems = _summarise(scores, mode)
    delta = {m: systems["learned"][m] - systems["warp"][m] for m in systems["warp"]}
    wins = {
        m: bool(d < 0) if m in LOWER_BETTER else bool(d > 0)
        for m, d in delta.items()
        if m != "identity_performer"
    }
    return {
        "schema": SCHEMA,
        "clip": str(clip),
        "name": setup.faces.name,
        "mode": mode,
        "driving": None if driving is None else str(driving),
        "k": k,
        "network": network,
        "size": size,
        "minutes": minutes,
        "reference_frames": [int(setup.faces.frames[i]) for i in setup.ref_rows],
        "driving_frames": len(scores.rows),
        "metrics": METRICS,
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
        "learned": systems["learned"],
        "warp": systems["warp"],
        "delta": delta,
        "wins": wins,
        "frames": scores.rows,
    }
