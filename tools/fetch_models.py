"""Thin wrapper: ``python tools/fetch_models.py`` runs :mod:`instanthmr.cli.fetch_models` (see its docstring)."""

import sys

from instanthmr.cli.fetch_models import main

if __name__ == "__main__":
    sys.exit(main())
