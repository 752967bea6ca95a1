"""``python -m farm.adapters ADAPTER SPEC... --workdir W --scheduler-url URL --out DIR``."""

from __future__ import annotations

import argparse
import sys

from farm.adapters import ADAPTERS, batch_from_specs, write
from farm.timeline import expand_specs
from pipeline.errors import LikenessError
from pipeline.shot.preflight import preflight


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m farm.adapters", description=__doc__)
    ap.add_argument("adapter", choices=sorted(ADAPTERS))
    ap.add_argument("specs", nargs="+", help="shot specs or .otio timelines")
    ap.add_argument("--workdir", required=True, help="the workdir, as the farm nodes see it")
    ap.add_argument("--scheduler-url", required=True)
    ap.add_argument("--out", required=True, help="folder for the job files")
    ap.add_argument("--name", default="likeness")
    ap.add_argument("--likeness", default="likeness", help="the command on the farm nodes")
    ap.add_argument("--pool", default=None, help="Deadline pool / Slurm partition")
    ap.add_argument("--priority", type=int, default=50)
    ap.add_argument(
        "--no-preflight", action="store_true", help="skip the checks before job files are written"
    )
    args = ap.parse_args(argv)
    try:
        specs = expand_specs(args.specs)
        if not args.no_preflight:
            # every shot checked before any job file is written (a wrong spec costs no farm time)
            for spec in specs:
                preflight(spec, args.workdir).raise_if_problems()
        batch = batch_from_specs(
            specs,
            args.workdir,
            args.scheduler_url,
            name=args.name,
            likeness=args.likeness,
            pool=args.pool,
            priority=args.priority,
        )
        for p in write(args.adapter, batch, args.out):
            print(p)
    except LikenessError as exc:
        print(f"farm.adapters: {type(exc).__name__}: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
