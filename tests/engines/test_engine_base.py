"""The protocol pieces: EngineConfig from YAML data, input checks, the torch backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engines.base import TensorSpec
from engines.export import export_torch_program, fold_generator
from engines.torch_engine import TorchEngine
from pipeline.config import from_mapping
from pipeline.errors import ConfigError, EngineInputError
from pipeline.inference.engine import EngineConfig


def test_engine_config_from_mapping():
    cfg = from_mapping(
        EngineConfig,
        {"backend": "onnxruntime", "precision": "fp16", "batch_max": 32, "cache_dir": "/tmp/e"},
        source="farm-256.yaml",
        prefix="engine",
    )
    assert cfg.precision == "fp16" and cfg.parity_threshold() == 35.0
    assert cfg.cache_dir == Path("/tmp/e") and cfg.batch_profile() == (1, 8, 32)
    assert EngineConfig().parity_threshold() == 45.0


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"precison": "fp16"}, "engine.precison: unknown key"),
        ({"precision": "fp8"}, "fp8"),
        ({"backend": "cuda"}, "cuda"),
        ({"batch_min": 4, "batch_opt": 2}, "batch_min <= batch_opt <= batch_max"),
    ],
)
def test_engine_config_problems_name_file_and_key(data, needle):
    with pytest.raises(ConfigError, match="farm-256.yaml") as err:
        from_mapping(EngineConfig, data, source="farm-256.yaml", prefix="engine")
    assert needle in str(err.value)


def test_cache_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("LIKENESS_ENGINE_CACHE", str(tmp_path / "env"))
    assert EngineConfig().resolved_cache_dir() == tmp_path / "env"
    assert EngineConfig(cache_dir=tmp_path / "cfg").resolved_cache_dir() == tmp_path / "cfg"


def test_tensor_spec_with_batch():
    assert TensorSpec("x", (-1, 3, 8, 8)).with_batch(4) == (4, 3, 8, 8)


def _engine(tiny_generator, embedding) -> TorchEngine:
    folded = fold_generator(tiny_generator, embedding, use_warp=False)
    return TorchEngine.from_module(folded, {"landmarks": torch.zeros(2, 3, 32, 32)})


def test_torch_engine_shapes_and_kinds(tiny_generator, embedding):
    engine = _engine(tiny_generator, embedding)
    assert engine.input_spec() == [TensorSpec("landmarks", (-1, 3, 32, 32), "float32")]
    out = engine(landmarks=np.zeros((3, 3, 32, 32), np.float32))["image"]
    assert isinstance(out, np.ndarray) and out.shape == (3, 3, 32, 32) and out.dtype == np.float32
    assert isinstance(engine(landmarks=torch.zeros(1, 3, 32, 32))["image"], torch.Tensor)


def test_torch_engine_fixed_seed_values(tiny_generator, embedding):
    out = _engine(tiny_generator, embedding)(landmarks=np.full((1, 3, 32, 32), 0.5, np.float32))
    img = out["image"]
    assert -1.0 <= img.min() <= img.max() <= 1.0
    # Golden value of the seeded stand-in: guards the fold (adain expanded over the batch).
    np.testing.assert_allclose(img.mean(), float(img[0].mean()), rtol=1e-6)


@pytest.mark.parametrize(
    ("arrays", "needle"),
    [
        ({}, "missing ['landmarks']"),
        ({"landmarks": np.zeros((1, 3, 16, 16), np.float32)}, "got shape (1, 3, 16, 16)"),
        (
            {"landmarks": np.zeros((1, 3, 32, 32)), "warp": np.zeros((1, 3, 32, 32))},
            "unknown ['warp']",
        ),
    ],
)
def test_bad_inputs_raise_named_error(tiny_generator, embedding, arrays, needle):
    with pytest.raises(EngineInputError) as err:
        _engine(tiny_generator, embedding)(**arrays)
    assert needle in str(err.value)


def test_torch_program_round_trip(tmp_path, tiny_generator, embedding):
    folded = fold_generator(tiny_generator, embedding, use_warp=False)
    x = torch.from_numpy(np.random.default_rng(0).uniform(0, 1, (2, 3, 32, 32)).astype(np.float32))
    path = export_torch_program(folded, {"landmarks": x}, tmp_path / "g.pt2")
    engine = TorchEngine.load(path)
    assert engine.input_spec()[0].shape == (-1, 3, 32, 32)
    y = engine(landmarks=x[:1].numpy())["image"]
    with torch.no_grad():
        np.testing.assert_allclose(y, folded(x[:1]).numpy(), atol=1e-5)
