"""Thin wrapper: ``python tools/annotate_mediapipe.py`` runs :mod:`instanthmr.cli.annotate_mediapipe` (see its docstring)."""

import sys

from instanthmr.cli.annotate_mediapipe import main

if __name__ == "__main__":
    sys.exit(main())
