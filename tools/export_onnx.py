"""Thin wrapper: ``python tools/export_onnx.py`` runs :mod:`instanthmr.cli.export_onnx` (see its docstring)."""

import sys

from instanthmr.cli.export_onnx import main

if __name__ == "__main__":
    sys.exit(main())
