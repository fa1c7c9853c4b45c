"""Thin wrapper: ``python demo.py`` runs :mod:`instanthmr.cli.demo` (``python demo.py --help``)."""

import sys

from instanthmr.cli.demo import main

if __name__ == "__main__":
    sys.exit(main())
