"""Colour management through OpenColorIO.

Every plate is converted on ingest to one scene-linear working space, ACEScg, and back to a
display encoding on delivery. The config is OCIO's built-in ``ocio://studio-config-latest`` unless
``$OCIO`` or an explicit path names another; its cache id goes into stage digests, so a config
change reruns every stage that touched colour.
"""

from __future__ import annotations

import difflib
import os
import threading
from dataclasses import dataclass

import numpy as np
import PyOpenColorIO as ocio

from pipeline.errors import ColorError

DEFAULT_CONFIG = "ocio://studio-config-latest"

# OCIO's two exception classes; neither derives from the other.
_OCIO_ERRORS = (ocio.Exception, ocio.ExceptionMissingFile)

#: The working space every stage computes in.
WORKING_SPACE = "ACEScg"

# CIE xy of R, G, B and white, in the order of the EXR ``chromaticities`` attribute.
_D65 = (0.3127, 0.3290)
_ACES_WHITE = (0.32168, 0.33767)
_GAMUTS: dict[str, tuple[float, ...]] = {
    "ap0": (0.7347, 0.2653, 0.0, 1.0, 0.0001, -0.0770, *_ACES_WHITE),
    "ap1": (0.713, 0.293, 0.165, 0.830, 0.128, 0.044, *_ACES_WHITE),
    "rec709": (0.64, 0.33, 0.30, 0.60, 0.15, 0.06, *_D65),
    "rec2020": (0.708, 0.292, 0.170, 0.797, 0.131, 0.046, *_D65),
    "p3d65": (0.680, 0.320, 0.265, 0.690, 0.150, 0.060, *_D65),
    "adobergb": (0.64, 0.33, 0.21, 0.71, 0.15, 0.06, *_D65),
}
# Configs without interop ids (OCIO < 2.5 style) are matched on these name fragments.
_NAME_HINTS: tuple[tuple[str, str], ...] = (
    ("aces2065", "ap0"),
    ("ap0", "ap0"),
    ("acescg", "ap1"),
    ("acescct", "ap1"),
    ("acescc", "ap1"),
    ("ap1", "ap1"),
    ("rec2020", "rec2020"),
    ("rec.2020", "rec2020"),
    ("p3-d65", "p3d65"),
    ("p3d65", "p3d65"),
    ("rec.709", "rec709"),
    ("rec709", "rec709"),
    ("srgb", "rec709"),
)


# Interop-id transfer tokens (``<transfer>_<gamut>_<scene|display>``) → ITU-T H.273 transfer
# codes (FFmpeg's AVCOL_TRC_*). H.273 has no code for BT.1886: a gamma-2.4 display encoding is
# tagged BT.709 (1), the usual "1-1-1" of HD video; gamma 1.8 and 2.6 have none (2, unspecified).
_TRANSFER_CODES = {
    "srgb": (13, "sRGB (IEC 61966-2-1)"),
    "itu709": (1, "BT.709"),
    "g24": (1, "BT.709 (a BT.1886 gamma-2.4 display encoding)"),
    "g22": (4, "gamma 2.2 (BT.470 M)"),
    "g28": (5, "gamma 2.8 (BT.470 BG)"),
    "pq": (16, "PQ (SMPTE ST 2084)"),
    "hlg": (18, "HLG (ARIB STD-B67)"),
    "lin": (8, "linear"),
}
# Gamut tokens → H.273 colour primaries; P3-D65 is SMPTE EG 432-1 (12).
_PRIMARY_CODES = {"rec709": (1, "BT.709"), "rec2020": (9, "BT.2020"), "p3d65": (12, "P3-D65")}
# Name fragments for configs without interop ids.
_TRANSFER_HINTS = (
    ("srgb", "srgb"),
    ("rec.1886", "g24"),
    ("gamma 2.4", "g24"),
    ("gamma 2.2", "g22"),
    ("st2084", "pq"),
    ("-pq", "pq"),
    ("hlg", "hlg"),
    ("linear", "lin"),
)
_UNSPECIFIED = 2
#: OCIO encodings a viewer can show as they are (the review can return a plate to them).
VIDEO_ENCODINGS = ("sdr-video", "hdr-video")


@dataclass(frozen=True)
class VideoTags:
    """What a movie's colour tags say its pixels are: ITU-T H.273 codes (FFmpeg's AVCOL_*).

    Attributes:
        primaries: colour primaries (1 BT.709, 9 BT.2020, 12 P3-D65, 2 unspecified).
        transfer: transfer characteristics (1 BT.709, 13 sRGB, 4 gamma 2.2, 16 PQ, 18 HLG,
            8 linear, 2 unspecified).
        matrix: Y'CbCr matrix (1 BT.709, 9 BT.2020 non-constant luminance).
        note: the tags in words, for the README, logs and movie metadata.
    """

    primaries: int = 1
    transfer: int = 1
    matrix: int = 1
    note: str = "BT.709 primaries, BT.709 transfer, BT.709 matrix"


#: Rec.709 video (BT.709 primaries, transfer and matrix: the "1-1-1" of HD).
BT709_TAGS = VideoTags()
#: sRGB-encoded Rec.709 pixels (``sRGB Encoded Rec.709 (sRGB)``, ``sRGB - Display``).
SRGB_TAGS = VideoTags(1, 13, 1, "BT.709 primaries, sRGB (IEC 61966-2-1) transfer, BT.709 matrix")


class ColorPipeline:
    """An OpenColorIO config with cached CPU processors.

    Args:
        config: a config path or ``ocio://`` URI. ``None`` uses ``$OCIO`` when set, else
            ``ocio://studio-config-latest`` (built in, works offline).

    Raises:
        ColorError: the config cannot be loaded; the message names it and how to fix it.
    """

    def __init__(self, config: str | None = None) -> None:
        source = config or os.environ.get("OCIO") or DEFAULT_CONFIG
        try:
            self._config = ocio.Config.CreateFromFile(source)
            self._config.validate()
        except _OCIO_ERRORS as exc:
            raise ColorError(
                f"cannot load OpenColorIO config {source!r}: {exc}",
                "point $OCIO (or the config argument) at a readable .ocio file, or unset it to "
                f"use the built-in {DEFAULT_CONFIG}",
            ) from exc
        self.source = source
        self._lock = threading.Lock()
        self._processors: dict[tuple[str, ...], ocio.CPUProcessor] = {}

    @property
    def cache_id(self) -> str:
        """The config's OCIO cache id; changes whenever any transform it defines changes."""
        return str(self._config.getCacheID())

    @property
    def config(self) -> ocio.Config:
        """The underlying ``PyOpenColorIO.Config`` (read-only use)."""
        return self._config

    def space_names(self) -> list[str]:
        """Every colour-space name and alias in the config."""
        names: list[str] = []
        for cs in self._config.getColorSpaces():
            names.append(cs.getName())
            names.extend(cs.getAliases())
        return names

    def check_space(self, name: str) -> None:
        """Check that ``name`` is a colour space (or alias, or role) of this config.

        Raises:
            ColorError: unknown name; the message lists the closest matches.
        """
        if self._config.getColorSpace(name) is not None:
            return
        names = self.space_names()
        lower = {n.lower(): n for n in names}
        close = [lower[m] for m in difflib.get_close_matches(name.lower(), list(lower), n=5)]
        shown = ", ".join(repr(c) for c in close) if close else "none close"
        raise ColorError(
            f"unknown colour space {name!r} in OCIO config {self.source!r} (closest: {shown})",
            "use a colour-space name or alias of that config, e.g. "
            "'sRGB Encoded Rec.709 (sRGB)' or 'ACEScg'",
        )

    def encoding(self, space: str) -> str:
        """The OCIO encoding of a colour space (``sdr-video``, ``scene-linear``, ``log`` …; empty
        when the config does not say).

        Raises:
            ColorError: unknown colour space.
        """
        self.check_space(space)
        return str(self._config.getColorSpace(space).getEncoding() or "")

    def default_display_view(self) -> tuple[str, str]:
        """The config's default display and that display's default view."""
        display = str(self._config.getDefaultDisplay())
        return display, str(self._config.getDefaultView(display))

    def display_space(self, display: str, view: str) -> str:
        """The colour space a display/view writes its pixels in (e.g. ``Rec.1886 Rec.709 -
        Display``).

        Raises:
            ColorError: unknown display or view.
        """
        self._check_display(display, view)
        name = str(self._config.getDisplayViewColorSpaceName(display, view))
        return display if name == "<USE_DISPLAY_NAME>" else name

    def video_tags(self, space: str) -> VideoTags:
        """The movie colour tags for pixels encoded in ``space``: primaries from its gamut,
        transfer from its curve, the BT.2020 matrix with BT.2020 primaries and BT.709 otherwise.
        Anything H.273 has no code for is tagged unspecified (2) and the note says so.

        Raises:
            ColorError: unknown colour space.
        """
        self.check_space(space)
        cs = self._config.getColorSpace(space)
        gamut, token = _gamut_of(cs), _transfer_of(cs)
        prim, prim_note = _PRIMARY_CODES.get(gamut or "", (_UNSPECIFIED, ""))
        if not prim_note:
            prim_note = f"{gamut or 'unknown'} primaries: unspecified (H.273 has no code)"
        else:
            prim_note += " primaries"
        trc, trc_note = _TRANSFER_CODES.get(token or "", (_UNSPECIFIED, ""))
        if not trc_note:
            trc_note = f"{token or 'unknown'} transfer: unspecified (H.273 has no code)"
        else:
            trc_note += " transfer"
        matrix = 9 if prim == 9 else 1
        mat_note = "BT.2020 non-constant-luminance matrix" if matrix == 9 else "BT.709 matrix"
        return VideoTags(prim, trc, matrix, f"{prim_note}, {trc_note}, {mat_note}")

    def apply(self, img: np.ndarray, transform: ocio.Transform, *, clip: bool = True) -> np.ndarray:
        """Apply any OCIO transform (e.g. a ``GroupTransform`` of a display transform and a
        show look); processors are cached by the transform's description.

        Args:
            img: H×W×3 or H×W×4 float; alpha passes through.
            transform: the OCIO transform, forward direction.
            clip: clip the result to 0..1 (display-referred output).

        Returns:
            a new H×W×C float32 array.

        Raises:
            ColorError: OCIO cannot build the transform (unknown names, unreadable LUT file),
                or a bad image shape.
        """
        out = _float_image(img)
        key = ("transform", str(transform))
        with self._lock:
            proc = self._processors.get(key)
        if proc is None:
            try:
                proc = self._config.getProcessor(transform).getDefaultCPUProcessor()
            except _OCIO_ERRORS as exc:
                raise ColorError(
                    f"OpenColorIO cannot build the transform {transform}: {exc}",
                    "check the display, view and look names and that any LUT file is readable",
                ) from exc
            with self._lock:
                self._processors[key] = proc
        if out.shape[-1] == 4:
            proc.applyRGBA(out)
        else:
            proc.applyRGB(out)
        if clip:
            np.clip(out, 0.0, 1.0, out=out)
        return out

    def _check_display(self, display: str, view: str) -> None:
        displays = list(self._config.getDisplays())
        if display not in displays:
            raise ColorError(
                f"unknown display {display!r} in OCIO config {self.source!r}",
                f"use one of: {', '.join(displays)}",
            )
        views = list(self._config.getViews(display))
        if view not in views:
            raise ColorError(
                f"unknown view {view!r} for display {display!r}",
                f"use one of: {', '.join(views)}",
            )

    def _processor(self, key: tuple[str, ...]) -> ocio.CPUProcessor:
        with self._lock:
            proc = self._processors.get(key)
        if proc is not None:
            return proc
        if key[0] == "convert":
            _, src, dst = key
            self.check_space(src)
            self.check_space(dst)
            transform: ocio.Transform = ocio.ColorSpaceTransform(src=src, dst=dst)
        else:
            _, src, display, view = key
            self.check_space(src)
            self._check_display(display, view)
            transform = ocio.DisplayViewTransform(src=src, display=display, view=view)
        try:
            proc = self._config.getProcessor(transform).getDefaultCPUProcessor()
        except _OCIO_ERRORS as exc:
            raise ColorError(f"OpenColorIO cannot build {key[1:]}: {exc}") from exc
        with self._lock:
            self._processors[key] = proc
        return proc

    def convert(self, img: np.ndarray, src: str, dst: str) -> np.ndarray:
        """Convert an image between two colour spaces.

        Args:
            img: H×W×3 or H×W×4 float (any float dtype; computed in float32), encoded in ``src``.
                A fourth channel is alpha and passes through unchanged.
            src: source colour-space name or alias.
            dst: destination colour-space name or alias.

        Returns:
            A new H×W×C float32 array encoded in ``dst``.

        Raises:
            ColorError: unknown colour space, or ``img`` is not H×W×3/4.
        """
        out = _float_image(img)
        if src == dst:
            return out
        proc = self._processor(("convert", src, dst))
        if out.shape[-1] == 4:
            proc.applyRGBA(out)
        else:
            proc.applyRGB(out)
        return out

    def to_display(self, img: np.ndarray, src: str, display: str, view: str) -> np.ndarray:
        """Apply a display/view transform, e.g. ACEScg → ``sRGB - Display`` / ACES 2.0 SDR.

        Args:
            img: H×W×3 or H×W×4 float, encoded in ``src`` (typically scene-linear ACEScg).
                Alpha passes through (clipped to 0..1 like the colour).
            src: source colour-space name.
            display: an OCIO display of the config.
            view: a view of that display.

        Returns:
            A new H×W×C float32 array, display-referred, clipped to 0..1.

        Raises:
            ColorError: unknown colour space, display or view; bad shape.
        """
        out = _float_image(img)
        proc = self._processor(("display", src, display, view))
        if out.shape[-1] == 4:
            proc.applyRGBA(out)
        else:
            proc.applyRGB(out)
        np.clip(out, 0.0, 1.0, out=out)
        return out

    def chromaticities(self, space: str) -> tuple[float, ...]:
        """The CIE xy primaries and white of a colour space, for the EXR header.

        Args:
            space: a colour-space name or alias.

        Returns:
            8 floats: R x,y, G x,y, B x,y, white x,y.

        Raises:
            ColorError: unknown space, or one whose gamut is not among AP0, AP1, Rec.709/sRGB,
                Rec.2020, P3-D65 and Adobe RGB (e.g. ``Raw``).
        """
        self.check_space(space)
        cs = self._config.getColorSpace(space)
        gamut = _gamut_of(cs)
        if gamut is None:
            raise ColorError(
                f"no known chromaticities for colour space {space!r}",
                "write the EXR in ACEScg, ACES2065-1, a Rec.709/sRGB, Rec.2020 or P3-D65 space, "
                "or pass chromaticities explicitly",
            )
        return _GAMUTS[gamut]


def _gamut_of(cs: ocio.ColorSpace) -> str | None:
    """The gamut token of a colour space: from its interop id, else from its names."""
    interop = getattr(cs, "getInteropID", lambda: "")() or ""
    parts = interop.removeprefix("ocio:").split("_")
    if len(parts) >= 3 and parts[-2] in _GAMUTS:
        return parts[-2]
    if interop == "data" or cs.getEncoding() == "data":
        return None
    for name in [cs.getName(), *cs.getAliases()]:
        low = name.lower().replace(" ", "")
        for hint, gamut in _NAME_HINTS:
            if hint in low:
                return gamut
    return None


def _transfer_of(cs: ocio.ColorSpace) -> str | None:
    """The transfer token of a colour space: from its interop id, else from its names."""
    interop = getattr(cs, "getInteropID", lambda: "")() or ""
    parts = interop.removeprefix("ocio:").split("_")
    if len(parts) >= 3 and parts[-1] in ("scene", "display"):
        return parts[0]
    for name in [cs.getName(), *cs.getAliases()]:
        low = name.lower()
        for hint, token in _TRANSFER_HINTS:
            if hint in low:
                return token
    return None


def _float_image(img: np.ndarray) -> np.ndarray:
    """A C-contiguous float32 copy of an H×W×3/4 image (OCIO applies in place)."""
    arr = np.asarray(img)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise ColorError(
            f"colour conversion needs an H×W×3 or H×W×4 image, got shape {arr.shape}",
            "pass RGB or RGBA pixels with channels last",
        )
    if not np.issubdtype(arr.dtype, np.floating):
        raise ColorError(
            f"colour conversion needs float pixels, got {arr.dtype}",
            "normalise integer codes first, e.g. srgb_uint8_to_float(img)",
        )
    return np.array(arr, dtype=np.float32, order="C", copy=True)


def srgb_uint8_to_float(img: np.ndarray) -> np.ndarray:
    """Normalise 8-bit codes to 0..1 without changing the encoding.

    Args:
        img: H×W×C uint8, any encoding (typically display sRGB).

    Returns:
        H×W×C float32 in 0..1, same encoding.
    """
    arr = np.asarray(img)
    if arr.dtype != np.uint8:
        raise ColorError(f"expected uint8 pixels, got {arr.dtype}", "pass 8-bit codes")
    out = arr.astype(np.float32)
    out *= np.float32(1.0 / 255.0)
    return out


def srgb_to_linear(img: np.ndarray) -> np.ndarray:
    """The sRGB (IEC 61966-2-1) decoding curve, primaries unchanged.

    Args:
        img: float array, any shape, sRGB-encoded 0..1 (``sRGB Encoded Rec.709 (sRGB)``).

    Returns:
        float32 array of the same shape, ``Linear Rec.709 (sRGB)``.
    """
    x = np.asarray(img, dtype=np.float32)
    return np.where(
        x <= 0.04045, x / np.float32(12.92), ((x + np.float32(0.055)) / np.float32(1.055)) ** 2.4
    ).astype(np.float32)


def linear_to_srgb(img: np.ndarray) -> np.ndarray:
    """The sRGB (IEC 61966-2-1) encoding curve, primaries unchanged.

    Args:
        img: float array, any shape, ``Linear Rec.709 (sRGB)``; negatives clip to 0.

    Returns:
        float32 array of the same shape, sRGB-encoded (``sRGB Encoded Rec.709 (sRGB)``).
    """
    x = np.maximum(np.asarray(img, dtype=np.float32), np.float32(0.0))
    return np.where(
        x <= 0.0031308,
        x * np.float32(12.92),
        np.float32(1.055) * x ** np.float32(1.0 / 2.4) - np.float32(0.055),
    ).astype(np.float32)


def srgb_uint8_to_linear(img: np.ndarray) -> np.ndarray:
    """Decode 8-bit sRGB codes to linear light (Rec.709 primaries) through a 256-entry table.

    Args:
        img: H×W×C uint8, display sRGB (``sRGB Encoded Rec.709 (sRGB)``).

    Returns:
        H×W×C float32, ``Linear Rec.709 (sRGB)``.
    """
    arr = np.asarray(img)
    if arr.dtype != np.uint8:
        raise ColorError(f"expected uint8 pixels, got {arr.dtype}", "pass 8-bit sRGB codes")
    return _SRGB8_TABLE[arr]


_SRGB8_TABLE = srgb_to_linear(np.arange(256, dtype=np.float32) / np.float32(255.0))
