"""The fine-tune stage's config: a meta-trained base is loaded only with its SHA-256."""

from __future__ import annotations

import hashlib

import pytest

from pipeline.config import from_mapping
from pipeline.errors import ConfigError
from pipeline.stages.finetune import FinetuneConfig


def test_base_checkpoint_needs_its_sha256(tmp_path):
    base = tmp_path / "base.pt"
    base.write_bytes(b"weights")
    with pytest.raises(ConfigError, match="base_sha256: is required with base_checkpoint"):
        from_mapping(FinetuneConfig, {"base_checkpoint": str(base)})
    with pytest.raises(ConfigError, match="not a hex SHA-256"):
        from_mapping(FinetuneConfig, {"base_checkpoint": str(base), "base_sha256": "abc"})
    digest = hashlib.sha256(b"weights").hexdigest()
    cfg = from_mapping(FinetuneConfig, {"base_checkpoint": str(base), "base_sha256": digest})
    assert cfg.base_sha256 == digest
    assert from_mapping(FinetuneConfig, {}).base_checkpoint is None  # from scratch
