"""Tracking stages: one task per frame chunk (farm-spreadable), then a merge with QC."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import luigi

from pipeline.ingest import load_cached_plate
from pipeline.track_stage import identity_hint, run_track_chunk, run_track_merge
from tasks.base import ShotTask
from tasks.ingest import Ingest


class TrackChunk(ShotTask):
    stage_name = "track_chunk"
    chunk = luigi.Parameter(description="frame range of the chunk, e.g. 1001-1048")

    @property
    def chunk_id(self) -> str:
        return self.chunk

    def requires(self) -> Ingest:
        return Ingest(**self.upstream())

    def run_stage(self, folder: Path) -> dict[str, Any]:
        plan = self.plan
        plate = load_cached_plate(self.input().folder)
        ocio = plan.profile.ingest.ocio_config
        hint = identity_hint(
            plate, plan.profile.track, ocio, plan.spec.performer_reference, plan.spec.seed_box
        )
        return run_track_chunk(plate, self.stage.frames, plan.profile.track, hint, folder, ocio)


class Track(ShotTask):
    stage_name = "track"

    def requires(self) -> dict[str, Any]:
        chunks = [
            TrackChunk(**self.upstream(chunk=c.chunk)) for c in self.plan.chunks("track_chunk")
        ]
        return {"ingest": Ingest(**self.upstream()), "chunks": chunks}

    def run_stage(self, folder: Path) -> dict[str, Any]:
        plate = load_cached_plate(self.input()["ingest"].folder)
        chunk_dirs = [t.folder for t in self.input()["chunks"]]
        return run_track_merge(
            plate, chunk_dirs, self.plan.profile.track, folder, self.plan.profile.ingest.ocio_config
        )
