"""Thin wrapper: ``python tools/eval_temporal.py`` runs :mod:`instanthmr.cli.eval_temporal` (see its docstring)."""

import sys

from instanthmr.cli.eval_temporal import main

if __name__ == "__main__":
    sys.exit(main())
