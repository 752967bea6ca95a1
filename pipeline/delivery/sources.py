"""The delivery loop's inputs as lazy sequences: plate frames from the ingest cache and the
synthesized crops in the working space."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.inference.faces import Faces
from pipeline.io.plate_cache import CachedPlate, read_cached_frame

#: The colour space the generator's crops are encoded in (that of the reference stills).
FACE_ENCODING = "sRGB Encoded Rec.709 (sRGB)"


class PlateFrames(Sequence):
    """The ingest cache as a lazy sequence of H×W×3 float32 ACEScg frames (small LRU)."""

    def __init__(self, plate: CachedPlate) -> None:
        self.plate = plate
        self.numbers = list(plate.frames)
        self._get = functools.lru_cache(maxsize=4)(self._read)

    def _read(self, i: int) -> np.ndarray:
        return read_cached_frame(self.plate, self.numbers[i])

    def __len__(self) -> int:
        return len(self.numbers)

    def __getitem__(self, i: int) -> np.ndarray:  # type: ignore[override]
        return self._get(int(i))


class FaceCrops(Sequence):
    """Synthesized crops as a lazy sequence of S×S×3 float32 ACEScg (None where not valid)."""

    def __init__(self, faces: Faces, color: Any, working_space: str) -> None:
        self.faces = faces
        self.color = color
        self.space = working_space
        self._get = functools.lru_cache(maxsize=4)(self._read)

    def _read(self, i: int) -> np.ndarray | None:
        if not self.faces.valid[i]:
            return None
        srgb = np.ascontiguousarray(self.faces.faces[i], np.float32)
        return self.color.convert(srgb, FACE_ENCODING, self.space)

    def __len__(self) -> int:
        return len(self.faces.frames)

    def __getitem__(self, i: int) -> np.ndarray | None:  # type: ignore[override]
        return self._get(int(i))
