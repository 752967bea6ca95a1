import datetime as dt

import pytest
import yaml

from pipeline.consent import load_consent
from pipeline.errors import ConsentError

GOOD = {
    "actor": "jdoe",
    "granted_by": "Jane Doe",
    "scope": ["de-aging"],
    "expires": "2027-12-31",
    "reference": "contract 2026-114",
}


def _write(tmp_path, **over):
    rec = {**GOOD, **over}
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(rec))
    return p


def test_valid_record(tmp_path):
    r = load_consent(_write(tmp_path), "jdoe", today=dt.date(2026, 11, 24))
    assert r.scope == ("de-aging",) and r.expires == dt.date(2027, 12, 31)
    assert r.consent_id.startswith("contract 2026-114 (")


def test_yaml_date_type_accepted(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("actor: jdoe\ngranted_by: J\nscope: [x]\nexpires: 2027-12-31\nreference: r\n")
    assert load_consent(p, "jdoe", today=dt.date(2026, 1, 1)).expires.year == 2027


@pytest.mark.parametrize(
    "over,match",
    [
        ({"expires": "2026-01-01"}, "expired"),
        ({"actor": "someone"}, "not 'jdoe'"),
        ({"scope": []}, "scope is missing"),
        ({"granted_by": ""}, "granted_by"),
        ({"expires": "soon"}, "not a date"),
        ({"extra": 1}, "unknown key"),
    ],
)
def test_invalid_records(tmp_path, over, match):
    with pytest.raises(ConsentError, match=match):
        load_consent(_write(tmp_path, **over), "jdoe", today=dt.date(2026, 11, 24))


def test_missing_record(tmp_path):
    with pytest.raises(ConsentError, match="no consent record"):
        load_consent(None, "jdoe")
    with pytest.raises(ConsentError, match="does not exist"):
        load_consent(tmp_path / "nope.yaml", "jdoe")
