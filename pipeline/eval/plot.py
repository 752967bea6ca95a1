"""The result's plot: per-frame curves of both systems and a strip of examples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pipeline.atomic import atomic_path


def plot_result(
    result: dict[str, Any],
    examples: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    path: str | Path,
) -> Path:
    """Per-frame curves of both systems and a strip of examples (truth | warp | learned), PNG."""

    rows = result["frames"]
    keys = (
        ["psnr", "ssim", "landmark_error", "identity"]
        if result["mode"] == "self"
        else ["identity_target", "identity_performer", "expression_error"]
    )
    # The Agg canvas directly, not pyplot: no global figure state, safe in worker threads.
    fig = Figure(figsize=(4 * (len(keys) + 1), 3.4), dpi=90)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(keys) + 1)
    x = np.arange(len(rows))
    for ax, key in zip(axes, keys):
        for name, colour in (("warp", "tab:gray"), ("learned", "tab:blue")):
            y = [r.get(f"{name}_{key}", np.nan) for r in rows]
            ax.plot(
                x,
                y,
                ".-",
                color=colour,
                linewidth=1,
                markersize=3,
                label=f"{name} {result[name][key]:.3f}",
            )
        ax.set_title(key)
        ax.set_xlabel("driving frame")
        ax.legend(fontsize=7)
    if examples:
        strip = np.concatenate([np.concatenate(e, axis=1) for e in examples], axis=0)
        axes[-1].imshow(np.clip(strip, 0, 1))
        axes[-1].set_title("truth | warp | learned", fontsize=8)
    axes[-1].axis("off")
    fig.suptitle(f"{result['name']} ({result['mode']}, K={result['k']}, {result['minutes']} min)")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
