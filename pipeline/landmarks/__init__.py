"""Facial landmark backends behind one interface, chosen by name from a dict registry.

Every backend returns :class:`Detection` objects: 68 points in the iBUG 68 layout, a confidence
in 0..1 and a face box, all in pixel coordinates of the image it was given.

- ``dlib`` (default, offline): dlib's HOG detector and the 68-point shape predictor shipped by
  the ``face_recognition_models`` package.
- ``fan``: face-alignment's 2D-FAN-4 heatmap network on dlib's HOG boxes. Its weights come from
  a configured path or torch's hub cache and are never downloaded.
"""

from __future__ import annotations

import inspect
from typing import Any

from pipeline.errors import ConfigError
from pipeline.landmarks.base import LandmarkBackend
from pipeline.landmarks.dlib_backend import DlibBackend
from pipeline.landmarks.fan_backend import FanBackend

BACKENDS: dict[str, type] = {"dlib": DlibBackend, "fan": FanBackend}


def get_backend(name: str, **params: Any) -> LandmarkBackend:
    """Build a landmark backend by its registry name.

    Args:
        name: a key of :data:`BACKENDS`.
        **params: the backend's constructor arguments.

    Raises:
        ConfigError: unknown name or unknown parameter.
        WeightsMissingError: the backend's model file is not provisioned.
    """
    cls = BACKENDS.get(name)
    if cls is None:
        raise ConfigError(
            [f"track.backend: got {name!r}, expected one of {', '.join(map(repr, BACKENDS))}"]
        )
    try:
        inspect.signature(cls).bind(**params)
    except TypeError as exc:
        raise ConfigError([f"track: {name} backend: {exc}"]) from exc
    return cls(**params)


__all__ = ["BACKENDS", "get_backend"]
