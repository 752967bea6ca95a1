"""The farm commands of ``likeness``: scheduler, worker, rerun, logs.

Each is thin glue over :mod:`farm` (the central scheduler, the workers, rerun planning, logs) and
the run API (:mod:`tasks.run`); :func:`add_farm_commands` registers them on the ``likeness``
parser.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

from farm.logs import failure_record, log_paths
from farm.rerun import plan_rerun
from farm.scheduler import DEFAULT_ADDRESS, DEFAULT_PORT, SchedulerSettings, serve
from farm.timeline import expand_specs
from farm.worker import parse_resources, run_assistant, run_shared, select_tasks
from pipeline.errors import FarmError
from tasks.run import build_tasks, luigi_config, preflight_all, rerun


def cmd_scheduler(args: argparse.Namespace) -> int:
    settings = SchedulerSettings(
        retry_count=args.retry_count,
        retry_delay=args.retry_delay,
        worker_disconnect_delay=args.worker_disconnect_delay,
        resources=parse_resources(args.resources),
    )
    return serve(args.state_dir, address=args.address, port=args.port, settings=settings)


def _worker_child(args: argparse.Namespace, lane: str, workers: int) -> list[str]:
    cmd = [sys.executable, "-m", "tasks.cli", "worker", "--scheduler-url", args.scheduler_url]
    cmd += ["--workdir", args.workdir, "--workers", str(workers), "--lane", lane]
    cmd += [x for r in args.resources for x in ("--resources", r)]
    if args.stage:
        cmd += ["--stage", args.stage]
    if args.frames:
        cmd += ["--frames", args.frames]
    cmd.append("--no-preflight")  # the parent worker checked the shots
    return cmd + list(args.specs)


def cmd_worker(args: argparse.Namespace) -> int:
    luigi_config()
    node = parse_resources(args.resources)
    if not args.specs:
        if args.stage or args.frames:
            raise FarmError("--stage and --frames need shot specs", "name the shots to run")
        ok = run_assistant(
            args.scheduler_url, args.workers, node_resources=node, idle_exit=args.idle_exit
        )
        return 0 if ok else 1
    if not args.workdir:
        raise FarmError("a worker given shot specs needs --workdir", "pass the submit's workdir")
    specs = expand_specs(args.specs)
    if not args.no_preflight:
        _, code = preflight_all(specs, args.workdir)
        if code:
            return code
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    tops, _ = build_tasks(specs, args.workdir)
    tasks = select_tasks(tops, args.stage, args.frames)
    lane = args.lane
    child = None
    if lane is None and node.get("gpu", 0) > 0:
        # GPU tasks get their own lane of as many processes as the node has GPUs
        child = subprocess.Popen(_worker_child(args, "gpu", node["gpu"]))
        lane = "cpu"
    try:
        ok = run_shared(
            tasks, args.scheduler_url, args.workers, node_resources=node, lane=lane or "all"
        )
    finally:
        child_ok = child is None or child.wait() == 0
    return 0 if ok and child_ok else 1


def cmd_rerun(args: argparse.Namespace) -> int:
    if args.dry_run or (not args.yes and sys.stdin.isatty()):
        print(plan_rerun(args.workdir, args.shot, args.from_stage, args.frames).describe())
        if args.dry_run or input("go ahead? [y/N] ").strip().lower() not in ("y", "yes"):
            return 0 if args.dry_run else 1
    rp, ok = rerun(
        args.workdir,
        args.shot,
        args.from_stage,
        args.frames,
        scheduler_url=args.scheduler_url,
        workers=args.workers,
    )
    print(rp.describe())
    return 0 if ok else 1


def cmd_logs(args: argparse.Namespace) -> int:
    for p in log_paths(args.workdir, args.shot, args.stage, args.chunk):
        print(f"==> {p} <==")
        lines = p.read_text(errors="replace").splitlines()
        print("\n".join(lines[-args.tail :] if args.tail else lines))
        rec = failure_record(args.workdir, args.shot, p.name[: -len(".log")])
        if rec is not None:
            print(f"--- failed on {rec.get('host')} (pid {rec.get('pid')}): {rec.get('error')}")
            if "Traceback" not in "\n".join(lines):  # logs written before the log kept it
                print(rec.get("traceback", ""))
    return 0


def add_farm_commands(sub: Any) -> None:
    """Register ``scheduler``, ``worker``, ``rerun`` and ``logs`` on ``likeness``'s subparsers."""
    d = SchedulerSettings()
    p = sub.add_parser("scheduler", help="run the central scheduler (luigid) for the farm")
    p.add_argument("--address", default=DEFAULT_ADDRESS, help="interface to bind (loopback)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--state-dir", default="luigid-state", help="task graph, history and logs")
    p.add_argument("--retry-count", type=int, default=d.retry_count)
    p.add_argument("--retry-delay", type=float, default=d.retry_delay)
    p.add_argument("--worker-disconnect-delay", type=float, default=d.worker_disconnect_delay)
    p.add_argument("--resources", action="append", default=[], help="farm-wide totals, e.g. gpu=8")
    p.set_defaults(fn=cmd_scheduler)

    p = sub.add_parser("worker", help="run tasks for the central scheduler on this node")
    p.add_argument("specs", nargs="*", help="shot specs or .otio timelines; none: assistant")
    p.add_argument("--scheduler-url", required=True)
    p.add_argument("--workdir", default=None)
    p.add_argument("--workers", type=int, default=1, help="task processes on this node")
    p.add_argument(
        "--resources", action="append", default=[], help="this node's resources, e.g. gpu=1"
    )
    p.add_argument("--stage", default=None, help="run only this stage's tasks (farm managers)")
    p.add_argument("--frames", default=None, help="with --stage: only chunks overlapping A-B")
    p.add_argument(
        "--idle-exit", type=float, default=None, help="assistant: leave after S idle seconds"
    )
    p.add_argument("--lane", choices=("all", "cpu", "gpu"), default=None, help=argparse.SUPPRESS)
    p.add_argument(
        "--no-preflight", action="store_true", help="skip the checks before any stage runs"
    )
    p.set_defaults(fn=cmd_worker)

    p = sub.add_parser("rerun", help="invalidate a shot's stages from one on, and run again")
    p.add_argument("shot")
    p.add_argument("--workdir", required=True)
    p.add_argument("--from", dest="from_stage", default=None, help="first stage to recompute")
    p.add_argument("--frames", default=None, help="only chunks overlapping A-B")
    p.add_argument("--scheduler-url", default=None)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--dry-run", action="store_true", help="say what would be invalidated")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask on a terminal")
    p.set_defaults(fn=cmd_rerun)

    p = sub.add_parser("logs", help="print a stage's log (and its error, if it failed)")
    p.add_argument("shot")
    p.add_argument("stage")
    p.add_argument("--workdir", required=True)
    p.add_argument("--chunk", default=None, help="chunk frame range (1001-1048) or 1-based index")
    p.add_argument("--tail", type=int, default=0, help="only the last N lines")
    p.set_defaults(fn=cmd_logs)
