"""Thin wrapper: ``python tools/quantize_onnx.py`` runs :mod:`instanthmr.cli.quantize_onnx` (see its docstring)."""

import sys

from instanthmr.cli.quantize_onnx import main

if __name__ == "__main__":
    sys.exit(main())
