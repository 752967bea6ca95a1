"""The delivery stage: composite the synthesized faces into the plate, write the EXR sequence,
the review movie and the QC page of one shot version, and record provenance.

Compositing runs in scene-linear ACEScg on the ingest cache. Frames where tracking failed pass the
plate through untouched and are listed in QC.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.deliver import DeliverConfig, DeliveredFrame, DeliveryResult, deliver
from pipeline.ingest import CachedPlate, read_cached_frame
from pipeline.landmarks.sidecar import Landmarks
from pipeline.synth import Faces

#: The colour space the generator's crops are encoded in (that of the reference stills).
FACE_ENCODING = "sRGB Encoded Rec.709 (sRGB)"
CONTACT_ROWS = 4


class _PlateFrames(Sequence):
    """The ingest cache as a lazy sequence of H×W×3 float32 ACEScg frames (small LRU)."""

    def __init__(self, plate: CachedPlate) -> None:
        self.plate = plate
        self.numbers = list(plate.frames)
        self._get = functools.lru_cache(maxsize=4)(self._read)

    def _read(self, i: int) -> np.ndarray:
        return read_cached_frame(self.plate, self.numbers[i])

    def __len__(self) -> int:
        return len(self.numbers)

    def __getitem__(self, i: int) -> np.ndarray:  # type: ignore[override]
        return self._get(int(i))


class _FaceCrops(Sequence):
    """Synthesized crops as a lazy sequence of S×S×3 float32 ACEScg (None where not valid)."""

    def __init__(self, faces: Faces, color: Any, working_space: str) -> None:
        self.faces = faces
        self.color = color
        self.space = working_space
        self._get = functools.lru_cache(maxsize=4)(self._read)

    def _read(self, i: int) -> np.ndarray | None:
        if not self.faces.valid[i]:
            return None
        srgb = np.ascontiguousarray(self.faces.faces[i], np.float32)
        return self.color.convert(srgb, FACE_ENCODING, self.space)

    def __len__(self) -> int:
        return len(self.faces.frames)

    def __getitem__(self, i: int) -> np.ndarray | None:  # type: ignore[override]
        return self._get(int(i))


def join_faces(chunks: list[Faces], plate: CachedPlate) -> Faces:
    """Concatenate chunk outputs in frame order and check they tile the plate's range."""
    from pipeline.errors import StageError

    chunks = sorted(chunks, key=lambda f: int(f.frames[0]))
    frames = np.concatenate([c.frames for c in chunks])
    if frames.tolist() != list(plate.frames):
        raise StageError(
            f"synthesis chunks cover frames {frames[0]}..{frames[-1]} ({len(frames)}), "
            f"the plate holds {plate.frames}",
            "rerun the synthesis stage",
        )
    cat = lambda name: np.concatenate([getattr(c, name) for c in chunks])  # noqa: E731
    return Faces(frames, cat("faces"), cat("points"), cat("inverse"), cat("valid"))


@dataclass
class _QcCollector:
    """Keeps a few display frames for the contact sheet while the delivery loop runs."""

    picks: set[int]
    lm: Landmarks | None
    faces: Faces | None
    plate: CachedPlate
    color: Any
    cfg: DeliverConfig
    rows: list[Any]

    def __call__(self, fr: DeliveredFrame, disp: np.ndarray) -> None:
        from pipeline.qc.report import ContactRow
        from pipeline.qc.tracking import overlay_frame

        if fr.number not in self.picks:
            return
        to8 = lambda a: (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)  # noqa: E731
        plate_lin = read_cached_frame(self.plate, fr.number)
        plate_disp = to8(
            self.color.to_display(
                plate_lin, self.plate.working_space, self.cfg.review_display, self.cfg.review_view
            )
        )
        comp_disp = to8(disp)
        diff = np.abs(comp_disp.astype(np.int16) - plate_disp.astype(np.int16))
        diff = np.clip(diff * 4, 0, 255).astype(np.uint8)  # ×4 so small changes show
        lms = crop = None
        if self.lm is not None:
            i = self.lm.index(fr.number)
            lms = overlay_frame(
                plate_disp,
                self.lm.points[i],
                float(self.lm.confidence[i]),
                bool(self.lm.tracked[i]),
            )
        if self.faces is not None:
            i = fr.number - int(self.faces.frames[0])
            if self.faces.valid[i]:
                crop = to8(np.asarray(self.faces.faces[i], np.float32))
        self.rows.append(ContactRow(fr.number, plate_disp, lms, crop, comp_disp, diff))


def _read_curves(path: Path | None) -> dict[str, Any]:
    if path is None or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _training_curves(path: Path | None) -> dict[str, list[float]]:
    data = _read_curves(path)
    return {k: v for k, v in data.items() if k != "step" and isinstance(v, list)}


def finetune_note(path: Path | None) -> str | None:
    """The QC page's line on the fine-tune, from ``loss_curve.json``'s summary: the step kept
    and how G's warp input is built. ``None`` without a summary (older fine-tunes)."""
    summary = _read_curves(path).get("summary")
    if not isinstance(summary, dict):
        return None
    try:
        steps, kept = int(summary["steps"]), int(summary["kept_step"])
        fusion = summary["fusion"]
        top, temp = int(fusion["top"]), float(fusion["temperature"])
        spline = float(fusion["spline"])
    except (KeyError, TypeError, ValueError):
        return None
    warp = (
        "piecewise-affine" if spline == 0.0
        else "thin-plate spline" if spline == 1.0
        else f"piecewise-affine and thin-plate spline blended (spline weight {spline:g})"
    )  # fmt: skip
    refs = "the nearest reference" if top == 1 else f"the {top} nearest references"
    line = f"Fine-tune: {steps} steps; kept step {kept}"
    if summary.get("early_stopping"):
        line += " (the best on the held-out references)"
        if kept == 0:
            line += ", so the fine-tune did not improve on the starting model"
    return f"{line}. G's warp input: {refs}, {warp}, blend temperature {temp:g}."


def run_delivery(
    *,
    shot: str,
    version: str,
    plate: CachedPlate,
    lm: Landmarks | None,
    faces: Faces | None,
    composite_cfg: Any,
    cfg: DeliverConfig,
    out_dir: Path,
    compression: str,
    review_codec: str,
    provenance: dict[str, str],
    ocio_config: str | None,
    stage_timings: dict[str, float],
    training_curves: Path | None = None,
    progress: Any = None,
) -> tuple[DeliveryResult, dict[str, Any]]:
    """Composite and deliver one shot version into ``out_dir`` (which appears whole).

    Args:
        shot, version: names for files and burn-ins.
        plate: the ingested plate.
        lm: the shot's landmarks, or None (plate-only delivery).
        faces: the synthesized crops for every plate frame, or None (plate-only delivery).
        composite_cfg: the profile's composite config.
        cfg: the deliver config.
        out_dir: the version folder.
        compression, review_codec: from the shot spec.
        provenance: ``likeness:*`` attributes for every frame and the movie.
        ocio_config: the OCIO config (None: $OCIO or the built-in studio config).
        stage_timings: stage → seconds, for the QC page.
        training_curves: the fine-tune's ``loss_curve.json``, for the QC page.

    Returns:
        the delivery result and manifest extras (untouched frames, QC page, timings).
    """
    from pipeline.color import ColorPipeline
    from pipeline.composite import composite_sequence
    from pipeline.deliver import plate_frames
    from pipeline.qc.report import ReportContext, write_report
    from pipeline.qc.tracking import jitter

    color = ColorPipeline(ocio_config)
    untouched: list[int] = []
    timings = {"composite_s": 0.0}
    numbers = list(plate.frames)
    per_frame: dict[str, list[float]] = {
        "mean |composite - plate| (linear)": [],
        "matte coverage (fraction of frame)": [],
    }
    if faces is not None:
        plates = _PlateFrames(plate)
        seq = composite_sequence(
            plates,
            _FaceCrops(faces, color, plate.working_space),
            faces.points.astype(np.float64),
            faces.inverse.astype(np.float64),
            faces.valid.astype(bool),
            composite_cfg,
        )

        def frames_iter():
            it = iter(seq)
            for i, n in enumerate(numbers):
                t0 = time.perf_counter()
                comp, face, matte = next(it)
                timings["composite_s"] += time.perf_counter() - t0
                plate_lin = plates[i]
                per_frame["mean |composite - plate| (linear)"].append(
                    float(np.abs(comp - plate_lin).mean())
                )
                per_frame["matte coverage (fraction of frame)"].append(float(matte.mean()))
                yield DeliveredFrame(n, comp, face, None, bool(faces.valid[i]))

        frames = frames_iter()
        valid_numbers = [n for n, v in zip(numbers, faces.valid) if v]
    else:
        seq = None
        frames = plate_frames(plate)
        valid_numbers = numbers
    picks_from = valid_numbers or numbers
    picks = {
        picks_from[int(round(x))]
        for x in np.linspace(0, len(picks_from) - 1, min(CONTACT_ROWS, len(picks_from)))
    }
    collector = _QcCollector(picks, lm, faces, plate, color, cfg, [])

    def finalize(tmp: Path) -> None:
        if seq is not None:
            untouched.extend(numbers[i] for i in seq.untouched)
        conf = jit = None
        if lm is not None:
            conf = [float(c) if t else 0.0 for c, t in zip(lm.confidence, lm.tracked)]
            j = jitter(lm.points)
            jit = [float(x) if np.isfinite(x) else 0.0 for x in j]
        write_report(
            tmp / "qc",
            ReportContext(
                shot=shot,
                version=version,
                frame_numbers=numbers,
                contact_sheet=sorted(collector.rows, key=lambda r: r.frame),
                tracking_confidence=conf,
                jitter=jit,
                metrics={k: v for k, v in per_frame.items() if len(v) == len(numbers)},
                training_curves=_training_curves(training_curves),
                stage_timings=stage_timings,
                untouched_frames=untouched,
                provenance=provenance,
                exr_path=str(out_dir / "exr" / f"{shot}.####.exr"),
                movie_path=str(out_dir / f"{shot}_{version}.mov"),
                created=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                notes=[
                    *([f"{len(untouched)} frame(s) passed through untouched"] if untouched else []),
                    *filter(None, [finetune_note(training_curves)]),
                ],
            ),
        )

    t0 = time.perf_counter()
    result = deliver(
        shot,
        version,
        plate,
        frames,
        cfg,
        out_dir,
        compression=compression,
        review_codec=review_codec,
        provenance=provenance,
        ocio_config=ocio_config,
        progress=progress,
        on_frame=collector,
        finalize=finalize,
    )
    total = time.perf_counter() - t0
    extra = {
        "untouched_frames": untouched,
        "qc": str(out_dir / "qc" / "index.html"),
        "composite_s": round(timings["composite_s"], 3),
        "write_s": round(total - timings["composite_s"], 3),
    }
    if seq is not None:
        extra["edge_flicker"] = {"raw": seq.flicker_raw, "smoothed": seq.flicker_smoothed}
    return result, extra
