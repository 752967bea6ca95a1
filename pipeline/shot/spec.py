"""Shot specs: one YAML file per shot, parsed into frozen dataclasses.

Other tools write these files, so the key names are an interface::

    shot: sh010                      # [A-Za-z0-9_-]{1,64}
    plate:
      path: plates/sh010.mov         # a movie, or a sequence pattern: plates/sh010.####.exr
      frames: 1001-1100              # optional; default: all frames
      colorspace: "sRGB Encoded Rec.709 (sRGB)"
      performer:                     # optional identity lock for plates with several faces
        reference: refs/plate_actor.jpg   # a still of the performer to follow, or
        seed_box: [x0, y0, x1, y1]        # their face box on the first frame
    actor:
      id: jdoe
      references: [refs/jdoe_01.jpg, refs/jdoe_02.jpg]   # files, folders or globs
      consent: consent/jdoe.yaml
    profile: cpu-preview             # a name under configs/profiles, or a path to a YAML file
    output:
      exr: {compression: zip}        # zip | piz | dwaa
      review:
        codec: prores_422hq          # prores_422hq | prores_4444
        # optional, over the profile's deliver.review (default: the plate's own encoding):
        # display: "Rec.1886 Rec.709 - Display"
        # view: "ACES 2.0 - SDR 100 nits (Rec.709)"
        # look: luts/show.cube       # a LUT or CDL file OCIO reads
        # cdl: {slope: [1, 1, 1], offset: [0, 0, 0], power: [1, 1, 1], saturation: 1}

Relative paths resolve against the spec file's own folder. :func:`load_shot` reports every
problem at once, each with its file and key.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from pipeline.config import from_mapping, read_yaml
from pipeline.delivery.review import ReviewLook
from pipeline.errors import ShotSpecError
from pipeline.frames import MAX_PLATE_FRAMES, FrameRange
from pipeline.io.movie import MOVIE_SUFFIXES
from pipeline.workspace import NAME_RE

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".exr", ".dpx", ".bmp", ".webp"}


@dataclass(frozen=True)
class PerformerSpec:
    """Which face in the plate to replace, when it holds several."""

    reference: str | None = None
    seed_box: tuple[float, float, float, float] | None = None


@dataclass(frozen=True)
class PlateSpec:
    path: str
    colorspace: str
    frames: str | int | None = None
    performer: PerformerSpec | None = None


@dataclass(frozen=True)
class ActorSpec:
    id: str
    references: tuple[str, ...]
    consent: str | None = None


@dataclass(frozen=True)
class ExrOutput:
    compression: Literal["zip", "piz", "dwaa"] = "zip"


@dataclass(frozen=True)
class ReviewOutput(ReviewLook):
    """The review movie's codec, and its transform over the profile's ``deliver.review``."""

    codec: Literal["prores_422hq", "prores_4444"] = "prores_422hq"

    def look_settings(self) -> ReviewLook:
        return ReviewLook(
            display=self.display, view=self.view, look=self.look, look_cccid=self.look_cccid,
            cdl=self.cdl,
        )  # fmt: skip


@dataclass(frozen=True)
class OutputSpec:
    exr: ExrOutput = field(default_factory=ExrOutput)
    review: ReviewOutput = field(default_factory=ReviewOutput)


@dataclass(frozen=True)
class _RawShot:
    shot: str
    plate: PlateSpec
    actor: ActorSpec
    profile: str = "cpu-preview"
    output: OutputSpec = field(default_factory=OutputSpec)


@dataclass(frozen=True)
class ShotSpec:
    """A validated shot with every path resolved to an absolute one.

    Attributes:
        source: the spec file.
        plate_path: the movie file or sequence pattern, absolute.
        frames: the requested range, or ``None`` for all frames.
        references: the actor's reference files, expanded and sorted.
        consent_path: the consent record, or ``None`` when the spec names none.
        performer_reference: a still of the plate performer, for identity lock.
        seed_box: the performer's face box on the first frame, for identity lock.
        review: the spec's review settings (display, view, look, CDL), over the profile's.
    """

    source: Path
    shot: str
    plate_path: Path
    colorspace: str
    frames: FrameRange | None
    actor_id: str
    references: tuple[Path, ...]
    consent_path: Path | None
    profile: str
    exr_compression: str
    review_codec: str
    performer_reference: Path | None = None
    seed_box: tuple[float, float, float, float] | None = None
    review: ReviewLook = field(default_factory=ReviewLook)

    def with_profile(self, profile: str) -> ShotSpec:
        return replace(self, profile=profile)


def _resolve(base: Path, value: str) -> Path:
    p = Path(os.path.expanduser(value))
    return p if p.is_absolute() else (base / p)


def _expand_references(
    base: Path, items: tuple[str, ...], src: str, problems: list[str]
) -> list[Path]:
    out: list[Path] = []
    for i, item in enumerate(items):
        key = f"actor.references[{i}]"
        p = _resolve(base, item)
        if any(ch in item for ch in "*?["):
            hits = [Path(h) for h in sorted(glob.glob(str(p), recursive=True))]
            hits = [
                h
                for h in hits
                if h.is_file() and h.suffix.lower() in IMAGE_SUFFIXES | set(MOVIE_SUFFIXES)
            ]
            if not hits:
                problems.append(f"{src}: {key}: glob {item!r} matches no image or clip")
            out.extend(hits)
        elif p.is_dir():
            hits = sorted(
                h
                for h in p.iterdir()
                if h.is_file() and h.suffix.lower() in IMAGE_SUFFIXES | set(MOVIE_SUFFIXES)
            )
            if not hits:
                problems.append(f"{src}: {key}: folder {item!r} holds no image or clip")
            out.extend(hits)
        elif p.is_file():
            if p.suffix.lower() not in IMAGE_SUFFIXES | set(MOVIE_SUFFIXES):
                problems.append(
                    f"{src}: {key}: {item!r} is not an image or clip (suffix {p.suffix or 'none'}); "
                    f"use one of {', '.join(sorted(IMAGE_SUFFIXES | set(MOVIE_SUFFIXES)))}"
                )
            out.append(p)
        else:
            problems.append(f"{src}: {key}: {item!r} does not exist (resolved to {p})")
    seen: set[Path] = set()
    unique = []
    for p in out:
        if p not in seen:
            seen.add(p)
            unique.append(p)
    return unique


def _check_plate_path(path: Path, raw: str, src: str, problems: list[str]) -> None:
    text = str(path)
    if any(tok in text for tok in ("#", "%0", "@")):
        folder = path.parent
        if not folder.is_dir():
            problems.append(
                f"{src}: plate.path: folder of sequence {raw!r} does not exist ({folder})"
            )
        return
    if not path.is_file():
        problems.append(f"{src}: plate.path: {raw!r} does not exist (resolved to {path})")
    elif path.suffix.lower() not in MOVIE_SUFFIXES:
        problems.append(
            f"{src}: plate.path: {raw!r} is neither a movie ({', '.join(sorted(MOVIE_SUFFIXES))}) "
            "nor a sequence pattern such as plates/sh010.####.exr"
        )


def _review(
    raw: ReviewOutput, base: Path, src: str, check_files: bool, problems: list[str]
) -> ReviewLook:
    """The spec's review settings, the look file resolved against the spec's folder."""
    review = raw.look_settings().resolved(base)
    if check_files and review.look is not None and not Path(review.look).is_file():
        problems.append(
            f"{src}: output.review.look: {raw.look!r} does not exist (resolved to {review.look})"
        )
    return review


def load_shot(path: str | os.PathLike[str], *, check_files: bool = True) -> ShotSpec:
    """Parse and validate a shot spec.

    Args:
        path: the YAML file.
        check_files: also check that the plate, references and consent files exist.

    Raises:
        ShotSpecError: listing every problem found, each as ``file: key: what``.
    """
    src_path = Path(path).resolve()
    src = str(src_path)
    data = read_yaml(src_path, ShotSpecError)
    problems: list[str] = []
    if not isinstance(data, dict):
        raise ShotSpecError(
            [f"{src}: <top>: expected a mapping of keys, got {type(data).__name__}"]
        )
    raw = from_mapping(_RawShot, data, source=src, problems=problems)
    if raw is None:
        raise ShotSpecError(
            problems, "see the shot-spec section of README.md for the accepted keys"
        )
    base = src_path.parent
    if not NAME_RE.match(raw.shot):
        problems.append(
            f"{src}: shot: {raw.shot!r} is not a valid shot name; use 1-64 of A-Z a-z 0-9 _ - "
            "(no paths, spaces or shell characters)"
        )
    if not NAME_RE.match(raw.actor.id):
        problems.append(f"{src}: actor.id: {raw.actor.id!r} must be 1-64 of A-Z a-z 0-9 _ -")
    frames = None
    if raw.plate.frames is not None:
        try:
            frames = FrameRange.parse(raw.plate.frames)
        except ValueError as exc:
            problems.append(f"{src}: plate.frames: {exc}")
        else:
            if len(frames) > MAX_PLATE_FRAMES:
                problems.append(
                    f"{src}: plate.frames: {frames} is {len(frames)} frames, over the limit of "
                    f"{MAX_PLATE_FRAMES} per shot"
                )
    if not raw.actor.references:
        problems.append(f"{src}: actor.references: at least one reference image or clip is needed")
    plate_path = _resolve(base, raw.plate.path)
    refs: list[Path] = []
    consent = _resolve(base, raw.actor.consent) if raw.actor.consent else None
    perf = raw.plate.performer or PerformerSpec()
    perf_ref = _resolve(base, perf.reference) if perf.reference else None
    if perf.seed_box is not None:
        x0, y0, x1, y1 = perf.seed_box
        if not (x1 > x0 and y1 > y0):
            problems.append(
                f"{src}: plate.performer.seed_box: {list(perf.seed_box)} must be [x0, y0, x1, y1] with x1>x0, y1>y0"
            )
    if check_files:
        _check_plate_path(plate_path, raw.plate.path, src, problems)
        refs = _expand_references(base, raw.actor.references, src, problems)
        if consent is not None and not consent.is_file():
            problems.append(
                f"{src}: actor.consent: {raw.actor.consent!r} does not exist (resolved to {consent})"
            )
        if perf_ref is not None and not perf_ref.is_file():
            problems.append(f"{src}: plate.performer.reference: {perf.reference!r} does not exist")
    else:
        refs = [_resolve(base, r) for r in raw.actor.references]
    review = _review(raw.output.review, base, src, check_files, problems)
    if problems:
        raise ShotSpecError(
            problems, "see the shot-spec section of README.md for the accepted keys"
        )
    return ShotSpec(
        source=src_path,
        shot=raw.shot,
        plate_path=plate_path,
        colorspace=raw.plate.colorspace,
        frames=frames,
        actor_id=raw.actor.id,
        references=tuple(refs),
        consent_path=consent,
        profile=raw.profile,
        exr_compression=raw.output.exr.compression,
        review_codec=raw.output.review.codec,
        performer_reference=perf_ref,
        seed_box=perf.seed_box,
        review=review,
    )
