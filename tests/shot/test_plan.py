"""pipeline.shot.plan: a changed stage config gives new keys from that stage down, and a new
version that says which stages changed."""

from __future__ import annotations

from pipeline.shot.plan import cached_plan, version_note
from tasks.run import build_tasks
from tests.tasks.conftest import TEST_PROFILE, make_shot


def test_a_changed_config_rekeys_from_its_stage_down_and_says_so(tmp_path, capsys) -> None:
    wd = tmp_path / "wd"
    spec = make_shot(tmp_path / "shot")
    _, versions = build_tasks([str(spec)], str(wd))
    assert versions == [("sh010", "v001")]
    first = cached_plan(str(spec.resolve()), str(wd.resolve()))
    assert version_note(first, "v001") is None
    _, again = build_tasks([str(spec)], str(wd))  # unchanged: the same version, no note
    assert again == versions and "replaces" not in capsys.readouterr().err

    finetune = {**TEST_PROFILE["finetune"], "steps": 4}
    make_shot(tmp_path / "shot", profile={**TEST_PROFILE, "finetune": finetune})
    _, second = build_tasks([str(spec)], str(wd))
    assert second == [("sh010", "v002")]
    err = capsys.readouterr().err
    assert "sh010: v002 replaces v001: finetune (config), export, synth_chunk, deliver" in err
    plan = cached_plan(str(spec.resolve()), str(wd.resolve()))
    for st in plan.stages.values():
        same = st.key == first.stages[st.task_name].key
        assert same == (st.name in ("ingest", "track_chunk", "track", "references")), st.task_name
