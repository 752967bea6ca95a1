"""Actor stages: prepare references, fine-tune (consent required), export the engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.actor_stage import model_image_size, run_export, run_finetune
from pipeline.consent import load_consent
from pipeline.provenance import append_audit
from pipeline.references import run_references
from pipeline.train.finetune import CHECKPOINT_NAME
from pipeline.workspace import read_manifest
from tasks.base import ShotTask


class References(ShotTask):
    stage_name = "references"

    def run_stage(self, folder: Path) -> dict[str, Any]:
        prof = self.plan.profile
        size = model_image_size(prof.finetune)
        return run_references(list(self.plan.spec.references), prof.references, size, folder)


class Finetune(ShotTask):
    stage_name = "finetune"
    gpu_stage = "finetune"

    def requires(self) -> References:
        return References(**self.upstream())

    def run_stage(self, folder: Path) -> dict[str, Any]:
        spec = self.plan.spec
        consent = load_consent(spec.consent_path, spec.actor_id)
        extra = run_finetune(self.input().folder, self.plan.profile.finetune, spec.actor_id, folder)
        append_audit(
            self.wd.root, "finetune", shot=self.shot, actor=spec.actor_id,
            consent=consent.consent_id, model_sha256=extra["checkpoint_sha256"],
        )  # fmt: skip
        return {**extra, "consent_id": consent.consent_id}


class Export(ShotTask):
    stage_name = "export"
    gpu_stage = "engine"

    def requires(self) -> Finetune:
        return Finetune(**self.upstream())

    def run_stage(self, folder: Path) -> dict[str, Any]:
        ft = self.input().folder
        sha = (read_manifest(ft) or {}).get("extra", {}).get("checkpoint_sha256")
        return run_export(ft / CHECKPOINT_NAME, sha, self.plan.profile.engine, folder)
