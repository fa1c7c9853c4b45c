"""What every benchmark shares: its ``main`` (known bad-input errors become one line + exit 1), the report's
time stamp and the ``--json`` file."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path


def utc_stamp() -> str:
    """Now, as reports record it: ``2026-11-21 21:47 UTC``."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def write_json_report(path: str | Path | None, report: dict) -> None:
    """Write ``report`` to ``path`` (parent folders made; non-JSON values as strings) and say so; no-op when
    ``path`` is None (no ``--json``)."""
    if not path:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, default=str))
    print(f"wrote {path}")


def run_main(parser, run, argv: list[str] | None = None) -> int:
    """``run(parser.parse_args(argv))``; a missing or unreadable video/model or a bad value prints
    ``error: ...`` and returns 1 (argument errors exit 2, as argparse does)."""
    from instanthmr.runtime.session import ModelLoadError
    from instanthmr.video.sources import SourceError

    args = parser.parse_args(argv)
    try:
        run(args)
    except (SourceError, ModelLoadError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
