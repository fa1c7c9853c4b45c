"""Thin wrapper: ``python tools/mhr.py`` runs :mod:`instanthmr.cli.mhr` (see its docstring)."""

import sys

from instanthmr.cli.mhr import main

if __name__ == "__main__":
    sys.exit(main())
