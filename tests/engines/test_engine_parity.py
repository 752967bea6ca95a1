"""The parity gate: PSNR, golden frames, ONNX Runtime vs torch, perturbed engines rejected."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engines.base import Engine, TensorSpec
from engines.export import fold_generator
from engines.onnx_engine import OnnxEngine
from engines.parity import (
    check_parity,
    golden_inputs,
    golden_landmark_images,
    load_golden,
    psnr,
    save_golden,
)
from engines.torch_engine import TorchEngine
from pipeline.errors import EngineBuildError, EngineParityError


class _Perturbed(Engine):
    """Wraps an engine and adds a fixed offset (or NaN) to its output: a broken build."""

    backend = "perturbed"

    def __init__(self, inner: Engine, offset: float) -> None:
        self.inner, self.offset = inner, offset

    @classmethod
    def load(cls, path, **opts):  # pragma: no cover - not file-backed
        raise NotImplementedError

    def input_spec(self) -> list[TensorSpec]:
        return self.inner.input_spec()

    def output_names(self) -> list[str]:
        return self.inner.output_names()

    def __call__(self, **arrays):
        return {k: v + self.offset for k, v in self.inner(**arrays).items()}


def test_psnr_golden_values():
    a = np.zeros((2, 3, 4, 4), np.float32)
    assert psnr(a, a) == math.inf
    assert psnr(a + 0.1, a, data_range=1.0) == pytest.approx(20.0)
    assert psnr(a + 0.01, a) == pytest.approx(40.0)  # default range: at least 1.0
    b = np.linspace(-1, 1, 96, dtype=np.float32).reshape(2, 3, 4, 4)
    assert psnr(b + 0.02, b) == pytest.approx(10 * math.log10(4 / 4e-4))  # range 2
    assert psnr(np.full_like(a, np.nan), a) == -math.inf


def test_psnr_shape_mismatch():
    with pytest.raises(EngineBuildError, match="shapes differ"):
        psnr(np.zeros((1, 3)), np.zeros((3, 1)))


def test_golden_frames_shape_range_and_determinism():
    g = golden_landmark_images(3, 32)
    assert g.shape == (3, 3, 32, 32) and g.dtype == np.float32
    assert 0.0 <= g.min() and g.max() == 1.0 and 0.02 < (g > 0).mean() < 0.5
    np.testing.assert_array_equal(g, golden_landmark_images(3, 32))
    assert not np.array_equal(g[0], g[1])  # per-frame jitter
    both = golden_inputs(["landmarks", "warp"], 2, 32)
    assert (
        both["warp"].shape == (2, 3, 32, 32)
        and 0.0 <= both["warp"].min() <= both["warp"].max() <= 1.0
    )


def test_golden_round_trip(tmp_path):
    ins = golden_inputs(["landmarks"], 2, 16)
    save_golden(tmp_path / "g.npz", ins, {"image": ins["landmarks"] * 2})
    i2, o2 = load_golden(tmp_path / "g.npz")
    np.testing.assert_array_equal(i2["landmarks"], ins["landmarks"])
    np.testing.assert_array_equal(o2["image"], ins["landmarks"] * 2)


def test_load_golden_missing_names_the_fix(tmp_path):
    with pytest.raises(EngineBuildError, match="export_generator"):
        load_golden(tmp_path / "none.npz")


def test_onnxruntime_matches_torch_within_fp32_gate(exported, tiny_generator, embedding):
    folded = fold_generator(tiny_generator, embedding, use_warp=False)
    spec = [TensorSpec("landmarks", (-1, 3, 32, 32))]
    reference = TorchEngine(folded, spec, ["image"])
    golden = golden_inputs(["landmarks"], 4, 32)
    engine = OnnxEngine.load(exported, intra_op_threads=1)
    figure = check_parity(engine, reference, golden, "fp32")
    assert figure >= 45.0


def test_parity_against_stored_golden(exported):
    ins, outs = load_golden(exported.with_name("actor.golden.npz"))
    assert check_parity(OnnxEngine.load(exported, intra_op_threads=1), outs, ins, "fp32") >= 45.0


def test_parity_gate_rejects_a_perturbed_engine(exported):
    ins, outs = load_golden(exported.with_name("actor.golden.npz"))
    bad = _Perturbed(OnnxEngine.load(exported, intra_op_threads=1), offset=0.01)  # ≈ 40 dB
    with pytest.raises(EngineParityError) as err:
        check_parity(bad, outs, ins, "fp32")
    assert err.value.threshold_db == 45.0 and 30.0 < err.value.psnr_db < 45.0
    assert f"{err.value.psnr_db:.2f} dB" in str(err.value)
    # The same drift passes the looser fp16 gate: the gates are per precision.
    assert check_parity(bad, outs, ins, "fp16") == pytest.approx(err.value.psnr_db)


def test_parity_gate_rejects_nan_black_boxes(exported):
    ins, outs = load_golden(exported.with_name("actor.golden.npz"))
    bad = _Perturbed(OnnxEngine.load(exported, intra_op_threads=1), offset=float("nan"))
    with pytest.raises(EngineParityError, match="-inf dB"):
        check_parity(bad, outs, ins, "fp16")


def test_unknown_precision_is_refused(exported):
    ins, outs = load_golden(exported.with_name("actor.golden.npz"))
    with pytest.raises(EngineBuildError, match="fp8"):
        check_parity(OnnxEngine.load(exported, intra_op_threads=1), outs, ins, "fp8")
