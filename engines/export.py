"""torch → ONNX export with a dynamic batch axis, the TensorRT operator gate, and the generator fold.

* :func:`export_onnx` writes an ONNX graph (opset 17 or newer, TorchScript-based exporter, which
  works offline without onnxscript), checks it with ``onnx.checker`` and :func:`check_ops`, and
  only then renames it to its final path.
* :func:`check_ops` fails on any operator outside :data:`ALLOWED_OPS`, and on the shapes listed in
  :data:`FORBIDDEN` (5-D ``GridSample``), found through ONNX shape inference.
* :func:`export_generator` bakes one actor's AdaIN parameters (ψ = P·ê) into the generator G as
  constants, so the graph takes only the per-frame landmark image (and the warp image if used),
  and writes golden frames with the torch reference outputs beside the graph for the parity gate.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import onnx
import torch
from torch import nn
from torch.nn.utils import parametrize

from engines.parity import golden_inputs, save_golden
from engines.torch_engine import META_NAME
from pipeline.atomic import atomic_path
from pipeline.errors import EngineBuildError, UnsupportedOpsError

#: Lowest opset exported. TensorRT 10 parses opsets 9 to 20.
DEFAULT_OPSET = 17

#: ONNX operators (default domain) that TensorRT 10's ONNX parser supports and that this project
#: has vetted for image networks (onnx-tensorrt ``docs/operators.md``). Anything else fails
#: :func:`check_ops`: add an op here only after building it under TensorRT.
ALLOWED_OPS: frozenset[str] = frozenset(
    {
        "Abs", "Add", "And", "ArgMax", "ArgMin", "AveragePool", "BatchNormalization", "Cast",
        "Ceil", "Clip", "Concat", "Constant", "ConstantOfShape", "Conv", "ConvTranspose", "Cos",
        "CumSum", "DepthToSpace", "Div", "Einsum", "Elu", "Equal", "Erf", "Exp", "Expand",
        "Flatten", "Floor", "Gather", "GatherElements", "GatherND", "Gelu", "Gemm",
        "GlobalAveragePool", "GlobalMaxPool", "Greater", "GreaterOrEqual", "GridSample",
        "GroupNormalization", "HardSigmoid", "HardSwish", "Identity", "InstanceNormalization",
        "LayerNormalization", "LeakyRelu", "Less", "LessOrEqual", "Log", "MatMul", "Max",
        "MaxPool", "Mean", "Min", "Mod", "Mul", "Neg", "Not", "Or", "Pad", "Pow", "PRelu",
        "Range", "Reciprocal", "ReduceL1", "ReduceL2", "ReduceLogSumExp", "ReduceMax",
        "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare", "Relu",
        "Reshape", "Resize", "ScatterElements", "ScatterND", "Selu", "Shape", "Sigmoid", "Sign",
        "Sin", "Slice", "Softmax", "Softplus", "Softsign", "SpaceToDepth", "Split", "Sqrt",
        "Squeeze", "Sub", "Sum", "Tanh", "Tile", "TopK", "Transpose", "Unsqueeze", "Where",
        "Xor",
    }
)  # fmt: skip

#: Allowed operators that are forbidden in some shapes, with the reason. Checked by rank.
FORBIDDEN: dict[str, str] = {
    "GridSample/5-D": (
        "5-D (volumetric N×C×D×H×W) grid_sample: TensorRT's GridSample layer and its ONNX parser "
        "take 4-D N×C×H×W input only; warp in 2-D (4-D tensors) instead"
    ),
}


def graph_ops(model: onnx.ModelProto) -> set[str]:
    """Every operator type in a graph and its subgraphs (``If``/``Loop`` bodies).

    Args:
        model: the ONNX model.

    Returns:
        op types; operators outside the default domain are written ``domain::Op``.
    """
    return {_op_name(n) for n in _walk_nodes(model.graph)}


def check_ops(model: onnx.ModelProto) -> None:
    """Fail on operators TensorRT cannot build: outside :data:`ALLOWED_OPS`, or in
    :data:`FORBIDDEN` shapes (a ``GridSample`` whose input is not provably 4-D).

    Args:
        model: the ONNX model (shape inference runs on a copy).

    Raises:
        UnsupportedOpsError: lists every offender with its count or node name.
    """
    counts = Counter(_op_name(n) for n in _walk_nodes(model.graph))
    offenders = [
        f"{op} ×{k}: not in the TensorRT allow-list (engines.export.ALLOWED_OPS)"
        for op, k in sorted(counts.items())
        if op not in ALLOWED_OPS
    ]
    ranks = _tensor_ranks(model)
    for node in _walk_nodes(model.graph):
        if node.op_type != "GridSample" or node.domain not in ("", "ai.onnx"):
            continue
        rank = ranks.get(node.input[0]) or ranks.get(node.input[1])
        if rank != 4:
            shown = f"{rank}-D" if rank else "rank unknown"
            offenders.append(
                f"GridSample ({shown} input) at node {node.name or node.output[0]!r}: "
                f"{FORBIDDEN['GridSample/5-D']}"
            )
    if offenders:
        raise UnsupportedOpsError(offenders)


def export_onnx(
    module: nn.Module,
    example_inputs: Mapping[str, torch.Tensor],
    path: str | os.PathLike[str],
    *,
    output_names: Sequence[str] = ("image",),
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
) -> onnx.ModelProto:
    """Export a module to ONNX, check it, and write it atomically.

    Args:
        module: the network, called as ``module(*example_inputs.values())``.
        example_inputs: ``{name: B×... float32 tensor}`` in ``forward`` order; non-batch dims
            are fixed in the graph (a profile's crop size is static).
        path: the final ``.onnx`` file.
        output_names: names of the outputs.
        opset: ONNX opset, at least 17.
        dynamic_batch: make axis 0 of every input and output dynamic (``batch``).

    Returns:
        the checked model.

    Raises:
        EngineBuildError: opset below 17, or the exporter or ``onnx.checker`` failed.
        UnsupportedOpsError: the graph holds operators TensorRT cannot build.
    """
    if opset < DEFAULT_OPSET:
        raise EngineBuildError(f"opset {opset} is too old", f"use opset >= {DEFAULT_OPSET}")
    names = list(example_inputs)
    axes = {n: {0: "batch"} for n in [*names, *output_names]} if dynamic_batch else None
    module = module.eval()
    with atomic_path(path) as tmp:
        try:
            with warnings.catch_warnings(), torch.no_grad():
                # The TorchScript exporter is deprecated in favour of dynamo, which needs
                # onnxscript; this one is what works offline and gives TensorRT-friendly graphs.
                warnings.simplefilter("ignore", DeprecationWarning)
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                # F.instance_norm uses instance statistics in eval too; that is AdaIN's intent.
                warnings.filterwarnings("ignore", message=".*instance_norm.*train=True")
                torch.onnx.export(
                    module,
                    tuple(example_inputs.values()),
                    os.fspath(tmp),
                    dynamo=False,
                    opset_version=opset,
                    input_names=names,
                    output_names=list(output_names),
                    dynamic_axes=axes,
                    do_constant_folding=True,
                )
        except (RuntimeError, torch.onnx.errors.OnnxExporterError) as exc:
            raise EngineBuildError(
                f"torch.onnx.export failed for {type(module).__name__}: {exc}",
                "replace the unsupported layer, or raise the opset",
            ) from exc
        model = onnx.load(os.fspath(tmp))
        try:
            onnx.checker.check_model(model, full_check=True)
        except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
            raise EngineBuildError(f"exported graph fails onnx.checker: {exc}") from exc
        check_ops(model)
    return model


class FoldableGenerator(Protocol):
    """What :func:`export_generator` needs from the generator G (``pipeline.models.generator``).

    ``adain_from_embedding(e_hat)`` maps a ``1×E`` identity embedding ê to the AdaIN tensor
    ψ = P·ê (``1×P``); ``forward(landmark_image, warp_image, adain_params)`` renders a batch with
    ψ broadcast over it. ``fold(ψ)``, when present, returns G's own folded module.
    """

    use_warp: bool

    def adain_from_embedding(self, e_hat: torch.Tensor) -> torch.Tensor: ...

    def __call__(
        self, landmark_image: torch.Tensor, warp_image: torch.Tensor | None, adain: torch.Tensor
    ) -> torch.Tensor: ...


class FoldedGenerator(nn.Module):
    """G with one actor's AdaIN parameters baked in as a constant buffer.

    Used for generators without their own ``fold`` method.

    Args:
        generator: the generator G (see :class:`FoldableGenerator`).
        adain: ``1×P`` float32 AdaIN parameters ψ for the actor.
        use_warp: whether ``forward`` takes the warp image.
    """

    def __init__(self, generator: nn.Module, adain: torch.Tensor, use_warp: bool) -> None:
        super().__init__()
        self.generator = generator
        self.use_warp = use_warp
        self.register_buffer("adain", adain.detach().to(torch.float32).reshape(1, -1).clone())

    def forward(self, landmarks: torch.Tensor, warp: torch.Tensor | None = None) -> torch.Tensor:
        """Render a batch.

        Args:
            landmarks: B×3×H×W float32 landmark images, [0, 1].
            warp: B×3×H×W float32 warped reference crops (only when ``use_warp``).

        Returns:
            B×3×H×W float32 rendered faces, in G's output range.
        """
        return self.generator(landmarks, warp if self.use_warp else None, self.adain)  # 1×P ψ


def fold_generator(
    generator: nn.Module,
    embedding: torch.Tensor | None,
    use_warp: bool,
    *,
    adain: torch.Tensor | None = None,
) -> nn.Module:
    """A copy of G with ψ = ``generator.adain_from_embedding(embedding)`` folded in, eval mode.

    Parametrizations (spectral norm) are baked into plain weights on the copy, so the exported
    graph holds constants rather than the power-iteration ops; the caller's G is not changed.

    Args:
        generator: the generator G.
        embedding: 1×E (or E) float32 averaged identity embedding ê.
        use_warp: whether G takes the warp input; must match ``generator.use_warp`` if set.

    Returns:
        a module called as ``folded(landmarks)`` or ``folded(landmarks, warp)``.

    Raises:
        EngineBuildError: G has no ``adain_from_embedding`` method, or ``use_warp`` disagrees.
    """
    project = getattr(generator, "adain_from_embedding", None)
    if not callable(project):
        raise EngineBuildError(
            f"{type(generator).__name__} has no adain_from_embedding(e_hat) method",
            "export needs G to expose its per-actor AdaIN tensor (see FoldableGenerator)",
        )
    built_with = getattr(generator, "use_warp", use_warp)
    if bool(built_with) != use_warp:
        raise EngineBuildError(
            f"use_warp={use_warp} but G was built with use_warp={built_with}",
            "pass the generator_params.use_warp of the actor's model profile",
        )
    g = copy.deepcopy(generator).eval()
    for module in g.modules():
        if parametrize.is_parametrized(module):
            for name in list(module.parametrizations):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    if adain is None:
        if embedding is None:
            raise EngineBuildError("fold_generator needs an embedding or the actor's AdaIN tensor")
        emb = embedding.detach().to(torch.float32).reshape(1, -1)  # 1×E float32
        with torch.no_grad():
            adain = project(emb)  # 1×P float32
    else:
        adain = adain.detach().to(torch.float32).reshape(1, -1)  # 1×P float32, fine-tuned ψ′
    own_fold = getattr(g, "fold", None)
    folded = own_fold(adain) if callable(own_fold) else FoldedGenerator(g, adain, use_warp)
    return folded.eval()


def export_generator(
    generator: nn.Module,
    embedding: torch.Tensor | None,
    path: str | os.PathLike[str],
    crop_size: int,
    use_warp: bool,
    *,
    opset: int = DEFAULT_OPSET,
    golden_frames: int = 4,
    adain: torch.Tensor | None = None,
    golden: Mapping[str, np.ndarray] | None = None,
) -> onnx.ModelProto:
    """Export G folded with one actor's embedding, plus golden frames for the parity gate.

    Writes ``path`` (inputs ``landmarks`` and, with ``use_warp``, ``warp``, each B×3×S×S
    float32; output ``image`` B×3×S×S float32) and ``path`` with suffix ``.golden.npz`` holding
    golden inputs and the torch reference outputs.

    Args:
        generator: the generator G (see :class:`FoldableGenerator`).
        embedding: 1×E float32 identity embedding ê (``None`` when ``adain`` is given).
        path: the final ``.onnx`` file.
        crop_size: S, the profile's crop size in pixels.
        use_warp: export the warp input.
        opset: ONNX opset, at least 17.
        golden_frames: how many golden frames to store.
        adain: 1×P float32, the actor's fine-tuned ψ′; used instead of P·``embedding``.
        golden: ``{name: N×3×S×S float32}`` golden inputs (e.g. the actor's own reference
            drawings and warps); synthetic drawings when ``None``.

    Returns:
        the checked ONNX model.

    Raises:
        EngineBuildError, UnsupportedOpsError: see :func:`export_onnx` and :func:`fold_generator`.
    """
    if crop_size < 16 or crop_size % 8:
        raise EngineBuildError(
            f"crop_size {crop_size} is not a positive multiple of 8 (>= 16)",
            "use the profile's crop size (128, 256, 512)",
        )
    folded = fold_generator(generator, embedding, use_warp, adain=adain)
    names = ["landmarks", "warp"] if use_warp else ["landmarks"]
    if golden is None:
        golden = golden_inputs(names, golden_frames, crop_size)
    golden = {n: np.ascontiguousarray(golden[n], dtype=np.float32) for n in names}
    example = {n: torch.from_numpy(golden[n][:2]) for n in names}  # batch 2: no size-1 folding
    model = export_onnx(folded, example, path, output_names=["image"], opset=opset)
    with torch.no_grad():
        ref = folded(*(torch.from_numpy(golden[n]) for n in names))
    save_golden(golden_path(path), golden, {"image": ref.numpy()})
    return model


def golden_path(onnx_path: str | os.PathLike[str]) -> Path:
    """Where the golden frames of an exported graph live: ``<name>.golden.npz`` beside it."""
    p = Path(onnx_path)
    return p.with_name(p.stem + ".golden.npz")


def export_torch_program(
    module: nn.Module,
    example_inputs: Mapping[str, torch.Tensor],
    path: str | os.PathLike[str],
    *,
    output_names: Sequence[str] = ("image",),
    max_batch: int = 64,
) -> Path:
    """Save a ``torch.export`` program with a dynamic batch axis, for ``TorchEngine.load``.

    Args:
        module: the network.
        example_inputs: ``{name: B×... float32 tensor}``, B >= 2, in ``forward`` order.
        path: the final ``.pt2`` file.
        output_names: names of the outputs.
        max_batch: largest batch the program accepts.

    Raises:
        EngineBuildError: ``torch.export`` could not trace the module.
    """

    batch = torch.export.Dim("batch", min=1, max=max_batch)
    shapes = {n: {0: batch} for n in example_inputs}
    try:
        program = torch.export.export(
            module.eval(), tuple(example_inputs.values()), dynamic_shapes=shapes
        )
    except (RuntimeError, torch._dynamo.exc.UserError) as exc:  # type: ignore[attr-defined]
        raise EngineBuildError(f"torch.export failed: {exc}") from exc
    meta = {
        "inputs": [
            {"name": n, "shape": [-1, *t.shape[1:]], "dtype": "float32"}
            for n, t in example_inputs.items()
        ],
        "outputs": list(output_names),
    }
    with atomic_path(path) as tmp:
        torch.export.save(program, os.fspath(tmp), extra_files={META_NAME: json.dumps(meta)})
    return Path(path)


def _walk_nodes(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        nodes.append(node)
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                nodes.extend(_walk_nodes(attr.g))
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    nodes.extend(_walk_nodes(g))
    return nodes


def _op_name(node: onnx.NodeProto) -> str:
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"


def _tensor_ranks(model: onnx.ModelProto) -> dict[str, int]:
    """Rank of every tensor whose shape is known after ONNX shape inference."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError):
        inferred = model
    g = inferred.graph
    ranks: dict[str, int] = {}
    for vi in [*g.input, *g.value_info, *g.output]:
        t = vi.type.tensor_type
        if t.HasField("shape"):
            ranks[vi.name] = len(t.shape.dim)
    for init in g.initializer:
        ranks[init.name] = len(init.dims)
    return ranks
