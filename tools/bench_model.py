"""Thin wrapper: ``python tools/bench_model.py`` runs :mod:`instanthmr.cli.bench_model` (see its docstring)."""

import sys

from instanthmr.cli.bench_model import main

if __name__ == "__main__":
    sys.exit(main())
