"""Thin wrapper: ``python tools/train.py`` runs :mod:`instanthmr.cli.train` (see its docstring)."""

import sys

from instanthmr.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
