"""Thin wrapper: ``python tools/export_detector.py`` runs :mod:`instanthmr.cli.export_detector` (see its docstring)."""

import sys

from instanthmr.cli.export_detector import main

if __name__ == "__main__":
    sys.exit(main())
