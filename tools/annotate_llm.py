"""Thin wrapper: ``python tools/annotate_llm.py`` runs :mod:`instanthmr.cli.annotate_llm` (see its docstring)."""

import sys

from instanthmr.cli.annotate_llm import main

if __name__ == "__main__":
    sys.exit(main())
