"""Thin wrapper: ``python tools/eval_body_fit.py`` runs :mod:`instanthmr.cli.eval_body_fit` (see its docstring)."""

import sys

from instanthmr.cli.eval_body_fit import main

if __name__ == "__main__":
    sys.exit(main())
