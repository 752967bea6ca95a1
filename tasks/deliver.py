"""Delivery stage: composite, EXR sequence, ProRes review movie and QC page of one shot version."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import luigi

from pipeline.consent import load_consent
from pipeline.deliver_stage import join_faces, run_delivery
from pipeline.ingest import load_cached_plate
from pipeline.landmarks.sidecar import load_landmarks
from pipeline.plan import StagePlan
from pipeline.provenance import append_audit, provenance_attrs
from pipeline.synth import FACES_FILE, load_faces
from pipeline.track_stage import LANDMARKS_FILE
from pipeline.workspace import read_manifest
from tasks.actor import Finetune
from tasks.base import ManifestTarget, ShotTask
from tasks.ingest import Ingest
from tasks.synth import SynthChunk
from tasks.track import Track


class Deliver(ShotTask):
    stage_name = "deliver"
    version = luigi.Parameter(description="the shot version this delivery is, e.g. v001")

    def requires(self) -> dict[str, Any]:
        up = self.upstream()
        chunks = [
            SynthChunk(**self.upstream(chunk=c.chunk)) for c in self.plan.chunks("synth_chunk")
        ]
        return {
            "ingest": Ingest(**up),
            "track": Track(**up),
            "finetune": Finetune(**up),
            "synth": chunks,
        }

    def output(self) -> ManifestTarget:
        st: StagePlan = self.stage
        return ManifestTarget(
            self.wd.version_dir(self.shot, self.version), self.plan.delivery_key, st.config_digest
        )

    def run_stage(self, folder: Path) -> dict[str, Any]:
        plan, spec, inp = self.plan, self.plan.spec, self.input()
        consent = load_consent(spec.consent_path, spec.actor_id)
        ft = read_manifest(inp["finetune"].folder) or {}
        model_sha = ft.get("extra", {}).get("checkpoint_sha256")
        provenance = provenance_attrs(
            synthetic=True,
            actor_id=spec.actor_id,
            consent_id=consent.consent_id,
            model_sha256=model_sha,
            source_plate_sha256=plan.source_fingerprint,
            extra={"source_plate": str(spec.plate_path), "delivery_key": plan.delivery_key},
        )
        stages = [inp["ingest"], inp["track"], inp["finetune"], *inp["synth"]]
        timings: dict[str, float] = {}
        for t in stages:
            m = read_manifest(t.folder) or {}
            timings[m.get("stage", "?")] = (
                timings.get(m.get("stage", "?"), 0.0) + m.get("finished", 0) - m.get("started", 0)
            )
        plate = load_cached_plate(inp["ingest"].folder)
        faces = join_faces([load_faces(t.folder / FACES_FILE) for t in inp["synth"]], plate)
        result, extra = run_delivery(
            shot=spec.shot, version=self.version, plate=plate,
            lm=load_landmarks(inp["track"].folder / LANDMARKS_FILE), faces=faces,
            composite_cfg=plan.profile.composite, cfg=plan.profile.deliver, out_dir=folder,
            compression=spec.exr_compression, review_codec=spec.review_codec, provenance=provenance,
            ocio_config=plan.profile.ingest.ocio_config, stage_timings=timings,
            training_curves=inp["finetune"].folder / "loss_curve.json", progress=self.progress,
        )  # fmt: skip
        append_audit(
            self.wd.root, "deliver", shot=spec.shot, version=self.version, actor=spec.actor_id,
            consent=consent.consent_id, model_sha256=model_sha, frames=result.frames,
            untouched=len(extra["untouched_frames"]), exr=result.exr_pattern,
        )  # fmt: skip
        return {
            "exr": result.exr_pattern,
            "review": str(result.review),
            "version": self.version,
            **extra,
        }
