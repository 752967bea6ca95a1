"""QC of face tracking: landmark overlays on plate frames and a confidence/jitter plot.

Untracked frames and interpolated frames are marked on every output, never hidden: a reviewer
sees a red ``NO FACE`` banner on flagged gaps and an amber ``INTERPOLATED`` one on filled frames.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
from matplotlib.figure import Figure

from pipeline.atomic import atomic_path
from pipeline.color import ColorPipeline
from pipeline.io.plate_cache import CachedPlate, display_frame
from pipeline.io.prores import ProResWriter
from pipeline.landmarks.sidecar import Landmarks

#: iBUG 68 contour groups drawn as polylines: (first, last, closed).
_CONTOURS = (
    (0, 16, False),  # jaw
    (17, 21, False),  # right brow
    (22, 26, False),  # left brow
    (27, 30, False),  # nose bridge
    (31, 35, False),  # nostrils
    (36, 41, True),  # right eye
    (42, 47, True),  # left eye
    (48, 59, True),  # outer lip
    (60, 67, True),  # inner lip
)
_RED = (230, 40, 40)
_AMBER = (255, 170, 0)


def jitter(points: np.ndarray) -> np.ndarray:
    """Per-frame RMS frame-to-frame motion of the landmarks.

    Args:
        points: N×68×2 float, pixels; NaN rows for frames without a face.

    Returns:
        N float64: ``sqrt(mean_k |p_t,k - p_t-1,k|²)``; NaN for frame 0 and where either frame
        has no face.
    """
    pts = np.asarray(points, np.float64)
    if pts.ndim != 3 or pts.shape[1:] != (68, 2):
        raise ValueError(f"jitter takes N×68×2 landmarks, got shape {pts.shape}")
    out = np.full(len(pts), np.nan)
    if len(pts) > 1:
        d = np.diff(pts, axis=0)
        out[1:] = np.sqrt((d**2).sum(2).mean(1))
    return out


def _colour(confidence: float) -> tuple[int, int, int]:
    """Red (0) → amber (0.5) → green (1), RGB."""
    c = float(np.clip(confidence, 0.0, 1.0))
    return (int(255 * min(1.0, 2 * (1 - c))), int(255 * min(1.0, 2 * c)), 40)


def overlay_frame(
    image: np.ndarray,
    points: np.ndarray,
    confidence: float,
    tracked: bool,
    interpolated: bool = False,
) -> np.ndarray:
    """Draw the landmarks and their status on a copy of a plate frame.

    Args:
        image: H×W×3 uint8 display sRGB.
        points: 68×2 float landmarks in pixels (NaN allowed on untracked frames).
        confidence: 0..1; colours the landmarks from red to green.
        tracked: False draws a red ``NO FACE`` banner instead of landmarks.
        interpolated: True adds an amber ``INTERPOLATED`` banner.

    Returns:
        H×W×3 uint8 display sRGB, a new array.

    Raises:
        ValueError: wrong image dtype/shape or landmark shape.
    """
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"overlay_frame takes H×W×3 uint8 sRGB, got {img.dtype} {img.shape}")
    pts = np.asarray(points, np.float64)
    if pts.shape != (68, 2):
        raise ValueError(f"overlay_frame takes 68×2 landmarks, got shape {pts.shape}")
    out = img.copy()
    h, w = out.shape[:2]
    thick = max(1, round(min(h, w) / 400))
    font = max(0.4, min(h, w) / 900)
    if tracked and np.isfinite(pts).all():
        colour = _colour(confidence)
        for a, b, closed in _CONTOURS:
            poly = np.round(pts[a : b + 1] * 16).astype(np.int32)
            cv2.polylines(out, [poly], closed, colour, thick, cv2.LINE_AA, shift=4)
        for x, y in np.round(pts * 16).astype(np.int32):
            cv2.circle(out, (int(x), int(y)), 16 * (thick + 1), colour, -1, cv2.LINE_AA, shift=4)
        label = f"conf {confidence:.2f}"
        _banner(out, label, colour, font, thick, row=0)
        if interpolated:
            _banner(out, "INTERPOLATED", _AMBER, font, thick, row=1)
    else:
        _banner(out, "NO FACE", _RED, font, thick, row=0)
    return out


def _banner(
    img: np.ndarray, text: str, colour: tuple[int, int, int], font: float, thick: int, row: int
) -> None:
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, thick)
    y = (row + 1) * (th + base + 8)
    cv2.rectangle(img, (4, y - th - base - 4), (12 + tw, y + 2), (0, 0, 0), -1)
    cv2.putText(
        img, text, (8, y - base), cv2.FONT_HERSHEY_SIMPLEX, font, colour, thick, cv2.LINE_AA
    )


def plot_tracking(lm: Landmarks, path: str | os.PathLike[str]) -> Path:
    """Plot confidence and jitter (raw and smoothed) against frame number, as a PNG.

    Flagged gaps are shaded red and interpolated frames amber.

    Args:
        lm: the shot's landmarks.
        path: the PNG to write (atomically).

    Returns:
        the final path.
    """
    # A bare Figure renders with Agg and leaves pyplot's global backend alone.
    fig = Figure(figsize=(10, 5), dpi=100, layout="constrained")
    ax_c, ax_j = fig.subplots(2, 1, sharex=True)
    f = lm.frames
    ax_c.plot(f, lm.confidence, lw=1, color="tab:blue", label="confidence")
    ax_c.set_ylim(-0.02, 1.02)
    ax_c.set_ylabel("confidence")
    ax_j.plot(f, jitter(lm.raw_points), lw=0.8, color="tab:gray", label="raw")
    ax_j.plot(f, jitter(lm.points), lw=1.2, color="tab:green", label="smoothed")
    ax_j.set_ylabel("jitter (px RMS / frame)")
    ax_j.set_xlabel("frame")
    for ax in (ax_c, ax_j):
        for a, b in lm.gaps:
            ax.axvspan(a - 0.5, b + 0.5, color="tab:red", alpha=0.2, lw=0)
        for i in np.nonzero(lm.interpolated)[0]:
            ax.axvspan(f[i] - 0.5, f[i] + 0.5, color="orange", alpha=0.25, lw=0)
        ax.grid(alpha=0.3)
    ax_j.legend(loc="upper right", fontsize=8)
    n_gap = sum(b - a + 1 for a, b in lm.gaps)
    fig.suptitle(
        f"tracking QC: {len(f)} frames, {int(lm.interpolated.sum())} interpolated, "
        f"{n_gap} untracked in {len(lm.gaps)} flagged gap(s)"
    )
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)


def write_overlay_movie(
    path: str | os.PathLike[str], plate: CachedPlate, lm: Landmarks, color: ColorPipeline
) -> Path:
    """The landmark QC movie: every frame of the plate, as the detectors saw it, with its
    landmarks drawn (:func:`overlay_frame`); ProRes 422 HQ in the plate's own encoding and
    tagged as it (:meth:`ColorPipeline.video_tags`), with the plate's timecode."""
    with ProResWriter(
        Path(path),
        width=plate.width,
        height=plate.height,
        fps=plate.fps,
        codec="prores_422hq",
        timecode=plate.timecode_at(plate.frames.first),
        metadata={"comment": "likeness landmark QC"},
        tags=color.video_tags(plate.source_colorspace),
    ) as movie:
        for i, n in enumerate(lm.frames):
            img = display_frame(plate, int(n), color)  # H×W×3 uint8, the plate's encoding
            over = overlay_frame(
                img, lm.points[i], float(lm.confidence[i]), bool(lm.tracked[i]),
                bool(lm.interpolated[i]),
            )  # fmt: skip
            movie.write(over.astype(np.float32) / 255.0)
    return Path(path)
