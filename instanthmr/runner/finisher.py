"""Each frame's finishing work (the body fit, the ground, the outputs) on one worker thread, in frame order,
while the caller's thread goes on with the next frame's models.

On the MediaPipe path a frame's models cannot start before the last frame's landmarks exist (they place the
crops), but the work after them does not feed back: the body fit, the ground stage and the outputs only read
a frame's result and make new objects from it (``dataclasses.replace``; the tracker keeps its own copies). So
on a CPU with a core to spare, frame t is finished while frame t+1's models run (the models' runtimes leave
the GIL while they compute), and a frame costs about the slower of the two instead of their sum. A frame's
output comes out no later than before when the worker keeps up: its finishing starts as soon as its models
end; at most ``depth`` frames wait (the models run ahead by that many at most, absorbing a slow finish).

    finisher = FrameFinisher(finished)     # finished(frame, result): what the loop did inline before
    for frame in source:
        finisher.put(frame, models(frame)) # waits while `depth` frames already wait
    finisher.join()                        # every frame handed over is finished; a worker error raised here
"""

from __future__ import annotations

import queue
import threading

_END = object()


class FrameFinisher:
    """Runs ``finish(frame, result)`` for every :meth:`put` pair on one daemon thread, in order.

    ``stop``: a callable checked before each frame (the run's stop event, which a stage may set): once true,
    the frames still queued are dropped, as the inline loop would not have run them. ``depth`` 0: no thread,
    each frame finished inside :meth:`put` (what the loop does under a per-frame probe, so each frame's
    breakdown holds its own work). An exception in ``finish`` stops the worker (the frames queued after it are
    dropped) and is raised in the caller's thread by the next :meth:`put` or by :meth:`join`, as the inline
    call raised it. :meth:`close`
    (for ``finally`` blocks) stops the worker without finishing what is queued and never raises."""

    def __init__(self, finish, depth: int = 1, stop=None, name: str = "instanthmr-finish"):
        self._finish = finish
        self._stop = stop
        self.inline = int(depth) == 0
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(depth)))
        self._error: BaseException | None = None
        self._abort = threading.Event()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        if not self.inline:
            self._thread.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _END or self._abort.is_set():
                return
            if self._stop is not None and self._stop():
                continue  # dropped; the caller sees the stop and ends the run
            try:
                self._finish(*item)
            except BaseException as e:  # handed to the caller's thread
                self._error = e
                self._abort.set()
                return

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def put(self, frame, result) -> None:
        """Hand one frame over; blocks while ``depth`` frames wait (the worker busy). Raises the worker's error."""
        if self.inline:
            if self._stop is None or not self._stop():
                self._finish(frame, result)
            return
        self._raise()
        while True:
            try:
                self._queue.put((frame, result), timeout=0.1)
                return
            except queue.Full:
                if not self._thread.is_alive():  # it stopped on an error: do not wait forever
                    self._raise()
                    return

    def join(self) -> None:
        """Wait until every frame handed over is finished; raises the worker's error."""
        if self._thread.is_alive():
            while self._thread.is_alive():
                try:
                    self._queue.put(_END, timeout=0.1)
                    break
                except queue.Full:
                    continue
            self._thread.join()
        self._raise()

    def close(self) -> None:
        """Stop the worker now (the frames still queued are not finished); idempotent, never raises."""
        self._abort.set()
        if self.inline:
            return
        while True:  # make room for the end marker
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        try:
            self._queue.put_nowait(_END)
        except queue.Full:
            pass
        self._thread.join(timeout=30)
