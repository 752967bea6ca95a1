"""Delivery stage: EXR sequence and ProRes review movie of one shot version."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import luigi

from pipeline.deliver import deliver, plate_frames
from pipeline.ingest import load_cached_plate
from pipeline.plan import StagePlan
from tasks.base import ManifestTarget, ShotTask
from tasks.ingest import Ingest
from tasks.track import Track


class Deliver(ShotTask):
    stage_name = "deliver"
    version = luigi.Parameter(description="the shot version this delivery is, e.g. v001")

    def requires(self) -> dict[str, ShotTask]:
        return {"ingest": Ingest(**self.upstream()), "track": Track(**self.upstream())}

    def output(self) -> ManifestTarget:
        st: StagePlan = self.stage
        return ManifestTarget(
            self.wd.version_dir(self.shot, self.version), self.plan.delivery_key, st.config_digest
        )

    def run_stage(self, folder: Path) -> dict[str, Any]:
        plan = self.plan
        plate = load_cached_plate(self.input()["ingest"].folder)
        result = deliver(
            plan.spec.shot,
            self.version,
            plate,
            plate_frames(plate),
            plan.profile.deliver,
            folder,
            compression=plan.spec.exr_compression,
            review_codec=plan.spec.review_codec,
            provenance={
                "likeness:source_plate": str(plan.spec.plate_path),
                "likeness:source_plate_sha256": plan.source_fingerprint,
                "likeness:delivery_key": plan.delivery_key,
            },
            ocio_config=plan.profile.ingest.ocio_config,
            progress=self.progress,
        )
        return {"exr": result.exr_pattern, "review": str(result.review), "version": self.version}
