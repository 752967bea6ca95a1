"""What a fine-tune writes for QC: a preview grid and the loss curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pipeline.atomic import atomic_path, write_json
from pipeline.models.generator import Generator


def write_preview(
    path: Path,
    g: Generator,
    psi: torch.Tensor,
    real: torch.Tensor,
    lm: torch.Tensor,
    warp: torch.Tensor,
    pairs: list[tuple[int, int]],
    rows: int = 4,
) -> Path:
    """A grid, one row per training pair: landmarks, warp input, output, truth (PNG, sRGB)."""
    seen: list[int] = []
    for i, (t, _) in enumerate(pairs):
        if t not in [pairs[j][0] for j in seen]:
            seen.append(i)
    pick = seen[:rows]
    tgt = torch.tensor([pairs[i][0] for i in pick], device=real.device)
    with torch.no_grad():
        out = g(lm[tgt], warp[pick], psi).clamp(0, 1)
    cols = [lm[tgt], warp[pick], out, real[tgt]]  # each R×3×S×S
    tiles = torch.stack(cols, dim=1).float().cpu().numpy()  # R×4×3×S×S
    r, c, _, h, w = tiles.shape
    grid = tiles.transpose(0, 3, 1, 4, 2).reshape(r * h, c * w, 3)  # (R·S)×(4·S)×3 sRGB
    img = np.ascontiguousarray((grid * 255.0).round().clip(0, 255).astype(np.uint8))
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(img, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write preview {tmp}")
    return path


def write_curves(
    out_dir: Path, history: dict[str, list[float]], summary: dict[str, Any]
) -> tuple[Path, Path]:
    """Write ``loss_curve.json`` (the per-step history, plus ``summary``: the steps run, the
    step kept and the warp fusion used, for the QC page) and a matplotlib plot
    ``loss_curve.png``."""

    json_path = write_json(
        out_dir / "loss_curve.json",
        {"schema": "likeness.loss_curve/1", **history, "summary": summary},
    )
    # The Agg canvas directly, not pyplot: no global figure state, safe in worker threads.
    fig = Figure(figsize=(6, 3.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    steps = history["step"]
    for k, v in history.items():
        if k != "step" and len(v) == len(steps):
            ax.plot(steps, v, label=k, linewidth=1)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=7)
    fig.tight_layout()
    png_path = out_dir / "loss_curve.png"
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png")
    return json_path, png_path
