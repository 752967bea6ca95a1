"""Self-describing training checkpoints, written atomically, read with ``weights_only=True``.

A checkpoint is one ``torch.save`` file holding a plain dict (nanoGPT's layout, plus a schema):

.. code-block:: text

    schema      "likeness.checkpoint/2"
    kind        "finetune" | "base"
    step        int, optimisation steps completed
    model       {name: state_dict}               e.g. generator, embedder, discriminator, actor
    optimizer   {name: optimizer state_dict}
    model_args  {name: {"network": registry name, "params": {...}}}   (pipeline.models.networks)
    rng         {"torch": ByteTensor, "numpy": {...}, "python": [...], "cuda": [ByteTensor]}
    config      the stage config as plain JSON data
    actor_id    str or None
    extra       {...}: anything else a stage needs to resume (loss history, world size)

Everything in it is a tensor or plain Python data, so ``torch.load(weights_only=True)`` reads it
and loading runs no pickled code. Resuming reads nothing but this file. :func:`save_checkpoint`
returns the file's SHA-256 for stage manifests; :func:`load_checkpoint` checks it when given.

Older schemas are upgraded on load through :data:`UPGRADES` (OpenTimelineIO's pattern): a
checkpoint written by an earlier version resumes, and renders, as it did.
"""

from __future__ import annotations

import pickle
import random
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.atomic import atomic_path
from pipeline.errors import CheckpointError
from pipeline.hashing import sha256_file
from pipeline.models.networks import build

SCHEMA = "likeness.checkpoint/2"

#: The checkpoint file of a training run (a fine-tune or a base), in its output folder.
CHECKPOINT_NAME = "checkpoint.pt"

#: The four flat settings of the warp fusion in schema 1, and their values when a checkpoint
#: lacks one (the behaviour of the code that wrote it: the nearest reference, piecewise-affine).
_V1_FUSION = {"top": 1, "temperature": 0.01, "spline": 0.0, "flow": 0.0}


def _upgrade_1_to_2(blob: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 → 2: the fusion's flat ``fuse_*`` settings became one ``fusion`` value, in the
    config and (fine-tunes) in ``extra``; the config keys ``profile`` and ``fuse_select`` became
    ``network`` and ``fusion_select``. Anything that is not a mapping is left for
    :func:`load_checkpoint`'s checks."""
    config, extra = blob.get("config"), blob.get("extra")
    if isinstance(config, dict):
        config = dict(config)
        flat = {k: config.pop(f"fuse_{k}") for k in _V1_FUSION if f"fuse_{k}" in config}
        if flat:
            config["fusion"] = {**_V1_FUSION, **flat}
        for old, new in (("profile", "network"), ("fuse_select", "fusion_select")):
            if old in config:
                config[new] = config.pop(old)
    if isinstance(extra, dict):
        extra = dict(extra)
        if blob.get("kind") == "finetune" and "fusion" not in extra:
            extra["fusion"] = {k: extra.pop(f"fuse_{k}", v) for k, v in _V1_FUSION.items()}
        extra.pop("resume_key", None)  # a digest of the old config; resuming compares configs
    return {**blob, "schema": "likeness.checkpoint/2", "config": config, "extra": extra}


#: Schema → the function that upgrades a checkpoint of that schema by one version.
UPGRADES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "likeness.checkpoint/1": _upgrade_1_to_2,
}


def capture_rng() -> dict[str, Any]:
    """The torch, numpy-global, python and CUDA RNG states as weights-only-loadable data."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": [int(py_version), [int(v) for v in py_state], py_gauss],
        "cuda": [],
    }
    if torch.cuda.is_available():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Restore what :func:`capture_rng` captured."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (
            n["kind"],
            n["keys"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    version, values, gauss = state["python"]
    random.setstate((version, tuple(values), gauss))
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def restore_training(
    blob: dict[str, Any], models: dict[str, torch.nn.Module], optimizers: dict[str, Any]
) -> int:
    """Load a checkpoint's models, optimizers and RNG states for an exact resume.

    Args:
        blob: what :func:`load_checkpoint` returned.
        models: name → module, as saved under ``blob["model"]``.
        optimizers: name → optimizer, as saved under ``blob["optimizer"]``.

    Returns:
        the step the checkpoint was written at.
    """
    for name, module in models.items():
        module.load_state_dict(blob["model"][name])
    for name, opt in optimizers.items():
        opt.load_state_dict(blob["optimizer"][name])
    restore_rng(blob["rng"])
    return int(blob["step"])


def save_checkpoint(
    path: str | Path,
    *,
    kind: str,
    step: int,
    models: dict[str, torch.nn.Module],
    model_args: dict[str, dict[str, Any]],
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
    config: dict[str, Any] | None = None,
    actor_id: str | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """Write a checkpoint atomically (temp file, fsync, rename) and return its SHA-256.

    Args:
        path: the final file.
        kind: ``"finetune"`` or ``"base"``.
        step: optimisation steps completed.
        models: name → module; their state dicts are saved (a DDP wrapper is unwrapped).
        model_args: name → ``{"network": registry name, "params": {...}}`` to rebuild them.
        optimizers: name → optimizer.
        config: the stage config as plain data (see ``pipeline.config.to_jsonable``).
        actor_id: the actor this checkpoint belongs to, if any.
        extra: other plain data needed to resume.

    Returns:
        hex SHA-256 of the written file.
    """
    blob = {
        "schema": SCHEMA,
        "kind": kind,
        "step": int(step),
        "model": {k: getattr(m, "module", m).state_dict() for k, m in models.items()},
        "optimizer": {k: o.state_dict() for k, o in (optimizers or {}).items()},
        "model_args": model_args,
        "rng": capture_rng(),
        "config": config or {},
        "actor_id": actor_id,
        "extra": extra or {},
    }
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)
        digest = sha256_file(tmp)
    return digest


def load_checkpoint(
    path: str | Path, expected_sha256: str | None = None, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``, checking hash and schema.

    Args:
        path: the checkpoint file.
        expected_sha256: hex digest recorded in a manifest; checked when given.
        map_location: where tensors are loaded.

    Raises:
        CheckpointError: missing file, hash mismatch, unreadable or foreign file, wrong schema.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}", "check the path or rerun the stage")
    if expected_sha256 is not None:
        got = sha256_file(path)
        if got != expected_sha256.lower():
            raise CheckpointError(
                f"checkpoint {path} has SHA-256 {got}, but {expected_sha256} was recorded",
                "the file changed since its manifest was written; rerun the stage that made it",
            )
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
    # A damaged pickle stream fails inside the weights-only unpickler as whatever its opcode
    # handler hit: a bad memo index (KeyError), an empty stack (IndexError), an unhashable key
    # (TypeError), undecodable text (UnicodeDecodeError, a ValueError), a malformed storage
    # reference (torch raises AssertionError for it), a short legacy header (struct.error).
    except (
        AssertionError,
        struct.error,
        RuntimeError,
        EOFError,
        OSError,
        ValueError,
        KeyError,
        IndexError,
        TypeError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
    ) as exc:
        raise CheckpointError(
            f"cannot read checkpoint {path}: {exc}", "the file is corrupt; rerun the stage"
        ) from exc
    while (
        isinstance(blob, dict)
        and isinstance(blob.get("schema"), str)
        and blob["schema"] in UPGRADES
    ):
        blob = UPGRADES[blob["schema"]](blob)
    if not isinstance(blob, dict) or blob.get("schema") != SCHEMA:
        got = blob.get("schema") if isinstance(blob, dict) else type(blob).__name__
        raise CheckpointError(
            f"{path} is not a likeness checkpoint (schema {got!r}, expected {SCHEMA!r})",
            "pass a checkpoint written by likeness train-base or fine-tune",
        )
    return blob


def build_models(
    blob: dict[str, Any], names: list[str] | None = None
) -> dict[str, torch.nn.Module]:
    """Rebuild and load the registered networks a checkpoint describes.

    Args:
        blob: from :func:`load_checkpoint`.
        names: which of ``blob["model_args"]`` to build; all when omitted.

    Raises:
        CheckpointError: a name is missing or the weights do not fit the recorded params.
    """

    out = {}
    for name in names or list(blob["model_args"]):
        args = blob["model_args"].get(name)
        if args is None or name not in blob["model"]:
            raise CheckpointError(f"checkpoint has no network {name!r}")
        net = build(args["network"], args["params"])
        try:
            net.load_state_dict(blob["model"][name])
        except RuntimeError as exc:
            raise CheckpointError(
                f"weights of {name!r} do not fit its recorded params: {exc}"
            ) from exc
        out[name] = net
    return out
