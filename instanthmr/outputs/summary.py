"""Run summaries: timing statistics over frames (:func:`summarize`), the lightweight per-frame record a long
run keeps for them (:class:`FrameStats`), the end-of-run lines (:func:`print_summary`) and the progress line
(:class:`Progress`). Timings are milliseconds on a monotonic clock, visualisation excluded."""

from __future__ import annotations

import sys
import time
from typing import NamedTuple

import numpy as np


def timing_stats(values) -> dict[str, float]:
    """``mean / median / p95 / min / max`` of a list of milliseconds (zeros when empty)."""
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0:
        return {k: 0.0 for k in ("mean", "median", "p95", "min", "max")}
    return {"mean": float(v.mean()), "median": float(np.median(v)), "p95": float(np.percentile(v, 95)),
            "min": float(v.min()), "max": float(v.max())}


def summarize(results: list, wall_ms=None) -> dict:
    """Per-stage timing statistics over frames, detector calls, persons per frame and FPS.

    ``results``: per-frame results (``FrameResult``) or their :class:`FrameStats`. ``fps`` is
    ``1000 / mean(total_ms)`` (the pipeline alone); with ``wall_ms`` (per-frame wall time including
    decoding and outputs) ``wall_fps`` is ``1000 / mean(wall_ms)``. ``detector_ms`` is per frame (0 on
    frames that reused boxes, so the strides compare); ``detector_call_ms`` is over the frames where the
    detector ran.
    """
    n = len(results)
    total = [r.total_ms for r in results]
    out = {
        "frames": n,
        "detector_calls": int(sum(r.detector_ran for r in results)),
        "frames_with_persons": int(sum(1 for r in results if r.persons)),
        "persons_per_frame": float(np.mean([len(r.persons) for r in results])) if n else 0.0,
        "detector_ms": timing_stats([r.detector_ms for r in results]),
        "detector_call_ms": timing_stats([r.detector_ms for r in results if r.detector_ran]),
        "hmr_ms": timing_stats([r.hmr_ms for r in results]),
        "total_ms": timing_stats(total),
        "fps": 1000.0 / float(np.mean(total)) if n and np.mean(total) > 0 else 0.0,
    }
    if wall_ms is not None:
        out["wall_ms"] = timing_stats(wall_ms)
        m = float(np.mean(wall_ms)) if len(wall_ms) else 0.0
        out["wall_fps"] = 1000.0 / m if m > 0 else 0.0
    return out


class FrameStats(NamedTuple):
    """What the end-of-run summary reads from a frame, without its arrays: a camera may run for hours, and
    keeping every frame's joints would grow memory without bound. ``persons`` holds the track IDs."""

    detector_ms: float
    hmr_ms: float
    total_ms: float
    detector_ran: bool
    persons: tuple

    @classmethod
    def of(cls, result) -> "FrameStats":
        return cls(result.detector_ms, result.hmr_ms, result.total_ms, bool(result.detector_ran),
                   tuple(getattr(p, "track_id", None) for p in result.persons))


def track_ids(frames) -> list[int]:
    """Every track ID seen in ``frames`` (results or :class:`FrameStats`), sorted."""
    ids = set()
    for r in frames:
        for p in r.persons:
            tid = p if isinstance(r, FrameStats) else getattr(p, "track_id", None)
            if tid is not None:
                ids.add(int(tid))
    return sorted(ids)


def print_summary(s: dict, wall_s: float, file=None) -> None:
    """The end-of-run lines: frames, detector runs, persons and per-stage timings."""
    file = file or sys.stdout
    if not s["frames"]:
        print("no frame processed", file=file)
        return
    d, h, t = s["detector_call_ms"], s["hmr_ms"], s["total_ms"]
    print(f"{s['frames']} frame(s) in {wall_s:.1f} s ({s['frames'] / max(wall_s, 1e-9):.1f} FPS wall), "
          f"{s['detector_calls']} detector run(s), {s['persons_per_frame']:.2f} person(s)/frame, "
          f"{s['frames'] - s['frames_with_persons']} frame(s) without anybody", file=file)
    print(f"  detector per run : mean {d['mean']:7.1f} ms  median {d['median']:7.1f}  p95 {d['p95']:7.1f}", file=file)
    print(f"  HMR per frame    : mean {h['mean']:7.1f} ms  median {h['median']:7.1f}  p95 {h['p95']:7.1f}", file=file)
    print(f"  total per frame  : mean {t['mean']:7.1f} ms  median {t['median']:7.1f}  p95 {t['p95']:7.1f}  "
          f"({s['fps']:.1f} FPS, visualisation excluded)", file=file)


class Progress:
    """Frames done / total and FPS on stderr: a rewritten line on a terminal, a line every ~5 s otherwise."""

    def __init__(self, total: int | None, label: str, quiet: bool = False):
        self.total, self.label, self.quiet = total, label, quiet
        self.tty = sys.stderr.isatty()
        self.t0 = self.last = time.monotonic()
        self.done = 0

    def update(self, result) -> None:
        self.done += 1
        now = time.monotonic()
        if self.quiet or (now - self.last < (0.5 if self.tty else 5.0) and self.done != self.total):
            return
        self.last = now
        fps = self.done / max(now - self.t0, 1e-9)
        of = f"/{self.total} ({100.0 * self.done / self.total:.0f}%)" if self.total else ""
        line = (f"[{self.label}] {self.done}{of} frames | {fps:.1f} FPS | det {result.detector_ms:.0f} ms | "
                f"HMR {result.hmr_ms:.0f} ms | {len(result.persons)} person(s)")
        print(("\r" + line) if self.tty else line, end="" if self.tty else "\n", file=sys.stderr, flush=True)

    def finish(self) -> None:
        if self.tty and not self.quiet and self.done:
            print(file=sys.stderr)
            self.done = 0


def source_summary(source) -> dict:
    """What a source skipped, for a run's summary: ``skipped_files`` (a folder of photos, always),
    ``damaged_frames`` and ``stopped_early`` (a video or camera, only when something happened)."""
    out: dict = {}
    if getattr(source, "kind", "") == "images":
        out["skipped_files"] = list(source.skipped)
    if getattr(source, "damaged", 0):
        out["damaged_frames"] = int(source.damaged)
    if getattr(source, "stopped_early", None):
        out["stopped_early"] = source.stopped_early
    return out


def print_run(summary: dict, wall_s: float, tracks: list[int], requested: dict, written: dict, source) -> None:
    """The end-of-run lines: the summary (stdout), the tracks, every file asked for (``requested``: kind ->
    path or None) as written (``written``: kind -> paths) or why not, and what the source skipped (stderr)."""
    print_summary(summary, wall_s)
    if tracks:
        more = " ..." if len(tracks) > 20 else ""
        print(f"{len(tracks)} track(s): IDs {', '.join(str(t) for t in tracks[:20])}{more}")
    for kind, path in requested.items():
        if not path:
            continue
        if written.get(kind):
            print(f"wrote {kind}: {', '.join(str(p) for p in written[kind])}")
        elif kind in ("bvh", "gltf"):
            print(f"{kind}: nothing written to {path} (no track seen in 2 or more frames)")
        else:
            print(f"{kind}: nothing written to {path} (no frame drawn)", file=sys.stderr)
    if getattr(source, "kind", "") == "images" and source.skipped:
        print(f"skipped {len(source.skipped)} unreadable file(s) of {source.total} in {source.path}: "
              f"{', '.join(source.skipped[:10])}{' ...' if len(source.skipped) > 10 else ''}", file=sys.stderr)
    if getattr(source, "stopped_early", None):  # says how many frames were skipped before, too
        print(source.stopped_early, file=sys.stderr)
    elif getattr(source, "damaged", 0):
        print(f"skipped {source.damaged} damaged frame(s) of {source.name} that did not decode (the run went on "
              "after them)", file=sys.stderr)
