"""E, G and D at tiny sizes: shapes, fixed-seed golden values, bad inputs, registry, export."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.errors import (
    ConfigError,
    DiscriminatorInputError,
    EmbedderInputError,
    GeneratorInputError,
)
from pipeline.models.generator import WARP_EPS, FoldedGenerator
from pipeline.models.networks import NETWORKS, build, load_network_config

TINY = {"base_channels": 4, "max_channels": 8, "embed_dim": 16}


def _inputs(seed: int, *shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _tiny(name: str, **kw: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return build(name, {**TINY, "num_down": 2, **kw})


def test_embedder_shapes_and_golden() -> None:
    e = _tiny("embedder")
    frames, lms = _inputs(1, 2, 3, 3, 32, 32), _inputs(2, 2, 3, 3, 32, 32)
    e_hat, per = e(frames, lms)
    assert e_hat.shape == (2, 16) and per.shape == (2, 3, 16)
    torch.testing.assert_close(e_hat, per.mean(1))
    got = e_hat[0, :4].detach()
    torch.testing.assert_close(got, torch.tensor(GOLDEN_E), atol=1e-5, rtol=1e-4)


def test_embedder_bad_input() -> None:
    e = _tiny("embedder")
    with pytest.raises(EmbedderInputError, match="B×K×3×H×W"):
        e(torch.zeros(2, 3, 32, 32), torch.zeros(2, 3, 32, 32))


def test_generator_starts_near_the_warp_and_golden() -> None:
    g = _tiny("generator", num_res=1)
    lm, warp = _inputs(3, 2, 3, 32, 32), _inputs(4, 2, 3, 32, 32)
    psi = g.adain_from_embedding(_inputs(5, 2, 16))
    assert psi.shape == (2, g.num_adain)
    out = g(lm, warp, psi)
    assert out.shape == (2, 3, 32, 32)
    # zero-initialised residual head and a −5 mask logit: almost the warp
    assert float((out - warp).abs().max()) < 0.01
    torch.testing.assert_close(
        out[0, 0, 0, :3].detach(), torch.tensor(GOLDEN_G), atol=1e-5, rtol=1e-4
    )


def test_generator_synth_from_warp_starts_at_the_warp() -> None:
    """With ``synth_from_warp`` an untrained G returns its warp input, with no grey blended in."""
    lm, warp = _inputs(3, 2, 3, 32, 32), _inputs(4, 2, 3, 32, 32)
    off = _tiny("generator", num_res=1)
    on = _tiny("generator", num_res=1, synth_from_warp=True)
    assert not off.synth_from_warp and on.synth_from_warp
    psi = on.adain_from_embedding(_inputs(5, 2, 16))
    got, old = on(lm, warp, psi), off(lm, warp, psi)
    # the mask's sigmoid(−5) ≈ 0.0067 now blends in the (clamped) warp itself...
    m = torch.sigmoid(torch.tensor(-5.0))
    want = (1 - m) * warp + m * warp.clamp(WARP_EPS, 1 - WARP_EPS)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    # ...where the old synthesis blends in sigmoid(0) = 0.5, a flat grey
    torch.testing.assert_close(old, (1 - m) * warp + m * 0.5, atol=1e-6, rtol=0)
    assert float((got - warp).abs().max()) <= WARP_EPS


def test_profiles_build_g_that_starts_at_the_warp() -> None:
    """Every shipped profile turns ``synth_from_warp`` on; recorded params without it keep it off."""
    for name in ("cpu-preview", "farm-256", "farm-512"):
        assert load_network_config(name).params("generator")["synth_from_warp"] is True
    params = dict(load_network_config("cpu-preview").params("generator"))
    params.pop("synth_from_warp")  # what a checkpoint written before the key records
    assert not build("generator", params).synth_from_warp


@pytest.mark.parametrize("synth_from_warp", [False, True])
def test_generator_learns_away_from_identity(synth_from_warp: bool) -> None:
    """After a few steps toward another image the output has moved toward it."""
    g = _tiny("generator", num_res=1, synth_from_warp=synth_from_warp)
    lm, warp, target = _inputs(3, 1, 3, 32, 32), _inputs(4, 1, 3, 32, 32), _inputs(6, 1, 3, 32, 32)
    psi = torch.zeros(1, g.num_adain)
    opt = torch.optim.Adam(g.parameters(), lr=1e-2)
    before = float((g(lm, warp, psi) - target).abs().mean())
    for _ in range(20):
        loss = (g(lm, warp, psi) - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float((g(lm, warp, psi) - target).abs().mean()) < 0.75 * before


def test_generator_without_warp() -> None:
    g = _tiny("generator", num_res=1, use_warp=False)
    out = g(_inputs(3, 2, 3, 32, 32), None, torch.zeros(1, g.num_adain))
    assert out.shape == (2, 3, 32, 32) and float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_generator_bad_input() -> None:
    g = _tiny("generator", num_res=1)
    lm = torch.zeros(1, 3, 32, 32)
    with pytest.raises(GeneratorInputError, match="use_warp=True"):
        g(lm, None, torch.zeros(1, g.num_adain))
    with pytest.raises(GeneratorInputError, match="AdaIN"):
        g(lm, lm, torch.zeros(1, g.num_adain + 1))
    with pytest.raises(GeneratorInputError, match="B×3×H×W"):
        g(torch.zeros(1, 1, 32, 32), lm, torch.zeros(1, g.num_adain))


@pytest.mark.parametrize("synth_from_warp", [False, True])
def test_fold_matches_forward_and_exports_to_onnx(synth_from_warp: bool) -> None:
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    g = _tiny("generator", num_res=1, synth_from_warp=synth_from_warp).eval()
    psi = 0.1 * _inputs(7, 1, g.num_adain)
    folded = g.fold(psi)
    assert isinstance(folded, FoldedGenerator)
    lm, warp = _inputs(3, 2, 3, 32, 32), _inputs(4, 2, 3, 32, 32)
    torch.testing.assert_close(folded(lm, warp), g(lm, warp, psi).clamp(0, 1))
    buf = io.BytesIO()
    torch.onnx.export(
        folded, (lm, warp), buf, opset_version=17, dynamo=False,
        input_names=["landmark_image", "warp_image"], output_names=["image"],
        dynamic_axes={"landmark_image": {0: "b"}, "warp_image": {0: "b"}, "image": {0: "b"}},
    )  # fmt: skip
    model = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(model)
    ops = {n.op_type for n in model.graph.node}
    assert "GridSample" not in ops and "InstanceNormalization" not in ops
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    lm3, warp3 = _inputs(8, 3, 3, 32, 32), _inputs(9, 3, 3, 32, 32)
    got = sess.run(None, {"landmark_image": lm3.numpy(), "warp_image": warp3.numpy()})[0]
    np.testing.assert_allclose(got, folded(lm3, warp3).detach().numpy(), atol=1e-5)


def test_discriminator_projection_and_golden() -> None:
    d = _tiny("discriminator", num_identities=3)
    img, lm = _inputs(10, 2, 3, 32, 32), _inputs(11, 2, 3, 32, 32)
    w = d.identity_vector(torch.tensor([0, 2]))
    assert w.shape == (2, 16)
    score, feats = d(img, lm, w)
    assert score.shape == (2,)
    assert [tuple(f.shape) for f in feats] == [(2, 4, 16, 16), (2, 8, 8, 8)]
    e_hat = _inputs(12, 1, 16)
    torch.testing.assert_close(d.finetune_vector(e_hat), d.w0 + e_hat)
    # the projection is linear in w
    s1, _ = d(img, lm, 2.0 * w)
    torch.testing.assert_close(s1 - d.b, 2.0 * (score - d.b))
    torch.testing.assert_close(score.detach(), torch.tensor(GOLDEN_D), atol=1e-5, rtol=1e-4)
    with pytest.raises(DiscriminatorInputError):
        d(img, lm[:1], w)


def test_registry_and_profiles() -> None:
    assert set(NETWORKS) == {"embedder", "generator", "discriminator"}
    with pytest.raises(ConfigError, match="unknown network"):
        build("vae", {})
    with pytest.raises(ConfigError, match="widht"):
        build("generator", {"widht": 3})
    for name in ("cpu-preview", "farm-256", "farm-512"):
        prof = load_network_config(name)
        g = build("generator", prof.params("generator"))
        assert prof.image_size % (2**g.num_down) == 0
    prof = load_network_config("cpu-preview")
    assert prof.image_size == 128


def test_profile_unknown_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("image_size: 64\ngenerator_parms: {}\n")
    with pytest.raises(ConfigError, match="generator_parms"):
        load_network_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_network_config("no-such-profile")


GOLDEN_E = [0.26668623089790344, -0.10932450741529465, 0.0759466290473938, 0.11959520727396011]
GOLDEN_G = [0.5592395067214966, 0.5586969256401062, 0.09419115632772446]
GOLDEN_D = [-0.0011206893250346184, -0.005161338951438665]
