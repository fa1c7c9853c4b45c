"""Stop signals that never cut a file in half: SIGINT (Ctrl-C), SIGTERM and SIGHUP all stop a run the way
Ctrl-C does, and none of them interrupts the writing of an output.

:func:`instanthmr.core.faults.stop_signals` turns SIGTERM and SIGHUP into a ``KeyboardInterrupt``
(``StopSignal``); :class:`StopSignals` is that plus the guard a run with outputs needs. Inside
``with StopSignals() as stop:`` the first signal raises ``KeyboardInterrupt`` (``StopSignal`` for SIGTERM
and SIGHUP) where the run is, unless
it is inside ``with stop.deferred():`` (an output being written): then it is raised when that block ends.
Once raised, the run is stopping: later signals (a second or third Ctrl-C, ``timeout`` following SIGTERM
with more) are counted, not raised, so the outputs are finished and closed whatever arrives. A step that may
be cut short again (drawing the video after the results are saved) calls :meth:`arm`; :meth:`disarm` before
finishing the outputs makes sure nothing interrupts them. With ``ignore_after_stop`` (a command's
``main``), a process stopped by a signal ignores the stop signals from then on: it is about to exit with
its status. Signal handlers can only be set from the main thread; elsewhere this does nothing.
"""

from __future__ import annotations

import contextlib
import signal
import threading

from instanthmr.core.faults import STOP_SIGNALS, StopSignal


class StopSignals:
    """See the module docstring. ``received``: the signal numbers seen, in order; :attr:`exit_code`: the
    shell's convention for the first one (128 + its number: 130 for SIGINT, 143 SIGTERM, 129 SIGHUP)."""

    def __init__(self, signals=(signal.SIGINT,) + STOP_SIGNALS, ignore_after_stop: bool = False):
        self.signals = tuple(signals)
        self.ignore_after_stop = ignore_after_stop
        self.received: list[int] = []
        self.armed = True  # a signal raises KeyboardInterrupt (outside deferred blocks)
        self._unanswered = 0  # signals not yet raised
        self._deferring = 0
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for s in self.signals:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        # A process that was told to stop is ending: with ignore_after_stop, a late signal (the third
        # Ctrl-C) must not kill it on its way out with a traceback or a signal status.
        ignore = self.ignore_after_stop and self.received
        for s, handler in self._previous.items():
            signal.signal(s, signal.SIG_IGN if ignore else handler)
        self._previous.clear()

    def _handle(self, signum, frame) -> None:
        self.received.append(signum)
        self._unanswered += 1
        self._deliver()

    def _deliver(self) -> None:
        if self.armed and not self._deferring and self._unanswered:
            self.armed, self._unanswered = False, 0
            first = self.received[0]
            raise KeyboardInterrupt if first == signal.SIGINT else StopSignal(first)

    @contextlib.contextmanager
    def deferred(self):
        """A block that a signal must not cut (writing outputs): a signal is raised when it ends."""
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1
        self._deliver()

    def arm(self) -> None:
        """Let the next signal raise again (one that came while disarmed is raised now)."""
        self.armed = True
        self._deliver()

    def disarm(self) -> None:
        """No signal raises from now on (until :meth:`arm`); they are still counted in ``received``."""
        self.armed = False

    @property
    def stopped_by(self) -> str:
        """The first signal's name (``SIGTERM``), or "" when none came."""
        return signal.Signals(self.received[0]).name if self.received else ""

    @property
    def exit_code(self) -> int:
        return 128 + int(self.received[0]) if self.received else 128 + int(signal.SIGINT)
