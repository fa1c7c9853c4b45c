"""Thin wrapper: ``python tools/eval.py`` runs :mod:`instanthmr.cli.eval` (see its docstring)."""

import sys

from instanthmr.cli.eval import main

if __name__ == "__main__":
    sys.exit(main())
