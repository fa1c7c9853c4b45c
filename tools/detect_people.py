"""Thin wrapper: ``python tools/detect_people.py`` runs :mod:`instanthmr.cli.detect_people` (see its docstring)."""

import sys

from instanthmr.cli.detect_people import main

if __name__ == "__main__":
    sys.exit(main())
