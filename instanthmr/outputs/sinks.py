"""Everything a run leaves behind, behind one call per frame: :class:`Outputs` hands each processed frame to
the sinks (JSON, CSV, NPZ, BVH, overlay video, Rerun), keeps the summary and finishes every file at the end,
whatever ended the run.

Nothing is lost and nothing is half-written:

* Every file is written under a temporary name and renamed into place (:mod:`instanthmr.outputs.atomic`),
  so an older file at the same path stays until the new one is complete.
* The data files (JSON, CSV, NPZ, BVH) are *published* as complete, valid files after the first frame and
  then every :data:`CHECKPOINT_S` seconds (less often when publishing gets slow: at most ~5 % of the run),
  with ``"partial": true`` in the JSON summary. A run killed outright (SIGKILL, power loss) leaves the last
  published state; any other stop (end, error, Ctrl-C, SIGTERM, SIGHUP) writes the final files.
* The overlay video and the .rrd recording stream into their temporary names and are finished (playable,
  readable) and renamed at the end.
* With ``StopSignals`` (:mod:`instanthmr.outputs.signals`), no signal interrupts a sink while it writes.

With offline smoothing (``offline_fps``), results are kept and each publication smooths every track over
all frames so far; the image outputs are drawn in a second pass over the source (:meth:`Outputs.replay`).
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Callable, NamedTuple

from instanthmr.core import probe
from instanthmr.core.faults import check_output_path
from instanthmr.outputs.atomic import GrowingFile, ResultsWriteError
from instanthmr.outputs.files import csv_header, csv_rows, write_npz
from instanthmr.outputs.records import document_head, document_tail, frame_record
from instanthmr.outputs.summary import FrameStats, summarize, track_ids

#: Seconds between publications of the data files (the first one comes with the first frame).
CHECKPOINT_S = 10.0
#: A publication that took t seconds waits at least this many t before the next (bounds their cost).
CHECKPOINT_BACKOFF = 20.0


class FrameInfo(NamedTuple):
    """Where a frame is in its source: ``index`` (source frame number), ``time_s``, ``name`` (a photo's file)."""

    index: int
    time_s: float
    name: str = ""


class _Kept(NamedTuple):  # a frame as the track files read it
    frame_index: int
    time_s: float
    persons: list
    ground: dict | None = None


# --------------------------------------------------------------------------------------------------
# Data sinks: write(info, result) per frame; restart() forgets every frame (offline re-feeds them);
# publish(summary) puts a complete file at the path; close(summary) finishes it; discard() drops it.
# --------------------------------------------------------------------------------------------------

class JsonSink:
    """The run as one JSON document (:mod:`~instanthmr.outputs.records`), frames appended as they come."""

    kind = "json"

    def __init__(self, path: str | Path, meta: dict):
        self.path = Path(path)
        self.file = GrowingFile(self.path, "JSON")
        self.file.write(document_head(meta))
        self.mark = self.file.tell()
        self.count = 0

    def write(self, info: FrameInfo, result) -> None:
        rec = frame_record(info.index, info.time_s, result, info.name)
        self.file.write((",\n" if self.count else "") + json.dumps(rec))
        self.count += 1

    def restart(self) -> None:
        self.file.rewind(self.mark)
        self.count = 0

    def publish(self, summary: dict) -> None:
        self.file.publish(document_tail(summary))

    def close(self, summary: dict) -> list[Path]:
        self.file.commit(document_tail(summary))
        return [self.path]

    def discard(self) -> None:
        self.file.discard()


class CsvSink:
    """One row per frame x person x joint (:func:`~instanthmr.outputs.files.csv_rows`), appended as they come;
    ``ground``: with the grounded-motion columns."""

    kind = "csv"

    def __init__(self, path: str | Path, ground: bool = False):
        self.path = Path(path)
        self.ground = bool(ground)  # the grounded-motion columns (files.GROUND_CSV_COLUMNS)
        self.file = GrowingFile(self.path, "CSV")
        self.file.write(csv_header(self.ground))
        self.mark = self.file.tell()

    def write(self, info: FrameInfo, result) -> None:
        self.file.write(csv_rows(info.index, info.time_s, result.persons, self.ground, getattr(result, "ground", None)))

    def restart(self) -> None:
        self.file.rewind(self.mark)

    def publish(self, summary: dict) -> None:
        self.file.publish()

    def close(self, summary: dict) -> list[Path]:
        self.file.commit()
        return [self.path]

    def discard(self) -> None:
        self.file.discard()


class TrackFileSink:
    """NPZ, BVH or glTF (``kind``): all group by track and need every frame, so the frames' results (no
    images) are kept and the whole file is rewritten at each publication. ``options`` go to the writer
    (BVH and glTF: ``rig``; glTF: ``image_size``, ``mhr_model``)."""

    def __init__(self, kind: str, path: str | Path, fps: float, **options):
        if kind not in ("npz", "bvh", "gltf"):
            raise ValueError(f"TrackFileSink writes npz, bvh or gltf, not {kind!r}")
        self.kind, self.path, self.fps = kind, Path(path), float(fps)
        self.options = options
        self.frames: list[_Kept] = []
        self.written: list[Path] = []

    def write(self, info: FrameInfo, result) -> None:
        self.frames.append(_Kept(info.index, info.time_s, list(result.persons), getattr(result, "ground", None)))

    def restart(self) -> None:
        self.frames = []

    def publish(self, summary: dict) -> None:
        if self.kind == "npz":
            write_npz(self.path, self.frames, self.fps)
            self.written = [self.path]
        elif self.kind == "bvh":
            from instanthmr.outputs.bvh import write_bvh

            self.written = write_bvh(self.path, self.frames, self.fps, **self.options)
        else:
            from instanthmr.outputs.gltf import write_gltf

            tracks = write_gltf(self.path, self.frames, self.fps, **self.options)
            self.written = [self.path] if tracks else []

    def close(self, summary: dict) -> list[Path]:
        self.publish(summary)
        return self.written

    def discard(self) -> None:
        self.frames = []


# --------------------------------------------------------------------------------------------------
# Image sinks: write(frame, result, meshes) per frame (frame.image is RGB); close(summary) / discard().
# --------------------------------------------------------------------------------------------------

class VideoSink:
    """The overlay video (skeletons, boxes, track IDs, timings; meshes with ``mesh_overlay``)."""

    kind = "video"

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int], mesh_overlay: bool = False):
        from instanthmr.outputs.video import VideoWriter

        self.path = Path(path)
        self.writer = VideoWriter(path, fps, size)
        self.mesh_overlay = mesh_overlay

    def write(self, frame, result, meshes=None) -> None:
        from instanthmr.outputs.visualizer import draw_frame

        self.writer.write(draw_frame(frame.image, result, meshes=meshes if self.mesh_overlay else None))

    def close(self, summary: dict) -> list[Path]:
        return [self.path] if self.writer.close() else []

    def discard(self) -> None:
        self.writer.frames = 0  # closing a writer without frames removes its temporary file
        self.writer.close()


class RerunSink:
    """The Rerun viewer (``spawn``) and/or an .rrd recording (``save_path``)."""

    kind = "rrd"

    def __init__(self, spawn: bool, save_path: str | Path | None, mesh_overlay: bool = False):
        from instanthmr.core.errors import first_line
        from instanthmr.outputs.visualizer import RerunVisualizer

        self.path = Path(save_path) if save_path else None
        self.mesh_overlay = mesh_overlay
        try:
            self.viz = RerunVisualizer("instanthmr", spawn=spawn, save_path=save_path)
        except ResultsWriteError:
            raise
        except Exception as e:
            if spawn:  # no viewer binary / no display: say what to do instead
                raise ResultsWriteError(f"cannot start the Rerun viewer ({first_line(e)}); run headless with "
                                        "--no-spawn (and --save-rrd PATH to keep the recording)") from None
            raise ResultsWriteError(f"cannot write the Rerun recording {save_path}: {first_line(e)}") from None

    def write(self, frame, result, meshes=None) -> None:
        self.viz.log_frame(frame.image, result, frame_index=frame.index, time_s=frame.time_s, meshes=meshes,
                           mesh_overlay=self.mesh_overlay)

    def close(self, summary: dict) -> list[Path]:
        self.viz.close()
        return [self.path] if self.path else []

    def discard(self) -> None:
        self.viz.close(keep=False)


# --------------------------------------------------------------------------------------------------
# All of them
# --------------------------------------------------------------------------------------------------

def check_output_paths(paths: dict[str, str | Path | None], inputs: tuple = ()) -> None:
    """Before any work: no two outputs (``{option: path}``, None = not asked), or an output and an input,
    share a path, and every output path can be written. Both raise ``ValueError`` (argument errors; a place
    that cannot be written is ``core.faults.OutputPathError``), with one line naming the option."""
    seen: dict[Path, str] = {}
    for src in inputs:
        if src is not None and Path(src).is_file():
            seen[Path(src).resolve()] = "the input"
    for option, path in paths.items():
        if not path:
            continue
        key = Path(path).resolve()
        if key in seen:
            raise ValueError(f"{option} {path} is also {seen[key]}; give each output its own path")
        seen[key] = option
    for option, path in paths.items():
        if path:
            check_output_path(path, option)


class Outputs:
    """Every sink of a run. :meth:`add` per processed frame, :meth:`close` at the end (always: it also
    publishes what was done after an error or a stop). ``extra()`` adds to the summary (e.g. skipped
    files); ``stop`` (a ``StopSignals``) keeps signals out of the writing; ``offline_fps``: smooth every
    track over the whole run before writing (``--smooth offline``); ``before_smoothing`` /
    ``after_smoothing``: offline, a pass over all the frames (a list of results -> a new list) before and after
    the smoothing, e.g. the body fit's whole-track left/right decision
    (:meth:`~instanthmr.video.body_fit.BodyFitStage.finish`) and the two-sided
    :meth:`~instanthmr.video.ground_stage.GroundStage.offline`."""

    def __init__(self, data_sinks: list, image_sinks: list, mesh=None, offline_fps: float | None = None,
                 stop=None, extra: Callable[[], dict] | None = None, checkpoint_s: float = CHECKPOINT_S,
                 before_smoothing: Callable[[list], list] | None = None,
                 after_smoothing: Callable[[list], list] | None = None):
        self.data_sinks, self.image_sinks, self.mesh = list(data_sinks), list(image_sinks), mesh
        self.offline_fps = offline_fps
        self.before_smoothing, self.after_smoothing = before_smoothing, after_smoothing
        self.stop, self.extra = stop, extra
        self.checkpoint_s = float(checkpoint_s)
        self.stats: list[FrameStats] = []  # live: per-frame numbers only (a camera may run for hours)
        self.kept: list[tuple[FrameInfo, object]] = []  # offline: every result, to smooth
        self._final: list | None = None  # offline: the smoothed frames written by finish()
        self._next_publish = 0.0  # monotonic time of the next publication (0: with the first frame)

    @property
    def offline(self) -> bool:
        return self.offline_fps is not None

    @property
    def sinks(self) -> list:
        return self.data_sinks + self.image_sinks

    @property
    def frames(self) -> int:
        return len(self.kept) if self.offline else len(self.stats)

    def _guard(self):
        return self.stop.deferred() if self.stop is not None else contextlib.nullcontext()

    def add(self, frame, result) -> None:
        """One processed frame (``frame``: index, time_s, image, name; ``result``: its persons and timings)."""
        info = FrameInfo(int(frame.index), float(frame.time_s), getattr(frame, "name", "") or "")
        with self._guard():
            if self.offline:
                self.kept.append((info, result))
            else:
                self.stats.append(FrameStats.of(result))
                for sink in self.data_sinks:
                    sink.write(info, result)
                self.draw(frame, result)
            if self.data_sinks and time.monotonic() >= self._next_publish:
                self.publish()

    def draw(self, frame, result) -> None:
        """The image outputs of one frame (meshes decoded once for all of them)."""
        if not self.image_sinks:
            return
        meshes = None
        if self.mesh is not None:
            from instanthmr.outputs.visualizer import mesh_frame

            meshes = mesh_frame(self.mesh, result.persons)
        for sink in self.image_sinks:
            sink.write(frame, result, meshes)

    def summary(self) -> dict:
        s = summarize([r for _, r in self.kept] if self.offline else self.stats)
        return {**s, **(self.extra() if self.extra else {})}

    def track_ids(self) -> list[int]:
        return track_ids([r for _, r in self.kept] if self.offline else self.stats)

    def _smoothed(self) -> list[tuple[FrameInfo, object]]:
        from instanthmr.video.tracking import smooth_frames_offline

        infos = [i for i, _ in self.kept]
        results = [r for _, r in self.kept]
        if self.before_smoothing is not None:
            results = self.before_smoothing(results)
        frames = smooth_frames_offline(results, fps=self.offline_fps)
        if self.after_smoothing is not None:  # e.g. grounded motion, two-sided, on the smoothed joints
            frames = self.after_smoothing(frames)
        return list(zip(infos, frames))

    def _feed(self, frames) -> None:
        for sink in self.data_sinks:
            sink.restart()
        for info, result in frames:
            for sink in self.data_sinks:
                sink.write(info, result)

    def publish(self) -> None:
        """Complete, valid data files at their paths now (``"partial": true`` in the JSON summary)."""
        t0 = time.monotonic()
        probe.count("publish")
        if self.offline and self._final is None:
            self._feed(self._smoothed())
        summary = {**self.summary(), "partial": True}
        for sink in self.data_sinks:
            sink.publish(summary)
        now = time.monotonic()
        self._next_publish = now + max(self.checkpoint_s, CHECKPOINT_BACKOFF * (now - t0))

    def finish(self) -> list[tuple[FrameInfo, object]]:
        """Offline: smooth every track over all frames and hand them to the data sinks (once); returns the
        smoothed frames for :meth:`replay`. Live: nothing to do (returns [])."""
        if not self.offline or not self.kept:
            return []
        if self._final is None:
            with self._guard():
                self._final = self._smoothed()
                self._feed(self._final)
        return self._final

    def replay(self, frames, progress=None) -> None:
        """Offline: draw the image outputs from the smoothed results while the source is decoded again
        (``frames``: the re-opened source; frames are not kept in memory)."""
        by_index = {info.index: r for info, r in self.finish()}
        if not self.image_sinks or not by_index:
            return
        last = max(by_index)
        for frame in frames:
            r = by_index.get(frame.index)
            if r is not None:
                with self._guard():
                    self.draw(frame, r)
                if progress is not None:
                    progress.update(r)
            if frame.index >= last:
                break

    def close(self) -> tuple[dict, dict[str, list[Path]]]:
        """Finish every file: the summary and ``{kind: paths written}``. Without a single frame nothing is
        written and older files at the paths stay as they were. Every sink is closed even when one fails;
        the first failure is raised after."""
        error = None
        if self.offline and self.kept and self._final is None:
            try:
                self.finish()
            except Exception as e:  # smoothing failed: the data files keep their last publication
                error = e
        summary = self.summary()
        written: dict[str, list[Path]] = {}
        unfed = error is not None
        with self._guard():
            for sink in self.sinks:
                try:
                    if self.frames and not (unfed and sink in self.data_sinks):
                        written.setdefault(sink.kind, []).extend(sink.close(summary))
                    else:
                        sink.discard()
                except Exception as e:
                    error = error or e
        if error is not None:
            raise error
        return summary, written

