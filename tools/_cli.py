"""The end of every benchmark's ``main``: run it, and turn the known bad-input errors into one line + exit 1."""

from __future__ import annotations

import sys


def run_main(parser, run, argv: list[str] | None = None) -> int:
    """``run(parser.parse_args(argv))``; a missing or unreadable video/model or a bad value prints
    ``error: ...`` and returns 1 (argument errors exit 2, as argparse does)."""
    from instanthmr.io import SourceError
    from instanthmr.runtime import ModelLoadError

    args = parser.parse_args(argv)
    try:
        run(args)
    except (SourceError, ModelLoadError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
