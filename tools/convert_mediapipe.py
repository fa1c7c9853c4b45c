"""Thin wrapper: ``python tools/convert_mediapipe.py`` runs :mod:`instanthmr.cli.convert_mediapipe` (see its docstring)."""

import sys

from instanthmr.cli.convert_mediapipe import main

if __name__ == "__main__":
    sys.exit(main())
