"""Thin wrapper: ``python tools/eval_offline.py`` runs :mod:`instanthmr.cli.eval_offline` (see its docstring)."""

import sys

from instanthmr.cli.eval_offline import main

if __name__ == "__main__":
    sys.exit(main())
