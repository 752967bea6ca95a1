"""``python -m pipeline.eval``: the quality harness's command line."""

from pipeline.eval.cli import main

raise SystemExit(main())
