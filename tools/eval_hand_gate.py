"""Thin wrapper: ``python tools/eval_hand_gate.py`` runs :mod:`instanthmr.cli.eval_hand_gate` (see its docstring)."""

import sys

from instanthmr.cli.eval_hand_gate import main

if __name__ == "__main__":
    sys.exit(main())
