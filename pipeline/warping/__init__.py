"""Warping a reference face onto target landmarks, one kind of warp per module (kornia's layout).

- :mod:`~pipeline.warping.shapes`: landmark shapes: checks, the scale-free shape distance and the
  nearest reference.
- :mod:`~pipeline.warping.mesh`: the piecewise-affine warp over a Delaunay mesh.
- :mod:`~pipeline.warping.tps`: the thin-plate spline through the same points.
- :mod:`~pipeline.warping.remap`: resampling an image through a pixel map (OpenCV, and a 4-D
  ``grid_sample`` twin for ONNX/TensorRT).
- :mod:`~pipeline.warping.image`: an image warped by either map (or a blend of both), and the
  parameter-free warp baseline.
- :mod:`~pipeline.warping.blend`: several warps of one target blended, optionally after moving each
  onto their consensus along its optical flow.

How G's warp input combines them per actor is :mod:`pipeline.models.fusion`.
"""
