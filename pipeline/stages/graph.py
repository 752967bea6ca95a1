"""The stage graph, declared once: every stage, what it needs, how it runs.

Everything that knows the chain reads it from here: the Luigi tasks' ``requires()``
(``tasks/base.py``), the shot plan's keys (:mod:`pipeline.shot.plan`), the farm-manager adapters,
``likeness rerun`` and ``likeness status``. ``tests/stages/test_graph.py`` fails when any of them
disagrees with it.

A stage's key is a digest of its version, its config section and the keys of its inputs, so a
change anywhere upstream gives every stage downstream of it new keys, and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

#: What a stage config says about the GPU: never, always, or when the process sees CUDA.
GpuRequest = Literal["never", "always", "auto"]


@dataclass(frozen=True)
class StageDef:
    """A stage of the chain.

    Attributes:
        name: the stage name, also its folder name and its Luigi task's ``stage_name``.
        version: bump when the stage's algorithm changes its outputs.
        section: the profile section that is this stage's config.
        inputs: the stages whose outputs it reads (their keys are part of its key).
        chunked: run once per frame chunk, of ``chunk_size`` frames of its section.
        gpu: the profile section whose ``gpu_request()`` says whether it runs on a GPU; None for
            a CPU stage.
        ignore: fields of the section that cannot change this stage's outputs (left out of its
            key).
    """

    name: str
    version: int
    section: str
    inputs: tuple[str, ...] = ()
    chunked: bool = False
    gpu: str | None = None
    ignore: tuple[str, ...] = ()


#: The chain, upstream first.
STAGES: tuple[StageDef, ...] = (
    StageDef("ingest", 1, "ingest"),
    StageDef(
        "track_chunk",
        1,
        "track",
        inputs=("ingest",),
        chunked=True,
        ignore=("smoothing", "max_gap_interpolate", "crop_size"),
    ),
    StageDef("track", 1, "track", inputs=("ingest", "track_chunk")),
    StageDef("references", 2, "references"),
    StageDef("finetune", 1, "finetune", inputs=("references",), gpu="finetune"),
    StageDef("export", 1, "engine", inputs=("finetune",), gpu="engine"),
    StageDef(
        "synth_chunk",
        2,
        "synth",
        inputs=("ingest", "track", "references", "finetune", "export"),
        chunked=True,
        gpu="engine",
    ),
    StageDef("deliver", 3, "deliver", inputs=("ingest", "track", "finetune", "synth_chunk")),
)

_BY_NAME = {s.name: s for s in STAGES}


def stage_def(name: str) -> StageDef:
    """The stage called ``name``.

    Raises:
        KeyError: no such stage (the message lists them).
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"stage {name!r} is unknown; stages: {', '.join(_BY_NAME)}") from None


def downstream(name: str) -> list[str]:
    """``name`` and every stage that reads its outputs, directly or not, in chain order."""
    hit = {stage_def(name).name}
    for s in STAGES:
        if any(i in hit for i in s.inputs):
            hit.add(s.name)
    return [s.name for s in STAGES if s.name in hit]


def wants_gpu(stage: StageDef, profile: Any, cuda: bool | None) -> bool:
    """Whether ``stage`` runs on a GPU under ``profile``: the one GPU rule.

    Args:
        stage: the stage.
        profile: the shot's profile (its ``stage.gpu`` section has ``gpu_request()``).
        cuda: whether this process sees CUDA; None where that cannot be known (a farm-manager
            job is described before any node is chosen), so that ``auto`` asks for a GPU.
    """
    if stage.gpu is None:
        return False
    synth = getattr(profile, "synth", None)
    if stage.name == "synth_chunk" and getattr(synth, "runs_network", True) is False:
        return False  # the plate render without the network's correction needs no engine
    request: GpuRequest = getattr(profile, stage.gpu).gpu_request()
    if request == "auto":
        return True if cuda is None else cuda
    return request == "always"
