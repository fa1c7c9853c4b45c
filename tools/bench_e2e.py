"""Thin wrapper: ``python tools/bench_e2e.py`` runs :mod:`instanthmr.cli.bench_e2e` (see its docstring)."""

import sys

from instanthmr.cli.bench_e2e import main

if __name__ == "__main__":
    sys.exit(main())
