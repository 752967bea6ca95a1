"""The TensorRT module: imports cleanly without tensorrt; GPU tests skip with the reason."""

from __future__ import annotations

import importlib
import importlib.util
import sys

import numpy as np
import pytest

from engines import trt_engine
from pipeline.errors import EngineUnavailableError
from pipeline.inference.engine import EngineConfig

REASON = trt_engine.unavailable_reason()
gpu = pytest.mark.gpu
needs_trt = pytest.mark.skipif(REASON is not None, reason=f"TensorRT path skipped: {REASON}")


def test_module_imports_without_importing_tensorrt():
    had = "tensorrt" in sys.modules
    importlib.reload(trt_engine)
    assert had or "tensorrt" not in sys.modules
    assert trt_engine.ENGINE_CLASS.backend == "tensorrt"


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="tensorrt installed")
def test_import_tensorrt_names_the_install():
    assert "likeness[tensorrt]" in trt_engine.unavailable_reason()
    with pytest.raises(EngineUnavailableError, match=r"likeness\[tensorrt\]"):
        trt_engine.import_tensorrt()
    with pytest.raises(EngineUnavailableError):
        trt_engine.TrtEngine.load("missing.plan")


@gpu
@needs_trt
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_build_run_and_parity_on_gpu(exported, tmp_path, precision):
    from engines.cache import build_engine_for_node
    from engines.export import golden_path
    from engines.parity import load_golden

    cfg = EngineConfig(
        backend="tensorrt",
        precision=precision,
        cache_dir=tmp_path / "c",
        batch_min=1,
        batch_opt=2,
        batch_max=4,
    )
    entry = build_engine_for_node(exported, cfg)
    assert entry.psnr_db >= cfg.parity_threshold()
    assert build_engine_for_node(exported, cfg).from_cache
    assert any((tmp_path / "c" / "timing").iterdir())
    ins, _ = load_golden(golden_path(exported))
    with entry.open() as engine:
        out = engine(landmarks=ins["landmarks"][:3])["image"]
        assert out.shape == (3, 3, 32, 32) and np.isfinite(out).all()
        import torch

        t = engine(landmarks=torch.from_numpy(ins["landmarks"][:1]).cuda())["image"]
        assert t.is_cuda


@gpu
@needs_trt
def test_batch_outside_profile_is_refused(exported, tmp_path):
    from engines.cache import build_engine_for_node
    from pipeline.errors import EngineInputError

    cfg = EngineConfig(
        backend="tensorrt", cache_dir=tmp_path, batch_min=1, batch_opt=1, batch_max=2
    )
    with build_engine_for_node(exported, cfg).open() as engine:
        with pytest.raises(EngineInputError, match="profile"):
            engine(landmarks=np.zeros((3, 3, 32, 32), np.float32))
