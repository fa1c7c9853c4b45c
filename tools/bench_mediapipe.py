"""Thin wrapper: ``python tools/bench_mediapipe.py`` runs :mod:`instanthmr.cli.bench_mediapipe` (see its docstring)."""

import sys

from instanthmr.cli.bench_mediapipe import main

if __name__ == "__main__":
    sys.exit(main())
