"""Thin wrapper: ``python tools/eval_lifter.py`` runs :mod:`instanthmr.cli.eval_lifter` (see its docstring)."""

import sys

from instanthmr.cli.eval_lifter import main

if __name__ == "__main__":
    sys.exit(main())
