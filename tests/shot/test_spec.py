import pytest
import yaml

from pipeline.errors import ShotSpecError
from pipeline.shot.spec import load_shot


def _shot(tmp_path, **over):
    (tmp_path / "plates").mkdir(exist_ok=True)
    (tmp_path / "plates" / "sh010.mov").write_bytes(b"\0")
    (tmp_path / "refs").mkdir(exist_ok=True)
    for n in ("a.jpg", "b.png"):
        (tmp_path / "refs" / n).write_bytes(b"\0")
    (tmp_path / "consent").mkdir(exist_ok=True)
    (tmp_path / "consent" / "jdoe.yaml").write_text("actor: jdoe\n")
    spec = {
        "shot": "sh010",
        "plate": {
            "path": "plates/sh010.mov",
            "frames": "1001-1010",
            "colorspace": "sRGB Encoded Rec.709 (sRGB)",
        },
        "actor": {
            "id": "jdoe",
            "references": ["refs/*.jpg", "refs/b.png"],
            "consent": "consent/jdoe.yaml",
        },
        "profile": "cpu-preview",
        "output": {"exr": {"compression": "piz"}, "review": {"codec": "prores_4444"}},
    }
    for k, v in over.items():
        spec[k] = v
    p = tmp_path / "sh010.yaml"
    p.write_text(yaml.safe_dump(spec))
    return p, spec


def test_minimal_spec_resolves_paths(tmp_path):
    p, _ = _shot(tmp_path)
    s = load_shot(p)
    assert s.shot == "sh010" and str(s.frames) == "1001-1010"
    assert s.plate_path == tmp_path / "plates" / "sh010.mov"
    assert [r.name for r in s.references] == ["a.jpg", "b.png"]
    assert s.exr_compression == "piz" and s.review_codec == "prores_4444"


def test_defaults_for_optional_keys(tmp_path):
    p, spec = _shot(tmp_path)
    del spec["output"], spec["plate"]["frames"]
    p.write_text(yaml.safe_dump(spec))
    s = load_shot(p)
    assert s.frames is None and s.exr_compression == "zip" and s.review_codec == "prores_422hq"


def test_unknown_keys_and_every_problem_at_once(tmp_path):
    p, spec = _shot(tmp_path)
    spec["plate"]["colour"] = "x"
    spec["extra"] = 1
    spec["output"]["exr"]["compression"] = "lzw"
    p.write_text(yaml.safe_dump(spec))
    with pytest.raises(ShotSpecError) as ei:
        load_shot(p)
    probs = ei.value.problems
    assert any("plate.colour: unknown key" in x for x in probs)
    assert any("extra: unknown key" in x for x in probs)
    assert any("output.exr.compression" in x for x in probs)
    assert all(str(p) in x for x in probs)


@pytest.mark.parametrize("name", ["../../etc", "a b", "sh;rm -rf", "x" * 65, "", "sh$(id)"])
def test_shot_names_cannot_escape(tmp_path, name):
    p, _ = _shot(tmp_path, shot=name)
    with pytest.raises(ShotSpecError, match="shot"):
        load_shot(p)


def test_missing_files_reported_with_keys(tmp_path):
    p, spec = _shot(tmp_path)
    spec["plate"]["path"] = "plates/nope.mov"
    spec["actor"]["references"] = ["refs/*.tif", "refs/none.jpg"]
    spec["actor"]["consent"] = "consent/none.yaml"
    p.write_text(yaml.safe_dump(spec))
    with pytest.raises(ShotSpecError) as ei:
        load_shot(p)
    text = str(ei.value)
    for key in ("plate.path", "actor.references[0]", "actor.references[1]", "actor.consent"):
        assert key in text


def test_reference_not_an_image(tmp_path):
    p, spec = _shot(tmp_path)
    (tmp_path / "refs" / "notes.txt").write_text("hi")
    spec["actor"]["references"] = ["refs/notes.txt"]
    p.write_text(yaml.safe_dump(spec))
    with pytest.raises(ShotSpecError, match="not an image"):
        load_shot(p)


def test_bad_frames_and_seed_box(tmp_path):
    p, spec = _shot(tmp_path)
    spec["plate"]["frames"] = "1100-1001"
    spec["plate"]["performer"] = {"seed_box": [10, 10, 5, 50]}
    p.write_text(yaml.safe_dump(spec))
    with pytest.raises(ShotSpecError) as ei:
        load_shot(p)
    assert "plate.frames" in str(ei.value) and "seed_box" in str(ei.value)


def test_not_a_mapping(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text("- a\n- b\n")
    with pytest.raises(ShotSpecError, match="mapping"):
        load_shot(p)
