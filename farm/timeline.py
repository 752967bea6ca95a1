"""Expand an OpenTimelineIO timeline into the shot specs its clips name.

A clip names its shot in one of two ways, the first found wins:

1. ``clip.metadata["likeness"]["spec"]``: the spec path, relative to the timeline's folder;
2. the clip's name: ``<name>.yaml`` or ``<name>/<name>.yaml`` beside the timeline.

Every track is read, gaps and transitions are skipped, and a shot used several times in the
edit is submitted once, in order of first appearance.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import opentimelineio as otio

from pipeline.errors import FarmError

#: Suffixes read as timelines by ``likeness submit`` (OpenTimelineIO's native formats).
TIMELINE_SUFFIXES = (".otio", ".otioz", ".otiod")


def is_timeline(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` names an OpenTimelineIO file rather than a shot spec."""
    return Path(path).suffix.lower() in TIMELINE_SUFFIXES


def _clip_spec(clip: object, base: Path) -> Path | None:
    meta = getattr(clip, "metadata", {}) or {}
    ours = meta.get("likeness") if hasattr(meta, "get") else None
    if ours is not None and ours.get("spec"):
        p = Path(str(ours["spec"]))
        return p if p.is_absolute() else base / p
    name = str(getattr(clip, "name", "") or "")
    for cand in (base / f"{name}.yaml", base / name / f"{name}.yaml"):
        if name and cand.is_file():
            return cand
    return None


def timeline_specs(path: str | os.PathLike[str]) -> list[str]:
    """The shot specs named by a timeline's clips, each once, in edit order.

    Raises:
        FarmError: the file cannot be read as a timeline, holds no clips, or a clip names no
            spec that exists (every such clip is listed).
    """

    path = Path(path)
    try:
        tl = otio.adapters.read_from_file(str(path))
    except (OSError, otio.exceptions.OTIOError, ValueError) as exc:
        raise FarmError(
            f"cannot read timeline {path}: {exc}", "export it as an .otio file"
        ) from exc
    clips = list(tl.find_clips()) if hasattr(tl, "find_clips") else []
    if not clips:
        raise FarmError(f"timeline {path} holds no clips", "each clip must name a shot")
    base = path.resolve().parent
    specs: list[str] = []
    missing: list[str] = []
    for clip in clips:
        spec = _clip_spec(clip, base)
        if spec is None or not spec.is_file():
            missing.append(f"clip {clip.name!r}" + (f" -> {spec}" if spec else ""))
            continue
        s = str(spec.resolve())
        if s not in specs:
            specs.append(s)
    if missing:
        raise FarmError(
            f"{len(missing)} clip(s) in {path} name no shot spec: " + "; ".join(missing),
            "name each clip after its shot (<shot>.yaml beside the timeline) or set "
            'metadata {"likeness": {"spec": "path/to/shot.yaml"}}',
        )
    return specs


def expand_specs(args: Iterable[str]) -> list[str]:
    """Command-line spec arguments with every timeline replaced by the specs its clips name."""
    out: list[str] = []
    for a in args:
        for s in timeline_specs(a) if is_timeline(a) else [a]:
            if s not in out:
                out.append(s)
    return out
