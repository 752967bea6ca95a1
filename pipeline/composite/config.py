"""The ``composite:`` section of a profile: matte, blend, colour match and temporal smoothing
settings, read by the composite and by the delivery stage that runs it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pipeline.composite.colormatch import MODES, GainParams
from pipeline.errors import CompositeError


@dataclass(frozen=True)
class CompositeConfig:
    """The ``composite:`` section of a profile. Distances are in crop pixels.

    Attributes:
        forehead_extension: how far the brow line is raised to cover the forehead, as a fraction
            of the chin-to-brow distance.
        erode_px: how far inside the landmark hull the matte starts.
        feather_px: width of the matte's soft edge (smoothstep), inside the hull; 0 is hard.
        pyramid_levels: the most Laplacian-pyramid levels for the blend (fewer are used when the
            shot's smallest face is too small for them); 0 is a plain matte mix.
        color_mode: ``linear_gain`` (low-frequency gain in linear light), ``lab_stats`` (mean
            and deviation in a Lab-like space) or ``none``.
        color_blur_px: blur of the ``linear_gain`` statistics.
        gain_min: smallest ``linear_gain`` gain per channel.
        gain_max: largest ``linear_gain`` gain per channel.
        gain_grid: side of the ``linear_gain`` gain image, in cells.
        temporal_matte: smoothing strength of the matte over frames, 0 (none) to < 1.
        temporal_color: smoothing strength of the colour parameters over frames, 0 to < 1.
        matte_snap: matte values within this of 0 or 1 after smoothing become exactly 0 or 1.
    """

    forehead_extension: float = 0.3
    erode_px: float = 2.0
    feather_px: float = 8.0
    pyramid_levels: int = 3
    color_mode: Literal["linear_gain", "lab_stats", "none"] = "linear_gain"
    color_blur_px: float = 12.0
    gain_min: float = 0.25
    gain_max: float = 4.0
    gain_grid: int = 32
    temporal_matte: float = 0.6
    temporal_color: float = 0.8
    matte_snap: float = 1e-3

    def validate(self) -> list[tuple[str, str]]:
        """Every out-of-range value, as ``(key, what)`` pairs; empty when the config is valid."""
        out: list[tuple[str, str]] = []

        def need(key: str, ok: bool, expected: str) -> None:
            if not ok:
                out.append((key, f"got {getattr(self, key)!r}, expected {expected}"))

        need("forehead_extension", 0.0 <= self.forehead_extension <= 1.0, "a number in [0, 1]")
        need("erode_px", 0.0 <= self.erode_px <= 64.0, "a number of pixels in [0, 64]")
        need("feather_px", 0.0 <= self.feather_px <= 128.0, "a number of pixels in [0, 128]")
        need("pyramid_levels", 0 <= self.pyramid_levels <= 8, "an integer in [0, 8]")
        need("color_mode", self.color_mode in MODES, f"one of {', '.join(sorted(MODES))}")
        need("color_blur_px", 0.5 <= self.color_blur_px <= 256.0, "a number in [0.5, 256]")
        need("gain_min", 0.0 < self.gain_min <= 1.0, "a number in (0, 1]")
        need("gain_max", 1.0 <= self.gain_max <= 100.0, "a number in [1, 100]")
        need("gain_grid", 2 <= self.gain_grid <= 256, "an integer in [2, 256]")
        need("temporal_matte", 0.0 <= self.temporal_matte < 1.0, "a number in [0, 1)")
        need("temporal_color", 0.0 <= self.temporal_color < 1.0, "a number in [0, 1)")
        need("matte_snap", 0.0 <= self.matte_snap <= 0.05, "a number in [0, 0.05]")
        return out

    def checked(self) -> CompositeConfig:
        """Return self, or raise CompositeError listing every out-of-range value."""
        probs = self.validate()
        if probs:
            raise CompositeError(
                "invalid composite config: " + "; ".join(f"{k}: {w}" for k, w in probs),
                "fix the profile's composite: section",
            )
        return self

    def gain_params(self) -> GainParams:
        """The ``linear_gain`` settings."""
        return GainParams(self.color_blur_px, self.gain_min, self.gain_max, self.gain_grid)
