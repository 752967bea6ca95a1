"""The ``fan`` landmark backend: face-alignment's 2D-FAN-4 heatmap network on dlib's HOG boxes.

face-alignment 1.5 ships the architecture (``face_alignment.models.FAN``) and, for 2D-FAN-4, a
plain state dict (``2DFAN4-11f355bf06.pth.tar``; not a TorchScript file). Its ``FaceAlignment``
class fetches that file over the network when it is absent, so this module never uses it: it
builds ``FAN(4)`` itself and loads the state dict with ``torch.load(..., weights_only=True)``
from a configured path or from torch's hub cache, the place face-alignment itself reads.

Pre- and post-processing follow face-alignment's ``get_landmarks_from_image``: a 256² crop
around the box centre (moved up by 12 % of the box height) at scale ``(w + h) / 195``, 64²
heatmaps, arg-max with a quarter-pixel nudge towards the larger neighbour.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from pipeline.errors import CheckpointError, EngineUnavailableError, WeightsMissingError
from pipeline.landmarks.base import Box, Detection, check_image
from pipeline.landmarks.dlib_backend import hog_boxes, score_to_confidence, to_gray

#: The file face-alignment 1.5 would place in ``$TORCH_HOME/hub/checkpoints`` for 2D-FAN-4
#: (basename of ``face_alignment.api.models_urls["2DFAN-4"]``).
FAN_WEIGHTS_FILE = "2DFAN4-11f355bf06.pth.tar"
#: Hourglass stacks in 2D-FAN-4.
FAN_MODULES = 4
_CROP = 256
_HEATMAP = 64
_REFERENCE_SCALE = 195.0
_CENTER_Y_OFFSET = 0.12


def torch_hub_checkpoints() -> Path:
    """``$TORCH_HOME/hub/checkpoints``, resolved as torch does, without importing torch.

    ``TORCH_HOME`` wins; otherwise ``$XDG_CACHE_HOME/torch``; otherwise ``~/.cache/torch``.
    """
    home = os.environ.get("TORCH_HOME")
    if not home:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        home = os.path.join(cache, "torch")
    return Path(os.path.expanduser(home)) / "hub" / "checkpoints"


def resolve_weights(weights: str | os.PathLike[str] | None) -> Path:
    """Where the 2D-FAN-4 weights are: the configured path, else torch's hub cache.

    Raises:
        WeightsMissingError: the file is not there; the message names the file and the place.
    """
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsMissingError(
                f"FAN weights not found at the configured track.fan_weights path {path}",
                f"place face-alignment 1.5's 2D-FAN-4 state dict ({FAN_WEIGHTS_FILE}) there, "
                "or remove fan_weights to use torch's hub cache",
            )
        return path
    path = torch_hub_checkpoints() / FAN_WEIGHTS_FILE
    if not path.is_file():
        raise WeightsMissingError(
            f"FAN weights {FAN_WEIGHTS_FILE} not found in torch's hub cache: {path}",
            f"copy {FAN_WEIGHTS_FILE} (face-alignment 1.5's 2D-FAN-4) to {path.parent}/, or set "
            "track.fan_weights to its path; weights are never downloaded at run time. "
            "The dlib backend (track.backend: dlib) works without it",
        )
    return path


def crop_matrix(box: Box) -> np.ndarray:
    """2×3 float64 image → 256² FAN-crop matrix for a detector box, as face-alignment frames it."""
    x0, y0, x1, y1 = box
    cx = (x0 + x1) / 2.0
    cy = (y0 + y1) / 2.0 - (y1 - y0) * _CENTER_Y_OFFSET
    side = 200.0 * ((x1 - x0) + (y1 - y0)) / _REFERENCE_SCALE
    k = _CROP / side
    return np.array([[k, 0.0, _CROP / 2.0 - k * cx], [0.0, k, _CROP / 2.0 - k * cy]])


def heatmaps_to_points(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Peak of each heatmap with face-alignment's quarter-pixel refinement.

    Args:
        heatmaps: 68×64×64 float32.

    Returns:
        ``(points, peaks)``: 68×2 float64 in 256² crop pixels (pixel centres at +0.5), and the
        68 peak values.
    """
    n, h, w = heatmaps.shape
    flat = heatmaps.reshape(n, h * w)
    idx = flat.argmax(1)
    peaks = flat[np.arange(n), idx]
    py, px = np.divmod(idx, w)
    pts = np.stack([px, py], 1).astype(np.float64)
    inner = (px > 0) & (px < w - 1) & (py > 0) & (py < h - 1)
    j = np.nonzero(inner)[0]
    dx = heatmaps[j, py[j], px[j] + 1] - heatmaps[j, py[j], px[j] - 1]
    dy = heatmaps[j, py[j] + 1, px[j]] - heatmaps[j, py[j] - 1, px[j]]
    pts[j, 0] += 0.25 * np.sign(dx)
    pts[j, 1] += 0.25 * np.sign(dy)
    # Heatmap cell centre → 256² crop pixel coordinates.
    return (pts + 0.5) * (_CROP / w), peaks


class FanBackend:
    """2D-FAN-4 landmarks on dlib HOG boxes.

    Args:
        weights: path to face-alignment 1.5's ``2DFAN4-11f355bf06.pth.tar``; ``None`` looks in
            ``$TORCH_HOME/hub/checkpoints``.
        device: torch device string, e.g. ``"cuda"`` or ``"cpu"``.
        detect_max_side, upsample, min_score: the HOG detector's, as in ``DlibBackend``.

    Raises:
        WeightsMissingError: the weights file is absent (checked before anything is imported).
        EngineUnavailableError: face-alignment is not installed.
        CheckpointError: the file is not a 2D-FAN-4 state dict.
    """

    name = "fan"

    def __init__(
        self,
        weights: str | None = None,
        device: str = "cpu",
        detect_max_side: int = 640,
        upsample: int = 0,
        min_score: float = 0.0,
    ):
        path = resolve_weights(weights)
        self.detect_max_side = detect_max_side
        self.upsample = upsample
        self.min_score = min_score
        self.device = device
        self._net = _load_fan(path, device)

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Find every face with HOG and fit FAN landmarks in each box.

        Args:
            image: H×W×3 uint8 display sRGB.

        Returns:
            one :class:`Detection` per face; confidence = HOG confidence × FAN peak confidence.
        """
        img = check_image(image)
        found = hog_boxes(to_gray(img), self.detect_max_side, self.upsample, self.min_score)
        out = []
        for box, score in found:
            det = self.fit(img, box)
            out.append(Detection(det.points, score_to_confidence(score) * det.confidence, box))
        return out

    def fit(self, image: np.ndarray, box: Box) -> Detection:
        """FAN landmarks in a given box; confidence is the mean heatmap peak, clipped to 0..1.

        Args:
            image: H×W×3 uint8 display sRGB.
            box: ``(x0, y0, x1, y1)`` in pixels.
        """

        img = check_image(image)
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
        m = crop_matrix(box)
        crop = cv2.warpAffine(img, m, (_CROP, _CROP), flags=cv2.INTER_LINEAR)
        x = torch.from_numpy(crop).permute(2, 0, 1)[None].float().div(255.0)  # 1×3×256×256
        with torch.inference_mode():
            out = self._net(x.to(self.device))
        hm = out[-1] if isinstance(out, (list, tuple)) else out  # 1×68×64×64
        pts, peaks = heatmaps_to_points(hm[0].float().cpu().numpy())
        # Crop pixel centres sit at +0.5; map back to image pixel coordinates.
        inv = cv2.invertAffineTransform(m)
        img_pts = (pts - 0.5) @ inv[:, :2].T + inv[:, 2]
        conf = float(np.clip(peaks.mean(), 0.0, 1.0))
        return Detection(img_pts.astype(np.float32), conf, tuple(float(v) for v in box))


def _load_fan(path: Path, device: str) -> Any:
    try:
        from face_alignment.models import FAN  # optional: likeness[fan], this backend only
    except ImportError as exc:
        raise EngineUnavailableError(
            f"the fan landmark backend needs face-alignment: {exc}",
            "pip install --no-deps face-alignment==1.5.0 numba tqdm (keeps the pinned torch), "
            "or use track.backend: dlib",
        ) from exc
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise CheckpointError(
            f"cannot read FAN weights {path}: {exc}",
            f"replace it with face-alignment 1.5's {FAN_WEIGHTS_FILE}",
        ) from exc
    net = FAN(FAN_MODULES)
    try:
        net.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise CheckpointError(
            f"{path} is not a 2D-FAN-4 state dict: {str(exc)[:300]}",
            f"use face-alignment 1.5's {FAN_WEIGHTS_FILE}",
        ) from exc
    return net.to(device).eval()
