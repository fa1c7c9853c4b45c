"""Thin wrapper: ``python tools/count_swapped_frames.py`` runs :mod:`instanthmr.cli.count_swapped_frames` (see its docstring)."""

import sys

from instanthmr.cli.count_swapped_frames import main

if __name__ == "__main__":
    sys.exit(main())
