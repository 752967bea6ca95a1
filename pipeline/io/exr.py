"""OpenEXR files: half-float writer with Nuke-style layers, reader, and sequence frame loader.

Layers follow the Nuke convention: the unnamed layer is ``R,G,B(,A)``; a layer ``face`` is
``face.R, face.G, face.B(, face.A)``. Files are written through :func:`pipeline.atomic.atomic_path`.
"""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import numpy as np
import OpenEXR

from pipeline.atomic import atomic_path
from pipeline.errors import DecodeError, EncodeError
from pipeline.frames import Timecode
from pipeline.io.base import check_file, check_pixels

Compression = Literal["zip", "piz", "dwaa", "none"]

COMPRESSIONS: dict[str, OpenEXR.Compression] = {
    "zip": OpenEXR.ZIP_COMPRESSION,
    "piz": OpenEXR.PIZ_COMPRESSION,
    "dwaa": OpenEXR.DWAA_COMPRESSION,
    "none": OpenEXR.NO_COMPRESSION,
}
# Header names write_exr sets itself; ``attrs`` may not override them.
_RESERVED = {
    "channels",
    "compression",
    "dataWindow",
    "displayWindow",
    "lineOrder",
    "pixelAspectRatio",
    "screenWindowCenter",
    "screenWindowWidth",
    "type",
    "framesPerSecond",
    "timeCode",
    "chromaticities",
    "owner",
}
# OpenEXR's Python binding reports damage as RuntimeError (open) or ValueError (pixel data).
_EXR_ERRORS = (RuntimeError, ValueError, OSError)


def write_exr(
    path: str | Path,
    layers: dict[str, np.ndarray],
    *,
    compression: Compression = "zip",
    fps: Fraction | None = None,
    timecode: Timecode | None = None,
    chromaticities: tuple[float, ...] | None = None,
    owner: str | None = None,
    attrs: dict[str, str] | None = None,
) -> Path:
    """Write a half-float scanline EXR atomically.

    Args:
        path: the final file path.
        layers: layer name → H×W×3 or H×W×4 float array (any float dtype; stored as HALF),
            scene-linear in the working space (ACEScg) unless the caller says otherwise. ``""``
            is the top-level ``R,G,B(,A)``; ``"face"`` becomes ``face.R, face.G, ...``. All layers
            share one H×W.
        compression: ``"zip"``, ``"piz"``, ``"dwaa"`` or ``"none"``.
        fps: written as ``framesPerSecond``.
        timecode: written as ``timeCode`` (drop-frame flag from the timecode).
        chromaticities: 8 floats (R, G, B, white xy), e.g. ``ColorPipeline.chromaticities``.
        owner: written as ``owner``.
        attrs: extra string attributes, e.g. ``{"likeness:synthetic": "1"}``.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        EncodeError: bad layers or attributes, or the write fails. Nothing is left at ``path``.
    """
    path = Path(path)
    if compression not in COMPRESSIONS:
        raise EncodeError(
            f"unknown EXR compression {compression!r}",
            f"use one of {', '.join(COMPRESSIONS)}",
        )
    channels = _channels(path, layers)
    height, width = next(iter(channels.values())).shape[:2]
    header: dict[str, Any] = {
        "compression": COMPRESSIONS[compression],
        "type": OpenEXR.scanlineimage,
    }
    if fps is not None:
        header["framesPerSecond"] = Fraction(fps)
    if timecode is not None:
        header["timeCode"] = exr_timecode(timecode)
    if chromaticities is not None:
        if len(chromaticities) != 8:
            raise EncodeError(
                f"{path}: chromaticities need 8 floats (R, G, B, white xy), got "
                f"{len(chromaticities)}",
                "use ColorPipeline.chromaticities(space)",
            )
        header["chromaticities"] = tuple(float(v) for v in chromaticities)
    if owner is not None:
        header["owner"] = str(owner)
    for key, value in (attrs or {}).items():
        if key in _RESERVED or not isinstance(key, str) or not isinstance(value, str):
            raise EncodeError(
                f"{path}: extra EXR attribute {key!r}={value!r} is not a free string attribute",
                "use string keys outside the standard names, e.g. 'likeness:synthetic'",
            )
        header[key] = value
    try:
        with atomic_path(path, suffix=".exr") as tmp:
            OpenEXR.File(header, channels).write(str(tmp))
    except _EXR_ERRORS as exc:
        raise EncodeError(
            f"cannot write EXR {path} ({width}×{height}): {exc}",
            "check that the folder is writable and the disk has space",
        ) from exc
    return path


def _channels(path: Path, layers: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Validate layers and convert them to the binding's grouped HALF arrays."""
    if not layers:
        raise EncodeError(f"{path}: no layers to write", "pass at least {'': rgb}")
    out: dict[str, np.ndarray] = {}
    size: tuple[int, int] | None = None
    for name, img in layers.items():
        arr = np.asarray(img)
        if (
            arr.ndim != 3
            or arr.shape[-1] not in (3, 4)
            or not np.issubdtype(arr.dtype, np.floating)
        ):
            raise EncodeError(
                f"{path}: layer {name!r} is {arr.dtype} {arr.shape}; layers are H×W×3 or H×W×4 "
                "float",
                "pass float RGB or RGBA arrays with channels last",
            )
        if size is None:
            size = arr.shape[:2]
        elif arr.shape[:2] != size:
            raise EncodeError(
                f"{path}: layer {name!r} is {arr.shape[1]}×{arr.shape[0]}, the first layer is "
                f"{size[1]}×{size[0]}",
                "resize every layer to the same size",
            )
        if name and ("." in name or not name.isprintable()):
            raise EncodeError(f"{path}: bad layer name {name!r}", "use e.g. 'face' (no dots)")
        # The binding names grouped channels "<key>.R/G/B/A"; "RGB(A)" is the top level.
        key = name or ("RGBA" if arr.shape[-1] == 4 else "RGB")
        out[key] = np.ascontiguousarray(arr, dtype=np.float16)
    return out


def exr_timecode(tc: Timecode) -> OpenEXR.TimeCode:
    """A :class:`Timecode` as the OpenEXR ``timeCode`` attribute."""
    hh, mm, ss, ff = tc.fields()
    out = OpenEXR.TimeCode()
    out.hours, out.minutes, out.seconds, out.frame = hh, mm, ss, ff
    out.dropFrame = tc.drop_frame
    return out


def timecode_from_exr(value: Any, fps: Fraction) -> Timecode | None:
    """The ``timeCode`` attribute as a :class:`Timecode` at ``fps`` (``None`` when absent)."""
    if value is None:
        return None
    sep = ";" if value.dropFrame else ":"
    text = f"{value.hours:02d}:{value.minutes:02d}:{value.seconds:02d}{sep}{value.frame:02d}"
    try:
        return Timecode.parse(text, fps)
    except ValueError:
        return None


def read_exr(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read every channel of a single-part EXR.

    Args:
        path: the file.

    Returns:
        ``(channels, header)``: channel name (``"R"``, ``"face.A"``, ...) → H×W array as stored
        (float16 for HALF, float32 for FLOAT, uint32 for UINT), and the header dict as the
        OpenEXR binding gives it (``framesPerSecond`` a Fraction, ``timeCode`` an
        ``OpenEXR.TimeCode``, custom attributes as str).

    Raises:
        DecodeError: missing, empty, truncated or corrupt file.
    """
    path = Path(path)
    check_file(path, "EXR")
    try:
        with OpenEXR.File(str(path), separate_channels=True) as f:
            header = dict(f.header())
            channels = {name: np.array(ch.pixels) for name, ch in f.channels().items()}
    except (*_EXR_ERRORS, ZeroDivisionError) as exc:
        raise DecodeError(
            f"cannot read EXR {path}: {type(exc).__name__}: {exc}",
            "the file is truncated or corrupt; re-render it",
        ) from exc
    _check_header(path, header, list(channels))
    return channels, header


def read_exr_header(path: Path) -> dict[str, Any]:
    """The header of an EXR without its pixels.

    Raises:
        DecodeError: missing, empty or corrupt file.
    """
    check_file(path, "EXR")
    try:
        with OpenEXR.File(str(path), header_only=True) as f:
            header = dict(f.header())
            # The binding decodes lazily: channel names are read as UTF-8 here.
            names = [ch.name for ch in header.get("channels", [])]
    # ZeroDivisionError: a framesPerSecond rational with a zero denominator.
    except (*_EXR_ERRORS, ZeroDivisionError) as exc:
        raise DecodeError(
            f"cannot read EXR header {path}: {type(exc).__name__}: {exc}",
            "the file is corrupt; re-render it",
        ) from exc
    _check_header(path, header, names)
    return header


#: Standard attributes whose type the readers rely on: name → (type, what it should be).
_ATTRIBUTE_TYPES: dict[str, tuple[type, str]] = {
    "framesPerSecond": (Fraction, "a rational"),
    "timeCode": (OpenEXR.TimeCode, "a timecode"),
}


def _check_header(path: Path, header: dict[str, Any], names: list[str]) -> None:
    """Refuse a header whose standard attributes have the wrong type or shape.

    A file can store any attribute under any type, so ``framesPerSecond`` written as a string
    or ``timeCode`` as an int is legal EXR that the readers would trip on later.

    Raises:
        DecodeError: a mistyped ``framesPerSecond`` or ``timeCode``, a window that is not two
            corners, or no channels.
    """
    hint = "the file's header is damaged or was written by a broken tool; re-render it"
    for name, (kind, what) in _ATTRIBUTE_TYPES.items():
        value = header.get(name)
        if value is not None and not isinstance(value, kind):
            raise DecodeError(
                f"{path}: header attribute {name} is {type(value).__name__}, not {what}", hint
            )
    for name in ("dataWindow", "displayWindow"):
        try:
            corners = np.asarray(header[name], dtype=np.int64)
        except (KeyError, TypeError, ValueError) as exc:
            raise DecodeError(
                f"{path}: header attribute {name} is missing or damaged", hint
            ) from exc
        if corners.shape != (2, 2):
            raise DecodeError(f"{path}: header attribute {name} is not two corners", hint)
    if not names:
        raise DecodeError(f"{path} has no channels", hint)


def pixel_bits(path: Path) -> int:
    """Widest channel type in an EXR header: 16 (HALF) or 32 (FLOAT, UINT).

    The binding's header-only read does not expose channel types, so the ``channels`` attribute
    (``chlist``: name, NUL, int32 pixel type, ...) is read from the file's first bytes.
    """
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    at = head.find(b"channels\0chlist\0")
    if at < 0:
        return 16
    pos = at + len(b"channels\0chlist\0")
    (size,) = struct.unpack("<i", head[pos : pos + 4])
    body = head[pos + 4 : pos + 4 + size]
    bits, i = 16, 0
    while i < len(body) and body[i] != 0:
        end = body.index(b"\0", i)
        (ptype,) = struct.unpack("<i", body[end + 1 : end + 5])
        if ptype != 1:  # 0 UINT, 1 HALF, 2 FLOAT
            bits = 32
        i = end + 1 + 16  # pixel type, pLinear + 3 reserved, xSampling, ySampling
    return bits


def exr_size(header: dict[str, Any]) -> tuple[int, int]:
    """``(width, height)`` of the display window."""
    lo, hi = header["displayWindow"]
    return int(hi[0] - lo[0] + 1), int(hi[1] - lo[1] + 1)


def load_exr_rgb(path: Path, max_pixels: int) -> tuple[np.ndarray, dict[str, Any]]:
    """One EXR frame's top-level R,G,B for a plate reader.

    Args:
        path: the file.
        max_pixels: refuse headers claiming more pixels than this (checked before decoding).

    Returns:
        ``(rgb, header)``: H×W×3 float32 values as stored (the plate's own encoding), in the
        display window (data outside it is cropped, missing data is 0), and the header.

    Raises:
        DecodeError: unreadable, truncated, oversized, or no R, G, B channels.
    """
    header = read_exr_header(path)
    (dlo, dhi), (wlo, whi) = header["dataWindow"], header["displayWindow"]
    dw, dh = int(dhi[0] - dlo[0] + 1), int(dhi[1] - dlo[1] + 1)
    width, height = exr_size(header)
    check_pixels(path, dw, dh, max_pixels)
    check_pixels(path, width, height, max_pixels)
    names = {ch.name for ch in header["channels"]}
    if not {"R", "G", "B"} <= names:
        raise DecodeError(
            f"{path} has no top-level R, G, B channels (has: {', '.join(sorted(names))})",
            "write the plate's colour into the unnamed layer R, G, B",
        )
    try:
        with OpenEXR.File(str(path)) as f:
            channels = f.channels()
            key = "RGBA" if "RGBA" in channels else "RGB"
            rgb = np.array(channels[key].pixels[..., :3], dtype=np.float32, order="C")
    except (*_EXR_ERRORS, KeyError) as exc:
        raise DecodeError(
            f"cannot read EXR {path}: {exc}", "the file is truncated or corrupt; re-render it"
        ) from exc
    if (dlo == wlo).all() and (dhi == whi).all():
        return rgb, header
    canvas = np.zeros((height, width, 3), np.float32)
    x0, y0 = int(dlo[0] - wlo[0]), int(dlo[1] - wlo[1])
    sx, sy = max(0, -x0), max(0, -y0)
    tx, ty = max(0, x0), max(0, y0)
    w = min(dw - sx, width - tx)
    h = min(dh - sy, height - ty)
    if w > 0 and h > 0:
        canvas[ty : ty + h, tx : tx + w] = rgb[sy : sy + h, sx : sx + w]
    return canvas, header
