"""Thin wrapper: ``python tools/bench_body_fit_stage.py`` runs :mod:`instanthmr.cli.bench_body_fit_stage` (see its docstring)."""

import sys

from instanthmr.cli.bench_body_fit_stage import main

if __name__ == "__main__":
    sys.exit(main())
