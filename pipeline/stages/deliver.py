"""The delivery stage: the synthesized faces composited into the plate, and the shot version
written: the EXR sequence, the review movie and the QC page, with provenance and an audit line
(consent required).

Compositing runs in scene-linear ACEScg on the ingest cache. Frames where tracking failed pass
the plate through untouched and are listed in QC.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline.color import ColorPipeline
from pipeline.composite.comp import composite_sequence
from pipeline.composite.config import CompositeConfig
from pipeline.consent import load_consent
from pipeline.delivery.credentials import Claims, VersionSigner, load_identity, sign_version
from pipeline.delivery.review import review_transform
from pipeline.delivery.sources import FaceCrops, PlateFrames
from pipeline.delivery.write import (
    DeliveredFrame,
    DeliveryParams,
    DeliveryResult,
    plate_frames,
    write_delivery,
)
from pipeline.inference.actor import checkpoint_sha256
from pipeline.inference.faces import FACES_FILE, Faces, join_faces, load_faces
from pipeline.io.plate_cache import CachedPlate, load_cached_plate
from pipeline.landmarks.sidecar import Landmarks, load_landmarks
from pipeline.provenance import append_audit, provenance_attrs
from pipeline.qc.contact import ContactCollector, finetune_note, training_curves
from pipeline.qc.detail import detail_ratio
from pipeline.qc.report import ReportContext, write_report
from pipeline.qc.tracking import jitter
from pipeline.stages.track import LANDMARKS_FILE
from pipeline.workspace import read_manifest

log = logging.getLogger("likeness")

#: Frames shown on the QC page's contact sheet.
CONTACT_ROWS = 4
#: The per-frame measures the QC page plots.
_DIFF, _COVER = "mean |composite - plate| (linear)", "matte coverage (fraction of frame)"
_DETAIL = "detail, delivered / plate (LoG σ=1 in the face hull)"


@dataclass(frozen=True)
class DeliverConfig(DeliveryParams):
    """The ``deliver:`` section of a profile: how a version is written
    (:class:`~pipeline.delivery.write.DeliveryParams`)."""


def run_deliver(
    inputs: Mapping[str, Any],
    cfg: DeliverConfig,
    composite_cfg: CompositeConfig,
    out_dir: Path,
    *,
    shot: str,
    version: str,
    actor_id: str,
    consent_path: Path | None,
    use: str | None = None,
    audit_dir: Path,
    source_plate: str,
    source_fingerprint: str,
    delivery_key: str,
    exr_compression: str,
    review_codec: str,
    ocio_config: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Composite and deliver one shot version into ``out_dir`` (the version folder).

    Args:
        inputs: the upstream stage folders by stage name: ``ingest``, ``track``, ``finetune``
            (a folder each) and ``synth_chunk`` (a list of chunk folders).
        cfg: the deliver config.
        composite_cfg: the profile's ``composite:`` section.
        out_dir: the version folder (appears whole).
        shot, version: names for files and burn-ins.
        actor_id, consent_path: the actor, whose consent is checked first.
        use: the profile's use, which the consent's scope must cover (None: any).
        audit_dir: the folder of the append-only ``audit.log`` (the workdir).
        source_plate, source_fingerprint: the plate's path and SHA-256 fingerprint (provenance).
        delivery_key: the version's key (provenance).
        exr_compression, review_codec: from the shot spec.
        ocio_config: the OCIO config (None: $OCIO or the built-in studio config).
        progress: optional callable ``(done, total)``.

    Returns:
        manifest extras: the outputs, untouched frames, QC page, timings, edge flicker.

    Raises:
        ConsentError: no valid, unexpired consent record for the actor.
        StageError: the synthesis chunks do not tile the plate.
    """
    consent = load_consent(consent_path, actor_id, use=use)
    identity = load_identity(cfg.c2pa)  # before any work: an expired certificate stops here
    model_sha = checkpoint_sha256(inputs["finetune"])
    provenance = provenance_attrs(
        synthetic=True, actor_id=actor_id, consent_id=consent.consent_id, model_sha256=model_sha,
        source_plate_sha256=source_fingerprint,
        extra={"source_plate": source_plate, "delivery_key": delivery_key},
    )  # fmt: skip
    plate = load_cached_plate(inputs["ingest"])
    faces = join_faces([load_faces(d / FACES_FILE) for d in inputs["synth_chunk"]], plate)
    signer = None
    if identity is None:
        log.warning("%s %s: the outputs are unsigned (no deliver.c2pa certificate in the "
                    "profile): they carry no content credentials", shot, version)  # fmt: skip
    else:
        signer = VersionSigner(identity, Claims(
            shot, version, actor_id, consent.consent_id, model_sha, source_plate,
            source_fingerprint,
        ))  # fmt: skip
    result, extra = deliver_version(
        shot=shot, version=version, plate=plate,
        lm=load_landmarks(inputs["track"] / LANDMARKS_FILE), faces=faces,
        composite_cfg=composite_cfg, cfg=cfg, out_dir=out_dir, compression=exr_compression,
        review_codec=review_codec, provenance=provenance, ocio_config=ocio_config,
        stage_timings=_stage_timings(inputs), progress=progress,
        training_curves=inputs["finetune"] / "loss_curve.json", signer=signer,
    )  # fmt: skip
    if signer is not None:
        c = extra["credentials"]
        append_audit(
            audit_dir, "sign", shot=shot, version=version, signer=c["signer"],
            cert_sha256=c["cert_sha256"], exr_frames=c["exr_frames"], sidecar=c["sidecar"],
            embedded=len(c["embedded"]),
        )  # fmt: skip
    append_audit(
        audit_dir, "deliver", shot=shot, version=version, actor=actor_id,
        consent=consent.consent_id, model_sha256=model_sha, frames=result.frames,
        untouched=len(extra["untouched_frames"]), exr=result.exr_pattern,
    )  # fmt: skip
    return {"exr": result.exr_pattern, "review": str(result.review), "version": version, **extra}


def _stage_timings(inputs: Mapping[str, Any]) -> dict[str, float]:
    """Seconds each upstream stage took (chunks summed), from their manifests, for QC."""
    timings: dict[str, float] = {}
    for name in ("ingest", "track", "finetune", "synth_chunk"):
        folders = inputs[name] if isinstance(inputs[name], list) else [inputs[name]]
        for folder in folders:
            m = read_manifest(folder) or {}
            stage = m.get("stage", "?")
            timings[stage] = timings.get(stage, 0.0) + m.get("finished", 0) - m.get("started", 0)
    return timings


def deliver_version(
    *,
    shot: str,
    version: str,
    plate: CachedPlate,
    lm: Landmarks | None,
    faces: Faces | None,
    composite_cfg: CompositeConfig,
    cfg: DeliveryParams,
    out_dir: Path,
    compression: str,
    review_codec: str,
    provenance: dict[str, str],
    ocio_config: str | None,
    stage_timings: dict[str, float],
    training_curves: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    signer: VersionSigner | None = None,
) -> tuple[DeliveryResult, dict[str, Any]]:
    """Composite and write one shot version into ``out_dir`` (which appears whole, signed when
    ``signer`` is given).

    Args:
        shot, version: names for files and burn-ins.
        plate: the ingested plate.
        lm: the shot's landmarks, or None (plate-only delivery).
        faces: the synthesized crops for every plate frame, or None (plate-only delivery).
        composite_cfg: the profile's composite config.
        cfg: how the version is written.
        out_dir: the version folder.
        compression, review_codec: from the shot spec.
        provenance: ``likeness:*`` attributes for every frame and the movie.
        ocio_config: the OCIO config (None: $OCIO or the built-in studio config).
        stage_timings: stage → seconds, for the QC page.
        training_curves: the fine-tune's ``loss_curve.json``, for the QC page.
        signer: signs the movie, the QC images and the EXR listing before the version appears
            (:mod:`pipeline.delivery.credentials`); None: unsigned.

    Returns:
        the delivery result and manifest extras (untouched frames, QC page, timings, what was
        signed).
    """
    color = ColorPipeline(ocio_config)
    numbers = list(plate.frames)
    metrics: dict[str, list[float]] = {_DIFF: [], _COVER: [], _DETAIL: []}
    timings = {"composite_s": 0.0}
    seq = None
    if faces is not None:
        plates = PlateFrames(plate)
        seq = composite_sequence(
            plates, FaceCrops(faces, color, plate.working_space),
            faces.points.astype(np.float64), faces.inverse.astype(np.float64),
            faces.valid.astype(bool), composite_cfg,
            matte_points=_plate_points_in_crop(lm, faces), other_actor=faces.flags,
        )  # fmt: skip
        frames: Iterator[DeliveredFrame] = _composited(seq, plates, faces, lm, metrics, timings)
    else:
        frames = plate_frames(plate)
    valid = [n for n, v in zip(numbers, faces.valid) if v] if faces is not None else numbers
    review = review_transform(color, plate.working_space, plate.source_colorspace, cfg.review)
    contact = ContactCollector(_contact_picks(valid or numbers), lm, faces, plate, review)
    untouched: list[int] = []
    signed: dict[str, Any] = {}

    def finalize(tmp: Path) -> None:
        if seq is not None:
            untouched.extend(numbers[i] for i in seq.untouched)
        _write_qc(
            tmp / "qc", shot, version, plate, lm, contact, metrics, stage_timings, untouched,
            provenance, out_dir, training_curves,
        )  # fmt: skip
        if signer is not None:  # last, so that every file is signed as delivered
            t_sign = time.perf_counter()
            signed.update(sign_version(tmp, f"{shot}_{version}", signer))
            signed["sign_s"] = round(time.perf_counter() - t_sign, 3)

    t0 = time.perf_counter()
    result = write_delivery(
        shot, version, plate, frames, cfg, out_dir, compression=compression,
        review_codec=review_codec, provenance=provenance, ocio_config=ocio_config,
        review=review, progress=progress, on_frame=contact, finalize=finalize,
    )  # fmt: skip
    total = time.perf_counter() - t0
    extra: dict[str, Any] = {
        "untouched_frames": untouched,
        "qc": str(out_dir / "qc" / "index.html"),
        "composite_s": round(timings["composite_s"], 3),
        "write_s": round(total - timings["composite_s"] - signed.get("sign_s", 0.0), 3),
        "credentials": signed or "unsigned",
    }
    if seq is not None:
        extra["edge_flicker"] = {"raw": seq.flicker_raw, "smoothed": seq.flicker_smoothed}
        extra["sharpness_match"] = {
            "soften_px": seq.soften_px,
            "detail_before": None if not np.isfinite(seq.detail_before) else seq.detail_before,
        }
    return result, extra


def _plate_points_in_crop(lm: Landmarks | None, faces: Faces) -> np.ndarray | None:
    """N×68×2 float64: the plate performer's landmarks in each frame's crop pixels (NaN where
    a frame has none), so that the matte covers their whole face."""
    if lm is None:
        return None
    out = np.full((len(faces.frames), 68, 2), np.nan)
    for i, n in enumerate(faces.frames):
        if not faces.valid[i]:
            continue
        j = lm.index(int(n))
        if not lm.tracked[j] or not np.isfinite(lm.points[j]).all():
            continue
        fwd = cv2.invertAffineTransform(faces.inverse[i].astype(np.float64))
        out[i] = lm.points[j].astype(np.float64) @ fwd[:, :2].T + fwd[:, 2]
    return out


def _composited(
    seq: Any,
    plates: PlateFrames,
    faces: Faces,
    lm: Landmarks | None,
    metrics: dict[str, list[float]],
    timings: dict[str, float],
) -> Iterator[DeliveredFrame]:
    """The composite of every plate frame as frames to deliver, recording QC measures."""
    it = iter(seq)
    for i, n in enumerate(plates.numbers):
        t0 = time.perf_counter()
        comp, face, matte = next(it)  # H×W×3 and H×W×4 float32 ACEScg, H×W matte
        timings["composite_s"] += time.perf_counter() - t0
        metrics[_DIFF].append(float(np.abs(comp - plates[i]).mean()))
        metrics[_COVER].append(float(matte.mean()))
        detail = float("nan")
        if lm is not None and faces.valid[i]:
            detail = detail_ratio(comp, plates[i], lm.points[lm.index(n)])
        metrics[_DETAIL].append(0.0 if not np.isfinite(detail) else detail)
        yield DeliveredFrame(n, comp, face, None, bool(faces.valid[i]))


def _contact_picks(numbers: Sequence[int]) -> set[int]:
    """:data:`CONTACT_ROWS` frame numbers spread evenly over ``numbers``."""
    spots = np.linspace(0, len(numbers) - 1, min(CONTACT_ROWS, len(numbers)))
    return {numbers[int(round(x))] for x in spots}


def _write_qc(
    folder: Path,
    shot: str,
    version: str,
    plate: CachedPlate,
    lm: Landmarks | None,
    contact: ContactCollector,
    metrics: dict[str, list[float]],
    stage_timings: dict[str, float],
    untouched: list[int],
    provenance: dict[str, str],
    out_dir: Path,
    curves: Path | None,
) -> None:
    """The version's QC page (:func:`pipeline.qc.report.write_report`) in ``folder``."""
    numbers = list(plate.frames)
    conf = jit = None
    if lm is not None:
        conf = [float(c) if t else 0.0 for c, t in zip(lm.confidence, lm.tracked)]
        jit = [float(x) if np.isfinite(x) else 0.0 for x in jitter(lm.points)]
    notes = [f"images and review movie: {contact.review.description}"]
    if untouched:
        notes.append(f"{len(untouched)} frame(s) passed through untouched")
    notes += filter(None, [finetune_note(curves)])
    write_report(
        folder,
        ReportContext(
            shot=shot,
            version=version,
            frame_numbers=numbers,
            contact_sheet=sorted(contact.rows, key=lambda r: r.frame),
            tracking_confidence=conf,
            jitter=jit,
            metrics={k: v for k, v in metrics.items() if len(v) == len(numbers)},
            training_curves=training_curves(curves),
            stage_timings=stage_timings,
            untouched_frames=untouched,
            provenance=provenance,
            exr_path=str(out_dir / "exr" / f"{shot}.####.exr"),
            movie_path=str(out_dir / f"{shot}_{version}.mov"),
            created=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            notes=notes,
        ),
    )
