"""Thin wrapper: ``python tools/frame_breakdown.py`` runs :mod:`instanthmr.cli.frame_breakdown` (see its docstring)."""

import sys

from instanthmr.cli.frame_breakdown import main

if __name__ == "__main__":
    sys.exit(main())
