"""Export: onnx.checker, the TensorRT operator allow-list, 5-D GridSample rejection, AdaIN fold."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper
from torch import nn

from engines.export import (
    ALLOWED_OPS,
    FORBIDDEN,
    check_ops,
    export_generator,
    export_onnx,
    golden_path,
    graph_ops,
)
from engines.onnx_engine import OnnxEngine
from pipeline.errors import EngineBuildError, UnsupportedOpsError


def _grid_sample_graph(rank: int) -> onnx.ModelProto:
    """A one-node GridSample graph whose input X has the given rank (4 or 5)."""
    x_shape = [1, 2, 4, 4, 4] if rank == 5 else [1, 2, 4, 4]
    g_shape = [1, 4, 4, 4, 3] if rank == 5 else [1, 4, 4, 2]
    node = helper.make_node("GridSample", ["X", "G"], ["Y"], name="gs_0")
    graph = helper.make_graph(
        [node],
        "gs",
        [
            helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape),
            helper.make_tensor_value_info("G", TensorProto.FLOAT, g_shape),
        ],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, x_shape)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])


def test_export_passes_checker_and_allow_list(exported):
    model = onnx.load(exported)
    onnx.checker.check_model(model, full_check=True)
    check_ops(model)
    assert graph_ops(model) <= ALLOWED_OPS
    assert model.opset_import[0].version >= 17


def test_folded_graph_takes_only_the_landmark_image(exported):
    model = onnx.load(exported)
    inits = {i.name for i in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in inits]
    assert inputs == ["landmarks"]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [3, 32, 32]
    assert golden_path(exported).is_file()


def test_folded_graph_with_warp_takes_landmarks_and_warp(tmp_path, tiny_warp_generator, embedding):
    path = tmp_path / "warp.onnx"
    export_generator(tiny_warp_generator, embedding, path, crop_size=32, use_warp=True)
    engine = OnnxEngine.load(path, intra_op_threads=1)
    assert [s.name for s in engine.input_spec()] == ["landmarks", "warp"]
    out = engine(
        landmarks=np.zeros((3, 3, 32, 32), np.float32), warp=np.ones((3, 3, 32, 32), np.float32)
    )
    assert out["image"].shape == (3, 3, 32, 32)  # dynamic batch: exported at 2, run at 3


def test_fold_bakes_the_actor_adain(tmp_path, tiny_generator, embedding):
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    export_generator(tiny_generator, embedding, a, crop_size=32, use_warp=False)
    export_generator(tiny_generator, embedding + 1.0, b, crop_size=32, use_warp=False)
    x = np.random.default_rng(0).uniform(0, 1, (1, 3, 32, 32)).astype(np.float32)
    ya = OnnxEngine.load(a, intra_op_threads=1)(landmarks=x)["image"]
    yb = OnnxEngine.load(b, intra_op_threads=1)(landmarks=x)["image"]
    assert not np.allclose(ya, yb)  # another actor, another graph


def test_5d_grid_sample_graph_is_rejected():
    model = _grid_sample_graph(5)
    onnx.checker.check_model(model)  # valid ONNX, just not buildable by TensorRT
    assert "GridSample" in graph_ops(model)
    with pytest.raises(UnsupportedOpsError, match="5-D") as err:
        check_ops(model)
    assert "gs_0" in str(err.value)
    assert "GridSample/5-D" in FORBIDDEN


def test_4d_grid_sample_graph_is_allowed():
    check_ops(_grid_sample_graph(4))


def test_export_of_5d_grid_sample_module_fails_and_writes_nothing(tmp_path):
    class Volumetric(nn.Module):
        def forward(self, x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
            return F.grid_sample(x, grid, align_corners=False)

    path = tmp_path / "vol.onnx"
    ex = {"x": torch.randn(2, 2, 4, 4, 4), "grid": torch.rand(2, 4, 4, 4, 3) * 2 - 1}
    with pytest.raises(UnsupportedOpsError, match="GridSample"):
        export_onnx(Volumetric(), ex, path, opset=20)
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_custom_domain_op_is_rejected():
    node = helper.make_node("FancyWarp", ["X"], ["Y"], domain="com.example")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 3, 4, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(UnsupportedOpsError, match="com.example::FancyWarp"):
        check_ops(model)


def test_old_opset_is_refused(tmp_path, tiny_generator):
    with pytest.raises(EngineBuildError, match="opset 13"):
        export_onnx(
            nn.Conv2d(3, 3, 1), {"x": torch.zeros(2, 3, 8, 8)}, tmp_path / "x.onnx", opset=13
        )


def test_bad_crop_size_is_refused(tmp_path, tiny_generator, embedding):
    with pytest.raises(EngineBuildError, match="crop_size 30"):
        export_generator(
            tiny_generator, embedding, tmp_path / "x.onnx", crop_size=30, use_warp=False
        )


def test_generator_without_adain_params_is_refused(tmp_path, embedding):
    with pytest.raises(EngineBuildError, match="adain_from_embedding"):
        export_generator(nn.Conv2d(3, 3, 1), embedding, tmp_path / "x.onnx", 32, use_warp=False)
