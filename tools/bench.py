"""Thin wrapper: ``python tools/bench.py`` runs :mod:`instanthmr.cli.bench` (see its docstring)."""

import sys

from instanthmr.cli.bench import main

if __name__ == "__main__":
    sys.exit(main())
