"""Luigi workers against the central scheduler: many processes, many nodes, each task once.

The central scheduler (``luigid``) hands each task to one worker at a time; a worker asks it for
work, runs the task and reports the result. Two ways to join:

- **with shot specs** (``likeness worker --scheduler-url URL SPEC...``, and ``likeness submit
  --scheduler-url``): the worker schedules the shots' tasks itself, runs whichever the
  scheduler gives it, waits while other workers run the rest, and returns when every shot is
  complete. Any number of such processes, on any nodes, share the work.
- **as an assistant** (``likeness worker --scheduler-url URL``, no specs): it runs any task that
  any submitter scheduled, until stopped, or until the farm has had no work for ``idle_exit``
  seconds.

Node resources (``--resources gpu=2``): Luigi's ``[resources]`` are farm-wide totals held by the
scheduler; Luigi has no per-node limits. So a node enforces its own: a task that needs more of a
node-local resource (``gpu``) than the node declares is scheduled by this worker as not
runnable here, so the scheduler never hands it to this worker, and a node with GPUs runs its GPU
tasks in a separate worker lane of as many processes as it has GPUs (see ``farm/cli.py``).
An assistant cannot filter what it is given; it is bounded only by the farm-wide totals.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

import luigi
import luigi.execution_summary
import luigi.interface
import luigi.rpc
import luigi.worker

from pipeline.errors import FarmError
from pipeline.frames import FrameRange

log = logging.getLogger("likeness.farm")

#: Resources a node owns (counted per node). Any other resource name is a farm-wide total only.
NODE_LOCAL = frozenset({"gpu"})

#: Worker lanes: which tasks a worker process accepts, by the node-local resources they need.
LANES = ("all", "cpu", "gpu")

#: What a worker process asks of Luigi: wait for the work of others, poll gently.
WORKER_SETTINGS: dict[str, Any] = {
    "keep_alive": True,
    "wait_interval": 1.0,
    "wait_jitter": 1.0,
    "check_complete_on_run": True,
    "max_reschedules": 3,
}


def parse_resources(items: Iterable[str]) -> dict[str, int]:
    """``["gpu=2", "licence=1"]`` -> ``{"gpu": 2, "licence": 1}``.

    Raises:
        FarmError: an item is not ``NAME=COUNT`` with a non-negative integer count.
    """
    out: dict[str, int] = {}
    for item in items:
        for part in str(item).split(","):
            name, sep, count = part.partition("=")
            name = name.strip()
            if not sep or not name or not count.strip().isdigit():
                raise FarmError(
                    f"resource {part!r} is not NAME=COUNT",
                    "write e.g. --resources gpu=1 (a non-negative integer per resource)",
                )
            out[name] = int(count)
    return out


def accepts(needed: dict[str, int] | None, node: dict[str, int], lane: str = "all") -> bool:
    """Whether a worker lane on a node with ``node`` resources may run a task needing ``needed``.

    Args:
        needed: the task's ``process_resources()``.
        node: the node's resources (``--resources``); a node-local resource it does not list
            counts as 0.
        lane: ``all`` (any task that fits), ``cpu`` (only tasks needing no node-local
            resource), ``gpu`` (only tasks that need one and fit).
    """
    if lane not in LANES:
        raise FarmError(f"worker lane {lane!r} is unknown", f"use one of {', '.join(LANES)}")
    local = {k: v for k, v in (needed or {}).items() if k in NODE_LOCAL | set(node) and v > 0}
    fits = all(v <= node.get(k, 0) for k, v in local.items())
    if lane == "cpu":
        return not local
    if lane == "gpu":
        return bool(local) and fits
    return fits


class FarmWorker(luigi.worker.Worker):
    """A Luigi worker that honours its node's resources and may leave when the farm is idle.

    Args:
        node_resources: the node's resources (``--resources``).
        lane: which tasks this worker accepts (:data:`LANES`).
        idle_exit: an assistant returns after this many seconds without work (None: never).
    """

    def __init__(
        self,
        *args: Any,
        node_resources: dict[str, int] | None = None,
        lane: str = "all",
        idle_exit: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.node_resources = dict(node_resources or {})
        self.lane = lane
        self.idle_exit = idle_exit

    def _add_task(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("runnable") and not accepts(
            kwargs.get("resources"), self.node_resources, self.lane
        ):
            # scheduled (so this worker waits for it) but never handed to this worker
            kwargs["runnable"] = False
        super()._add_task(*args, **kwargs)

    def _keep_alive(self, get_work_response: Any) -> bool:
        if self._assistant and self.idle_exit is not None:
            idle = datetime.datetime.now() - (self._idle_since or datetime.datetime.now())
            return idle.total_seconds() < self.idle_exit
        return super()._keep_alive(get_work_response)


class FarmFactory:
    """Luigi's worker/scheduler factory, making :class:`FarmWorker` against a remote scheduler."""

    def __init__(
        self,
        node_resources: dict[str, int] | None = None,
        lane: str = "all",
        idle_exit: float | None = None,
        **settings: Any,
    ) -> None:
        self.node_resources = node_resources or {}
        self.lane = lane
        self.idle_exit = idle_exit
        self.settings = {**WORKER_SETTINGS, **settings}

    def create_local_scheduler(self) -> Any:
        raise FarmError("a farm worker needs --scheduler-url", "start one: likeness scheduler")

    def create_remote_scheduler(self, url: str) -> luigi.rpc.RemoteScheduler:
        return luigi.rpc.RemoteScheduler(url)

    def create_worker(
        self, scheduler: Any, worker_processes: int, assistant: bool = False
    ) -> FarmWorker:
        return FarmWorker(
            scheduler=scheduler,
            worker_processes=worker_processes,
            assistant=assistant,
            node_resources=self.node_resources,
            lane=self.lane,
            idle_exit=self.idle_exit,
            **self.settings,
        )


def walk(tasks: Iterable[luigi.Task]) -> list[luigi.Task]:
    """Every task in the graphs below ``tasks`` (requirements first, each once)."""
    seen: dict[str, luigi.Task] = {}

    def visit(t: luigi.Task) -> None:
        if t.task_id in seen:
            return
        for dep in luigi.task.flatten(t.requires()):
            visit(dep)
        seen[t.task_id] = t

    for t in tasks:
        visit(t)
    return list(seen.values())


def select_tasks(
    tops: Sequence[luigi.Task], stage: str | None = None, frames: str | None = None
) -> list[luigi.Task]:
    """The tasks of one stage below ``tops`` (all of ``tops`` when ``stage`` is None).

    A farm-manager task runs one stage's task(s): ``--stage track_chunk --frames 1001-1048`` is
    the chunk tasks whose frames overlap 1001-1048.

    Raises:
        FarmError: no task of that stage (and frames) exists in these shots' plans.
    """
    if stage is None:
        return list(tops)
    want = _parse_frames(frames) if frames else None
    picked = []
    for t in walk(tops):
        if getattr(t, "stage_name", None) != stage:
            continue
        if want is not None:
            fr = t.stage.frames
            if fr.last < want.first or fr.first > want.last:
                continue
        picked.append(t)
    if not picked:
        raise FarmError(
            f"no {stage!r} task" + (f" for frames {frames}" if frames else "") + " in these shots",
            "check the stage name (likeness status lists them) and the frame range",
        )
    return picked


def _parse_frames(text: str) -> FrameRange:
    try:
        return FrameRange.parse(text)
    except (ValueError, TypeError) as exc:
        raise FarmError(
            f"frame range {text!r} is not A-B", "write e.g. --frames 1001-1048"
        ) from exc


def _summary(result: luigi.interface.LuigiRunResult) -> dict[str, set]:
    return luigi.execution_summary._summary_dict(result.worker)


def run_shared(
    tasks: Sequence[luigi.Task],
    scheduler_url: str,
    workers: int = 1,
    *,
    node_resources: dict[str, int] | None = None,
    lane: str = "all",
    poll: float = 2.0,
    **settings: Any,
) -> bool:
    """Run ``tasks`` with every other worker of a central scheduler, until they are complete.

    The worker runs what the scheduler hands it; tasks that other workers hold are waited for
    (and taken over if those workers die: the scheduler fails a dead worker's task and hands it
    out again). Returns when every task is complete, or when one failed for good.

    Returns:
        True when every task in ``tasks`` is complete.
    """
    factory = FarmFactory(node_resources, lane, **settings)
    while True:
        result = luigi.build(
            list(tasks),
            worker_scheduler_factory=factory,
            scheduler_url=scheduler_url,
            workers=workers,
            detailed_summary=True,
        )
        if all(t.complete() for t in tasks):
            return True
        s = _summary(result)
        broken = [
            k
            for k in ("failed", "upstream_failure", "upstream_disabled", "scheduling_error")
            if s.get(k)
        ]
        if broken:
            log.error("shots did not complete:\n%s", result.summary_text)
            return False
        # what is left is held by other workers (or not runnable on this node): wait for them
        time.sleep(poll)


def run_assistant(
    scheduler_url: str,
    workers: int = 1,
    *,
    node_resources: dict[str, int] | None = None,
    idle_exit: float | None = None,
    **settings: Any,
) -> bool:
    """Run any task that any submitter scheduled on the central scheduler.

    Args:
        idle_exit: return after this many seconds with no work (None: run until SIGUSR1, which
            makes Luigi finish the running tasks and stop, or until killed).

    Returns:
        True when no task this worker ran failed.
    """
    factory = FarmFactory(node_resources, "all", idle_exit, **settings)
    result = luigi.build(
        [],
        worker_scheduler_factory=factory,
        scheduler_url=scheduler_url,
        workers=workers,
        assistant=True,
        detailed_summary=True,
    )
    return result.status.name in ("SUCCESS", "SUCCESS_WITH_RETRY")
