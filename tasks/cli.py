"""The ``likeness`` command line: batch face replacement for film and TV post-production.

Thin glue: argument parsing, then one call into ``pipeline``, the run API (:mod:`tasks.run`) or
``farm``. The farm commands (scheduler, worker, rerun, logs) are in :mod:`tasks.cli_farm`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from farm.timeline import expand_specs
from pipeline import __version__
from pipeline.delivery.credentials import verify
from pipeline.delivery.devca import write_dev_ca
from pipeline.demo.sample import make_sample_shot
from pipeline.errors import EXIT_FAILED, EXIT_INTERNAL, EXIT_OK, EXIT_UNVERIFIED, LikenessError
from pipeline.eval.cli import main as eval_main
from pipeline.models.networks import load_network_config
from pipeline.shot.profile import load_profile
from pipeline.shot.status import format_table, workdir_status
from pipeline.tracking.tracker import TrackerParams
from pipeline.train.corpus import prepare_corpus
from pipeline.train.launch import run_local
from pipeline.train.meta import load_config
from pipeline.train.meta import main as meta_main
from tasks.cli_farm import add_farm_commands
from tasks.run import build_tasks, describe, outcomes, preflight_all, run


def _report(workdir: str | Path, versions: list[tuple[str, str]]) -> int:
    """Each shot's outputs, or why it was not delivered; returns the exit code."""
    results = outcomes(workdir, versions)
    for o in results:
        print(describe(o, workdir), file=sys.stdout if o.delivered else sys.stderr)
    return max((o.exit_code for o in results), default=EXIT_OK)


def cmd_validate(args: argparse.Namespace) -> int:
    reports, code = preflight_all(args.specs, args.workdir)
    for r in reports:
        if r.ok and r.spec is not None and r.profile is not None:
            refs = len(r.spec.references)
            print(
                f"ok {r.spec_path}: shot {r.spec.shot}, profile {r.profile.name}, {refs} reference(s)"
            )
    return code


def cmd_submit(args: argparse.Namespace) -> int:
    specs = expand_specs(args.specs)
    if not args.no_preflight:
        _, code = preflight_all(specs, args.workdir)
        if code:
            return code
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    tasks, versions = build_tasks(specs, args.workdir)
    ok = run(tasks, args.scheduler_url, args.workers)
    code = _report(args.workdir, versions)
    return code if code or ok else EXIT_FAILED


def cmd_status(args: argparse.Namespace) -> int:
    st = workdir_status(args.workdir)
    print(json.dumps(st, indent=2) if args.json else format_table(st))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    work = Path(args.workdir).resolve()
    spec = make_sample_shot(work / "sample")
    print(f"sample shot: {spec}")
    tasks, versions = build_tasks([str(spec)], str(work))
    ok = run(tasks, args.scheduler_url, args.workers)
    print("\nlikeness demo outputs:")
    code = _report(work, versions)
    print(f"\nstatus: likeness status --workdir {work}")
    return code if code or ok else EXIT_FAILED


def cmd_verify(args: argparse.Namespace) -> int:
    """Check content credentials; exit 0 only when present, intact and trusted."""
    trust_path = args.trust
    if trust_path is None and args.profile:
        trust_path = load_profile(args.profile, Path.cwd()).deliver.c2pa.trust
    trust = Path(trust_path).read_text() if trust_path else None
    v = verify(Path(args.path), trust)
    for name, state in v.state.items():
        print(f"{name}: {state}")
    for key, value in v.claims.items():
        print(f"  {key}: {value}")
    for problem in v.problems:
        print(f"problem: {problem}", file=sys.stderr)
    verdict = (
        "verified: present, intact, signed by a trusted certificate" if v.ok else "NOT verified"
    )
    print(f"{v.path}: {verdict}")
    return EXIT_OK if v.ok else EXIT_UNVERIFIED


def cmd_dev_ca(args: argparse.Namespace) -> int:
    ident = write_dev_ca(Path(args.folder), days=args.days)
    print(f"development CA (trust anchor): {ident.ca}\nsigning chain: {ident.chain}\n"
          f"key: {ident.key}\nnot for delivery to anyone: nobody else trusts this CA")  # fmt: skip
    return EXIT_OK


def cmd_train_base(args: argparse.Namespace) -> int:
    out = Path(args.out).resolve()
    corpus = Path(args.corpus).resolve()
    index = corpus / "index.json"
    if not index.is_file():
        cfg = load_config(args.config)
        size = int(load_network_config(cfg.network).image_size)
        info = prepare_corpus(corpus, out / "corpus", size, TrackerParams(), args.max_frames)
        print(
            f"corpus: {info['entries']} video(s) ready, {len(info['skipped'])} skipped -> {info['index']}"
        )
        index = Path(info["index"])
    meta_args = [str(index), "--out", str(out / "base")]
    if args.config:
        meta_args += ["--config", str(args.config)]
    if args.threads:
        meta_args += ["--threads", str(args.threads)]
    if args.nproc > 1:
        return run_local(args.nproc, ["-m", "pipeline.train.meta", *meta_args])
    return meta_main(meta_args)


def _run_opts(q: argparse.ArgumentParser, workdir_default: str | None = None) -> None:
    if workdir_default is None:
        q.add_argument("--workdir", required=True)
    else:
        q.add_argument("--workdir", default=workdir_default)
    q.add_argument(
        "--scheduler-url", default=None, help="a running luigid; default: local scheduler"
    )
    q.add_argument("--workers", type=int, default=1)


def make_parser() -> argparse.ArgumentParser:
    """The ``likeness`` argument parser, every subcommand included."""
    ap = argparse.ArgumentParser(prog="likeness", description=__doc__.splitlines()[0])
    ap.add_argument("--version", action="version", version=f"likeness {__version__}")
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("validate", help="check shot specs; report every problem at once")
    p.add_argument("specs", nargs="+")
    p.add_argument("--workdir", default=None, help="also check its room (and cache the checks)")
    p.set_defaults(fn=cmd_validate)

    p = sub.add_parser("submit", help="run the chain for one or more shots")
    p.add_argument("specs", nargs="+")
    _run_opts(p)
    p.add_argument(
        "--no-preflight", action="store_true", help="skip the checks before any stage runs"
    )
    p.set_defaults(fn=cmd_submit)

    p = sub.add_parser("status", help="list each shot's stages with their state and outputs")
    p.add_argument("--workdir", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_status)

    p = sub.add_parser("train-base", help="meta-train the base model on a VoxCeleb-like corpus")
    p.add_argument(
        "corpus", help="identity/video/ folders of frames or movies, or a prepared corpus"
    )
    p.add_argument("--out", required=True, help="output folder: corpus/ (prepared) and base/")
    p.add_argument("--config", default=None, help="meta-training YAML (MetaTrainConfig keys)")
    p.add_argument("--nproc", type=int, default=1, help="processes under torchrun (DDP)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads per process")
    p.add_argument("--max-frames", type=int, default=300, help="frames read per corpus video")
    p.set_defaults(fn=cmd_train_base)

    # Listed for --help only: main() hands `likeness eval ...` to pipeline.eval.cli.main directly.
    sub.add_parser("eval", help="the quality harness (likeness eval --help)", add_help=False)

    p = sub.add_parser(
        "verify", help="check the content credentials (C2PA) of a movie, image or version folder"
    )
    p.add_argument("path")
    p.add_argument("--trust", default=None, help="trust anchors (PEM)")
    p.add_argument("--profile", default=None, help="take the trust anchors from a profile")
    p.set_defaults(fn=cmd_verify)

    p = sub.add_parser("credentials", help="content-credential tools")
    csub = p.add_subparsers(dest="credentials_cmd", required=True)
    q = csub.add_parser("dev-ca", help="write a development CA and signing certificate")
    q.add_argument("folder")
    q.add_argument("--days", type=int, default=365)
    q.set_defaults(fn=cmd_dev_ca)

    p = sub.add_parser("demo", help="generate the embedded sample shot and run the chain on it")
    _run_opts(p, workdir_default="demo_work")
    p.set_defaults(fn=cmd_demo)

    add_farm_commands(sub)
    return ap


def _no_traceback(record: logging.LogRecord) -> bool:
    """Console filter: a failure is told in one paragraph per shot (:func:`tasks.run.describe`),
    so the records that carry its traceback (the stage's and Luigi's) are left to the stage's
    log (``likeness logs``); ``-v`` shows them here too."""
    return record.exc_info is None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["eval"]:
        # The quality harness has its own argument parser (options included): hand it the rest.
        return eval_main(argv[1:])
    args = make_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        for handler in logging.getLogger().handlers:
            handler.addFilter(_no_traceback)
    os.environ.setdefault("PYTHONHASHSEED", "0")
    try:
        return args.fn(args)
    except LikenessError as exc:
        print(f"likeness: {type(exc).__name__}: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:
        if args.verbose:
            raise
        print(
            f"likeness: internal error: {type(exc).__name__}: {exc}\n"
            "  fix: this is a bug in likeness; rerun with -v for the traceback and report it",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
