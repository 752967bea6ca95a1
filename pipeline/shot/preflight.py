"""Preflight: everything that can be known about a shot before any stage runs, checked at once.

``likeness validate`` and ``likeness submit`` (and ``likeness worker`` with specs, and the farm
adapters before they write job files) run :func:`preflight` on every shot and refuse the batch
when one has a problem, listing them all, each with its file and what to do:

- the spec, its profile and the plate's colour space parse and validate;
- the plate opens, its frame range exists, and its first and last frames decode;
- every reference opens as an image or movie and shows one face (none, or several of similar
  size, is a problem naming the reference);
- the signing certificate, when the profile names one or requires signing, is readable, for
  signing, and valid today;
- the consent record parses, names this actor, has not expired today, and its scope covers the
  profile's ``use`` when the profile names one;
- the performer is found on the plate's first frames, or the hint (``plate.performer``) names a
  face;
- the workdir is writable and has room for the shot's estimated output.

The media checks (plate, references, performer) cost a few seconds a shot; their success is
cached in the workdir by the digest of the spec, the profile and every input file's size and
modification time, so resubmitting an unchanged shot checks them once. Consent and disk room are
checked every time: they change with the date and the disk, not with the inputs.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import __version__
from pipeline.atomic import write_json
from pipeline.color import ColorPipeline
from pipeline.config import digest
from pipeline.consent import load_consent
from pipeline.delivery.credentials import load_identity
from pipeline.delivery.review import review_transform
from pipeline.errors import (
    ColorError,
    DecodeError,
    IdentityError,
    LikenessError,
    NoFaceError,
    PreflightError,
    ShotSpecError,
    WorkdirError,
)
from pipeline.frames import FrameRange, parse_rate
from pipeline.io import open_plate
from pipeline.io.sequence import is_sequence_pattern, parse_pattern
from pipeline.references.prepare import FaceFinder, read_reference
from pipeline.shot.plan import deliver_config
from pipeline.shot.profile import Profile, load_profile, profile_path
from pipeline.shot.spec import ShotSpec, load_shot
from pipeline.tracking.hint import hint_from_reference, hint_from_seed
from pipeline.tracking.tracker import track_chunk

#: Plate frames looked at for the performer when no hint names them.
FIRST_FRAMES = 3
#: Bytes a delivered frame takes per plate pixel, at most: the ingest cache (RGB half, 6), the
#: delivered EXR (RGBA and the face layer's RGBA, half: 16), the review movie (ProRes 4444 at
#: most, about 1.5), before compression, so that the estimate is an upper bound.
BYTES_PER_PIXEL = 24
#: A face is one of several of "similar size" (ambiguous) when it has at least this share of the
#: largest face's area (the tracker's rule).
SIMILAR_SIZE = 1 / 1.5


@dataclass
class PreflightReport:
    """What preflight found for one shot.

    Attributes:
        spec_path: the shot spec.
        spec: the parsed spec (None when it could not be parsed).
        profile: its profile (None when it could not be loaded).
        problems: every problem found, each a named error with its file and its fix.
        cached: the media checks were skipped: they passed before on these very inputs.
    """

    spec_path: Path
    spec: ShotSpec | None = None
    profile: Profile | None = None
    problems: list[LikenessError] = field(default_factory=list)
    cached: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_if_problems(self) -> None:
        """Raises: PreflightError listing every problem (exit code: the most serious one's)."""
        if self.problems:
            raise PreflightError(self.spec_path, self.problems)


def preflight(
    spec_path: str | os.PathLike[str],
    workdir: str | os.PathLike[str] | None = None,
    *,
    today: dt.date | None = None,
) -> PreflightReport:
    """Check a shot before any stage runs (see the module docstring). Never raises for a problem
    of the shot: every problem is in the report.

    Args:
        spec_path: the shot spec.
        workdir: the workdir the shot will run in; without one its room and the cache are not
            checked.
        today: the date consent is checked against (UTC today by default).
    """
    report = PreflightReport(Path(spec_path))
    try:
        report.spec = spec = load_shot(spec_path)
    except ShotSpecError as exc:
        report.problems.append(exc)
        return report
    problems = report.problems
    profile = report.profile = _check(
        problems, lambda: load_profile(spec.profile, spec.source.parent)
    )
    _check(problems, lambda: _colour(spec, profile))
    _check(problems, lambda: load_consent(spec.consent_path, spec.actor_id, today=today,
                                          use=profile.use if profile else None))  # fmt: skip
    if profile is None:
        return report
    _check(problems, lambda: _review(spec, profile))
    now = None if today is None else dt.datetime.combine(today, dt.time(12), dt.UTC)
    _check(problems, lambda: load_identity(profile.deliver.c2pa, now))
    wd = Path(workdir) if workdir is not None else None
    stamp = wd / ".cache" / "preflight" / f"{_inputs_digest(spec, profile)}.json" if wd else None
    if stamp is not None and stamp.is_file():
        report.cached = True
    else:
        media: list[LikenessError] = []
        frames = _check(media, lambda: _plate(spec, profile))
        if frames is not None:
            _check(media, lambda: _performer(spec, profile, frames))
        media += _references(spec, profile)
        problems += media
        if stamp is not None and not media and _writable(wd):
            write_json(stamp, {"spec": str(spec.source), "tool_version": __version__})
    if wd is not None:
        _check(problems, lambda: _room(spec, profile, wd))
    return report


def _check(problems: list[LikenessError], fn: Callable[[], Any]) -> Any:
    """``fn()``, or None with its named error added to ``problems``."""
    try:
        return fn()
    except LikenessError as exc:
        problems.append(exc)
    return None


def _colour(spec: ShotSpec, profile: Profile | None) -> None:
    color = ColorPipeline(profile.ingest.ocio_config if profile else None)
    try:
        color.check_space(spec.colorspace)
    except ColorError as exc:
        raise ColorError(f"{spec.source}: plate.colorspace: {exc.message}", exc.hint) from exc


def _review(spec: ShotSpec, profile: Profile) -> None:
    """The review's display, view, look file and CDL build against the OCIO config."""
    color = ColorPipeline(profile.ingest.ocio_config)
    if spec.colorspace not in color.space_names():
        return  # an unknown plate space is _colour's problem
    try:
        review_transform(
            color, profile.ingest.working_space, spec.colorspace,
            deliver_config(profile, spec).review,
        )  # fmt: skip
    except ColorError as exc:
        raise ColorError(f"{spec.source}: review: {exc.message}", exc.hint) from exc


def _plate(spec: ShotSpec, profile: Profile) -> FrameRange:
    """The plate opens, holds the spec's frames, and decodes its first and last of them.

    Returns:
        the shot's frame range.

    Raises:
        DecodeError, MissingFramesError: an unreadable plate or missing frames.
    """
    cfg = profile.ingest
    with open_plate(
        spec.plate_path, first_frame=cfg.movie_first_frame, max_pixels=cfg.max_pixels,
        fps=parse_rate(cfg.sequence_fps),
    ) as reader:  # fmt: skip
        have = reader.info.frames
        want = spec.frames or have
        if want.first < have.first or want.last > have.last:
            raise DecodeError(
                f"plate {spec.plate_path} holds frames {have}, the spec asks for {want}",
                f"set plate.frames inside {have}",
            )
        for n in {want.first, want.last}:
            got = next(reader.read(FrameRange(n, n)), None)
            if got is None:
                raise DecodeError(f"plate {spec.plate_path}: frame {n} does not decode")
    return want


def _first_frames(
    spec: ShotSpec, profile: Profile, frames: FrameRange
) -> list[tuple[int, np.ndarray]]:
    """The shot's first frames as the tracker sees them: H×W×3 uint8 in the plate's encoding."""
    cfg = profile.ingest
    last = min(frames.last, frames.first + FIRST_FRAMES - 1)
    with open_plate(
        spec.plate_path, first_frame=cfg.movie_first_frame, max_pixels=cfg.max_pixels,
        fps=parse_rate(cfg.sequence_fps),
    ) as reader:  # fmt: skip
        return [
            (n, (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))
            for n, img in reader.read(FrameRange(frames.first, last))
        ]


def _performer(spec: ShotSpec, profile: Profile, frames: FrameRange) -> None:
    """The face to replace is found: the hint names a face, or the first frames show one.

    Raises:
        NoFaceError: the performer reference shows no face, no face overlaps the seed box, or no
            face is on the first frames.
        IdentityError: several faces of similar size and no hint.
    """
    cfg = profile.track
    first = _first_frames(spec, profile, frames)
    if spec.performer_reference is not None:
        hint_from_reference(spec.performer_reference, cfg)
        return
    if spec.seed_box is not None:
        hint_from_seed(first[0][1], tuple(float(v) for v in spec.seed_box), cfg)
        return
    track = track_chunk(first, cfg, None)  # IdentityError for several similar faces
    if not np.isfinite(track.points[:, 0, 0]).any():
        raise NoFaceError(
            f"no face found on the first {len(first)} frame(s) of plate {spec.plate_path}",
            "check that the performer's face is in the shot from its first frame (at least about "
            "80 px), set plate.frames to start where it is, or name it: plate.performer.seed_box "
            "or plate.performer.reference",
        )


def _references(spec: ShotSpec, profile: Profile) -> list[LikenessError]:
    """Each reference opens and shows one face (its largest clearly larger than any other)."""
    cfg = profile.references
    find = FaceFinder(cfg.upsample)
    out: list[LikenessError] = []
    for path in spec.references:
        try:
            images = read_reference(path, cfg)
        except DecodeError as exc:
            out.append(exc)
            continue
        for name, img in images:
            dets = find(img)
            where = f"reference {path}" + (f" (frame {name.split('@')[1]})" if "@" in name else "")
            if not dets:
                out.append(NoFaceError(
                    f"no face found in {where}",
                    "remove it from actor.references, or crop it closer to the face",
                ))  # fmt: skip
                break
            areas = [(d.box[2] - d.box[0]) * (d.box[3] - d.box[1]) for d in dets]
            if len(areas) > 1 and areas[1] >= SIMILAR_SIZE * areas[0]:
                out.append(IdentityError(
                    f"{where} shows {len(dets)} faces of similar size",
                    "crop it to the actor's face, so that the fine-tune learns the right person",
                ))  # fmt: skip
                break
    return out


def _writable(wd: Path) -> bool:
    """Whether ``wd`` can be created and written (a test file is made and removed)."""
    try:
        wd.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=wd, prefix=".preflight-"):
            pass
    except OSError:
        return False
    return True


def _room(spec: ShotSpec, profile: Profile, wd: Path) -> None:
    """The workdir is writable and its disk has room for one more version of the shot.

    Raises:
        WorkdirError: not writable, or too little free space (how much is needed is said).
    """
    if not _writable(wd):
        raise WorkdirError(
            f"workdir {wd} cannot be created or written",
            "choose a workdir on a writable volume, or fix its permissions",
        )
    cfg = profile.ingest
    with open_plate(
        spec.plate_path, first_frame=cfg.movie_first_frame, max_pixels=cfg.max_pixels,
        fps=parse_rate(cfg.sequence_fps),
    ) as reader:  # fmt: skip
        info = reader.info
    frames = len(spec.frames or info.frames)
    need = info.width * info.height * BYTES_PER_PIXEL * frames
    free = shutil.disk_usage(wd).free
    if free < need:
        raise WorkdirError(
            f"workdir {wd} has {_size(free)} free; shot {spec.shot} needs up to {_size(need)} "
            f"({frames} frames of {info.width}×{info.height}: ingest cache, EXRs with the face "
            "layer, review movie)",
            "free some space or choose a workdir on a larger volume",
        )


def _size(n: float) -> str:
    """``4.9 MB``, ``1.2 GB``: decimal units, as disks are sold."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} TB"


def _inputs_digest(spec: ShotSpec, profile: Profile) -> str:
    """What the media checks depend on: the spec and profile files, every input file's size and
    modification time, and the tool's version."""
    files = [spec.source, profile_path(spec.profile, spec.source.parent), *spec.references]
    if is_sequence_pattern(spec.plate_path):
        files += sorted(parse_pattern(spec.plate_path).scan().values())
    else:
        files.append(spec.plate_path)
    if spec.performer_reference is not None:
        files.append(spec.performer_reference)
    stats = []
    for f in files:
        try:
            st = Path(f).stat()
            stats.append([str(Path(f).resolve()), st.st_size, st.st_mtime_ns])
        except OSError:
            stats.append([str(f), None, None])
    return digest({"version": __version__, "files": stats})
