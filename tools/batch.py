"""Thin wrapper: ``python tools/batch.py`` runs :mod:`instanthmr.cli.batch` (see its docstring)."""

import sys

from instanthmr.cli.batch import main

if __name__ == "__main__":
    sys.exit(main())
