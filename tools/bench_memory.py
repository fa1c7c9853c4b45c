"""Thin wrapper: ``python tools/bench_memory.py`` runs :mod:`instanthmr.cli.bench_memory` (see its docstring)."""

import sys

from instanthmr.cli.bench_memory import main

if __name__ == "__main__":
    sys.exit(main())
