"""Thin wrapper: ``python tools/convert_mhr.py`` runs :mod:`instanthmr.cli.convert_mhr` (see its docstring)."""

import sys

from instanthmr.cli.convert_mhr import main

if __name__ == "__main__":
    sys.exit(main())
