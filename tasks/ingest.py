"""Ingest stage: plate → scene-linear half-EXR cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.ingest import ingest_plate
from tasks.base import ShotTask


class Ingest(ShotTask):
    stage_name = "ingest"

    def run_stage(self, folder: Path) -> dict[str, Any]:
        spec = self.plan.spec
        plate = ingest_plate(
            spec.plate_path,
            spec.colorspace,
            self.stage.frames,
            self.plan.profile.ingest,
            folder,
            self.progress,
        )
        return {"plate": plate.to_json(), "source_fingerprint": self.plan.source_fingerprint}
