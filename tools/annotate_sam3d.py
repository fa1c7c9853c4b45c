"""Thin wrapper: ``python tools/annotate_sam3d.py`` runs :mod:`instanthmr.cli.annotate_sam3d` (see its docstring)."""

import sys

from instanthmr.cli.annotate_sam3d import main

if __name__ == "__main__":
    sys.exit(main())
