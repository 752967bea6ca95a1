"""Generated media for the plate I/O tests: tiny, made in tmp_path, known content and timecode.

Imported by the tests as ``io_media`` (pytest puts this folder on ``sys.path``).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from pipeline.frames import Timecode
from pipeline.io import ProResWriter, write_exr

FPS = Fraction(24000, 1001)
START_TC = "01:00:10:05"


def smooth_rgb(height: int = 64, width: int = 128, phase: float = 0.0) -> np.ndarray:
    """Low-frequency colour gradients. Returns: H×W×3 float32 in 0.1..0.9, display-referred."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32) / np.float32(256.0)
    return np.stack(
        [
            0.5 + 0.4 * np.sin(2.0 * x + 1.0 + phase),
            0.5 + 0.4 * np.cos(1.5 * y + 2.0 * x + phase),
            0.5 + 0.4 * np.sin(1.7 * x - 2.2 * y + phase),
        ],
        axis=-1,
    ).astype(np.float32)


def smooth_alpha(height: int = 64, width: int = 128) -> np.ndarray:
    """A soft matte. Returns: H×W×1 float32 in 0..1."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32) / np.float32(256.0)
    return np.clip(0.5 + 0.5 * np.sin(2.0 * x + 3.0 * y), 0.0, 1.0)[..., None].astype(np.float32)


def make_prores(
    path: Path,
    *,
    codec: str = "prores_422hq",
    n: int = 4,
    size: tuple[int, int] = (128, 64),
    timecode: str | None = START_TC,
    metadata: dict[str, str] | None = None,
) -> list[np.ndarray]:
    """Write a ProRes movie with ProResWriter. Returns the frames written (H×W×3/4 float32)."""
    width, height = size
    tc = Timecode.parse(timecode, FPS) if timecode else None
    frames = []
    with ProResWriter(
        path, width=width, height=height, fps=FPS, codec=codec, timecode=tc, metadata=metadata
    ) as w:
        for i in range(n):
            img = smooth_rgb(height, width, phase=0.3 * i)
            if codec == "prores_4444":
                img = np.concatenate([img, smooth_alpha(height, width)], axis=-1)
            w.write(img)
            frames.append(img)
    return frames


def make_h264(
    path: Path,
    *,
    n: int = 12,
    size: tuple[int, int] = (64, 64),
    rate: Fraction = Fraction(25),
    pts: list[int] | None = None,
    gop: int = 4,
) -> np.ndarray:
    """Write an 8-bit H.264 movie whose frame i is filled with grey level 20*i.

    Args:
        pts: explicit presentation timestamps in 1/rate units (irregular ones make a VFR file).

    Returns:
        n×H×W×3 uint8, the frames written (display sRGB codes).
    """
    width, height = size
    out = av.open(str(path), "w")
    s = out.add_stream("libx264", rate=rate, options={"g": str(gop), "crf": "1"})
    s.width, s.height, s.pix_fmt = width, height, "yuv420p"
    frames = np.zeros((n, height, width, 3), np.uint8)
    for i in range(n):
        frames[i] = (20 * i) % 250
        f = av.VideoFrame.from_ndarray(frames[i], format="rgb24")
        f.pts = pts[i] if pts else i
        for p in s.encode(f):
            out.mux(p)
    for p in s.encode():
        out.mux(p)
    out.close()
    return frames


def make_exr_sequence(
    folder: Path,
    numbers: list[int],
    *,
    size: tuple[int, int] = (64, 48),
    fps: Fraction | None = FPS,
    name: str = "sh010",
) -> dict[int, np.ndarray]:
    """Write ``name.NNNN.exr`` frames with fps and timecode. Returns number → H×W×3 float16."""
    width, height = size
    tc0 = Timecode.parse(START_TC, FPS)
    out = {}
    for number in numbers:
        img = (smooth_rgb(height, width, phase=0.1 * number) * 4.0 - 0.5).astype(np.float16)
        write_exr(
            folder / f"{name}.{number:04d}.exr",
            {"": img},
            fps=fps,
            timecode=tc0 + (number - numbers[0]),
        )
        out[number] = img
    return out


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Write an RGB image (uint8 or uint16, RGB order) as PNG through OpenCV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1])):
        raise OSError(f"cv2 could not write {path}")
