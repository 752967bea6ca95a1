"""The stage graph is declared once: every consumer agrees with it.

The Luigi tasks' requirements, the plan's keyed inputs, the farm adapters' jobs and their
dependencies, the GPU requests, ``likeness rerun``'s invalidation and ``likeness status``'s order
are all compared with :data:`pipeline.stages.graph.STAGES` on a real planned shot.
"""

from __future__ import annotations

import luigi
import pytest

from farm.adapters import batch_from_specs
from farm.rerun import downstream as rerun_downstream
from pipeline.shot.plan import cached_plan
from pipeline.shot.status import workdir_status
from pipeline.stages.graph import STAGES, downstream, stage_def, wants_gpu
from tasks.base import TASKS
from tasks.run import build_tasks
from tests.tasks.conftest import make_shot


@pytest.fixture
def planned(tmp_path):
    """A planned shot: its spec, workdir, plan and top task (nothing has run)."""
    spec = make_shot(tmp_path / "shot")
    wd = tmp_path / "wd"
    tasks, _ = build_tasks([str(spec)], str(wd))
    return spec, wd, cached_plan(str(spec.resolve()), str(wd.resolve())), tasks[0]


def _all_tasks(top: luigi.Task) -> list[luigi.Task]:
    seen: dict[str, luigi.Task] = {}

    def visit(t: luigi.Task) -> None:
        if t.task_id not in seen:
            seen[t.task_id] = t
            for dep in luigi.task.flatten(t.requires()):
                visit(dep)

    visit(top)
    return list(seen.values())


def test_the_graph_is_a_chain_in_order() -> None:
    names = [s.name for s in STAGES]
    assert len(set(names)) == len(names)
    for i, s in enumerate(STAGES):
        assert all(names.index(u) < i for u in s.inputs), f"{s.name} reads a later stage"
    assert names[-1] == "deliver" and downstream("deliver") == ["deliver"]
    with pytest.raises(KeyError, match="stages: ingest"):
        stage_def("nope")


def test_every_stage_has_a_task_and_its_requirements_are_its_inputs(planned) -> None:
    _, _, plan, top = planned
    assert set(TASKS) == {s.name for s in STAGES}
    tasks = _all_tasks(top)
    assert {t.stage_name for t in tasks} == {s.name for s in STAGES}
    for t in tasks:
        sd = stage_def(t.stage_name)
        req = t.requires()
        assert list(req) == list(sd.inputs), t.task_id
        for name, dep in req.items():
            if stage_def(name).chunked:
                assert [d.chunk for d in dep] == [c.chunk for c in plan.chunks(name)]
                assert all(d.stage_name == name for d in dep)
            else:
                assert dep.stage_name == name
        assert t.resources == ({"gpu": 1} if plan.profile.wants_gpu(sd) else {})


def test_the_plan_keys_each_stage_by_its_inputs(planned) -> None:
    _, _, plan, _ = planned
    for st in plan.stages.values():
        sd = stage_def(st.name)
        if st.name == "ingest":
            assert list(st.inputs) == ["source"]
        elif st.name == "references":
            assert list(st.inputs) == ["references"]
        else:
            assert [k for k in st.inputs if k != "frames"] == list(sd.inputs)
        assert (st.chunk is not None) == sd.chunked
    assert [s.name for s in STAGES] == list(dict.fromkeys(s.name for s in plan.stages.values()))


def test_farm_jobs_follow_the_graph(planned) -> None:
    spec, wd, plan, _ = planned
    batch = batch_from_specs([str(spec)], str(wd), "http://127.0.0.1:8082")
    jobs = batch.shots[0].stages
    assert [j.name for j in jobs] == [s.name for s in STAGES]
    for job, sd in zip(jobs, STAGES, strict=True):
        assert job.after == sd.inputs
        assert (job.frames is not None) == sd.chunked
        assert job.resources == ({"gpu": 1} if wants_gpu(sd, plan.profile, None) else {})


def test_gpu_rule_per_profile_setting() -> None:
    class Section:
        def __init__(self, request: str) -> None:
            self.request = request

        def gpu_request(self) -> str:
            return self.request

    class Profile:
        def __init__(self, request: str) -> None:
            self.finetune = self.engine = Section(request)

    for sd in STAGES:
        for request, cuda, want in (
            ("never", True, False),
            ("always", False, True),
            ("auto", True, True),
            ("auto", False, False),
            ("auto", None, True),  # a farm job is described before any node is chosen
        ):
            assert wants_gpu(sd, Profile(request), cuda) == (want and sd.gpu is not None)


def test_rerun_and_status_follow_the_graph(planned) -> None:
    _, wd, plan, _ = planned
    for s in STAGES:
        assert rerun_downstream(s.name) == downstream(s.name)
    assert downstream("references") == [
        "references", "finetune", "export", "synth_chunk", "deliver",
    ]  # fmt: skip
    # status lists a version's stages in the graph's order (nothing has run: all missing)
    stages = workdir_status(wd)["shots"][plan.spec.shot]["versions"]["v001"]["stages"]
    order = [stage_def(task.split(".")[0]).name for task in stages]
    assert order == sorted(order, key=[s.name for s in STAGES].index)
    assert {task.split(".")[0] for task in stages} == {s.name for s in STAGES}


def test_synthesis_asks_for_a_gpu_only_when_the_network_runs() -> None:
    """The plate-resolution render without the network's correction runs no engine: its chunks
    never wait for a GPU node, whatever the engine section says."""
    from dataclasses import replace

    from pipeline.inference.engine import EngineConfig
    from pipeline.shot.profile import Profile
    from pipeline.stages.synth import SynthConfig

    synth = stage_def("synth_chunk")
    forced = Profile(engine=EngineConfig(backend="tensorrt"))
    assert not wants_gpu(synth, forced, True)  # the default: no correction
    for cfg in (SynthConfig(correction="low_band"), SynthConfig(render="network")):
        assert wants_gpu(synth, replace(forced, synth=cfg), None)
