"""OpenCue: a job spec (cjsl-1.14 XML) per shot, as pyoutline serialises an outline.

Each stage is a layer; a chunked stage's layer spans the shot's frames with ``<chunk>`` frames
per OpenCue frame, and its command gets the chunk through ``#FRAME_START#-#FRAME_END#``. The
stage order becomes LAYER_ON_LAYER dependencies. Submit with ``cueadmin`` / pycue
(``opencue.api.launchSpec``) or pyoutline's ``cuerun``.
"""

from __future__ import annotations

import re
from xml.sax.saxutils import escape

from farm.adapters.base import FarmBatch, ShotJob

DOCTYPE = (
    '<!DOCTYPE spec PUBLIC "SPI Cue  Specification Language" '
    '"http://localhost:8080/spcue/dtd/cjsl-1.14.dtd">'
)


def _token(text: str) -> str:
    """An XML NMTOKEN, as OpenCue job and layer names must be."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


def job_name(batch: FarmBatch, shot: ShotJob) -> str:
    return _token(f"{batch.show}-{shot.shot}-{batch.user}_{batch.name}")


def shot_spec(batch: FarmBatch, shot: ShotJob) -> str:
    """The cjsl XML of one shot's job."""
    job = job_name(batch, shot)
    x = [
        '<?xml version="1.0"?>',
        DOCTYPE,
        "<spec>",
        f"  <show>{escape(batch.show)}</show>",
        f"  <shot>{escape(shot.shot)}</shot>",
        f"  <user>{escape(batch.user)}</user>",
        f'  <job name="{job}">',
        "    <paused>False</paused>",
        f"    <priority>{batch.priority}</priority>",
        "    <maxretries>2</maxretries>",
        "    <autoeat>False</autoeat>",
        "    <layers>",
    ]
    for st in shot.stages:
        if st.frames is not None:
            rng, chunk = st.frames, st.chunk_size
            cmd = batch.command(shot, st, "#FRAME_START#-#FRAME_END#")
        else:
            rng, chunk, cmd = "1-1", 1, batch.command(shot, st)
        x += [
            f'      <layer name="{_token(st.name)}" type="Render">',
            f"        <cmd>{escape(cmd)}</cmd>",
            f"        <range>{rng}</range>",
            f"        <chunk>{chunk}</chunk>",
            "        <cores>1</cores>",
        ]
        if st.gpus:
            x.append(f"        <gpus>{st.gpus}</gpus>")
        x += [
            "        <services>",
            f"          <service>{'gpu' if st.gpus else 'shell'}</service>",
            "        </services>",
            "      </layer>",
        ]
    x += ["    </layers>", "  </job>", "  <depends>"]
    for st in shot.stages:
        for up in st.after:
            x += [
                '    <depend type="LAYER_ON_LAYER" anyframe="False">',
                f"      <depjob>{job}</depjob>",
                f"      <deplayer>{_token(st.name)}</deplayer>",
                f"      <onjob>{job}</onjob>",
                f"      <onlayer>{_token(up)}</onlayer>",
                "    </depend>",
            ]
    x += ["  </depends>", "</spec>", ""]
    return "\n".join(x)


def render(batch: FarmBatch) -> dict[str, str]:
    """One ``<shot>.cuejob.xml`` per shot."""
    return {f"{s.shot}.cuejob.xml": shot_spec(batch, s) for s in batch.shots}
