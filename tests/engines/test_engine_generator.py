"""The real generator G (pipeline.models.generator), folded, exported and gated at tiny size."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from engines.export import ALLOWED_OPS, export_generator, golden_path, graph_ops
from engines.onnx_engine import OnnxEngine
from engines.parity import check_parity, load_golden

generator_mod = pytest.importorskip("pipeline.models.generator")


def _tiny_g(use_warp: bool, spectral_norm: bool = False) -> nn.Module:
    torch.manual_seed(3)
    g = generator_mod.Generator(
        use_warp=use_warp,
        base_channels=4,
        max_channels=8,
        num_down=2,
        num_res=1,
        embed_dim=16,
        spectral_norm=spectral_norm,
    )
    # The heads start at zero (G returns the warp unchanged); give them weights so parity is
    # measured on a non-trivial picture.
    nn.init.normal_(g.head.weight, std=0.2)
    return g.eval()


@pytest.mark.parametrize(("use_warp", "sn"), [(False, False), (True, True)])
def test_real_generator_exports_and_matches_torch(tmp_path, use_warp, sn):
    g = _tiny_g(use_warp, sn)
    emb = torch.randn(1, 16, generator=torch.Generator().manual_seed(4))
    path = tmp_path / "g.onnx"
    export_generator(g, emb, path, crop_size=32, use_warp=use_warp)
    model = onnx.load(path)
    inits = {i.name for i in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in inits]
    assert names == (["landmarks", "warp"] if use_warp else ["landmarks"])
    assert graph_ops(model) <= ALLOWED_OPS
    ins, outs = load_golden(golden_path(path))
    assert 0.0 <= outs["image"].min() and outs["image"].max() <= 1.0 and outs["image"].std() > 0.01
    figure = check_parity(OnnxEngine.load(path, intra_op_threads=1), outs, ins, "fp32")
    assert figure >= 45.0
    # Spectral norm is baked into a copy: the caller's G keeps its parametrization.
    assert hasattr(g.conv_in, "parametrizations") == sn


def test_use_warp_mismatch_is_refused(tmp_path):
    from pipeline.errors import EngineBuildError

    with pytest.raises(EngineBuildError, match="use_warp"):
        export_generator(_tiny_g(True), torch.zeros(1, 16), tmp_path / "g.onnx", 32, use_warp=False)


def test_folded_output_matches_unfolded_g(tmp_path):
    g = _tiny_g(False)
    emb = torch.randn(1, 16, generator=torch.Generator().manual_seed(5))
    path = tmp_path / "g.onnx"
    export_generator(g, emb, path, crop_size=32, use_warp=False)
    ins, outs = load_golden(golden_path(path))
    with torch.no_grad():
        direct = g(torch.from_numpy(ins["landmarks"]), None, g.adain_from_embedding(emb))
    np.testing.assert_allclose(outs["image"], direct.clamp(0, 1).numpy(), atol=1e-6)
