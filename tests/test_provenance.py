import json

from pipeline.provenance import append_audit, provenance_attrs


def test_provenance_attrs_complete():
    a = provenance_attrs(
        synthetic=True, actor_id="jdoe", consent_id="c1", model_sha256="m", source_plate_sha256="s"
    )
    for k in (
        "synthetic",
        "actor_id",
        "consent_id",
        "model_sha256",
        "source_plate_sha256",
        "tool_version",
        "timestamp",
    ):
        assert f"likeness:{k}" in a
    assert a["likeness:synthetic"] == "1" and all(isinstance(v, str) for v in a.values())


def test_audit_log_appends(tmp_path):
    append_audit(tmp_path, "synthesis", shot="sh010")
    append_audit(tmp_path, "delivery", shot="sh010")
    lines = (tmp_path / "audit.log").read_text().splitlines()
    assert [json.loads(x)["event"] for x in lines] == ["synthesis", "delivery"]
