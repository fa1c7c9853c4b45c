"""Thin wrapper: ``python tools/model_info.py`` runs :mod:`instanthmr.cli.model_info` (see its docstring)."""

import sys

from instanthmr.cli.model_info import main

if __name__ == "__main__":
    sys.exit(main())
