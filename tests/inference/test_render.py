"""pipeline.inference.render: the face at the plate's resolution from full-resolution references,
one geometry, and only the network's low band."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from pipeline.align import CANONICAL_68
from pipeline.errors import StageError
from pipeline.inference.render import PlateRenderer, render_chunk, render_size
from pipeline.models.fusion import Fusion
from pipeline.references.store import References

S, H = 64, 256  # the network's crop and the references' full-resolution crop


def _texture(size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.random((size, size, 3)).astype(np.float32), (0, 0), 1.2)
    return np.clip((img - img.mean()) * 4 + 0.5, 0, 1).astype(np.float32)


def _refs(images_hi: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, References]:
    """Network-size images and points, and the References with their full-resolution crops."""
    small = np.stack([cv2.resize(i, (S, S), interpolation=cv2.INTER_AREA) for i in images_hi])
    pts = np.repeat((CANONICAL_68 * S)[None], len(images_hi), 0).astype(np.float32)
    u8 = lambda a: np.uint8(np.clip(a, 0, 1) * 255 + 0.5)  # noqa: E731
    refs = References(u8(small), pts, tuple(f"r{i}" for i in range(len(images_hi))),
                      u8(np.stack(images_hi)), np.full(len(images_hi), H, np.float32))  # fmt: skip
    return small, pts, refs


def _lap(img: np.ndarray) -> float:
    y = img.mean(-1)[16:-16, 16:-16]
    return float(np.abs(cv2.Laplacian(y, cv2.CV_32F)).mean())


def test_render_size_follows_the_face_in_the_plate():
    inv = np.zeros((10, 2, 3))
    inv[:, 0, 0] = inv[:, 1, 1] = 2.9  # one tracking-crop pixel is 2.9 plate pixels
    lm = SimpleNamespace(tracked=np.ones(10, bool), inverse=inv, crop_size=128)
    refs = _refs([_texture(H)])[2]
    rs = render_size(lm, refs, 64, 1024)
    assert rs.face_px == pytest.approx(371.2) and rs.size == 256  # capped by the references
    big = References(refs.crops, refs.points, refs.sources,
                     np.zeros((1, 512, 512, 3), np.uint8), np.array([300.0], np.float32))  # fmt: skip
    rs = render_size(lm, big, 64, 1024)
    assert rs.size == 384 and rs.upscale == pytest.approx(384 / 300)  # a multiple of 32
    assert render_size(lm, big, 64, 320).size == 320  # synth.max_crop
    assert render_size(SimpleNamespace(tracked=np.zeros(10, bool), inverse=inv, crop_size=128),
                       big, 64, 1024).size == 64  # nothing tracked: the network's size  # fmt: skip


def test_one_reference_at_its_own_landmarks_renders_its_full_resolution_pixels():
    hi = _texture(H)
    small, pts, refs = _refs([hi])
    r = PlateRenderer(small, pts, refs, Fusion(top=1), size=H)
    out = r.warp(CANONICAL_68 * H)
    inner = (slice(8, -8), slice(8, -8))
    assert np.abs(out - hi)[inner].mean() < 0.01  # the conventions line up at every scale
    assert _lap(out) > 0.9 * _lap(hi)  # its detail, not the network's 64 px


def test_several_references_are_registered_before_they_are_blended():
    """Two references whose details sit 3 px apart under the same landmarks: blended as they
    are, every detail shows twice and softly; registered first, once and sharp."""
    hi = _texture(H)
    shifted = np.roll(hi, 3, axis=1)
    small, pts, refs = _refs([hi, shifted])
    fusion = Fusion(top=2, temperature=100.0)  # equal weights
    out = PlateRenderer(small, pts, refs, fusion, size=H, detail_sigma=0.0).warp(CANONICAL_68 * H)
    plain = 0.5 * (hi + shifted)
    assert _lap(plain) < 0.8 * _lap(hi)
    assert _lap(out) > 0.9 * _lap(hi)


def test_the_references_must_be_the_fine_tunes():
    small, pts, refs = _refs([_texture(H)])
    with pytest.raises(StageError, match="not the references the fine-tune used"):
        PlateRenderer(small, pts + 1.0, refs, Fusion(top=1), size=H)


class _Engine:
    """A stand-in network: its warp input plus ``add`` (an S×S×3 array)."""

    def __init__(self, add: np.ndarray) -> None:
        self.add = add

    def input_spec(self):
        return [SimpleNamespace(name="landmarks"), SimpleNamespace(name="warp")]

    def __call__(self, landmarks, warp):
        return {"image": warp + self.add.transpose(2, 0, 1)[None]}


def test_only_the_low_band_of_the_networks_change_is_added():
    hi = _texture(H)
    small, pts, refs = _refs([hi])
    r = PlateRenderer(small, pts, refs, Fusion(top=1), size=H, correction_sigma=2.0)
    actor = SimpleNamespace(warp_input=lambda p: small[0])
    targets = (CANONICAL_68 * H)[None].repeat(2, 0)
    targets[1] = np.nan  # an untracked frame: nothing rendered
    plain = render_chunk(r, None, actor, targets, batch_size=2)
    assert (plain[1] == 0).all()
    lift = render_chunk(r, _Engine(np.full((S, S, 3), 0.1, np.float32)), actor, targets, 2)
    inner = (slice(8, -8), slice(8, -8))
    both = (plain[0] > 0.05) & (plain[0] < 0.85)
    assert np.abs(lift[0] - plain[0] - 0.1)[inner][both[inner]].mean() < 0.01  # broad: all of it
    checker = (np.indices((S, S)).sum(0) % 2)[..., None].repeat(3, -1).astype(np.float32) * 0.2
    fine = render_chunk(r, _Engine(checker - 0.1), actor, targets, 2)
    assert np.abs(fine[0] - plain[0])[inner].mean() < 0.01  # pixel-scale: none of it
