"""pipeline.tracking: chunk tracking on generated plates with known motion, identity lock, merge."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from pipeline.align import apply_affine
from pipeline.config import from_mapping
from pipeline.demo.synthetic import Motion, astronaut, moving_portrait
from pipeline.errors import ConfigError, FaceLostError, IdentityError, SchemaError, StageError
from pipeline.landmarks import get_backend
from pipeline.stages.track import TrackConfig
from pipeline.tracking.chunks import load_chunk, save_chunk
from pipeline.tracking.hint import hint_from_seed
from pipeline.tracking.identity import face_chip, face_descriptor
from pipeline.tracking.merge import check_gaps, describe_gap, merge_chunks
from pipeline.tracking.tracker import IdentityHint, iou, track_chunk

SIZE = 256


def face_crop() -> np.ndarray:
    """The astronaut's head, 200×200 uint8 sRGB: a 110-px face once resized to a 256² plate."""
    return np.ascontiguousarray(astronaut()[26:226, 122:322])


def hopper() -> np.ndarray:
    """Grace Hopper (matplotlib's sample portrait), head crop, 300×300 uint8 sRGB."""
    import matplotlib.cbook
    import matplotlib.image

    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return np.ascontiguousarray(matplotlib.image.imread(path)[100:400, 120:420])


def expected(points0: np.ndarray, mats: np.ndarray) -> np.ndarray:
    """Frame-0 landmarks carried through the known motion: N×68×2."""
    back = cv2.invertAffineTransform(mats[0])
    base = apply_affine(back, points0)
    return np.stack([apply_affine(m, base) for m in mats])


@pytest.fixture(scope="module")
def moving():
    frames, mats = moving_portrait(
        20, (SIZE, SIZE), Motion(tx=14, ty=8, rot_deg=8, scale=0.06), face_crop(), noise_sigma=2
    )
    chunk = track_chunk(enumerate(frames, start=1001), TrackConfig(), None)
    return frames, mats, chunk


def test_follows_known_affine_motion(moving):
    frames, mats, chunk = moving
    assert chunk.points.shape == (20, 68, 2) and chunk.points.dtype == np.float32
    assert chunk.frames.tolist() == list(range(1001, 1021))
    # Reference: an independent detection on frame 0 carried through the known matrices.
    det0 = get_backend("dlib").detect(frames[0])[0]
    err = np.linalg.norm(chunk.points - expected(det0.points, mats), axis=2)  # N×68 px
    assert err.mean(1).max() < 2.0, err.mean(1)
    assert np.median(err) < 1.5


def test_keyframes_every_interval(moving):
    _, _, chunk = moving
    assert np.nonzero(chunk.keyframe)[0].tolist() == [0, 10]
    assert not chunk.cut.any()
    assert ((chunk.confidence > 0.5) & (chunk.confidence <= 1)).all()
    # The face chip is kept at the first acquisition; its descriptor is computed only on need.
    assert chunk.face_chip.shape == (150, 150, 3) and chunk.face_chip.dtype == np.uint8
    assert np.isnan(chunk.descriptor).all()


def two_face_plate(n: int, hopper_enters: bool) -> tuple[np.ndarray, tuple[float, ...]]:
    """384×256 plate: the astronaut on the left; Grace Hopper slides in from the right edge.

    Returns the frames (n×256×384×3 uint8) and the astronaut's box on the canvas.
    """
    left = cv2.resize(face_crop(), (190, 190), interpolation=cv2.INTER_AREA)
    right = cv2.resize(hopper(), (220, 220), interpolation=cv2.INTER_AREA)
    out = np.empty((n, 256, 384, 3), np.uint8)
    for i in range(n):
        canvas = np.full((256, 384, 3), 90, np.uint8)
        canvas[40:230, 10:200] = left
        x = 384 - round(220 * min(1.0, (i + 1) / 4)) if hopper_enters else 164
        canvas[20:240, x : x + min(220, 384 - x)] = right[:, : min(220, 384 - x)]
        out[i] = canvas
    return out, (10.0, 40.0, 200.0, 230.0)


def _on_astronaut(chunk, box) -> bool:
    cx = np.nanmean(chunk.points[:, :, 0], axis=1)
    return bool(np.isfinite(cx).all() and (cx > box[0]).all() and (cx < box[2]).all())


def test_identity_lock_when_second_face_enters():
    frames, box = two_face_plate(12, hopper_enters=True)
    cfg = TrackConfig(keyframe_interval=4)
    chunk = track_chunk(enumerate(frames), cfg, None)
    assert _on_astronaut(chunk, box)


def test_identity_hint_descriptor_picks_performer():
    frames, box = two_face_plate(3, hopper_enters=False)  # Hopper is the larger face
    ref = face_descriptor(astronaut(), get_backend("dlib").detect(astronaut())[0])
    chunk = track_chunk(enumerate(frames), TrackConfig(), IdentityHint(reference_descriptor=ref))
    assert _on_astronaut(chunk, box)
    # Without a hint the clearly larger face wins: the hint is what chose the astronaut.
    other = track_chunk(enumerate(frames), TrackConfig(), None)
    assert not _on_astronaut(other, box)


def test_identity_hint_seed_box_and_hint_from_seed():
    frames, box = two_face_plate(3, hopper_enters=False)
    cfg = TrackConfig()
    chunk = track_chunk(enumerate(frames), cfg, IdentityHint(seed_box=box))
    assert _on_astronaut(chunk, box)
    hint = hint_from_seed(frames[0], box, cfg)
    assert hint.reference_descriptor.shape == (128,)
    later = track_chunk(enumerate(frames[1:], start=1), cfg, hint)
    assert _on_astronaut(later, box)


def test_ambiguous_faces_without_hint():
    left = cv2.resize(face_crop(), (160, 160), interpolation=cv2.INTER_AREA)
    canvas = np.full((200, 360, 3), 90, np.uint8)
    canvas[20:180, 10:170] = left
    canvas[20:180, 190:350] = left[:, ::-1]
    with pytest.raises(IdentityError, match="similar size"):
        track_chunk([(1, canvas)], TrackConfig(), None)


def gap_plate() -> np.ndarray:
    """30 frames of slow known motion; frames 8-9 and 16-23 have the face covered by a card."""
    frames, _ = moving_portrait(30, (SIZE, SIZE), Motion(6, 3, 2, 0.02), face_crop(), 2.0)
    frames[8:10, 30:230, 40:220] = 128
    frames[16:24, 30:230, 40:220] = 128
    return frames


@pytest.fixture(scope="module")
def gap_track():
    cfg = TrackConfig(keyframe_interval=6)
    frames = gap_plate()
    chunks = [track_chunk(((i, frames[i]) for i in range(s, s + 15)), cfg, None) for s in (0, 15)]
    return cfg, chunks


def test_short_gaps_filled_long_gaps_flagged(gap_track):
    cfg, chunks = gap_track
    raw = np.concatenate([c.points for c in chunks])
    lost = ~np.isfinite(raw).all((1, 2))
    assert lost[8:10].all() and lost[16:24].all()
    # Reacquisition after the long occlusion checked identity against the chunk's own face.
    assert np.isfinite(chunks[1].descriptor).all()
    assert not lost[:8].any() and not lost[10:16].any() and not lost[25:].any()
    lm = merge_chunks(chunks[::-1], cfg, (SIZE, SIZE))  # any order
    assert lm.frames.tolist() == list(range(30))
    assert lm.interpolated.tolist() == [i in (8, 9) for i in range(30)]
    assert lm.gaps == [(16, 23)]
    assert not lm.tracked[16:24].any() and lm.tracked[:16].all() and lm.tracked[24:].all()
    assert np.isfinite(lm.points[lm.tracked]).all() and np.isnan(lm.points[16:24]).all()
    assert (lm.confidence[8:10] == 0).all()
    # The filled frames sit between their neighbours.
    mid = lm.points[8:10].mean((0, 1))
    assert np.linalg.norm(mid - lm.points[[7, 10]].mean((0, 1))) < 3.0
    # Transforms: inverse∘forward is the identity on tracked frames.
    for i in np.nonzero(lm.tracked)[0]:
        both = np.vstack([lm.inverse[i], [0, 0, 1]]) @ np.vstack([lm.transform[i], [0, 0, 1]])
        np.testing.assert_allclose(both, np.eye(3), atol=1e-9)


def test_gap_at_shot_start_is_flagged(gap_track):
    cfg, chunks = gap_track
    first = dataclasses.replace(
        chunks[0],
        points=np.where(np.arange(15)[:, None, None] < 2, np.nan, chunks[0].points),
    )
    lm = merge_chunks([first, chunks[1]], cfg, (SIZE, SIZE))
    assert lm.gaps[0] == (0, 1)


def test_flagged_gap_fails_the_shot_unless_passthrough(gap_track):
    cfg, chunks = gap_track
    lm = merge_chunks(chunks, cfg, (SIZE, SIZE))
    with pytest.raises(FaceLostError, match=r"frames 16-23 \(8 frames\): no face was found") as e:
        check_gaps(lm, cfg, "plate.mov")
    assert "on_gap: passthrough" in str(e.value) and "0-15" in str(e.value)
    check_gaps(lm, dataclasses.replace(cfg, on_gap="passthrough"), "plate.mov")
    # The frame before the gap has its box on the right edge: the face left the frame there.
    box = lm.box.copy()
    box[15] = (SIZE * 0.6, 10, SIZE - 1, 60)
    edge = dataclasses.replace(lm, box=box)
    assert describe_gap(edge, (16, 23)).endswith(
        "leaves the frame at the right edge after frame 15"
    )
    with pytest.raises(ConfigError, match="on_gap"):
        from_mapping(TrackConfig, {"on_gap": "ignore"})


def test_chunk_round_trip_and_schema(tmp_path, gap_track):
    _, chunks = gap_track
    path = save_chunk(tmp_path / "c.npz", chunks[0])
    back = load_chunk(path)
    for f in dataclasses.fields(back):
        a, b = getattr(back, f.name), getattr(chunks[0], f.name)
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
        else:
            assert a == b
    np.savez(tmp_path / "bad.npz", schema=np.array("likeness.track-chunk/99"))
    with pytest.raises(SchemaError, match="track-chunk/99"):
        load_chunk(tmp_path / "bad.npz")


def test_merge_rejects_holes_sizes_and_other_identity(gap_track):
    cfg, chunks = gap_track
    with pytest.raises(StageError, match="tile"):
        merge_chunks(
            [chunks[0], dataclasses.replace(chunks[1], frames=chunks[1].frames + 1)],
            cfg,
            (SIZE, SIZE),
        )
    with pytest.raises(StageError, match="plate is"):
        merge_chunks(chunks, cfg, (512, 512))
    with pytest.raises(StageError):
        merge_chunks([], cfg, (SIZE, SIZE))
    # A chunk that locked onto someone else (Grace Hopper's chip) becomes a flagged gap.
    other = hopper()
    third = dataclasses.replace(
        chunks[1],
        frames=chunks[1].frames + 15,
        face_chip=face_chip(other, get_backend("dlib").detect(other)[0]),
        descriptor=np.full(128, np.nan, np.float32),
    )
    lm = merge_chunks([chunks[0], chunks[1], third], cfg, (SIZE, SIZE))
    assert lm.gaps[-1] == (30, 44) and not lm.tracked[30:].any()


def test_config_from_yaml_mapping():
    cfg = from_mapping(TrackConfig, {"keyframe_interval": 5, "smoothing": {"pose_noise": 0.01}})
    assert cfg.keyframe_interval == 5 and cfg.smoothing.pose_noise == 0.01
    with pytest.raises(ConfigError, match="keyframe_intervall"):
        from_mapping(TrackConfig, {"keyframe_intervall": 5})
    with pytest.raises(ConfigError, match="crop_size"):
        from_mapping(TrackConfig, {"crop_size": 300})
    with pytest.raises(ConfigError, match="keyframe_interval"):
        from_mapping(TrackConfig, {"keyframe_interval": 0})
    with pytest.raises(ConfigError, match="fan_weights"):
        from_mapping(TrackConfig, {"fan_weights": "/x.pth"})


def test_bad_frames():
    with pytest.raises(ValueError, match="uint8"):
        track_chunk([(0, np.zeros((64, 64, 3), np.float32))], TrackConfig(), None)
    with pytest.raises(ValueError, match="consecutive"):
        img = np.zeros((64, 64, 3), np.uint8)
        track_chunk([(0, img), (2, img)], TrackConfig(), None)
    with pytest.raises(ValueError, match="no frames"):
        track_chunk([], TrackConfig(), None)


def test_iou_golden():
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0
