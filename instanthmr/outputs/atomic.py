"""Output files written whole or not at all, with the errors the outputs raise.

The rule (temporary name beside the target, one rename into place; the path check before any work) lives
in :mod:`instanthmr.core.faults`; this module adds what the outputs need on top of it:

* :class:`ResultsWriteError`: an output that cannot be written, as one line naming the file.
* :func:`atomic_write`: ``core.faults.atomic_write`` with the data forced to disk before the rename and OS
  errors turned into :class:`ResultsWriteError`.
* :class:`GrowingFile`: a file built by appending (a JSON array of frames, CSV rows) that can publish a
  complete copy of itself at any moment (:meth:`GrowingFile.publish`, with the closing text a finished
  file needs) and keep growing; a reader never sees it half-written.

A process killed outright (SIGKILL, power loss) may leave a hidden temporary (``.NAME.<pid>.tmp.EXT``,
``.NAME.<pid>.writing.EXT``) beside an output; the output path itself holds its last published state.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from instanthmr.core.faults import atomic_write as _atomic_write
from instanthmr.core.faults import temp_path_for


class ResultsWriteError(RuntimeError):
    """Results could not be written (path not writable, disk full, nothing to write)."""


def _cannot(path, what: str, e: OSError) -> ResultsWriteError:
    return ResultsWriteError(f"cannot write {what + ' ' if what else ''}{path}: {e.strerror or e}")


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", what: str = "", **open_kw):
    """``with atomic_write(path) as fh: ...``: a temporary file renamed onto ``path`` (after an fsync) when the
    block ends without an error; with an error or an interrupt ``path`` is untouched. OS errors become
    :class:`ResultsWriteError` naming ``what`` (e.g. ``"NPZ"``) and the path."""
    try:
        with _atomic_write(path, mode, fsync=True, **open_kw) as fh:
            yield fh
    except OSError as e:
        raise _cannot(path, what, e) from None


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


class GrowingFile:
    """A text file built by appending, published whole.

    Appends go to a hidden file beside ``path`` (``.NAME.<pid>.writing.EXT``). :meth:`publish` puts a
    complete copy at ``path`` (the text so far + ``tail``, the closing text a finished file needs, e.g. the
    ``]}`` of a JSON document) in one rename, and appending goes on; :meth:`commit` appends ``tail`` and
    renames the file itself (no copy); :meth:`discard` removes it, leaving ``path`` as it was. :meth:`rewind`
    cuts back to a mark from :meth:`tell` to write the rest again.
    """

    def __init__(self, path: str | Path, what: str = ""):
        self.path = Path(path)
        self.what = what
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.writing{self.path.suffix}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fh = open(self.tmp, "w+", encoding="utf-8", newline="")
        except OSError as e:
            raise _cannot(self.path, what, e) from None

    def write(self, text: str) -> None:
        try:
            self.fh.write(text)
        except OSError as e:
            raise _cannot(self.path, self.what, e) from None

    def tell(self) -> int:
        return self.fh.tell()

    def rewind(self, mark: int) -> None:
        self.fh.seek(mark)
        self.fh.truncate()

    def publish(self, tail: str = "") -> None:
        """A complete copy at ``path`` now (the text so far + ``tail``); appending continues."""
        out = temp_path_for(self.path)
        try:
            self.fh.flush()
            with open(self.tmp, "rb") as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
                dst.write(tail.encode("utf-8"))
                dst.flush()
                os.fsync(dst.fileno())
            os.replace(out, self.path)
        except OSError as e:
            _unlink(out)
            raise _cannot(self.path, self.what, e) from None

    def commit(self, tail: str = "") -> None:
        """Finish: append ``tail`` and move the file to ``path``."""
        try:
            self.fh.write(tail)
            self.fh.flush()
            os.fsync(self.fh.fileno())
            self.fh.close()
            os.replace(self.tmp, self.path)
        except OSError as e:
            self.discard()
            raise _cannot(self.path, self.what, e) from None

    def discard(self) -> None:
        """Drop what was appended; ``path`` keeps its last published state (or its older file)."""
        with contextlib.suppress(OSError):
            self.fh.close()
        _unlink(self.tmp)
