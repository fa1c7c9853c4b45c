"""Meeting faults the same way in every tool: stop signals, atomic outputs, output-path checks, damaged video.

Standard library only (no numpy, no OpenCV), so every floor can use it.

Stop signals
    ``with stop_signals(): ...`` makes SIGTERM and SIGHUP raise :class:`StopSignal`, a ``KeyboardInterrupt``,
    so the code that already saves its work on Ctrl-C (a checkpoint, finished shards, a partial output) does
    the same when a scheduler, ``timeout`` or a closed terminal stops the process. The previous handlers come
    back when the block ends. :func:`interrupt_exit_code` gives the conventional status: 130 for Ctrl-C,
    ``128 + signal`` otherwise (143 for SIGTERM, 129 for SIGHUP).

Atomic outputs
    ``with atomic_path(path) as tmp: writer(tmp)`` hands out a temporary name in the destination's folder
    (same suffix, so writers that go by the extension still work) and renames it onto ``path`` only when the
    block ends without an exception; on any exception, Ctrl-C included, the temporary file is removed and
    whatever was at ``path`` before is untouched. ``atomic_write(path, "w")`` is the same around ``open``;
    :func:`write_text_atomic` / :func:`write_bytes_atomic` write a whole file in one call.

Output paths
    :func:`check_output_path` tries, before any work, to create a file in the destination's folder (making
    the folder when it is missing) and raises :class:`OutputPathError` (a ``ValueError``) with one line that
    names the path and the cause, so a tool can exit 2 before a long run instead of failing at its end.

Damaged video
    :func:`readable_frames` drives a ``grab()`` callable (``cv2.VideoCapture.grab``) to the end of the
    container, skipping frames that fail to decode and counting them in a :class:`FrameLog`; it stops early
    only after ``max_consecutive_failures`` failures in a row and records why (:meth:`FrameLog.message`).
    :func:`quiet_video_decoder` silences FFmpeg's own per-packet error lines (dozens per damaged frame), so
    the tool's one line per damaged video is what the user reads; call it before the first video is opened.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

# ------------------------------------------------------------------------------------------------
# Stop signals
# ------------------------------------------------------------------------------------------------

#: Signals that mean "stop" besides Ctrl-C's SIGINT (SIGHUP does not exist on Windows).
STOP_SIGNALS: tuple[int, ...] = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None))
                                      if s is not None)


class StopSignal(KeyboardInterrupt):
    """SIGTERM / SIGHUP turned into a ``KeyboardInterrupt`` (``except KeyboardInterrupt`` catches it);
    ``signum`` is the signal's number."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = int(signum)


def _raise_stop(signum, _frame):
    raise StopSignal(signum)


@contextlib.contextmanager
def stop_signals(signals: tuple[int, ...] = STOP_SIGNALS):
    """Within the block, ``signals`` (default SIGTERM, SIGHUP) raise :class:`StopSignal` in the main thread,
    as Ctrl-C raises ``KeyboardInterrupt``. A no-op outside the main thread (Python allows handlers there
    only). The previous handlers are restored on exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    try:
        for s in signals:
            previous[s] = signal.signal(s, _raise_stop)
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def interrupt_exit_code(error: BaseException) -> int:
    """The exit status for a stop: ``128 + signum`` for a :class:`StopSignal`, 130 (SIGINT) otherwise."""
    return 128 + error.signum if isinstance(error, StopSignal) else 130


def stop_reason(error: BaseException) -> str:
    """``"interrupted"`` for Ctrl-C, ``"stopped by SIGTERM"`` and the like for a :class:`StopSignal`."""
    return str(error) if isinstance(error, StopSignal) else "interrupted"


# ------------------------------------------------------------------------------------------------
# Atomic outputs
# ------------------------------------------------------------------------------------------------


def temp_path_for(path: str | os.PathLike) -> Path:
    """A hidden, process-unique temporary name beside ``path`` that keeps its suffix:
    ``out/run.json`` -> ``out/.run.json.<pid>.tmp.json``."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, make_parents: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds, delete it
    when the block raises (anything, ``KeyboardInterrupt`` included). The block must write the file."""
    path = Path(path)
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", fsync: bool = False, **open_kwargs):
    """``open`` on a temporary name that replaces ``path`` when the block succeeds (see :func:`atomic_path`).
    ``fsync=True`` also forces the bytes to disk before the rename (for checkpoints and labels that must
    survive a power cut, not only a kill)."""
    if not any(c in mode for c in "wx"):
        raise ValueError(f"atomic_write opens for writing ('w' or 'x' modes), got {mode!r}")
    with atomic_path(path) as tmp, open(tmp, mode.replace("x", "w"), **open_kwargs) as f:
        yield f
        f.flush()
        if fsync:
            os.fsync(f.fileno())


def write_text_atomic(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; returns ``Path(path)``."""
    with atomic_write(path, "w", encoding=encoding) as f:
        f.write(text)
    return Path(path)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``Path(path)``."""
    with atomic_write(path, "wb") as f:
        f.write(data)
    return Path(path)


# ------------------------------------------------------------------------------------------------
# Output paths
# ------------------------------------------------------------------------------------------------


class OutputPathError(ValueError):
    """An output file cannot be written where it was asked for (checked before the work starts)."""


def check_output_path(path: str | os.PathLike, what: str = "output") -> Path:
    """Make sure a file can be created at ``path`` before any work is done; returns ``Path(path)``.

    Creates missing parent folders (the tools would create them anyway), then creates and removes a probe
    file there: permissions, read-only or special file systems (``/proc``), a full disk's inode table and a
    parent that is a file all show up now. ``what`` names the option in the message (``"--out"``).
    Raises :class:`OutputPathError` with one line: ``cannot write --out /proc/x.onnx: ... ; choose a
    writable location``.
    """
    path = Path(path)

    def fail(cause: str):
        raise OutputPathError(f"cannot write {what} {path}: {cause}; choose a writable location")

    if not path.name or path.is_dir():
        fail("it is a folder, not a file name")
    if path.exists() and not os.access(path, os.W_OK):
        fail("the existing file is read-only")
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        fail(f"cannot create its folder ({e.strerror or e})")
    if not parent.is_dir():
        fail(f"{parent} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=parent)
    except OSError as e:
        fail(f"cannot create a file in {parent} ({e.strerror or e})")
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return path


# ------------------------------------------------------------------------------------------------
# Damaged video
# ------------------------------------------------------------------------------------------------

#: Frames in a row that may fail to decode before a video is given up as unreadable from there on.
MAX_CONSECUTIVE_FAILURES = 50


def quiet_video_decoder() -> None:
    """Silence FFmpeg's log inside OpenCV (``OPENCV_FFMPEG_LOGLEVEL=-8``, AV_LOG_QUIET) unless the user set
    it. OpenCV reads the variable when the process opens its first video: call this before that."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


@dataclass
class FrameLog:
    """What :func:`readable_frames` met. ``unreadable``: frames inside the container that failed to decode
    (skipped); ``stopped_at``: the first frame of a failing run that lasted to the end of the container or
    until reading was given up (None when the video ended on a decoded frame); ``gave_up``: reading stopped
    after ``consecutive_limit`` failures in a row, before the container's end; ``frame_count``: the
    container's claimed length (0 = unknown)."""

    unreadable: int = 0
    stopped_at: int | None = None
    gave_up: bool = False
    frame_count: int = 0
    consecutive_limit: int = MAX_CONSECUTIVE_FAILURES

    def message(self, name: str = "video") -> str | None:
        """One line for the user, or None when every frame decoded."""
        of = f" of {self.frame_count}" if self.frame_count else ""
        if self.gave_up:
            return (f"{name}: gave up at frame {self.stopped_at + self.consecutive_limit - 1}{of}: "
                    f"{self.consecutive_limit} frames in a row from frame {self.stopped_at} could not be decoded "
                    f"(damaged or truncated file); {self.unreadable} unreadable frames skipped in all")
        if self.stopped_at is not None:
            return (f"{name}: frames {self.stopped_at}-{self.frame_count - 1}{of} could not be decoded (the file "
                    f"is cut short or damaged at the end); {self.unreadable} unreadable frames skipped in all")
        if self.unreadable:
            n = self.unreadable
            return (f"{name}: {n} damaged frame{'s' if n != 1 else ''} could not be decoded and "
                    f"{'were' if n != 1 else 'was'} skipped")
        return None


def readable_frames(grab: Callable[[], bool], frame_count: int = 0,
                    max_consecutive_failures: int = MAX_CONSECUTIVE_FAILURES,
                    log: FrameLog | None = None) -> Iterator[int]:
    """Yield the index of every frame ``grab()`` decodes, to the end of the container.

    A failed ``grab()`` inside the container (index below ``frame_count``) is a damaged frame: counted in
    ``log.unreadable`` and skipped (indices keep counting, so keys stay tied to container positions); past
    ``frame_count`` a failure is the end. ``max_consecutive_failures`` failures in a row stop the loop
    (``log.gave_up``; a file cut short fails on every remaining frame). With an unknown count (0), failures
    followed by a decoded frame count as damage and a run of ``max_consecutive_failures`` is the end. After
    the loop, ``log`` tells what happened (:meth:`FrameLog.message`).
    """
    log = log if log is not None else FrameLog()
    count = log.frame_count = int(max(frame_count, 0))
    limit = log.consecutive_limit = int(max(max_consecutive_failures, 1))
    index, run_start = 0, None  # run_start: first index of the current run of failures
    while True:
        if grab():
            if run_start is not None and not count:  # unknown length: the failures were damage after all
                log.unreadable += index - run_start
            run_start = None
            yield index
        else:
            if count and index >= count:  # past the container's end
                log.stopped_at = run_start  # not None: the last frames of the file never decoded
                return
            if run_start is None:
                run_start = index
            if count:
                log.unreadable += 1
            if index - run_start + 1 >= limit:
                if count:  # inside the container: the rest of the file is unreadable
                    log.stopped_at, log.gave_up = run_start, True
                return  # unknown length: a trailing run of failures is the end
        index += 1
