"""An opt-in per-frame breakdown of where a frame's time goes: :class:`FrameProbe`, :func:`span`, :func:`count`.

Off by default: with no probe active, :func:`span` returns one shared do-nothing context and :func:`count`
returns at once (~0.3 us a span, ~0.15 us a count, measured), so the run-time code can name its costly steps
where they happen::

    with probe.span("invoke:hand_landmark_full"):   # in the code: wall time of a step, summed per frame
        ...
    probe.count("hand:search-found")                # in the code: how many times something happened

    p = FrameProbe()                                # a tool (tools/frame_breakdown.py) turns it on
    with p.active():
        for frame in frames:
            with p.frame(frame.index):
                ...                                 # p.frames[-1]: {"index", "ms", "cpu_ms", "spans", "counts"}

Times are milliseconds: wall (``time.perf_counter``) and the process's CPU time (``time.process_time``, all
threads: LiteRT's own included) over the frame and over each span; on a shared machine the CPU time is what
other jobs barely move. Spans nest (an outer span includes its inner ones). Garbage collections during a frame are timed
through ``gc.callbacks`` as the span ``gc`` (with their generation counted as ``gc:gen<N>``). One probe at a
time, for the whole process: the frames it records are the ones run between :meth:`FrameProbe.frame`'s
enter and exit, whatever thread does the work. Standard library only (the core floor).
"""

from __future__ import annotations

import gc
import time
from collections import defaultdict
from contextlib import contextmanager

_ACTIVE: "FrameProbe | None" = None


class _Null:
    __slots__ = ()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_NULL = _Null()


class _Span:
    __slots__ = ("probe", "name", "t0", "c0")

    def __init__(self, probe: "FrameProbe", name: str):
        self.probe, self.name = probe, name

    def __enter__(self):
        self.c0, self.t0 = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.probe.add(self.name, (time.perf_counter() - self.t0) * 1e3, (time.process_time() - self.c0) * 1e3)
        return False


def span(name: str):
    """A ``with`` block timed into the active probe's current frame as ``name`` (wall and process CPU ms,
    summed; its calls counted); nothing without an active probe."""
    p = _ACTIVE
    return _NULL if p is None else _Span(p, name)


def count(name: str, n: int = 1) -> None:
    """Counts ``n`` of ``name`` in the active probe's current frame; nothing without an active probe."""
    p = _ACTIVE
    if p is not None:
        p.counts[name] += n


def enabled() -> bool:
    """Whether a :class:`FrameProbe` is active (the run-time code records only then)."""
    return _ACTIVE is not None


class FrameProbe:
    """Collects, frame by frame, the spans and counts the code reports (module docstring). ``frames``: one
    dict per recorded frame, ``{"index", "ms", "cpu_ms", "spans": {name: wall ms}, "spans_cpu": {name: CPU ms},
    "calls": {name: n}, "counts": {name: n}}``."""

    def __init__(self):
        self.frames: list[dict] = []
        self._reset()
        self._gc_t0 = None

    def _reset(self) -> None:
        self.spans: dict = defaultdict(float)
        self.spans_cpu: dict = defaultdict(float)
        self.calls: dict = defaultdict(int)
        self.counts: dict = defaultdict(int)

    def add(self, name: str, ms: float, cpu_ms: float = 0.0) -> None:
        self.spans[name] += ms
        self.spans_cpu[name] += cpu_ms
        self.calls[name] += 1

    def _gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_t0 = (time.perf_counter(), time.process_time())
        elif self._gc_t0 is not None:
            t0, c0 = self._gc_t0
            self.add("gc", (time.perf_counter() - t0) * 1e3, (time.process_time() - c0) * 1e3)
            self.counts[f"gc:gen{info.get('generation')}"] += 1
            self._gc_t0 = None

    @contextmanager
    def active(self):
        """This probe receives :func:`span` and :func:`count` inside the block (and garbage collections)."""
        global _ACTIVE
        if _ACTIVE is not None:
            raise RuntimeError("another FrameProbe is already active (one per process)")
        _ACTIVE = self
        gc.callbacks.append(self._gc)
        try:
            yield self
        finally:
            gc.callbacks.remove(self._gc)
            _ACTIVE = None

    @contextmanager
    def frame(self, index: int):
        """One frame: what is reported inside the block goes into a new entry of :attr:`frames`."""
        self._reset()
        c0, t0 = time.process_time(), time.perf_counter()
        try:
            yield self
        finally:
            self.frames.append({"index": int(index), "ms": (time.perf_counter() - t0) * 1e3,
                                "cpu_ms": (time.process_time() - c0) * 1e3, "spans": dict(self.spans),
                                "spans_cpu": dict(self.spans_cpu),
                                "calls": dict(self.calls), "counts": dict(self.counts)})
            self._reset()
