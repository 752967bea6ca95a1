"""Backend registry and selection: auto order, forced backends never fall back silently."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import engines
from engines import BACKENDS, available_backends, load_engine, select_backend
from pipeline.errors import EngineUnavailableError


def test_registry_names_one_module_per_backend():
    assert BACKENDS == {
        "tensorrt": "engines.trt_engine",
        "onnxruntime": "engines.onnx_engine",
        "torch": "engines.torch_engine",
    }


def test_auto_picks_the_first_available_in_order():
    avail = available_backends()
    assert select_backend("auto") == avail[0]
    assert "onnxruntime" in avail and "torch" in avail
    if "tensorrt" not in avail:
        assert select_backend() == "onnxruntime"


def test_forced_tensorrt_without_it_names_the_fix():
    if "tensorrt" in available_backends():
        pytest.skip("tensorrt and CUDA are present here")
    with pytest.raises(EngineUnavailableError, match="tensorrt") as err:
        select_backend("tensorrt")
    assert "likeness[tensorrt]" in str(err.value) or "CUDA" in str(err.value)


def test_forced_onnxruntime_when_missing_does_not_fall_back(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import now raises ImportError
    with pytest.raises(EngineUnavailableError, match="pip install onnxruntime"):
        select_backend("onnxruntime")
    assert select_backend("auto") in ("tensorrt", "torch")


def test_unknown_backend():
    with pytest.raises(EngineUnavailableError, match="one of tensorrt, onnxruntime, torch"):
        select_backend("openvino")


def test_load_engine_auto_uses_the_suffix(exported):
    engine = load_engine("auto", exported, intra_op_threads=1)
    assert engine.backend == "onnxruntime"
    assert engine(landmarks=np.zeros((1, 3, 32, 32), np.float32))["image"].shape == (1, 3, 32, 32)


def test_load_engine_forced_unavailable(exported, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(EngineUnavailableError):
        load_engine("onnxruntime", exported)
    assert engines.SUFFIXES[".plan"] == "tensorrt"
