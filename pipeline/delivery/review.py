"""What the review movie and the QC page show: the plate's own encoding unless a show look says
otherwise.

The EXRs are scene-linear; the review is for people comparing a shot with editorial. By default
it is rendered back to the plate's input colour space (the inverse of ingest's transform), so that
outside the face it matches the plate within codec noise. A profile's ``deliver.review`` section,
or the shot spec's ``output.review``, can name instead:

- a ``display`` and ``view`` of the OCIO config (e.g. ``Rec.1886 Rec.709 - Display`` /
  ``ACES 2.0 - SDR 100 nits (Rec.709)``), rendered from the working space;
- a show ``look``: a LUT or CDL file OCIO reads (``FileTransform``: .cube, .clf, .cdl, .cc, .ccc,
  .3dl, .spi1d, .spi3d …), applied to the encoded review pixels;
- an inline ``cdl`` (ASC CDL slope, offset, power, saturation; OCIO ``CDLTransform``), applied to
  the encoded review pixels before the look file.

Plates that are not video-encoded (scene-linear EXRs, camera log) have no encoding a viewer can
show; their review uses the config's default display and view unless one is named.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import PyOpenColorIO as ocio

from pipeline.color import VIDEO_ENCODINGS, ColorPipeline, VideoTags
from pipeline.errors import ColorError
from pipeline.hashing import sha256_file


@dataclass(frozen=True)
class CDL:
    """An ASC CDL: per channel ``out = clamp(in × slope + offset) ** power``, then saturation
    around Rec.709 luma.

    Attributes:
        slope: R, G, B slope (≥ 0).
        offset: R, G, B offset.
        power: R, G, B power (> 0).
        saturation: saturation (≥ 0; 1 leaves it).
    """

    slope: tuple[float, float, float] = (1.0, 1.0, 1.0)
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    power: tuple[float, float, float] = (1.0, 1.0, 1.0)
    saturation: float = 1.0

    def validate(self) -> list[tuple[str, str]]:
        """Problems as ``(key, what)``."""
        probs = []
        if any(v < 0 for v in self.slope):
            probs.append(("slope", f"{list(self.slope)} must be ≥ 0"))
        if any(v <= 0 for v in self.power):
            probs.append(("power", f"{list(self.power)} must be > 0"))
        if self.saturation < 0:
            probs.append(("saturation", f"{self.saturation} must be ≥ 0"))
        return probs

    def describe(self) -> str:
        return (
            f"CDL slope {_triple(self.slope)} offset {_triple(self.offset)} power "
            f"{_triple(self.power)} sat {self.saturation:g}"
        )


@dataclass(frozen=True)
class ReviewLook:
    """How the review is rendered, beyond the default (the plate's own encoding).

    Attributes:
        display: an OCIO display to render to instead of the plate's encoding.
        view: a view of that display (default: the display's default view).
        look: a LUT or CDL file for OCIO's ``FileTransform``, applied to the encoded review
            pixels; a relative path resolves against the file that names it (profile or spec).
        look_cccid: which correction of a ``.ccc``/``.cdl`` collection ``look`` holds.
        cdl: an inline ASC CDL, applied to the encoded review pixels before ``look``.
    """

    display: str | None = None
    view: str | None = None
    look: str | None = None
    look_cccid: str | None = None
    cdl: CDL | None = None

    def validate(self) -> list[tuple[str, str]]:
        """Problems as ``(key, what)`` (the config loader checks ``cdl`` itself); names are
        checked against the OCIO config, and the look file is read, when the transform is
        built."""
        probs = []
        if self.view is not None and self.display is None:
            probs.append(("view", f"{self.view!r} needs a display; name review.display too"))
        if self.look_cccid is not None and self.look is None:
            probs.append(("look_cccid", "names a correction but no look file is given"))
        return probs

    def over(self, base: ReviewLook) -> ReviewLook:
        """These settings over ``base``: every field set here wins (a shot spec over its
        profile). A display named here drops the base's view, which belongs to its display."""
        merged = {f.name: getattr(self, f.name) for f in fields(self)}
        for f in fields(self):
            if merged[f.name] is None:
                merged[f.name] = getattr(base, f.name)
        if self.display is not None and self.view is None:
            merged["view"] = None
        return ReviewLook(**merged)

    def resolved(self, base: Path) -> ReviewLook:
        """The look path made absolute against ``base`` (the naming file's folder)."""
        if self.look is None or Path(self.look).expanduser().is_absolute():
            return self
        return replace(self, look=str(base / Path(self.look).expanduser()))

    def digest_fields(self) -> dict[str, object]:
        """What changes the review's pixels, for the deliver stage's key: the settings and the
        look file's content."""
        look = Path(self.look).expanduser() if self.look else None
        return {
            "display": self.display,
            "view": self.view,
            "look": str(look) if look else None,
            "look_sha256": sha256_file(look) if look and look.is_file() else None,
            "look_cccid": self.look_cccid,
            "cdl": None if self.cdl is None else self.cdl.describe(),
        }


@dataclass(frozen=True)
class ReviewTransform:
    """The review's colour transform, built against one OCIO config.

    Attributes:
        working_space: what it reads (the scene-linear working space).
        target: the colour space its pixels are encoded in (the plate's, or the display's).
        description: what it does, in words: for the burn-in, movie metadata and QC page.
        short: a one-line name for the burn-in.
        plain: the plate's own encoding, no display transform and no look (nothing to flag).
        tags: the movie's colour tags for ``target``.
        color: the OCIO config it was built against.
        transform: the OCIO transform (a group: to the target, then the CDL and look).
    """

    working_space: str
    target: str
    description: str
    short: str
    plain: bool
    tags: VideoTags
    color: ColorPipeline = field(repr=False, compare=False)
    transform: ocio.Transform = field(repr=False, compare=False)

    def __call__(self, img: np.ndarray) -> np.ndarray:
        """Render working-space pixels for review.

        Args:
            img: H×W×3 float32, scene-linear working space.

        Returns:
            H×W×3 float32, 0..1, encoded in ``target`` (through the look when one is set).
        """
        return self.color.apply(img, self.transform, clip=True)


def review_transform(
    color: ColorPipeline, working_space: str, plate_space: str, look: ReviewLook
) -> ReviewTransform:
    """Build the review's transform.

    Args:
        color: the OCIO config.
        working_space: the scene-linear space the composite is in.
        plate_space: the plate's input colour space (the default target, when it is a video
            encoding).
        look: the display, view, look file and CDL the profile and spec name.

    Raises:
        ColorError: an unknown display or view, an unreadable look file, a look file OCIO
            cannot apply, or bad CDL values.
    """
    probs = look.validate()
    if look.cdl is not None:
        probs.extend((f"cdl.{k}", v) for k, v in look.cdl.validate())
    if probs:
        raise ColorError(
            "review: " + "; ".join(f"{k}: {v}" for k, v in probs),
            "fix deliver.review in the profile, or output.review in the shot spec",
        )
    color.check_space(working_space)
    steps: list[ocio.Transform] = []
    display, view = look.display, look.view
    if display is None and color.encoding(plate_space) not in VIDEO_ENCODINGS:
        display, view = color.default_display_view()
        why = f"the plate's {plate_space!r} is {color.encoding(plate_space) or 'not video'}"
    else:
        why = ""
    if display is not None:
        if view is None:
            view = str(color.config.getDefaultView(display))
        target = color.display_space(display, view)
        steps.append(ocio.DisplayViewTransform(src=working_space, display=display, view=view))
        short = f"{display} / {view}"
        description = f"OCIO display {display!r}, view {view!r}" + (f" ({why})" if why else "")
    else:
        target = plate_space
        steps.append(ocio.ColorSpaceTransform(src=working_space, dst=plate_space))
        short = plate_space
        description = f"the plate's encoding, {plate_space!r} (no display transform)"
    if look.cdl is not None:
        c = look.cdl
        steps.append(
            ocio.CDLTransform(slope=list(c.slope), offset=list(c.offset), power=list(c.power),
                              sat=c.saturation)
        )  # fmt: skip
        short += " + CDL"
        description += f", then {c.describe()}"
    if look.look is not None:
        steps.append(_look_file(look))
        name = Path(look.look).name
        short += f" + {name}"
        description += f", then the look {name}" + (
            f" ({look.look_cccid})" if look.look_cccid else ""
        )
    plain = len(steps) == 1 and display is None
    rt = ReviewTransform(
        working_space, target, description, short, plain, color.video_tags(target), color,
        ocio.GroupTransform(steps),
    )  # fmt: skip
    rt(np.zeros((1, 1, 3), np.float32))  # builds the processor now: bad names or LUTs fail here
    return rt


def _look_file(look: ReviewLook) -> ocio.FileTransform:
    path = Path(str(look.look)).expanduser()
    if not path.is_file():
        raise ColorError(
            f"review look file {path} does not exist",
            "fix review.look (a LUT or CDL file: .cube, .clf, .cdl, .cc, .ccc, .3dl, .spi3d …)",
        )
    ft = ocio.FileTransform(
        src=str(path), interpolation=ocio.INTERP_BEST, direction=ocio.TRANSFORM_DIR_FORWARD
    )
    if look.look_cccid:
        ft.setCCCId(look.look_cccid)
    return ft


def _triple(v: tuple[float, float, float]) -> str:
    return "(" + ", ".join(f"{x:g}" for x in v) + ")"
