"""The plan of one shot: every stage's key, config digest, inputs and output folder.

The plan is computed before anything runs, from the shot spec, its profile and the fingerprint of
the source files. Luigi tasks read their output folders from it; the whole plan's digest is a
task parameter, so a changed config gives new task identities while unchanged stages keep their
keys (and their finished outputs).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pipeline.color import ColorPipeline
from pipeline.config import digest, read_yaml, to_jsonable
from pipeline.errors import ConfigError
from pipeline.frames import FrameRange
from pipeline.hashing import sha256_file
from pipeline.io import open_plate
from pipeline.io.sequence import is_sequence_pattern, parse_pattern
from pipeline.shot.profile import Profile, load_profile, profile_path
from pipeline.shot.spec import ShotSpec, load_shot
from pipeline.stages.deliver import DeliverConfig
from pipeline.stages.finetune import network_image_size
from pipeline.stages.graph import STAGES, StageDef
from pipeline.workspace import Workdir, stage_key


@dataclass(frozen=True)
class StagePlan:
    name: str
    key: str
    config_digest: str
    inputs: dict[str, str]
    folder: Path
    version: int
    frames: FrameRange
    chunk: str | None = None

    @property
    def task_name(self) -> str:
        return self.name if self.chunk is None else f"{self.name}.{self.chunk}"


@dataclass(frozen=True)
class ShotPlan:
    spec: ShotSpec
    profile: Profile
    workdir: Workdir
    frames: FrameRange
    source_fingerprint: str
    stages: dict[str, StagePlan]  # task name -> plan; chunked stages appear once per chunk
    delivery_key: str
    digest: str

    @property
    def deliver(self) -> DeliverConfig:
        """The deliver stage's config: the profile's, with the spec's review settings over it."""
        return deliver_config(self.profile, self.spec)

    def chunks(self, stage: str) -> list[StagePlan]:
        return [s for s in self.stages.values() if s.name == stage and s.chunk is not None]

    def stage(self, name: str, chunk: str | None = None) -> StagePlan:
        return self.stages[name if chunk is None else f"{name}.{chunk}"]

    def to_json(self) -> dict[str, Any]:
        return {
            "shot": self.spec.shot,
            "spec": str(self.spec.source),
            "profile": self.profile.name,
            "frames": str(self.frames),
            "plan_digest": self.digest,
            "stages": {
                t: {
                    "stage": s.name,
                    "chunk": s.chunk,
                    "key": s.key,
                    "config_digest": s.config_digest,
                    "folder": str(s.folder),
                    "frames": str(s.frames),
                }
                for t, s in self.stages.items()
            },
        }


def deliver_config(profile: Profile, spec: ShotSpec) -> DeliverConfig:
    """The deliver config of a shot: the profile's, with the spec's ``output.review`` display,
    view, look and CDL over the profile's ``deliver.review``."""
    return replace(profile.deliver, review=spec.review.over(profile.deliver.review))


def _source_files(spec: ShotSpec, frames: FrameRange) -> list[Path]:
    """The source files a shot reads: the movie, or the sequence frames in range."""
    if not is_sequence_pattern(spec.plate_path):
        return [spec.plate_path]
    found = parse_pattern(spec.plate_path).scan()
    return [found[f] for f in frames if f in found]


def _plate_frames(spec: ShotSpec, profile: Profile) -> FrameRange:
    if spec.frames is not None:
        return spec.frames
    with open_plate(
        spec.plate_path,
        first_frame=profile.ingest.movie_first_frame,
        max_pixels=profile.ingest.max_pixels,
    ) as r:
        return r.info.frames


def _section_digest(profile: Profile, spec: ShotSpec, stage: StageDef) -> str:
    cfg: Any = getattr(profile, stage.section) if stage.section else None
    if cfg is not None and stage.ignore:
        cfg = {k: v for k, v in to_jsonable(cfg).items() if k not in stage.ignore}
    extra: dict[str, Any] = {}
    if stage.name == "ingest":
        extra = {
            "colorspace": spec.colorspace,
            "frames": str(spec.frames),
            "ocio": _ocio_id(profile),
        }
    elif stage.name == "track_chunk":
        ref = spec.performer_reference
        extra = {
            "performer_reference": sha256_file(ref) if ref else None,
            "seed_box": list(spec.seed_box) if spec.seed_box else None,
        }
    elif stage.name == "references":
        extra = {"size": network_image_size(profile.finetune)}
    elif stage.name == "finetune":
        extra = {"actor": spec.actor_id}
    elif stage.name == "deliver":
        cfg = {k: v for k, v in to_jsonable(profile.deliver).items() if k != "review"}
        extra = {
            "review": deliver_config(profile, spec).review.digest_fields(),
            "compression": spec.exr_compression,
            "codec": spec.review_codec,
            "shot": spec.shot,
            "actor": spec.actor_id,
            "consent": sha256_file(spec.consent_path)
            if spec.consent_path and spec.consent_path.is_file()
            else None,
            "composite": profile.composite,
        }
    return digest({"config": cfg, "extra": extra})


@functools.lru_cache(maxsize=8)
def _ocio_id_cached(config: str | None, env: str | None) -> str:
    return ColorPipeline(config).cache_id


def _ocio_id(profile: Profile) -> str:
    return _ocio_id_cached(profile.ingest.ocio_config, os.environ.get("OCIO"))


def build_plan(spec_path: str | os.PathLike[str], workdir: str | os.PathLike[str]) -> ShotPlan:
    """Plan a shot: validate the spec and profile, fingerprint the sources, key every stage.

    Raises:
        ShotSpecError, ConfigError: invalid spec or profile.
        DecodeError, MissingFramesError: unreadable plate.
    """
    spec = load_shot(spec_path)
    profile = load_profile(spec.profile, spec.source.parent)
    wd = Workdir(workdir)
    frames = _plate_frames(spec, profile)
    fp = wd.fingerprint(_source_files(spec, frames))
    stages: dict[str, StagePlan] = {}
    keys: dict[str, str] = {}  # stage name -> key (merged over chunks)
    for sd in STAGES:
        cdig = _section_digest(profile, spec, sd)
        inputs = {u: keys[u] for u in sd.inputs}
        if sd.name == "ingest":
            inputs = {"source": fp}
        elif sd.name == "references":
            inputs = {"references": wd.fingerprint(list(spec.references))}
        if sd.chunked:
            size = getattr(profile, sd.section).chunk_size
            chunk_keys = []
            for ch in frames.chunks(size):
                k = stage_key(sd.name, sd.version, cdig, {**inputs, "frames": str(ch)})
                sp = StagePlan(
                    sd.name,
                    k,
                    cdig,
                    inputs,
                    wd.stage_dir(spec.shot, sd.name, k),
                    sd.version,
                    ch,
                    str(ch),
                )
                stages[sp.task_name] = sp
                chunk_keys.append(k)
            keys[sd.name] = digest(chunk_keys)[:16]
        else:
            k = stage_key(sd.name, sd.version, cdig, inputs)
            stages[sd.name] = StagePlan(
                sd.name, k, cdig, inputs, wd.stage_dir(spec.shot, sd.name, k), sd.version, frames
            )
            keys[sd.name] = k
    delivery_key = keys[STAGES[-1].name]
    plan_digest = digest({"spec": str(spec.source), "keys": {t: s.key for t, s in stages.items()}})[
        :16
    ]
    return ShotPlan(spec, profile, wd, frames, fp, stages, delivery_key, plan_digest)


@functools.lru_cache(maxsize=64)
def _cached_plan(spec_path: str, workdir: str, stamp: tuple[float, ...]) -> ShotPlan:
    return build_plan(spec_path, workdir)


def _stamp(spec_path: str) -> tuple[Any, ...]:
    """What invalidates a memoised plan: the spec and profile files, and $OCIO."""
    parts: list[Any] = [os.environ.get("OCIO")]
    st = os.stat(spec_path)
    parts.append((st.st_mtime_ns, st.st_size))
    try:
        data = read_yaml(Path(spec_path))
        prof = profile_path(
            str(data.get("profile", "cpu-preview")), Path(spec_path).resolve().parent
        )
        pst = prof.stat()
        parts.append((str(prof), pst.st_mtime_ns, pst.st_size))
    except (ConfigError, OSError, AttributeError):
        parts.append(None)  # build_plan reports the problem
    return tuple(parts)


def cached_plan(spec_path: str, workdir: str) -> ShotPlan:
    """``build_plan``, memoised per process while its inputs are unchanged (Luigi asks often)."""
    return _cached_plan(
        str(Path(spec_path).resolve()), str(Path(workdir).resolve()), _stamp(spec_path)
    )


def allocate_version(plan: ShotPlan) -> str:
    """The version delivering this plan: the existing one with its delivery key, or a new one."""
    return plan.workdir.find_or_allocate_version(plan.spec.shot, plan.delivery_key, plan.to_json())


def version_note(plan: ShotPlan, version: str) -> str | None:
    """Why ``version`` is a new version of the shot: the stages whose outputs differ from the
    version before it, each with ``(config)`` where its own config changed and no mark where
    only something upstream did. None for the shot's first version.

    Example: ``"v002 replaces v001: finetune (config), export, synth_chunk, deliver"``.
    """
    wd, shot = plan.workdir, plan.spec.shot
    earlier = [v for v in wd.versions(shot) if v < version]
    if not earlier:
        return None
    try:
        old = wd.read_plan(shot, earlier[-1]).get("stages", {})
    except (OSError, ValueError):
        return f"{version} replaces {earlier[-1]} (whose plan is unreadable)"
    changed = []
    for name in dict.fromkeys(s.name for s in plan.stages.values()):
        mine = [s for s in plan.stages.values() if s.name == name]
        theirs = [v for v in old.values() if isinstance(v, dict) and v.get("stage") == name]
        if sorted(s.key for s in mine) == sorted(str(v.get("key")) for v in theirs):
            continue
        same_config = bool(theirs) and all(
            v.get("config_digest") == mine[0].config_digest for v in theirs
        )
        changed.append(name if same_config else f"{name} (config)")
    return f"{version} replaces {earlier[-1]}: {', '.join(changed) or 'nothing changed'}"
