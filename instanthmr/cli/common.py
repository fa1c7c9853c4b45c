"""What the commands share: library field names as flags, the ``--random-init`` export, and for every
benchmark its ``main`` (the ``--json`` path checked before the run, known bad-input errors as one line,
SIGTERM/SIGHUP like Ctrl-C), its common flags, the report's time stamp, the machine's load and the ``--json``
file."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from instanthmr.core.faults import (
    OutputPathError,
    check_output_path,
    interrupt_exit_code,
    stop_reason,
    stop_signals,
    write_text_atomic,
)
# the benchmarks' time stamp and load reading, one copy each (the runner's stride benchmark prints them too)
from instanthmr.runner.speed import describe_load, load_average, utc_stamp  # noqa: F401


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


def add_bench_flags(p, *, video: str | None = None, video_required: bool = False, video_type=str,
                    model: str | None = None, threads: int | None = None, threads_help: str = "",
                    cache_dir: str | None = None, cache_help: str = "",
                    json_help: str | None = "write the report to this JSON file") -> None:
    """The flags every benchmark spells the same way: ``--video`` (``video``: its help; None = no such flag),
    ``--model`` (help), ``--threads`` (``threads``: its default; 0 = ONNX Runtime's choice), ``--cache-dir``
    (``cache_dir``: a folder name under the system's temporary folder, the default) and ``--json``
    (``json_help`` None: none)."""
    if video is not None:
        p.add_argument("--video", required=video_required, default=None, type=video_type, metavar="PATH", help=video)
    if model is not None:
        p.add_argument("--model", default=None, metavar="PATH", help=model)
    if threads is not None:
        p.add_argument("--threads", type=int, default=threads, metavar="N",
                       help=(threads_help or "ONNX Runtime intra-op threads per model, idle threads sleep")
                       + f" (default: {threads}{' = its choice' if threads == 0 else ''})")
    if cache_dir is not None:
        default = Path(tempfile.gettempdir()) / cache_dir
        p.add_argument("--cache-dir", default=str(default), metavar="DIR",
                       help=(cache_help or "where exported, quantised and re-encoded files are kept between runs")
                       + f" (default: {default})")
    if json_help is not None:
        p.add_argument("--json", default=None, metavar="PATH", help=json_help)


def clip_path(clip: str, videos: str | Path) -> Path:
    """A clip given on the command line: ``clip`` itself when it is a file, else the file of that name in the
    ``videos`` folder (``--videos``). Raises ``ValueError`` (one line) when neither exists, before any work."""
    path = Path(clip) if Path(clip).is_file() else Path(videos) / clip
    if not path.is_file():
        raise ValueError(f"video not found: {clip} (a path, or a name under --videos {videos})")
    return path


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
