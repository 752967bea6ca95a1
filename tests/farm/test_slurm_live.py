"""The Slurm adapter for real: a one-node Slurm cluster (slurmctld + slurmd) on this machine.

Needs Debian's ``slurm-wlm`` (``apt-get install slurm-wlm``) and root (slurmd starts jobs as
their user). The cluster uses ``auth/none`` and listens on free loopback ports; it lives in the
test's temporary folder and is stopped afterwards. ``bash submit.sh`` from
``python -m farm.adapters slurm`` submits the shot's stages as sbatch jobs and job arrays chained
with ``afterok``; every job runs ``likeness worker --stage ...`` against a real luigid. The shot
must be delivered, and every stage must have run as its own Slurm job.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.shot.status import workdir_status
from tests.farm.conftest import free_port, make_shots
from tests.tasks.conftest import TEST_PROFILE

ROOT = Path(__file__).resolve().parents[2]
HAVE_SLURM = all(shutil.which(x) for x in ("slurmctld", "slurmd", "sbatch", "squeue", "sinfo"))

# Slow (make soak): real daemons and Slurm's own scheduling take most of a minute for 8 frames.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not HAVE_SLURM or os.geteuid() != 0,
        reason="needs Debian's slurm-wlm (slurmctld, slurmd, sbatch) and root to run a one-node "
        "cluster; apt-get install slurm-wlm",
    ),
]

CONF = """\
ClusterName=likeness-test
SlurmctldHost=localhost
AuthType=auth/none
CredType=cred/none
SlurmUser=root
SlurmdUser=root
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
JobCompType=jobcomp/filetxt
JobCompLoc={d}/jobcomp.txt
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
NodeName=localhost CPUs=2 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


@pytest.fixture
def slurm(tmp_path):
    d = tmp_path / "slurm"
    (d / "state").mkdir(parents=True)
    (d / "spool").mkdir()
    conf = d / "slurm.conf"
    conf.write_text(CONF.format(d=d, ctld_port=free_port(), d_port=free_port()))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    daemons = [
        subprocess.Popen(["slurmctld", "-D", "-i", "-f", str(conf)], env=env),
        subprocess.Popen(["slurmd", "-D", "-N", "localhost", "-f", str(conf)], env=env),
    ]
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            out = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True)
            if out.stdout.strip() == b"idle":
                break
            time.sleep(0.5)
        else:
            pytest.fail(
                f"the one-node cluster did not come up: {(d / 'slurmctld.log').read_text()}"
            )
        yield env, d
    finally:
        # Cancel what is left (a failed test), and wait for its job steps before the daemons go.
        subprocess.run(["scancel", "--user", "root"], env=env, capture_output=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            q = subprocess.run(["squeue", "-h"], env=env, capture_output=True, text=True)
            if q.returncode != 0 or not q.stdout.strip():
                break
            time.sleep(0.5)
        for p in daemons:
            p.terminate()
        for p in daemons:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def test_slurm_submit_script_runs_the_chain_on_a_real_cluster(slurm, luigid, tmp_path):
    env, d = slurm
    env = {**env, "PATH": f"{Path(sys.executable).parent}:{env['PATH']}", "PYTHONPATH": str(ROOT)}
    # A CPU cluster: the profile says so, else fine-tuning asks Slurm for a GPU (--gres=gpu:1).
    profile = {**TEST_PROFILE, "finetune": {**TEST_PROFILE["finetune"], "device": "cpu"}}
    spec = str(make_shots(tmp_path / "shots", 1, frames=8, profile=profile)[0])
    wd, jobs = tmp_path / "wd", tmp_path / "jobs"
    render = [sys.executable, "-m", "farm.adapters", "slurm", spec, "--workdir", str(wd)]
    render += ["--scheduler-url", luigid.url, "--out", str(jobs), "--likeness", "likeness"]
    subprocess.run(render, check=True, cwd=ROOT, env=env)
    out = subprocess.run(["bash", str(jobs / "submit.sh")], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr

    deadline = time.time() + 420
    while time.time() < deadline:
        q = subprocess.run(["squeue", "-h"], env=env, capture_output=True, text=True).stdout
        if not q.strip():
            break
        time.sleep(1)
    else:
        pytest.fail(f"Slurm jobs still queued: {q}")

    comp = (d / "jobcomp.txt").read_text().splitlines()
    states = [dict(kv.split("=", 1) for kv in line.split() if "=" in kv) for line in comp]
    names = {s["Name"] for s in states}
    failed = [s for s in states if s["JobState"] != "COMPLETED"]
    logs = "\n".join(p.read_text()[-2000:] for p in sorted((wd / "farm-logs").glob("*.out")))
    assert not failed, f"{failed}\n{logs}"
    stages = ("ingest", "track_chunk", "track", "references", "finetune", "export", "synth_chunk")
    assert {f"likeness-sh010-{s}" for s in (*stages, "deliver")} <= names, names
    # track_chunk and synth_chunk are arrays: 8 frames in chunks of 4 = 2 array tasks each
    assert sum(s["Name"] == "likeness-sh010-track_chunk" for s in states) == 2
    st = workdir_status(wd)["shots"]["sh010"]["versions"]["v001"]
    assert st["state"] == "done", st
