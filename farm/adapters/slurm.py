"""Slurm: an ``sbatch`` array script per stage, chained with ``--dependency=afterok``.

A chunked stage is a job array, one array task per chunk: the script turns
``SLURM_ARRAY_TASK_ID`` into the chunk's frame range. ``submit.sh`` submits every shot's stages
with ``sbatch --parsable`` and makes each stage wait for the stages it needs. GPU stages ask for
``--gres=gpu:N``. For ML clusters (meta-training), the same scripts run next to other work.
"""

from __future__ import annotations

import shlex

from farm.adapters.base import FarmBatch, ShotJob, StageJob

RANGE = '"$START-$END"'


def _var(shot: ShotJob, stage: str) -> str:
    return f"jid_{shot.shot}_{stage}".replace("-", "_")


def script(batch: FarmBatch, shot: ShotJob, st: StageJob) -> str:
    """The sbatch script of one stage of one shot."""
    x = [
        "#!/bin/bash",
        f"#SBATCH --job-name=likeness-{shot.shot}-{st.name}",
        f"#SBATCH --output={batch.logs}/%x-%A_%a.out",
        "#SBATCH --cpus-per-task=1",
        "#SBATCH --ntasks=1",
    ]
    if st.frames is not None and st.n_chunks > 1:
        x.append(f"#SBATCH --array=0-{st.n_chunks - 1}")
    if batch.pool:
        x.append(f"#SBATCH --partition={batch.pool}")
    if st.gpus:
        x.append(f"#SBATCH --gres=gpu:{st.gpus}")
    x.append("set -euo pipefail")
    if st.frames is not None:
        first, last = st.frames.split("-")
        x += [
            f"FIRST={first}; LAST={last}; CHUNK={st.chunk_size}",
            "START=$((FIRST + ${SLURM_ARRAY_TASK_ID:-0} * CHUNK))",
            'END=$((START + CHUNK - 1)); if [ "$END" -gt "$LAST" ]; then END=$LAST; fi',
            "exec " + batch.command(shot, st, RANGE),
        ]
    else:
        x.append(f"exec {batch.command(shot, st)}")
    return "\n".join(x) + "\n"


def render(batch: FarmBatch) -> dict[str, str]:
    """One ``<shot>/<nn>_<stage>.sbatch`` per stage, plus ``submit.sh``."""
    files: dict[str, str] = {}
    sub = [
        "#!/bin/bash",
        "# Submit every shot's stages; each stage waits for the stages it needs (afterok).",
        "set -euo pipefail",
        'cd "$(dirname "$0")"',
        f"mkdir -p {shlex.quote(batch.logs)}",
    ]
    for shot in batch.shots:
        for i, st in enumerate(shot.stages, 1):
            rel = f"{shot.shot}/{i:02d}_{st.name}.sbatch"
            files[rel] = script(batch, shot, st)
            dep = ":".join(f"${_var(shot, a)}" for a in st.after)
            opt = f" --dependency=afterok:{dep}" if dep else ""
            sub.append(f"{_var(shot, st.name)}=$(sbatch --parsable{opt} {rel})")
    sub.append('echo "submitted"')
    files["submit.sh"] = "\n".join(sub) + "\n"
    return files
