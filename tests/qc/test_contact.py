"""The QC page's fine-tune line, read from the fine-tune's ``loss_curve.json``."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.qc.contact import finetune_note


def _curves(tmp_path: Path, **summary: object) -> Path:
    path = tmp_path / "loss_curve.json"
    body: dict[str, object] = {"schema": "likeness.loss_curve/1", "step": [1, 2], "total": [1, 0]}
    if summary:
        body["summary"] = summary
    path.write_text(json.dumps(body))
    return path


def test_note_says_which_step_was_kept_and_how_the_warp_is_built(tmp_path: Path) -> None:
    fusion = {"top": 5, "temperature": 0.02, "spline": 0.5}
    path = _curves(tmp_path, steps=2149, kept_step=0, early_stopping=True, fusion=fusion)
    note = finetune_note(path)
    assert note is not None
    assert "2149 steps; kept step 0 (the best on the held-out references)" in note
    assert "did not improve on the starting model" in note
    assert "the 5 nearest references" in note and "spline weight 0.5" in note
    fusion = {"top": 1, "temperature": 0.01, "spline": 0.0}
    path = _curves(tmp_path, steps=40, kept_step=40, early_stopping=False, fusion=fusion)
    note = finetune_note(path)
    assert note is not None and "kept step 40." in note and "held-out" not in note
    assert "the nearest reference, piecewise-affine" in note


def test_no_note_without_a_readable_summary(tmp_path: Path) -> None:
    assert finetune_note(None) is None
    assert finetune_note(tmp_path / "missing.json") is None
    assert finetune_note(_curves(tmp_path)) is None  # written before summaries existed
    assert finetune_note(_curves(tmp_path, steps=3, kept_step="x", fusion={})) is None
    (tmp_path / "bad.json").write_text("{not json")
    assert finetune_note(tmp_path / "bad.json") is None
