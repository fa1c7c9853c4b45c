"""Thin wrapper: ``python tools/synth_mhr.py`` runs :mod:`instanthmr.cli.synth_mhr` (see its docstring)."""

import sys

from instanthmr.cli.synth_mhr import main

if __name__ == "__main__":
    sys.exit(main())
