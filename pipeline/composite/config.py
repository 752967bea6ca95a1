"""The ``composite:`` section of a profile: matte, blend, colour match and temporal smoothing
settings, read by the composite and by the delivery stage that runs it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from pipeline.composite.colormatch import MODES, GainParams
from pipeline.errors import CompositeError

#: Distances in the composite config are pixels of a crop of this side (the face's scale); at
#: another crop size they scale with it (:meth:`CompositeConfig.at_size`).
REFERENCE_CROP = 128


@dataclass(frozen=True)
class CompositeConfig:
    """The ``composite:`` section of a profile. Distances are in pixels of a 128-px face crop
    (:data:`REFERENCE_CROP`) and scale with the render size.

    Attributes:
        forehead_extension: how far the brow line is raised to cover the forehead, as a fraction
            of the chin-to-brow distance.
        erode_px: where the matte's soft edge starts, measured into the landmark hull: positive
            starts it inside (the edge lies inside the hull), negative outside (the matte covers
            the whole hull and fades out beyond it by up to ``-erode_px``).
        feather_px: width of the matte's soft edge (smoothstep); 0 is hard.
        pyramid_levels: the most Laplacian-pyramid levels for the blend (fewer are used when the
            shot's smallest face is too small for them); 0 is a plain matte mix.
        color_mode: ``linear_gain`` (low-frequency gain in linear light), ``lab_stats`` (mean
            and deviation in a Lab-like space) or ``none``.
        color_blur_px: blur of the ``linear_gain`` statistics: the band split of the light
            match. Below it the face takes the plate's light (shading, tone), above it keeps its
            own detail; small values follow the plate closely (the same person), large ones
            only its broad light.
        gain_min: smallest ``linear_gain`` gain per channel.
        gain_max: largest ``linear_gain`` gain per channel.
        gain_grid: side of the ``linear_gain`` gain image, in cells.
        temporal_matte: smoothing strength of the matte over frames, 0 (none) to < 1.
        temporal_color: smoothing strength of the colour parameters over frames, 0 to < 1.
        matte_snap: matte values within this of 0 or 1 after smoothing become exactly 0 or 1.
        matte_size: the largest crop side mattes are built and smoothed at (they are smooth;
            bigger renders upsample them).
        tone: whose skin tone the light match keeps: ``plate`` (the plate's light fully),
            ``actor`` (the plate's shading and exposure with the actor's own colour), or
            ``auto`` (``actor`` when the performer is not the actor, else ``plate``).
        register: 0..1, how far the face is moved onto the plate's face along their smoothed
            optical flow (:mod:`pipeline.composite.register`); 0 is off.
        register_blur_px: the smoothing of that flow (only broader displacements are kept).
        cross_color_blur_px: ``color_blur_px`` where the performer is another person than the
            actor (a small one would carry the performer's features into the face).
        cross_register: ``register`` where the performer is another person than the actor.
        match_sharpness: blur a face sharper than the plate just enough to match the plate's
            fine detail, one blur per shot (:func:`pipeline.composite.register.sharpness_match`).
    """

    forehead_extension: float = 0.3
    erode_px: float = -6.0
    feather_px: float = 6.0
    pyramid_levels: int = 3
    color_mode: Literal["linear_gain", "lab_stats", "none"] = "linear_gain"
    color_blur_px: float = 1.5
    gain_min: float = 0.25
    gain_max: float = 4.0
    gain_grid: int = 128
    temporal_matte: float = 0.6
    temporal_color: float = 0.0
    matte_snap: float = 1e-3
    matte_size: int = 256
    tone: Literal["auto", "plate", "actor"] = "auto"
    register: float = 1.0
    register_blur_px: float = 1.0
    cross_color_blur_px: float = 6.0
    cross_register: float = 0.0
    match_sharpness: bool = True

    def validate(self) -> list[tuple[str, str]]:
        """Every out-of-range value, as ``(key, what)`` pairs; empty when the config is valid."""
        out: list[tuple[str, str]] = []

        def need(key: str, ok: bool, expected: str) -> None:
            if not ok:
                out.append((key, f"got {getattr(self, key)!r}, expected {expected}"))

        need("forehead_extension", 0.0 <= self.forehead_extension <= 1.0, "a number in [0, 1]")
        need("erode_px", -64.0 <= self.erode_px <= 64.0, "a number of pixels in [-64, 64]")
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
        need("matte_size", 64 <= self.matte_size <= 2048, "an integer in [64, 2048]")
        need("tone", self.tone in ("auto", "plate", "actor"), "auto, plate or actor")
        need("register", 0.0 <= self.register <= 1.0, "a number in [0, 1]")
        need("cross_register", 0.0 <= self.cross_register <= 1.0, "a number in [0, 1]")
        need(
            "cross_color_blur_px",
            0.5 <= self.cross_color_blur_px <= 256.0,
            "a number in [0.5, 256]",
        )
        need("register_blur_px", 0.5 <= self.register_blur_px <= 64.0, "a number in [0.5, 64]")
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

    def for_performer(self, other_actor: bool) -> CompositeConfig:
        """This config for a frame whose performer is (or is not) the actor: the ``cross_``
        band split and registration, and (``tone: auto``) the actor's own skin tone."""
        if not other_actor:
            return replace(self, tone="plate") if self.tone == "auto" else self
        return replace(
            self, color_blur_px=self.cross_color_blur_px, register=self.cross_register,
            tone="actor" if self.tone == "auto" else self.tone,
        )  # fmt: skip

    def at_size(self, crop_size: int) -> CompositeConfig:
        """This config with its distances in pixels of a ``crop_size`` crop."""
        f = crop_size / REFERENCE_CROP
        if f == 1.0:
            return self
        return replace(
            self, erode_px=self.erode_px * f, feather_px=self.feather_px * f,
            color_blur_px=self.color_blur_px * f, register_blur_px=self.register_blur_px * f,
            cross_color_blur_px=self.cross_color_blur_px * f,
        )  # fmt: skip

    def gain_params(self) -> GainParams:
        """The ``linear_gain`` settings (``tone: actor`` keeps the face's own mean colour)."""
        return GainParams(
            self.color_blur_px, self.gain_min, self.gain_max, self.gain_grid, self.tone == "actor"
        )
