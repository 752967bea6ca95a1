"""Synthesis: one task per frame chunk, on a GPU node when the farm has one (consent required)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import luigi

from pipeline.consent import load_consent
from pipeline.synth import run_synth_task
from tasks.actor import Export, Finetune, References
from tasks.base import ShotTask
from tasks.ingest import Ingest
from tasks.track import Track


class SynthChunk(ShotTask):
    stage_name = "synth_chunk"
    chunk = luigi.Parameter(description="frame range of the chunk, e.g. 1001-1024")
    gpu_stage = "engine"

    @property
    def chunk_id(self) -> str:
        return self.chunk

    def requires(self) -> dict[str, ShotTask]:
        up = self.upstream()
        return {
            "ingest": Ingest(**up),
            "track": Track(**up),
            "references": References(**up),
            "finetune": Finetune(**up),
            "export": Export(**up),
        }

    def run_stage(self, folder: Path) -> dict[str, Any]:
        spec = self.plan.spec
        load_consent(spec.consent_path, spec.actor_id)
        dirs = {k: t.folder for k, t in self.input().items()}
        return run_synth_task(dirs, self.stage.frames, self.plan.profile, folder, self.progress)
