"""``likeness validate``: check a shot spec, its profile and its colour space, all at once."""

from __future__ import annotations

from pathlib import Path

from pipeline.color import ColorPipeline
from pipeline.errors import ColorError, ConfigError, ShotSpecError
from pipeline.shot.profile import Profile, load_profile
from pipeline.shot.spec import ShotSpec, load_shot


def validate_shot(path: str | Path) -> tuple[ShotSpec, Profile]:
    """Validate a shot spec and everything it names.

    Raises:
        ShotSpecError: every problem found in the spec, its profile and its colour space.
    """
    spec = load_shot(path)
    problems: list[str] = []
    profile = None
    try:
        profile = load_profile(spec.profile, spec.source.parent)
    except ConfigError as exc:
        problems.extend(exc.problems)
    try:
        color = ColorPipeline(profile.ingest.ocio_config if profile else None)
        color.check_space(spec.colorspace)
    except ColorError as exc:
        problems.append(
            f"{spec.source}: plate.colorspace: {exc.message}"
            + (f" ({exc.hint})" if exc.hint else "")
        )
    if problems or profile is None:
        raise ShotSpecError(problems)
    return spec, profile
