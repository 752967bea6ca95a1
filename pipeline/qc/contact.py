"""What the QC page shows of a delivery: contact-sheet rows collected while frames are written,
and the fine-tune's curves and notes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.delivery.review import ReviewTransform
from pipeline.delivery.write import DeliveredFrame
from pipeline.inference.faces import Faces
from pipeline.io.plate_cache import CachedPlate, read_cached_frame
from pipeline.landmarks.sidecar import Landmarks
from pipeline.qc.report import ContactRow
from pipeline.qc.tracking import overlay_frame


@dataclass
class ContactCollector:
    """Keeps a few review frames for the contact sheet while the delivery loop runs.

    Called with each delivered frame and its review rendering (``on_frame`` of
    :func:`pipeline.delivery.write.write_delivery`); keeps a :class:`ContactRow` for the frames in
    ``picks``: the plate, its landmarks, the synthesized crop, the composite, their
    difference, and the face of the plate and of the delivery at 1:1, all uint8 through the review's transform (the plate's encoding by default).

    Attributes:
        picks: the plate frame numbers to keep.
        lm: the shot's landmarks, or None (plate-only delivery).
        faces: the synthesized crops, or None.
        plate: the ingested plate.
        review: the review's transform, for the plate's rendering.
        rows: the rows kept so far, in delivery order.
    """

    picks: set[int]
    lm: Landmarks | None
    faces: Faces | None
    plate: CachedPlate
    review: ReviewTransform
    rows: list[ContactRow] = field(default_factory=list)

    def __call__(self, fr: DeliveredFrame, disp: np.ndarray) -> None:
        """Keep ``fr`` when it is a pick; ``disp`` is its H×W×3 float32 review rendering."""
        if fr.number not in self.picks:
            return
        plate_lin = read_cached_frame(self.plate, fr.number)  # H×W×3 float32 scene-linear
        plate_disp = _to8(self.review(plate_lin))
        comp_disp = _to8(disp)
        diff = np.abs(comp_disp.astype(np.int16) - plate_disp.astype(np.int16))
        diff = np.clip(diff * 4, 0, 255).astype(np.uint8)  # ×4 so small changes show
        lms = crop = face_plate = face_delivered = None
        if self.lm is not None:
            i = self.lm.index(fr.number)
            lms = overlay_frame(
                plate_disp, self.lm.points[i], float(self.lm.confidence[i]),
                bool(self.lm.tracked[i]),
            )  # fmt: skip
            box = face_box(self.lm.points[i], plate_disp.shape[:2])
            if box is not None:
                face_plate, face_delivered = plate_disp[box], comp_disp[box]
        if self.faces is not None:
            i = fr.number - int(self.faces.frames[0])
            if self.faces.valid[i]:
                crop = _to8(np.asarray(self.faces.faces[i], np.float32))  # S×S×3 display sRGB
        self.rows.append(
            ContactRow(fr.number, plate_disp, lms, crop, comp_disp, diff, face_plate,
                       face_delivered)
        )  # fmt: skip


def face_box(
    points: np.ndarray, shape: tuple[int, int], margin: float = 0.25
) -> tuple[slice, slice] | None:
    """The plate pixels around a face: its landmark box grown by ``margin`` of its size on each
    side (the forehead and jaw line included), clipped to the frame; None without landmarks."""
    pts = np.asarray(points, np.float64)
    if not np.isfinite(pts).all():
        return None
    lo, hi = pts.min(0), pts.max(0)
    pad = margin * (hi - lo)
    h, w = shape
    x0, y0 = np.maximum(np.floor(lo - pad).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(hi + pad).astype(int), (w, h))
    if x1 <= x0 or y1 <= y0:
        return None
    return slice(y0, y1), slice(x0, x1)


def _to8(a: np.ndarray) -> np.ndarray:
    """Display-referred float 0..1 → uint8."""
    return (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)


def _read_curves(path: Path | None) -> dict[str, Any]:
    if path is None or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def training_curves(path: Path | None) -> dict[str, list[float]]:
    """The fine-tune's per-step curves from its ``loss_curve.json`` ({} when unreadable)."""
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
