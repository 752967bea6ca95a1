"""pipeline.qc.detail: the delivered face's fine detail against the plate's, in the hull."""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.align import CANONICAL_68
from pipeline.qc.detail import detail_ratio, hull_mask


def test_a_softer_face_has_less_detail_and_the_same_has_as_much():
    rng = np.random.default_rng(0)
    plate = (0.2 + 0.3 * rng.random((200, 200, 3))).astype(np.float32)
    pts = CANONICAL_68 * 160 + 20
    assert detail_ratio(plate, plate, pts) == 1.0
    soft = cv2.GaussianBlur(plate, (0, 0), 1.5)
    assert detail_ratio(soft, plate, pts) < 0.4
    outside = plate.copy()
    outside[~hull_mask(pts, (200, 200))] = 0.3  # what lies outside the hull does not count
    assert abs(detail_ratio(outside, plate, pts) - 1.0) < 0.05
    assert np.isnan(detail_ratio(plate, plate, np.full((68, 2), np.nan)))
