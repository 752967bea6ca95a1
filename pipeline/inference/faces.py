"""A synthesis chunk's output: the actor's face crop per plate frame, and ``faces.npz``.

``faces.npz`` (schema ``likeness.faces/2``) holds, per plate frame: the face crop (R×R×3
float16, display sRGB; R is the shot's render size, about one crop pixel per plate pixel, or
the network's size on the ``network`` render path), its landmarks in crop pixels, the
crop→plate transform, a ``valid`` flag (False where tracking failed: nothing is synthesized
there) and a ``retargeted`` flag (the performer is not the actor: the composite keeps the
actor's skin tone). A ``likeness.faces/1`` file is refused (its stage is recomputed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.atomic import write_npz
from pipeline.errors import SchemaError, StageError
from pipeline.io.plate_cache import CachedPlate
from pipeline.npz import read_sidecar

FACES_SCHEMA = "likeness.faces/2"


FACES_FILE = "faces.npz"


@dataclass(frozen=True)
class Faces:
    """Synthesized crops of one chunk (see the module docstring for the arrays)."""

    frames: np.ndarray  # N int64 plate frame numbers
    faces: np.ndarray  # N×R×R×3 float16, display sRGB (zeros where not valid)
    points: np.ndarray  # N×68×2 float32 crop pixels (NaN where not valid)
    inverse: np.ndarray  # N×2×3 float64 crop pixel → plate pixel (NaN where not valid)
    valid: np.ndarray  # N bool
    retargeted: np.ndarray | None = None  # N bool; None: all False

    @property
    def flags(self) -> np.ndarray:
        """N bool: :attr:`retargeted`, all False when unset."""
        if self.retargeted is None:
            return np.zeros(len(self.frames), bool)
        return np.asarray(self.retargeted, bool)


def save_faces(path: Path, faces: Faces) -> Path:
    return write_npz(
        path,
        schema=np.array(FACES_SCHEMA),
        frames=faces.frames,
        faces=faces.faces,
        points=faces.points,
        inverse=faces.inverse,
        valid=faces.valid,
        retargeted=faces.flags,
    )


def load_faces(path: Path) -> Faces:
    """Read ``faces.npz`` without unpickling.

    Raises:
        SchemaError: unreadable or damaged file, unknown schema, missing arrays, or arrays of
            the wrong type or shape.
    """
    fix = "rerun that synthesis chunk"
    names = ("frames", "faces", "points", "inverse", "valid", "retargeted")
    z = read_sidecar(path, SchemaError, "faces file", fix, FACES_SCHEMA, names)
    frames, faces, points, inverse, valid, retargeted = (z[k] for k in names)
    n = len(frames) if frames.ndim == 1 else -1
    if (
        frames.dtype.kind not in "iu"
        or faces.ndim != 4
        or faces.shape[0] != n
        or faces.shape[3] != 3
        or faces.dtype.kind != "f"
        or points.shape != (n, 68, 2)
        or points.dtype.kind != "f"
        or inverse.shape != (n, 2, 3)
        or inverse.dtype.kind != "f"
        or valid.shape != (n,)
        or valid.dtype != bool
        or retargeted.shape != (n,)
        or retargeted.dtype != bool
    ):
        raise SchemaError(
            f"{path}: malformed faces: "
            + ", ".join(f"{k} {z[k].dtype} {z[k].shape}" for k in names)
            + " (want N int, N×R×R×3, N×68×2, N×2×3 float, N bool, N bool)",
            fix,
        )
    return Faces(frames, faces, points, inverse, valid, retargeted)


def join_faces(chunks: list[Faces], plate: CachedPlate) -> Faces:
    """Concatenate chunk outputs in frame order and check they tile the plate's range."""

    chunks = sorted(chunks, key=lambda f: int(f.frames[0]))
    frames = np.concatenate([c.frames for c in chunks])
    if frames.tolist() != list(plate.frames):
        raise StageError(
            f"synthesis chunks cover frames {frames[0]}..{frames[-1]} ({len(frames)}), "
            f"the plate holds {plate.frames}",
            "rerun the synthesis stage",
        )
    sizes = {c.faces.shape[1] for c in chunks}
    if len(sizes) > 1:
        raise StageError(
            f"synthesis chunks were rendered at different sizes: {sorted(sizes)}",
            "rerun the synthesis stage",
        )
    cat = lambda name: np.concatenate([getattr(c, name) for c in chunks])  # noqa: E731
    return Faces(frames, cat("faces"), cat("points"), cat("inverse"), cat("valid"), cat("flags"))
