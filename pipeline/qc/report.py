"""The QC report: one static, self-contained HTML page per shot version.

The page has no scripts and no external CSS, JavaScript or fonts; it links only to PNG files in
its own folder, so the folder can be copied, mailed or opened from a file share as is. It shows:
a contact sheet (plate, landmarks, synthesized crop, composite, difference per sampled frame),
plots of tracking confidence, jitter and per-frame metrics, training curves, stage timings, the
frames left untouched, the provenance attributes and the paths of the deliverables.

Every field of :class:`ReportContext` but the shot and version is optional, so a partial run (no
training, no movie yet) still gives a page. The folder is written through
:func:`pipeline.atomic.atomic_dir`: readers see the old report or the new one, never half of one.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pipeline.atomic import atomic_dir
from pipeline.errors import ReportError

#: The page's file name inside the report folder.
INDEX = "index.html"

#: Contact-sheet columns: attribute of :class:`ContactRow` → heading.
COLUMNS = {
    "plate": "Plate",
    "landmarks": "Landmarks",
    "crop": "Synthesized crop",
    "composite": "Composite",
    "difference": "Difference",
    "face_plate": "Plate face, 1:1",
    "face_delivered": "Delivered face, 1:1",
}
#: Columns shown at 100 % (one image pixel per plate pixel), never scaled down.
ONE_TO_ONE = {"face_plate", "face_delivered"}

#: Largest width at which a contact-sheet image is shown, in CSS pixels.
THUMB_WIDTH = 220


@dataclass(frozen=True)
class ContactRow:
    """One sampled frame of the contact sheet. Any image may be ``None`` (shown as "n/a").

    Attributes:
        frame: the plate frame number.
        plate: H×W×3 (or H×W) uint8, display sRGB, RGB order: the plate.
        landmarks: H×W×3 uint8, display sRGB, RGB: the plate with the tracked landmarks drawn.
        crop: S×S×3 uint8, display sRGB, RGB: the synthesized face crop.
        composite: H×W×3 uint8, display sRGB, RGB: the composite.
        difference: H×W×3 (or H×W) uint8, display: the difference composite vs plate, as the
            caller chose to scale it.
        face_plate: h×w×3 uint8, display: the plate around the face, at 1:1 (plate pixels).
        face_delivered: h×w×3 uint8, display: the delivered frame over the same pixels.
    """

    frame: int
    plate: np.ndarray | None = None
    landmarks: np.ndarray | None = None
    crop: np.ndarray | None = None
    composite: np.ndarray | None = None
    difference: np.ndarray | None = None
    face_plate: np.ndarray | None = None
    face_delivered: np.ndarray | None = None


@dataclass(frozen=True)
class ReportContext:
    """Everything a QC page shows. Only ``shot`` and ``version`` are required.

    Attributes:
        shot: the shot name.
        version: the shot version (e.g. ``v003``).
        frame_numbers: N plate frame numbers; the x axis of the per-frame plots (indices when
            empty).
        contact_sheet: the sampled frames.
        tracking_confidence: N floats in [0, 1], per frame.
        jitter: N floats, landmark jitter per frame in pixels.
        metrics: per-frame metrics, name → N floats (e.g. colour gain, edge flicker).
        training_curves: name → values per logged step (e.g. ``{"loss_G": [...], ...}``).
        stage_timings: stage name → seconds.
        untouched_frames: plate frame numbers passed through untouched (tracking failed).
        provenance: attribute name → value (the ``likeness:*`` attributes of the EXRs).
        exr_path: the delivered EXR sequence, e.g. ``/shows/x/sh010.####.exr``.
        movie_path: the review movie.
        created: when the report was made, as text (the caller's clock, for reproducibility).
        notes: free lines shown under the title.
    """

    shot: str
    version: str
    frame_numbers: Sequence[int] = ()
    contact_sheet: Sequence[ContactRow] = ()
    tracking_confidence: Sequence[float] | None = None
    jitter: Sequence[float] | None = None
    metrics: Mapping[str, Sequence[float]] = field(default_factory=dict)
    training_curves: Mapping[str, Sequence[float]] = field(default_factory=dict)
    stage_timings: Mapping[str, float] = field(default_factory=dict)
    untouched_frames: Sequence[int] = ()
    provenance: Mapping[str, str] = field(default_factory=dict)
    exr_path: str | None = None
    movie_path: str | None = None
    created: str | None = None
    notes: Sequence[str] = ()


# --- checks ---------------------------------------------------------------------------------


def _image(img: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(img)
    if a.dtype != np.uint8:
        raise ReportError(
            f"{what} must be uint8 display sRGB, got dtype {a.dtype}",
            "convert with the display transform and scale to 0-255 before reporting",
        )
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (1, 3))) or min(a.shape[:2]) < 1:
        raise ReportError(f"{what} must be H×W×3 or H×W, got shape {a.shape}")
    return a


def _series(values: Sequence[float], what: str, n: int | None) -> np.ndarray:
    try:
        a = np.asarray(values, np.float64)
    except (TypeError, ValueError):
        raise ReportError(f"{what} must be a list of numbers") from None
    if a.ndim != 1:
        raise ReportError(f"{what} must be a flat list of numbers, got shape {a.shape}")
    if n is not None and len(a) != n:
        raise ReportError(
            f"{what} has {len(a)} values but there are {n} frame numbers",
            "give one value per frame, in frame order",
        )
    return a


def _check(ctx: ReportContext) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
    """Validate the context; return the frame axis and every per-frame series by title."""
    if not str(ctx.shot).strip() or not str(ctx.version).strip():
        raise ReportError(
            f"shot and version must be non-empty, got {ctx.shot!r} and {ctx.version!r}"
        )
    frames = _series(ctx.frame_numbers, "frame_numbers", None) if len(ctx.frame_numbers) else None
    n = None if frames is None else len(frames)
    per_frame: dict[str, np.ndarray] = {}
    if ctx.tracking_confidence is not None:
        per_frame["Tracking confidence"] = _series(
            ctx.tracking_confidence, "tracking_confidence", n
        )
    if ctx.jitter is not None:
        per_frame["Landmark jitter (px)"] = _series(ctx.jitter, "jitter", n)
    for name, vals in ctx.metrics.items():
        per_frame[str(name)] = _series(vals, f"metrics[{name!r}]", n)
    for name, vals in ctx.training_curves.items():
        _series(vals, f"training_curves[{name!r}]", None)
    for stage, sec in ctx.stage_timings.items():
        if (
            not isinstance(sec, (int, float))
            or isinstance(sec, bool)
            or not math.isfinite(sec)
            or sec < 0
        ):
            raise ReportError(f"stage_timings[{stage!r}] must be seconds >= 0, got {sec!r}")
    for row in ctx.contact_sheet:
        for col in COLUMNS:
            img = getattr(row, col)
            if img is not None:
                _image(img, f"contact sheet frame {row.frame} {col}")
    return frames, per_frame


# --- writing --------------------------------------------------------------------------------


def _write_png(folder: Path, name: str, img: np.ndarray) -> None:
    a = (
        img
        if img.ndim == 2
        else (img[:, :, 0] if img.shape[2] == 1 else cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    )
    if not cv2.imwrite(str(folder / name), np.ascontiguousarray(a)):
        raise ReportError(f"could not write {folder / name}", "check the disk and the permissions")


def _figure(rows: int = 1, height: float = 2.4) -> Figure:
    # The Agg canvas directly, not pyplot: no global figure state, safe in worker threads.
    fig = Figure(figsize=(9.0, height * rows), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, folder: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(folder / name, format="png", metadata={"Software": None})
    return name


def _plot_per_frame(
    folder: Path, frames: np.ndarray | None, series: dict[str, np.ndarray], untouched: Sequence[int]
) -> str | None:
    if not series:
        return None
    fig = _figure(len(series))
    axes = fig.subplots(len(series), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (title, vals) in zip(axes, series.items(), strict=True):
        x = frames if frames is not None else np.arange(len(vals))
        ax.plot(x, vals, lw=1.2, color="#2b6cb0")
        for fr in untouched if frames is not None else ():  # untouched are frame numbers
            ax.axvline(fr, color="#c53030", lw=0.8, alpha=0.6)
        ax.set_title(title, fontsize=9, loc="left")
        ax.grid(True, alpha=0.3)
    axes[-1].set_xlabel("frame" if frames is not None else "frame index")
    return _save(fig, folder, "plot_per_frame.png")


def _plot_training(folder: Path, curves: Mapping[str, Sequence[float]]) -> str | None:
    curves = {k: np.asarray(v, np.float64) for k, v in curves.items() if len(v)}
    if not curves:
        return None
    fig = _figure(1, 3.0)
    ax = fig.subplots()
    for name, vals in curves.items():
        ax.plot(np.arange(len(vals)), vals, lw=1.2, label=str(name))
    finite = np.concatenate([v[np.isfinite(v)] for v in curves.values()])
    if finite.size and finite.min() > 0:
        ax.set_yscale("log")
    ax.set_xlabel("logged step")
    ax.set_title("Training curves", fontsize=9, loc="left")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, folder, "plot_training.png")


def _plot_timings(folder: Path, timings: Mapping[str, float]) -> str | None:
    if not timings:
        return None
    names = [str(k) for k in timings]
    secs = [float(v) for v in timings.values()]
    fig = _figure(1, 0.45 * len(names) + 1.0)
    ax = fig.subplots()
    ax.barh(names[::-1], secs[::-1], color="#4a5568")
    ax.set_xlabel("seconds")
    ax.set_title("Stage timings", fontsize=9, loc="left")
    ax.grid(True, axis="x", alpha=0.3)
    return _save(fig, folder, "plot_timings.png")


def _compact(frames: Sequence[int]) -> str:
    """Sorted frame numbers as ranges: ``1001-1003, 1007``."""
    vals = sorted({int(f) for f in frames})
    if not vals:
        return "none"
    runs: list[list[int]] = [[vals[0], vals[0]]]
    for v in vals[1:]:
        if v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return ", ".join(f"{a}-{b}" if b != a else f"{a}" for a, b in runs)


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px;
       color: #1a202c; background: #f7fafc; }
h1 { font-size: 22px; margin: 0 0 4px 0; } h2 { font-size: 16px; margin: 28px 0 8px 0; }
.badge { display: inline-block; background: #c53030; color: #fff; font-weight: 700;
         padding: 2px 8px; border-radius: 3px; font-size: 12px; vertical-align: middle; }
.meta { color: #4a5568; font-size: 13px; }
table { border-collapse: collapse; background: #fff; font-size: 13px; }
th, td { border: 1px solid #cbd5e0; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #edf2f7; }
td.img { padding: 2px; } td.img img { display: block; max-width: 220px; height: auto; }
td.na { color: #a0aec0; text-align: center; vertical-align: middle; }
img.plot { max-width: 100%; background: #fff; border: 1px solid #cbd5e0; }
code { font-size: 12px; word-break: break-all; }
.warn { color: #c53030; font-weight: 600; }
"""


def _e(x: object) -> str:
    return html.escape(str(x), quote=True)


def _render(
    ctx: ReportContext,
    frames: np.ndarray | None,
    sheet: list[list[tuple[str, np.ndarray] | None]],
    plots: dict[str, str | None],
) -> str:
    """The page's HTML, section by section."""
    title = f"QC {ctx.shot} {ctx.version}"
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        *_header(ctx),
        *_deliverables(ctx),
        *_contact_sheet(ctx, sheet),
        *_plots(ctx, frames, plots),
        *_provenance(ctx),
        "</body></html>",
    ]
    return "\n".join(out) + "\n"


def _header(ctx: ReportContext) -> list[str]:
    out = [
        f'<h1>{_e(ctx.shot)} <span class="meta">{_e(ctx.version)}</span> '
        '<span class="badge">SYNTHETIC</span></h1>'
    ]
    meta = []
    if ctx.created:
        meta.append(f"created {_e(ctx.created)}")
    if len(ctx.frame_numbers):
        meta.append(f"frames {_e(_compact(ctx.frame_numbers))} ({len(ctx.frame_numbers)})")
    if meta:
        out.append(f'<p class="meta">{" · ".join(meta)}</p>')
    out += [f'<p class="meta">{_e(note)}</p>' for note in ctx.notes]
    return out


def _deliverables(ctx: ReportContext) -> list[str]:
    out = [
        "<h2>Deliverables</h2><table>",
        f"<tr><th>EXR sequence</th><td><code>{_e(ctx.exr_path or 'not written')}</code></td></tr>",
        f"<tr><th>Review movie</th><td><code>{_e(ctx.movie_path or 'not written')}</code></td></tr>",
        "</table>",
        "<h2>Untouched frames</h2>",
    ]
    if len(ctx.untouched_frames):
        out.append(
            f'<p class="warn">{len(set(ctx.untouched_frames))} frame(s) passed the plate through '
            f"untouched (tracking failed): {_e(_compact(ctx.untouched_frames))}</p>"
        )
    else:
        out.append("<p>None: every frame was composited.</p>")
    return out


def _contact_sheet(
    ctx: ReportContext, sheet: list[list[tuple[str, np.ndarray] | None]]
) -> list[str]:
    out = ["<h2>Contact sheet</h2>"]
    if not sheet:
        return [*out, "<p>No frames sampled.</p>"]
    out.append(
        "<table><tr><th>Frame</th>"
        + "".join(f"<th>{_e(h)}</th>" for h in COLUMNS.values())
        + "</tr>"
    )
    for row, cells in zip(ctx.contact_sheet, sheet, strict=True):
        out.append(f"<tr><th>{_e(row.frame)}</th>")
        for (key, col), cell in zip(COLUMNS.items(), cells, strict=True):
            if cell is None:
                out.append('<td class="na">n/a</td>')
                continue
            name, img = cell
            h, wd = img.shape[:2]
            dw = wd if key in ONE_TO_ONE else min(wd, THUMB_WIDTH)
            dh = max(1, round(h * dw / wd))
            out.append(
                f'<td class="img"><a href="{_e(name)}"><img src="{_e(name)}" '
                f'width="{dw}" height="{dh}" alt="{_e(col)}, frame {_e(row.frame)}"></a></td>'
            )
        out.append("</tr>")
    out.append("</table>")
    return out


def _plots(
    ctx: ReportContext, frames: np.ndarray | None, plots: dict[str, str | None]
) -> list[str]:
    out: list[str] = []
    for key, heading in (
        ("per_frame", "Tracking and per-frame metrics"),
        ("training", "Training curves"),
        ("timings", "Stage timings"),
    ):
        out.append(f"<h2>{_e(heading)}</h2>")
        name = plots.get(key)
        if name:
            out.append(f'<img class="plot" src="{_e(name)}" alt="{_e(heading)}">')
        else:
            out.append("<p>No data.</p>")
        if key == "per_frame" and len(ctx.untouched_frames) and frames is not None and name:
            out.append('<p class="meta">Red lines mark untouched frames.</p>')
        if key == "timings" and ctx.stage_timings:
            out += _timings_table(ctx.stage_timings)
    return out


def _timings_table(timings: Mapping[str, float]) -> list[str]:
    total = sum(float(v) for v in timings.values())
    out = ["<table><tr><th>Stage</th><th>Seconds</th><th>Share</th></tr>"]
    for stage, sec in timings.items():
        share = f"{100.0 * float(sec) / total:.1f}%" if total > 0 else "-"
        out.append(f"<tr><td>{_e(stage)}</td><td>{float(sec):.2f}</td><td>{share}</td></tr>")
    out.append(f"<tr><th>Total</th><th>{total:.2f}</th><th></th></tr></table>")
    return out


def _provenance(ctx: ReportContext) -> list[str]:
    out = ["<h2>Provenance</h2>"]
    if not ctx.provenance:
        return [*out, "<p>No provenance recorded.</p>"]
    out.append("<table><tr><th>Attribute</th><th>Value</th></tr>")
    for k, v in ctx.provenance.items():
        out.append(f"<tr><td><code>{_e(k)}</code></td><td><code>{_e(v)}</code></td></tr>")
    out.append("</table>")
    return out


def write_report(out_dir: str | os.PathLike[str], ctx: ReportContext) -> Path:
    """Write the QC page and its images into ``out_dir``, atomically, replacing any old one.

    Args:
        out_dir: the report folder of this shot version (created; replaced whole if it exists).
        ctx: what to show.

    Returns:
        the path of ``index.html`` inside ``out_dir``.

    Raises:
        ReportError: a bad image (not uint8, wrong shape) or mismatched series lengths.
        DiskFullError: the disk filled up; the old report, if any, is left in place.
    """
    frames, per_frame = _check(ctx)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        sheet: list[list[tuple[str, np.ndarray] | None]] = []
        for i, row in enumerate(ctx.contact_sheet):
            cells: list[tuple[str, np.ndarray] | None] = []
            for col in COLUMNS:
                img = getattr(row, col)
                if img is None:
                    cells.append(None)
                    continue
                img = _image(img, f"contact sheet frame {row.frame} {col}")
                name = f"sheet_{i:03d}_{int(row.frame)}_{col}.png"
                _write_png(tmp, name, img)
                cells.append((name, img))
            sheet.append(cells)
        plots = {
            "per_frame": _plot_per_frame(tmp, frames, per_frame, ctx.untouched_frames),
            "training": _plot_training(tmp, ctx.training_curves),
            "timings": _plot_timings(tmp, ctx.stage_timings),
        }
        (tmp / INDEX).write_text(_render(ctx, frames, sheet, plots), encoding="utf-8")
    return out_dir / INDEX
