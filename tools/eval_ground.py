"""Thin wrapper: ``python tools/eval_ground.py`` runs :mod:`instanthmr.cli.eval_ground` (see its docstring)."""

import sys

from instanthmr.cli.eval_ground import main

if __name__ == "__main__":
    sys.exit(main())
