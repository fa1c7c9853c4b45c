"""What the commands share: library field names as flags, the ``--random-init`` export, and for every
benchmark its ``main`` (the ``--json`` path checked before the run, known bad-input errors as one line,
SIGTERM/SIGHUP like Ctrl-C), its common flags, the report's time stamp and the ``--json`` file."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from instanthmr.core.faults import (
    OutputPathError,
    check_output_path,
    interrupt_exit_code,
    stop_reason,
    stop_signals,
    write_text_atomic,
)


def flag_name(field: str) -> str:
    """A configuration field as the command line spells it: ``save_json`` -> ``--save-json``."""
    return "--" + field.replace("_", "-")


def random_init_model(model: str | None, config: str | None = None) -> Path:
    """``--random-init``: a network of architecture ``config`` with random weights, exported to ONNX (cached;
    first time ~30 s; needs torch). Raises ``ModelLoadError`` (one line) with ``--model`` too or without torch."""
    from instanthmr.runtime.factory import RANDOM_BANNER
    from instanthmr.runtime.session import ModelLoadError

    if model:
        raise ModelLoadError("give either --model or --random-init, not both")
    print(RANDOM_BANNER, file=sys.stderr)
    print("exporting a random-init network (first time: ~30 s) ...", file=sys.stderr)
    try:
        from instanthmr.training.export import random_init_onnx

        return random_init_onnx(config)
    except ImportError as e:
        raise ModelLoadError(f"--random-init needs torch and the training package ({e})") from None


def looks_like_address(value: str) -> bool:
    """``--ray ADDRESS``: ``auto``, ``local`` or ``HOST:PORT`` / ``ray://HOST:10001``, else an input path."""
    return value in ("auto", "local") or ":" in value


def utc_stamp() -> str:
    """Now, as reports record it: ``2026-11-21 21:47 UTC``."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def network_label(path: str | Path) -> str:
    """The architecture an ONNX file names in its metadata (our exports write ``model_name``), else its file
    name: what the benchmark tables print in their architecture column. Reads the file's metadata only."""
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    return meta.get("model_name") or f"{Path(path).name} (no metadata)"


def write_json_report(path: str | Path | None, report: dict) -> None:
    """Write ``report`` to ``path`` atomically (parent folders made; non-JSON values as strings) and say so;
    no-op when ``path`` is None (no ``--json``)."""
    if not path:
        return
    write_text_atomic(path, json.dumps(report, indent=1, default=str))
    print(f"wrote {path}")


def run_main(parser, run, argv: list[str] | None = None) -> int:
    """``run(parser.parse_args(argv))``. An unwritable ``--json`` path is refused before the run (exit 2, as
    argparse does for bad arguments); a missing or unreadable video/model or a bad value prints
    ``error: ...`` and returns 1; Ctrl-C, SIGTERM and SIGHUP stop the run without a traceback (exit 130,
    143, 129; no report is written)."""
    from instanthmr.runtime.session import ModelLoadError
    from instanthmr.video.sources import SourceError

    args = parser.parse_args(argv)
    try:
        if getattr(args, "json", None):
            check_output_path(args.json, "--json")
    except OutputPathError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        with stop_signals():
            run(args)
    except (SourceError, ModelLoadError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # the --json folder vanished or the disk filled up since the check
        print(f"error: {e.strerror or e}: {e.filename or ''}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        print(f"{stop_reason(e)}: no report written", file=sys.stderr)
        return interrupt_exit_code(e)
    return 0
