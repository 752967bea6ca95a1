"""The stage tasks, one per stage of :data:`pipeline.stages.graph.STAGES`, upstream first.

Each names its stage and runs its runner from :mod:`pipeline.stages`: it resolves the shot's
paths and settings from the plan and hands over its input stages' folders. Requirements, outputs,
manifests, logs and state records come from :class:`tasks.base.ShotTask` and the graph.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import luigi

from engines.provider import ActorEngines
from pipeline.stages.deliver import run_deliver
from pipeline.stages.export import run_export
from pipeline.stages.finetune import network_image_size, run_finetune
from pipeline.stages.ingest import run_ingest
from pipeline.stages.references import run_references
from pipeline.stages.synth import run_synth
from pipeline.stages.track import run_track_chunk, run_track_merge
from tasks.base import ManifestTarget, ShotTask


class Ingest(ShotTask):
    stage_name = "ingest"

    def run_stage(self, folder: Path) -> dict[str, Any]:
        spec, cfg = self.plan.spec, self.plan.profile.ingest
        extra = run_ingest(
            spec.plate_path, spec.colorspace, self.stage.frames, cfg, folder, self.progress
        )
        return {**extra, "source_fingerprint": self.plan.source_fingerprint}


class TrackChunk(ShotTask):
    stage_name = "track_chunk"
    chunk = luigi.Parameter(description="frame range of the chunk, e.g. 1001-1048")

    @property
    def chunk_id(self) -> str:
        return self.chunk

    def run_stage(self, folder: Path) -> dict[str, Any]:
        spec, profile = self.plan.spec, self.plan.profile
        return run_track_chunk(
            self.input_folders()["ingest"], self.stage.frames, profile.track, folder,
            ocio_config=profile.ingest.ocio_config, performer_reference=spec.performer_reference,
            seed_box=spec.seed_box,
        )  # fmt: skip


class Track(ShotTask):
    stage_name = "track"

    def run_stage(self, folder: Path) -> dict[str, Any]:
        inputs, profile = self.input_folders(), self.plan.profile
        return run_track_merge(
            inputs["ingest"], inputs["track_chunk"], profile.track, folder,
            ocio_config=profile.ingest.ocio_config,
        )  # fmt: skip


class References(ShotTask):
    stage_name = "references"

    def run_stage(self, folder: Path) -> dict[str, Any]:
        cfg = self.plan.profile
        size = network_image_size(cfg.finetune)
        return run_references(list(self.plan.spec.references), cfg.references, size, folder)


class Finetune(ShotTask):
    stage_name = "finetune"

    def run_stage(self, folder: Path) -> dict[str, Any]:
        spec = self.plan.spec
        return run_finetune(
            self.input_folders()["references"], self.plan.profile.finetune, folder,
            actor_id=spec.actor_id, consent_path=spec.consent_path,
            use=self.plan.profile.use, audit_dir=self.wd.root, shot=spec.shot,
        )  # fmt: skip


class Export(ShotTask):
    stage_name = "export"

    def run_stage(self, folder: Path) -> dict[str, Any]:
        finetune = self.input_folders()["finetune"]
        return run_export(finetune, self.plan.profile.engine, folder, engines=ActorEngines())


class SynthChunk(ShotTask):
    stage_name = "synth_chunk"
    chunk = luigi.Parameter(description="frame range of the chunk, e.g. 1001-1024")

    @property
    def chunk_id(self) -> str:
        return self.chunk

    def run_stage(self, folder: Path) -> dict[str, Any]:
        spec, profile = self.plan.spec, self.plan.profile
        return run_synth(
            self.input_folders(), self.stage.frames, profile.synth, profile.engine, folder,
            engines=ActorEngines(), actor_id=spec.actor_id, consent_path=spec.consent_path,
            use=profile.use, ocio_config=profile.ingest.ocio_config, progress=self.progress,
        )  # fmt: skip


class Deliver(ShotTask):
    stage_name = "deliver"
    version = luigi.Parameter(description="the shot version this delivery is, e.g. v001")

    def output(self) -> ManifestTarget:
        st = self.stage
        folder = self.wd.version_dir(self.shot, self.version)
        return ManifestTarget(folder, self.plan.delivery_key, st.config_digest)

    def run_stage(self, folder: Path) -> dict[str, Any]:
        plan, spec = self.plan, self.plan.spec
        return run_deliver(
            self.input_folders(), plan.deliver, plan.profile.composite, folder,
            shot=spec.shot, version=self.version, actor_id=spec.actor_id,
            consent_path=spec.consent_path, use=plan.profile.use, audit_dir=self.wd.root,
            source_plate=str(spec.plate_path), source_fingerprint=plan.source_fingerprint,
            delivery_key=plan.delivery_key, exr_compression=spec.exr_compression,
            review_codec=spec.review_codec, ocio_config=plan.profile.ingest.ocio_config,
            progress=self.progress,
        )  # fmt: skip
