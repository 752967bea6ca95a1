from dataclasses import dataclass, field
from typing import Literal

import pytest

from pipeline.config import digest, from_mapping, read_yaml
from pipeline.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    size: Literal[128, 256] = 128
    rate: float = 1.0


@dataclass(frozen=True)
class Outer:
    name: str
    inner: Inner = field(default_factory=Inner)
    tags: tuple[str, ...] = ()
    limit: int | None = None


def test_from_mapping_builds_frozen():
    o = from_mapping(Outer, {"name": "a", "inner": {"size": 256, "rate": 2}, "tags": ["x"]})
    assert o == Outer("a", Inner(256, 2.0), ("x",))
    with pytest.raises(AttributeError):
        o.name = "b"  # type: ignore[misc]


def test_every_problem_reported_at_once():
    with pytest.raises(ConfigError) as ei:
        from_mapping(
            Outer, {"nme": "a", "inner": {"size": 300, "bogus": 1}, "limit": "x"}, source="f.yaml"
        )
    text = str(ei.value)
    assert "f.yaml: nme: unknown key" in text
    assert "f.yaml: name: required key is missing" in text
    assert "inner.size" in text and "inner.bogus" in text and "limit" in text
    assert len(ei.value.problems) == 5


def test_digest_stable_and_sensitive():
    a = Outer("a")
    assert digest(a) == digest(Outer("a"))
    assert digest(a) != digest(Outer("a", Inner(256)))


def test_read_yaml_refuses_anchors_tags_and_huge(tmp_path):
    p = tmp_path / "a.yaml"
    p.write_text("a: &x 1\nb: *x\n")
    with pytest.raises(ConfigError, match="anchors"):
        read_yaml(p)
    p.write_text("a: !!python/object:os.system 1\n")
    with pytest.raises(ConfigError):
        read_yaml(p)
    p.write_text("a: " + "x" * (2 << 20))
    with pytest.raises(ConfigError, match="limit"):
        read_yaml(p)
    p.write_bytes(b"a: \xff\xfe\n")
    with pytest.raises(ConfigError, match="UTF-8"):
        read_yaml(p)


def test_read_yaml_parses_each_document_once_and_sees_edits(tmp_path, monkeypatch):
    import yaml

    calls = []
    real = yaml.safe_load
    monkeypatch.setattr(yaml, "safe_load", lambda text: calls.append(text) or real(text))
    p = tmp_path / "spec.yaml"
    p.write_text("shot: sh010\nrange: [1, 2]\n")
    a = read_yaml(p)
    a["range"].append(3)  # the caller owns what it gets
    assert read_yaml(p) == {"shot": "sh010", "range": [1, 2]}
    assert len(calls) == 1
    p.write_text("shot: sh020\nrange: [1, 2]\n")  # an edit is read, whatever the mtime says
    assert read_yaml(p)["shot"] == "sh020" and len(calls) == 2
    p.write_text("shot: [\n")  # and a broken edit is reported, not served from the cache
    with pytest.raises(ConfigError, match="syntax"):
        read_yaml(p)
