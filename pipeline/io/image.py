"""Single-image frames of a sequence: PNG, TIFF, DPX.

Headers are parsed here, in a few hundred bytes, so a frame's size is checked against
``max_pixels`` before any decoder allocates it. Pixels come from OpenImageIO when it is
importable; otherwise PNG and TIFF go through OpenCV (16-bit aware) and DPX through PyAV's FFmpeg
decoder (OpenCV has no DPX reader).
"""

from __future__ import annotations

import importlib.util
import math
import os
import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import cv2
import numpy as np

from pipeline.errors import DecodeError
from pipeline.io.base import check_file, check_pixels, normalise_codes

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".dpx")


@dataclass(frozen=True)
class ImageHeader:
    """What an image header says, before decoding.

    Attributes:
        width: pixels per line.
        height: lines.
        bit_depth: bits per sample.
        fps: frame rate stored in the header (DPX), else ``None``.
        timecode: ``(hh, mm, ss, ff, drop_frame)`` stored in the header (DPX), else ``None``.
    """

    width: int
    height: int
    bit_depth: int
    fps: Fraction | None = None
    timecode: tuple[int, int, int, int, bool] | None = None


def has_oiio() -> bool:
    """True when OpenImageIO's Python module can be imported."""
    return importlib.util.find_spec("OpenImageIO") is not None


def read_header(path: Path) -> ImageHeader:
    """Parse a PNG, TIFF or DPX header.

    Raises:
        DecodeError: missing, empty, truncated or unrecognised file.
    """
    check_file(path, "image")
    try:
        with open(path, "rb") as fh:
            head = fh.read(2048)
            if path.suffix.lower() in (".tif", ".tiff"):
                return _tiff_header(path, fh, head)
            if head.startswith(b"\x89PNG\r\n\x1a\n"):
                _check_png_chunks(path, fh, path.stat().st_size)
    except (OSError, struct.error) as exc:
        raise DecodeError(f"cannot read header of {path}: {exc}", _REEXPORT) from exc
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png_header(path, head)
    if head[:4] in (b"SDPX", b"XPDS"):
        return _dpx_header(path, head)
    raise DecodeError(
        f"{path} is not a {path.suffix.lstrip('.').upper()} file (unrecognised header)",
        _REEXPORT,
    )


_REEXPORT = "the file is corrupt or mislabelled; re-render or re-export it"


def _check_png_chunks(path: Path, fh: BinaryIO, size: int) -> None:
    """Refuse a PNG whose chunk lengths run past the end of the file.

    OpenCV allocates and fills a chunk's declared length before it notices that the file ends:
    a 400-byte PNG whose IDAT claims 800 MB costs seconds and the memory.

    Raises:
        DecodeError: naming the chunk, its offset, and what it claims.
    """
    pos = 8  # after the signature; each chunk is length, type, data, CRC
    while pos + 12 <= size:
        fh.seek(pos)
        length, kind = struct.unpack(">I4s", fh.read(8))
        if length > size - pos - 12:
            raise DecodeError(
                f"{path}: PNG chunk {kind!r} at byte {pos} claims {length} bytes, but only "
                f"{size - pos - 12} follow (truncated or corrupt file)",
                _REEXPORT,
            )
        if kind == b"IEND":
            return
        pos += 12 + length


def _png_header(path: Path, head: bytes) -> ImageHeader:
    if len(head) < 26 or head[12:16] != b"IHDR":
        raise DecodeError(f"{path}: PNG header is truncated", _REEXPORT)
    width, height, depth = struct.unpack(">IIB", head[16:25])
    return ImageHeader(width, height, depth)


def _dpx_header(path: Path, head: bytes) -> ImageHeader:
    if len(head) < 808:
        raise DecodeError(f"{path}: DPX header is truncated", _REEXPORT)
    order = ">" if head[:4] == b"SDPX" else "<"
    (data_offset,) = struct.unpack(order + "I", head[4:8])
    width, height = struct.unpack(order + "II", head[772:780])
    depth = head[803]
    # The film (1664) and TV (1920) headers are optional: FFmpeg, for one, puts pixels at 1664.
    industry = min(data_offset, len(head))
    fps: Fraction | None = None
    for offset in (1724, 1940):  # film header frame rate, then TV header frame rate
        if offset + 4 <= industry:
            (rate,) = struct.unpack(order + "f", head[offset : offset + 4])
            if math.isfinite(rate) and 0.0 < rate < 1000.0:
                fps = Fraction(rate).limit_denominator(1001)
                break
    tc = None
    if 1924 <= industry:
        tc = _bcd_timecode(struct.unpack(order + "I", head[1920:1924])[0])
    return ImageHeader(width, height, depth, fps, tc)


def _bcd_timecode(value: int) -> tuple[int, int, int, int, bool] | None:
    """SMPTE BCD ``0xHHMMSSFF`` (flag bits masked) to fields; ``None`` when unset or invalid."""
    if value in (0xFFFFFFFF, 0):
        return None
    raw = value.to_bytes(4, "big")
    fields = []
    for byte, mask in zip(raw, (0x3F, 0x7F, 0x7F, 0x3F), strict=True):
        b = byte & mask
        tens, units = b >> 4, b & 0x0F
        if units > 9:
            return None
        fields.append(tens * 10 + units)
    hh, mm, ss, ff = fields
    if hh > 23 or mm > 59 or ss > 59:
        return None
    return hh, mm, ss, ff, bool(raw[3] & 0x40)


def _tiff_header(path: Path, fh: BinaryIO, head: bytes) -> ImageHeader:
    if head[:2] not in (b"II", b"MM"):
        raise DecodeError(f"{path} is not a TIFF file (unrecognised header)", _REEXPORT)
    order = "<" if head[:2] == b"II" else ">"
    (magic,) = struct.unpack(order + "H", head[2:4])
    if magic == 42:
        (ifd,) = struct.unpack(order + "I", head[4:8])
        count_fmt, entry_size, value_fmt, value_size = "H", 12, "I", 4
    elif magic == 43:  # BigTIFF
        (ifd,) = struct.unpack(order + "Q", head[8:16])
        count_fmt, entry_size, value_fmt, value_size = "Q", 20, "Q", 8
    else:
        raise DecodeError(f"{path}: bad TIFF magic {magic}", _REEXPORT)
    # Offsets and counts are checked against the file's size before seeking or reading: a
    # BigTIFF field can claim 2**64, which seek() and read() refuse with ValueError,
    # OverflowError or an allocation of that size.
    size = os.fstat(fh.fileno()).st_size
    if ifd >= size:
        raise DecodeError(
            f"{path}: TIFF directory offset {ifd} lies past the end of the file ({size} bytes)",
            _REEXPORT,
        )
    fh.seek(ifd)
    count_size = struct.calcsize(count_fmt)
    (count,) = struct.unpack(order + count_fmt, fh.read(count_size))
    if count * entry_size > size - ifd - count_size:
        raise DecodeError(
            f"{path}: TIFF directory claims {count} entries, more than the file holds "
            "(truncated or corrupt)",
            _REEXPORT,
        )
    table = fh.read(count * entry_size)
    tags: dict[int, int] = {}
    sizes = {3: (2, "H"), 4: (4, "I"), 16: (8, "Q")}  # SHORT, LONG, LONG8
    count_code = "I" if value_size == 4 else "Q"
    for i in range(count):
        entry = table[i * entry_size : (i + 1) * entry_size]
        tag, typ = struct.unpack(order + "HH", entry[:4])
        if tag not in (256, 257, 258) or typ not in sizes:
            continue
        (n,) = struct.unpack(order + count_code, entry[4 : 4 + value_size])
        field = entry[4 + value_size :]
        width, code = sizes[typ]
        if n * width > value_size:  # the values live elsewhere; the field holds their offset
            (where,) = struct.unpack(order + value_fmt, field[:value_size])
            if where >= size:
                raise DecodeError(
                    f"{path}: TIFF tag {tag} points past the end of the file", _REEXPORT
                )
            fh.seek(where)
            field = fh.read(width)
        (tags[tag],) = struct.unpack(order + code, field[:width])
    if 256 not in tags or 257 not in tags:
        raise DecodeError(f"{path}: TIFF header lacks its image size", _REEXPORT)
    return ImageHeader(tags[256], tags[257], tags.get(258, 8))


def load_image_rgb(path: Path, max_pixels: int) -> tuple[np.ndarray, ImageHeader]:
    """Decode one PNG/TIFF/DPX frame, after checking its header.

    Args:
        path: the file.
        max_pixels: refuse headers claiming more pixels than this.

    Returns:
        ``(rgb, header)``: H×W×3 float32 in the file's encoding (integer codes to 0..1, float
        TIFF as stored; grey expanded to RGB, alpha dropped), and the parsed header.

    Raises:
        DecodeError: unreadable, truncated, corrupt or oversized.
    """
    header = read_header(path)
    check_pixels(path, header.width, header.height, max_pixels)
    if has_oiio():
        arr = _load_oiio(path)
    elif path.suffix.lower() == ".dpx":
        arr = _load_av(path)
    else:
        arr = _load_cv2(path)
    if arr.shape[0] != header.height or arr.shape[1] != header.width:
        raise DecodeError(
            f"{path}: decoded {arr.shape[1]}×{arr.shape[0]}, header says "
            f"{header.width}×{header.height}",
            _REEXPORT,
        )
    return arr, header


def _rgb(arr: np.ndarray) -> np.ndarray:
    """H×W, H×W×1, ×2 (grey+alpha), ×3 or ×4 → H×W×3 float32 0..1."""
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.shape[-1] in (1, 2):
        arr = np.repeat(arr[..., :1], 3, axis=-1)
    return normalise_codes(np.ascontiguousarray(arr[..., :3]))


def _load_cv2(path: Path) -> np.ndarray:

    try:
        arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise DecodeError(f"cannot decode {path}: {exc}", _REEXPORT) from exc
    if arr is None:
        raise DecodeError(f"cannot decode {path} (OpenCV read nothing)", _REEXPORT)
    if arr.ndim == 3 and arr.shape[-1] >= 3:
        arr = arr[..., [2, 1, 0]] if arr.shape[-1] == 3 else arr[..., [2, 1, 0, 3]]
    return _rgb(arr)


def _load_av(path: Path) -> np.ndarray:

    try:
        with av.open(str(path), format="image2") as c:
            frame = next(c.decode(video=0))
            deep = max((comp.bits for comp in frame.format.components), default=8) > 8
            arr = frame.to_ndarray(format="rgb48le" if deep else "rgb24")
    except (av.FFmpegError, StopIteration, OSError) as exc:
        raise DecodeError(f"cannot decode {path}: {exc}", _REEXPORT) from exc
    return normalise_codes(arr)


def _load_oiio(path: Path) -> np.ndarray:
    import OpenImageIO as oiio  # optional: used for DPX and TIFF only where installed (has_oiio)

    inp = oiio.ImageInput.open(str(path))
    if inp is None:
        raise DecodeError(f"cannot open {path}: {oiio.geterror()}", _REEXPORT)
    try:
        spec = inp.spec()
        float_data = spec.format.basetype in (oiio.FLOAT, oiio.HALF, oiio.DOUBLE)
        # OIIO converts integer data to float 0..1 itself; float data comes back as stored.
        arr = inp.read_image(0, 0, 0, min(spec.nchannels, 3), "float")
        if arr is None:
            raise DecodeError(f"cannot decode {path}: {inp.geterror()}", _REEXPORT)
    finally:
        inp.close()
    arr = np.asarray(arr, dtype=np.float32)
    if not float_data:
        arr = np.clip(arr, 0.0, 1.0)
    return _rgb(arr)
