"""Thin wrapper: ``python tools/bench_gpu.py`` runs :mod:`instanthmr.cli.bench_gpu` (see its docstring)."""

import sys

from instanthmr.cli.bench_gpu import main

if __name__ == "__main__":
    sys.exit(main())
