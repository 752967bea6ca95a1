"""Compositing of synthesized faces into plates, in scene-linear ACEScg.

- :mod:`pipeline.composite.matte`: the face matte in crop space.
- :mod:`pipeline.composite.colormatch`: colour and light match to the plate.
- :mod:`pipeline.composite.blend`: Laplacian-pyramid blending confined to the matte.
- :mod:`pipeline.composite.temporal`: smoothing over frames and the edge-flicker measure.
- :mod:`pipeline.composite.config`: the ``composite:`` section of a profile.
- :mod:`pipeline.composite.comp`: the warps, one frame and a whole shot.
"""

from __future__ import annotations

from pipeline.composite.blend import laplacian_blend
from pipeline.composite.colormatch import color_match
from pipeline.composite.comp import (
    CompositedFrame,
    CompositeSequence,
    composite_frame,
    composite_sequence,
    plate_to_crop,
    warp_to_plate,
)
from pipeline.composite.config import CompositeConfig
from pipeline.composite.matte import face_matte
from pipeline.composite.temporal import edge_flicker, smooth_over_time

__all__ = [
    "CompositeConfig",
    "CompositeSequence",
    "CompositedFrame",
    "color_match",
    "composite_frame",
    "composite_sequence",
    "edge_flicker",
    "face_matte",
    "laplacian_blend",
    "plate_to_crop",
    "smooth_over_time",
    "warp_to_plate",
]
