"""Crash safety (issue 8, item 3): SIGKILL inside every stage, then a rerun; a full disk.

Every kill run is watched (:class:`tests.crash.harness.Watcher`): no file under a final name may
ever be incomplete. The rerun must resume fine-tuning from the checkpoint the kill left and end
with the outputs of an uninterrupted run (bit for bit, but for wall-clock data; see
:func:`tests.crash.harness.compare_runs`). The default suite kills once or twice per stage; the
``slow`` soak (``make soak``) kills at random moments in every stage with several seeds, just
before every stage's manifest, and mid-write at many exact points, and fills volumes of many sizes.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import EXIT_DISK_FULL
from tests.crash import harness as H
from tests.tasks.conftest import make_shot

# one worker under pytest-xdist (make test), so the module-scoped reference run is made once
pytestmark = pytest.mark.xdist_group("crash")

SEED = 20261124


@dataclass(frozen=True)
class Reference:
    spec: Path
    workdir: Path
    tour: H.Tour


@pytest.fixture(scope="module")
def ref(tmp_path_factory) -> Reference:
    """One uninterrupted, watched run of the chain (the outputs every rerun must reproduce)."""
    base = tmp_path_factory.mktemp("crash")
    spec = make_shot(base / "shot", profile=H.CRASH_PROFILE)
    tour = H.run_tour(spec, base / "ref", base / "logs-ref", [])
    assert tour.attempts[-1].rc == 0, tour.attempts[-1].stderr[-3000:]
    return Reference(spec, base / "ref", tour)


def _tour(ref: Reference, tmp_path: Path, points: list[H.KillPoint]) -> H.Tour:
    tour = H.run_tour(ref.spec, tmp_path / "wd", tmp_path / "logs", points, ref=ref.workdir)
    problems = H.tour_problems(tour, ref.workdir, tmp_path / "wd")
    assert not problems, "\n".join(problems)
    print("kills per stage:", H.kill_counts([tour]), "| runs:", len(tour.attempts))
    return tour


# -- the harness itself catches what it looks for --------------------------------------------
def test_the_reference_run_is_watched_and_clean(ref) -> None:
    rep = ref.tour.watcher
    assert rep.scans > 100 and rep.files_checked >= 60 and rep.manifests_checked == 10
    assert rep.violations == []
    assert H.final_state_problems(ref.workdir) == []
    assert H.compare_runs(ref.workdir, ref.workdir)[0] == []


def test_the_watcher_flags_truncated_files_of_every_kind(ref, tmp_path) -> None:
    kinds = [".exr", ".npz", ".pt", ".json", ".png", ".mov", ".onnx", ".html"]
    found = {k: next(ref.workdir.rglob(f"*{k}")) for k in kinds}
    found["audit.log"] = ref.workdir / "audit.log"
    wd = tmp_path / "wd"
    for kind, src in found.items():
        data = src.read_bytes()
        dst = wd / kind.strip(".") / src.name
        dst.parent.mkdir(parents=True)
        dst.write_bytes(data[: len(data) // 2 - 1])
    # a finished stage whose listed output no longer matches its hash
    stage = next(ref.workdir.glob("shots/*/stages/track/*"))
    shutil.copytree(stage, wd / "stage")
    (wd / "stage" / "landmarks.npz").write_bytes(b"")
    w = H.Watcher(wd)
    bad = w.scan()
    flagged = {Path(v.split(":")[0]).parts[0] for v in bad}
    assert flagged == {k.strip(".") for k in found} | {"stage"}, bad
    assert any("manifest says" in v for v in bad)


def test_compare_runs_flags_changed_pixels_and_weights(ref, tmp_path) -> None:
    import torch

    from pipeline.hashing import sha256_file
    from pipeline.io import read_exr, write_exr

    wd = tmp_path / "wd"
    shutil.copytree(ref.workdir, wd)
    exr = next(wd.glob("shots/*/v001/exr/*.1003.exr"))
    chans, header = read_exr(exr)
    rgba = np.dstack([chans[c] for c in "RGBA"]).astype(np.float32)
    rgba[0, 0, 0] += 0.25
    face = np.dstack([chans[f"face.{c}"] for c in "RGBA"]).astype(np.float32)
    attrs = {k: v for k, v in header.items() if k.startswith("likeness:")}
    write_exr(exr, {"": rgba, "face": face}, fps=header["framesPerSecond"], attrs=attrs)
    ckpt = next(wd.glob("shots/*/stages/finetune/*/checkpoint.pt"))
    blob = torch.load(ckpt, weights_only=True)
    blob["model"]["actor"]["psi"][0, 0] += 1e-6
    torch.save(blob, ckpt)
    for path in (exr, ckpt):  # manifests updated: only a content comparison can tell
        m = path.parents[1 if path.suffix == ".exr" else 0] / "_manifest.json"
        data = json.loads(m.read_text())
        data["outputs"][path.relative_to(m.parent).as_posix()] = sha256_file(path)
        m.write_text(json.dumps(data))
    diffs, _ = H.compare_runs(ref.workdir, wd)
    assert any(exr.name in d and "pixels differ" in d for d in diffs), diffs
    assert any("checkpoint contents differ" in d for d in diffs), diffs


# -- kills ------------------------------------------------------------------------------------
def test_sigkill_in_every_stage_then_rerun_matches_an_uninterrupted_run(ref, tmp_path) -> None:
    rng = random.Random(SEED)
    took = H.stage_durations(ref.workdir)
    steps = H.CRASH_PROFILE["finetune"]["steps"]
    points = [
        H.injected("ingest", "ingest-frame-3", at="pipeline.stages.ingest.write_exr",
                   match="/stages/ingest/", nth=3),
        # within about one step after the first checkpoint (a step's share of the stage's time)
        H.timed("finetune", rng, {"finetune": took["finetune"] / (steps + 2)},
                after=H.checkpoint_exists),
        H.injected("finetune", "finetune-mid-checkpoint", at="torch.save", match=".work",
                   action="partial", fraction=0.5),
        H.injected("finetune", "finetune-before-manifest", at="tasks.base.write_manifest",
                   match="/stages/finetune/"),
        H.injected("track_chunk", "track-chunk-written", at="pipeline.stages.track.save_chunk",
                   action="kill_after"),
        H.timed("synth_chunk", rng, took),
        H.injected("deliver", "deliver-frame-n", at="pipeline.delivery.write.write_exr", match="/exr/",
                   nth=rng.randint(2, 7)),
    ]  # fmt: skip
    tour = _tour(ref, tmp_path, points)
    by_label = {a.point.label: a for a in tour.attempts if a.point}
    stages = {s.split("+")[0] for s in H.kill_counts([tour])}
    assert {"ingest", "finetune", "track_chunk", "synth_chunk", "deliver"} <= stages
    # the cut-off checkpoint: its temporary was left, the previous checkpoint stayed readable,
    # and the next run resumed from that one
    cut = by_label["finetune-mid-checkpoint"]
    assert cut.killed and cut.checkpoint_step_left
    assert any(".checkpoint.pt.tmp-" in t for t in cut.temporaries_left), cut.temporaries_left
    resumed = [a.resumed_from[0] for a in tour.attempts if a.resumed_from]
    assert cut.checkpoint_step_left in resumed
    # killed after training, before the manifest: the rerun resumed from the final checkpoint
    done = by_label["finetune-before-manifest"]
    assert done.checkpoint_step_left == steps
    assert resumed[-1] == done.checkpoint_step_left


# -- a full disk ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tmpfs(tmp_path_factory) -> bool:
    """Whether a size-limited tmpfs can be mounted (user + mount namespace) on this machine."""
    why = H.tmpfs_unavailable(tmp_path_factory.mktemp("probe"))
    print("tmpfs:", why or "available")
    return why is None


def _full_disk_ok(run: H.FullDiskRun, stage: str) -> None:
    assert run.rc == EXIT_DISK_FULL, run.stderr[-3000:]
    problems = H.full_disk_problems(run.after_full, stage, run.stderr)
    assert not problems, "\n".join(problems)
    assert "DiskFullError: disk full while writing" in run.stderr
    assert "fix: free space on that volume" in run.stderr


def _rerun_ok(run: H.FullDiskRun, ref: Reference) -> None:
    assert run.rerun_rc == 0 and run.after_rerun is not None, run.rerun_stderr[-3000:]
    problems = H.compare_runs(ref.workdir, run.after_rerun)[0]
    problems += H.final_state_problems(run.after_rerun)
    assert not problems, "\n".join(problems)


def test_a_small_tmpfs_fills_during_ingest(ref, tmp_path, tmpfs) -> None:
    if not tmpfs:
        pytest.skip("no tmpfs can be mounted here; the file-size limit test covers ingest writes")
    run = H.run_on_full_disk(ref.spec, tmp_path, size="400k")
    _full_disk_ok(run, "ingest")
    assert not list(run.after_full.glob("shots/*/stages/ingest/*"))


def test_disk_fills_mid_checkpoint_then_finetune_resumes(ref, tmp_path, tmpfs) -> None:
    if not tmpfs:
        pytest.skip(
            "no tmpfs can be mounted here, and torch.save reports a file-size limit (EFBIG) "
            "only as 'unexpected pos': a real full volume is needed to recognise it"
        )
    ckpt = next(ref.workdir.glob("shots/*/stages/finetune/*/checkpoint.pt")).stat().st_size
    seed = H.seed_workdir(ref.workdir, tmp_path / "seed", ["ingest", "references", "track_chunk",
                                                            "track"])  # fmt: skip
    run = H.run_on_full_disk(
        ref.spec, tmp_path, size="64m", seed=seed, rerun=True,
        crash={"at": "torch.save", "match": ".work", "nth": 2, "action": "fill",
               "leave": ckpt // 3},
    )  # fmt: skip
    _full_disk_ok(run, "finetune")
    work = next(run.after_full.glob("shots/*/stages/finetune/.*.work"))
    assert H.finetune_checkpoint_step(run.after_full) == 2 and (work / "checkpoint.pt").is_file()
    assert H.RESUME_RE.findall(run.rerun_stderr) == ["2"]
    _rerun_ok(run, ref)


def test_disk_fills_during_delivery(ref, tmp_path, tmpfs) -> None:
    seed = H.seed_workdir(ref.workdir, tmp_path / "seed", H.STAGE_ORDER[:-1])
    if tmpfs:
        run = H.run_on_full_disk(
            ref.spec, tmp_path, size="64m", seed=seed, rerun=True,
            crash={"at": "pipeline.delivery.write.write_exr", "match": "/exr/", "nth": 3, "action": "fill",
                   "leave": 200_000},
        )  # fmt: skip
    else:  # no tmpfs: a file-size limit (EFBIG) must be the same named error
        run = _fsize_limited(ref, tmp_path, seed, "/exr/", 3, 60_000)
    _full_disk_ok(run, "deliver")
    assert not (next(run.after_full.glob("shots/*")) / "v001").exists()
    _rerun_ok(run, ref)


def _fsize_limited(
    ref: Reference, tmp_path: Path, seed: Path, match: str, nth: int, limit: int
) -> H.FullDiskRun:
    """Run with ``RLIMIT_FSIZE`` set at the ``nth`` EXR write matching ``match``; rerun freely."""
    wd = tmp_path / "wd"
    shutil.copytree(seed, wd)
    crash = {"at": "pipeline.delivery.write.write_exr", "match": match, "nth": nth, "action": "fsize",
             "limit": limit}  # fmt: skip
    # not verbose: the limit applies to the child's stderr file too, which must stay small
    first = H.run_attempt(ref.spec, wd, tmp_path / "logs" / "limited",
                          H.KillPoint("deliver", "fsize", crash=crash), verbose=False)  # fmt: skip
    shutil.copytree(wd, tmp_path / "after-full")
    again = H.run_attempt(ref.spec, wd, tmp_path / "logs" / "rerun", None)
    return H.FullDiskRun(int(first.rc or 0), first.stderr, tmp_path / "after-full", again.rc,
                         again.stderr, wd)  # fmt: skip


# -- the soak (make soak) -----------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_soak_random_kill_in_every_stage(ref, tmp_path, seed) -> None:
    """A kill at a seeded random moment inside each stage in turn, then a rerun."""
    rng = random.Random(seed)
    took = H.stage_durations(ref.workdir)
    points = [H.timed(stage, rng, took) for stage in H.STAGE_ORDER]
    _tour(ref, tmp_path, points)


@pytest.mark.slow
def test_soak_kill_before_every_manifest(ref, tmp_path) -> None:
    """Outputs complete under their final names, the manifest not yet written: rerun redoes."""
    points = [
        H.injected(stage, f"{stage}-before-manifest", at="tasks.base.write_manifest",
                   match="/v001" if stage == "deliver" else f"/stages/{stage}/")
        for stage in H.STAGE_ORDER
    ]  # fmt: skip
    tour = _tour(ref, tmp_path, points)
    assert sum(a.killed for a in tour.attempts) == len(points)


@pytest.mark.slow
def test_soak_kill_mid_write(ref, tmp_path) -> None:
    """Exact kills inside writers: frame n of a sequence, a checkpoint cut at several lengths."""
    points = [
        *(H.injected("ingest", f"ingest-frame-{n}", at="pipeline.stages.ingest.write_exr",
                     match="/stages/ingest/", nth=n) for n in (1, 5, 8)),
        H.injected("ingest", "ingest-plate-json", at="pipeline.stages.ingest.write_json",
                   match="plate.json", action="kill_after"),
        H.injected("references", "references-npz", at="pipeline.references.store.write_npz"),
        # cut off: the first checkpoint, the second, then the next after a resume
        *(H.injected("finetune", f"finetune-checkpoint-{n}-{f}", at="torch.save", match=".work",
                     nth=n, action="partial", fraction=f) for n, f in ((1, 0.05), (2, 0.5),
                                                                       (1, 0.95))),
        H.injected("finetune", "finetune-preview", at="cv2.imwrite", match="preview"),
        H.injected("export", "export-onnx", at="engines.provider.export_generator",
                   action="kill_after"),
        H.injected("track_chunk", "track-chunk-npz", at="pipeline.stages.track.save_chunk"),
        H.injected("track", "track-overlay-frame-4", at="pipeline.io.prores:ProResWriter.write",
                   nth=4),
        H.injected("synth_chunk", "synth-faces", at="pipeline.stages.synth.save_faces"),
        *(H.injected("deliver", f"deliver-frame-{n}", at="pipeline.delivery.write.write_exr", match="/exr/",
                     nth=n) for n in (1, 8)),
        H.injected("deliver", "deliver-movie-closed", at="pipeline.io.prores:ProResWriter.close",
                   action="kill_after"),
        H.injected("deliver", "deliver-qc", at="pipeline.stages.deliver.write_report",
                   action="kill_after"),
    ]  # fmt: skip
    tour = _tour(ref, tmp_path, points)
    assert sum(a.killed for a in tour.attempts) == len(points)


@pytest.mark.slow
@pytest.mark.parametrize("size", ["300k", "1m", "2m", "20m"])
def test_soak_small_tmpfs_then_room_again(ref, tmp_path, tmpfs, size) -> None:
    """The chain from scratch on a tmpfs of ``size``; then the volume grows and it completes.

    A fine-tune checkpoint rewrite (old and new side by side) is the chain's peak, so a volume
    that holds it holds the rest: later stages are filled by :func:`test_soak_disk_fills_in`.
    """
    if not tmpfs:
        pytest.skip("no tmpfs can be mounted here (unshare --user --mount refused)")
    run = H.run_on_full_disk(ref.spec, tmp_path, size=size, rerun=True)
    assert run.rc == EXIT_DISK_FULL, run.stderr[-3000:]
    failed = sorted(p.name.split(".")[0] for p in run.after_full.glob("shots/*/logs/*.failed.json"))
    print(size, "filled during", failed)
    assert failed and not H.full_disk_problems(run.after_full, failed[0], run.stderr)
    _rerun_ok(run, ref)


#: stage -> (call at which another job fills the volume, bytes it leaves free). References: to
#: the last block, so that not even the failure record fits.
FILLS = {
    "references": ({"at": "pipeline.references.store.write_npz"}, 0),
    "export": ({"at": "engines.provider.export_generator"}, 500_000),
    "track": ({"at": "pipeline.io.prores:ProResWriter.write", "nth": 2}, 20_000),
    "synth_chunk": ({"at": "pipeline.stages.synth.save_faces"}, 20_000),
    "deliver": ({"at": "pipeline.io.prores:ProResWriter.write", "nth": 6}, 10_000),
}


@pytest.mark.slow
@pytest.mark.parametrize("stage", list(FILLS))
def test_soak_disk_fills_in(ref, tmp_path, tmpfs, stage) -> None:
    """Another job fills the volume while ``stage`` writes; freed, the rerun completes."""
    if not tmpfs:
        pytest.skip("no tmpfs can be mounted here (unshare --user --mount refused)")
    before = H.STAGE_ORDER[: H.STAGE_ORDER.index(stage)]
    seed = H.seed_workdir(ref.workdir, tmp_path / "seed", before)
    at, leave = FILLS[stage]
    run = H.run_on_full_disk(ref.spec, tmp_path, size="64m", seed=seed, rerun=True,
                             crash={**at, "action": "fill", "leave": leave})  # fmt: skip
    _full_disk_ok(run, stage)
    _rerun_ok(run, ref)


@pytest.mark.slow
def test_soak_file_size_limit_in_ingest_and_delivery(ref, tmp_path) -> None:
    """EFBIG (RLIMIT_FSIZE) is the same named error as a full volume, with nothing partial."""
    seed = H.seed_workdir(ref.workdir, tmp_path / "seed", H.STAGE_ORDER[:-1])
    run = _fsize_limited(ref, tmp_path, seed, "/exr/", 2, 60_000)
    _full_disk_ok(run, "deliver")
    assert "File too large" in run.stderr
    _rerun_ok(run, ref)
