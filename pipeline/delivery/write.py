"""A shot version written atomically: the EXR sequence with its layers and provenance, and the
ProRes review movie with burn-ins."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np

from pipeline import __version__
from pipeline.atomic import atomic_dir
from pipeline.color import ColorPipeline
from pipeline.delivery.credentials import C2paParams
from pipeline.delivery.review import ReviewLook, ReviewTransform, review_transform
from pipeline.errors import ColorError
from pipeline.frames import Timecode
from pipeline.io.exr import write_exr
from pipeline.io.plate_cache import CachedPlate, read_cached_frame
from pipeline.io.prores import ProResWriter


@dataclass(frozen=True)
class DeliveryParams:
    """How a version is written (the deliver stage's config extends them).

    Attributes:
        output_colorspace: the EXRs' colour space (an OCIO name), converted from the working
            space.
        review: how the review movie and QC images are rendered: by default the plate's own
            encoding; or a display and view, a show look file, a CDL
            (:class:`~pipeline.delivery.review.ReviewLook`).
        burn_in: burn shot, version, frame, timecode, the review transform and a SYNTHETIC
            warning into the review.
        owner: the EXRs' ``owner`` attribute (empty: none).
        c2pa: the signing certificate and key for content credentials
            (:class:`~pipeline.delivery.credentials.C2paParams`); none: unsigned.
    """

    RENAMED_KEYS: ClassVar[dict[str, str]] = {
        "review_display": "review.display",
        "review_view": "review.view",
    }

    output_colorspace: str = "ACEScg"
    review: ReviewLook = field(default_factory=ReviewLook)
    burn_in: bool = True
    owner: str = ""
    c2pa: C2paParams = field(default_factory=C2paParams)

    def validate(self) -> list[tuple[str, str]]:
        """Problems as ``(key, what)``; the colour names are checked against the OCIO config
        when the version is written (``review`` checks itself)."""
        return []


@dataclass(frozen=True)
class DeliveredFrame:
    """One frame to deliver.

    Attributes:
        number: the plate frame number.
        composite: H×W×3 float32, scene-linear working space.
        face: H×W×4 float32 premultiplied RGBA of the synthesized face (working space), or None.
        alpha: H×W float32 matte of the composite (1 where the plate is opaque), or None for 1.
        synthetic: whether any synthesized pixel is in this frame.
    """

    number: int
    composite: np.ndarray
    face: np.ndarray | None = None
    alpha: np.ndarray | None = None
    synthetic: bool = False


@dataclass(frozen=True)
class DeliveryResult:
    exr_dir: Path
    exr_pattern: str
    review: Path
    frames: int


def plate_frames(plate: CachedPlate) -> Iterator[DeliveredFrame]:
    """The plate itself, untouched, as frames to deliver (before synthesis lands, and for QC)."""
    for n in plate.frames:
        yield DeliveredFrame(number=n, composite=read_cached_frame(plate, n))


def burn_in(img: np.ndarray, lines: list[str], warn: str | None) -> np.ndarray:
    """Burn text into a display-referred frame.

    Args:
        img: H×W×C float32, display-referred 0..1 (C is 3, or 4 with alpha left untouched).
        lines: text lines for the top-left corner.
        warn: a red warning for the bottom-left corner (e.g. "SYNTHETIC"), or None.

    Returns:
        H×W×C float32, a new array.
    """
    h, w = img.shape[:2]
    scale = max(0.35, h / 1080.0)
    thick = max(1, int(round(scale * 2)))
    # Text is drawn as 8-bit coverage masks (OpenCV draws text on 8-bit images only), then
    # composited: a dark outline for legibility on any plate, then the glyphs.
    shadow = np.zeros((h, w), np.uint8)
    text = np.zeros((h, w), np.uint8)
    red = np.zeros((h, w), np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    y = int(28 * scale)
    for line in lines:
        org = (int(10 * scale), y)
        cv2.putText(shadow, line, org, font, 0.6 * scale, 255, thick + 2, cv2.LINE_AA)
        cv2.putText(text, line, org, font, 0.6 * scale, 255, thick, cv2.LINE_AA)
        y += int(26 * scale)
    if warn:
        org = (int(10 * scale), h - int(14 * scale))
        cv2.putText(shadow, warn, org, font, 0.8 * scale, 255, thick + 3, cv2.LINE_AA)
        cv2.putText(red, warn, org, font, 0.8 * scale, 255, thick + 1, cv2.LINE_AA)
    out = img.astype(np.float32, copy=True)
    rgb = out[..., :3]
    a_sh = (shadow.astype(np.float32) / 255.0)[..., None]
    rgb *= 1.0 - a_sh
    a_tx = (text.astype(np.float32) / 255.0)[..., None]
    rgb += a_tx * (1.0 - rgb)
    a_red = (red.astype(np.float32) / 255.0)[..., None]
    rgb[:] = rgb * (1.0 - a_red) + a_red * np.array([1.0, 0.15, 0.1], np.float32)
    return out


def write_delivery(
    shot: str,
    version: str,
    plate: CachedPlate,
    frames: Iterable[DeliveredFrame],
    params: DeliveryParams,
    out_dir: Path,
    *,
    compression: str,
    review_codec: str,
    provenance: dict[str, str],
    ocio_config: str | None = None,
    review: ReviewTransform | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_frame: Callable[[DeliveredFrame, np.ndarray], None] | None = None,
    finalize: Callable[[Path], None] | None = None,
) -> DeliveryResult:
    """Write a shot version's EXR sequence and review movie into ``out_dir`` atomically.

    Args:
        shot: the shot name.
        version: ``v001`` …
        plate: the ingested plate (size, rate, timecode, working space).
        frames: what to deliver, in frame order.
        params: the output colour space, review look, burn-ins and owner.
        out_dir: the final folder ``<out_dir>/exr/<shot>.####.exr`` and
            ``<out_dir>/<shot>_<version>.mov`` appear in; it appears whole.
        compression: EXR compression: zip, piz or dwaa.
        review_codec: prores_422hq or prores_4444.
        provenance: ``likeness:*`` attributes for every frame and the movie.
        ocio_config: the OCIO config (None: $OCIO or the built-in studio config).
        review: the review's transform, already built (None: built from ``params.review``).
        progress: optional callable ``(done, total)``.
        on_frame: optional callable ``(frame, review: H×W×3 float32)`` seeing every delivered
            frame and its review rendering (before burn-ins), e.g. for QC.
        finalize: optional callable ``(folder)`` run inside the temporary folder after the
            frames are written and before it is renamed into place (e.g. the QC report).

    Raises:
        ColorError: an output colour space, display or view the OCIO config lacks, or a look
            file OCIO cannot apply.
        EncodeError, DiskFullError: a frame or the movie could not be written.
    """
    color = ColorPipeline(ocio_config)
    color.check_space(params.output_colorspace)
    if review is None:
        review = review_transform(
            color, plate.working_space, plate.source_colorspace, params.review
        )
    try:
        chroma = color.chromaticities(params.output_colorspace)
    except ColorError:  # a space without primaries (a display space) has none to record
        chroma = None
    attrs = {
        "likeness:shot": shot,
        "likeness:version": version,
        "likeness:tool_version": __version__,
        "likeness:colorspace": params.output_colorspace,
        "likeness:timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **provenance,
    }
    movie_name = f"{shot}_{version}.mov"
    with atomic_dir(out_dir) as tmp:
        exr_dir = tmp / "exr"
        exr_dir.mkdir()
        movie_meta = {k.replace("likeness:", "likeness_"): v for k, v in attrs.items()}
        movie_meta["comment"] = f"likeness {__version__} {shot} {version}"
        movie_meta["likeness_review_transform"] = review.description
        movie_meta["likeness_review_colorspace"] = review.target
        movie_meta["likeness_review_tags"] = review.tags.note
        with ProResWriter(
            tmp / movie_name, width=plate.width, height=plate.height, fps=plate.fps,
            codec=review_codec, timecode=plate.timecode_at(plate.frames.first),
            metadata=movie_meta, tags=review.tags,
        ) as movie:  # fmt: skip
            done = 0
            for fr in frames:
                tc = plate.timecode_at(fr.number)
                exr = exr_dir / f"{shot}.{fr.number:04d}.exr"
                _write_exr(exr, fr, plate, params, color, compression, chroma, attrs, tc)
                disp = review(fr.composite)  # H×W×3 float32, 0..1 in review.target
                if on_frame is not None:
                    on_frame(fr, disp)
                movie.write(
                    _review_frame(fr, disp, review_codec, params, shot, version, tc, review)
                )
                done += 1
                if progress is not None:
                    progress(done, len(plate.frames))
        if finalize is not None:
            finalize(tmp)
    return DeliveryResult(
        exr_dir=out_dir / "exr",
        exr_pattern=str(out_dir / "exr" / f"{shot}.####.exr"),
        review=out_dir / movie_name,
        frames=done,
    )


def _write_exr(
    path: Path,
    fr: DeliveredFrame,
    plate: CachedPlate,
    params: DeliveryParams,
    color: ColorPipeline,
    compression: str,
    chroma: tuple[float, ...] | None,
    attrs: dict[str, str],
    tc: Timecode | None,
) -> None:
    """One delivered EXR: RGBA of the composite and, with a face, the ``face`` layer, both
    converted from the working space to the output colour space."""
    out_space = params.output_colorspace
    comp = fr.composite  # H×W×3 float32 scene-linear working space
    if out_space != plate.working_space:
        comp = color.convert(comp, plate.working_space, out_space)
    alpha = fr.alpha if fr.alpha is not None else np.ones(comp.shape[:2], np.float32)
    layers = {"": np.dstack([comp, alpha])}
    if fr.face is not None:
        face = fr.face  # H×W×4 premultiplied RGBA, working space
        if out_space != plate.working_space:
            rgb = color.convert(np.ascontiguousarray(face[..., :3]), plate.working_space, out_space)
            face = np.dstack([rgb, face[..., 3]])
        layers["face"] = face
    write_exr(
        path, layers, compression=compression, fps=plate.fps, timecode=tc,
        chromaticities=chroma, owner=params.owner or None,
        attrs={**attrs, "likeness:synthetic": "1" if fr.synthetic else "0"},
    )  # fmt: skip


def _review_frame(
    fr: DeliveredFrame,
    disp: np.ndarray,
    review_codec: str,
    params: DeliveryParams,
    shot: str,
    version: str,
    tc: Timecode | None,
    review: ReviewTransform,
) -> np.ndarray:
    """The review movie's frame: the review rendering (H×W×3 float32), with the face matte as
    alpha for ProRes 4444, and the burn-ins (which name the review transform)."""
    if review_codec == "prores_4444":
        matte = fr.face[..., 3] if fr.face is not None else np.zeros(disp.shape[:2], np.float32)
        disp = np.dstack([disp, matte])
    if params.burn_in:
        disp = burn_in(
            disp, burn_in_lines(shot, version, fr.number, tc, review),
            "SYNTHETIC" if fr.synthetic else None,
        )  # fmt: skip
    return disp.astype(np.float32)


def burn_in_lines(
    shot: str, version: str, number: int, tc: Timecode | None, review: ReviewTransform
) -> list[str]:
    """The review's burn-in text: shot and version, frame, timecode, and, when the review is not
    simply the plate's encoding, its display transform and look (so that nobody takes them for
    the plate)."""
    lines = [f"{shot} {version}", f"frame {number}", f"TC {tc}" if tc else "TC --"]
    return lines if review.plain else [*lines, review.short]
