"""MediaPipe Pose itself (``mediapipe==0.10.21``'s legacy tracking solution, the reference the offline path is
compared with) run in its own small virtual environment (it needs numpy<2), and our paths timed the same way:
what ``tools/bench_mediapipe.py`` and ``tools/eval_offline.py`` share. Times are milliseconds per frame.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from instanthmr.core.paths import REPO_ROOT
from instanthmr.video.sources import DecodedFrames

MEDIAPIPE_PIN = "mediapipe==0.10.21"
DEFAULT_VENV = REPO_ROOT / ".venv-mp"

#: Runs inside the MediaPipe venv: decodes frames [0, n) of a video (RGB), prints "ready", then for each
#: number k read from stdin times ``pose.process`` on the next k frames and prints their ms (wall, and the
#: process's CPU time: all its threads) as one JSON line (0 ends). One Pose object for the whole run: its
#: tracking carries over from chunk to chunk.
MEDIAPIPE_WORKER = r'''
import json, sys, time
import cv2
import mediapipe as mp

video, n, complexity = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cap = cv2.VideoCapture(video)
frames = []
while len(frames) < n:
    ok, f = cap.read()
    if not ok:
        break
    frames.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
pose = mp.solutions.pose.Pose(static_image_mode=False, model_complexity=complexity)
print("ready", len(frames), flush=True)
i = 0
for line in sys.stdin:
    k = int(line)
    if k <= 0:
        break
    ms, cpu, found = [], [], []
    for rgb in frames[i:i + k]:
        c0, t0 = time.process_time(), time.perf_counter()
        res = pose.process(rgb)
        ms.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
        found.append(res.pose_landmarks is not None)
    i += k
    print(json.dumps({"ms": ms, "cpu_ms": cpu, "found": found}), flush=True)
pose.close()
'''


class MediaPipeVenvError(RuntimeError):
    """The MediaPipe venv could not be built or does not run."""


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_mediapipe_venv(venv: str | Path = DEFAULT_VENV, quiet: bool = False) -> Path:
    """The python of a virtual environment with ``mediapipe==0.10.21``; built (from the package registry)
    when missing. Raises :class:`MediaPipeVenvError` with one line when it cannot be had."""
    venv = Path(venv)
    py = venv_python(venv)
    check = [str(py), "-c", "import mediapipe, numpy; print(mediapipe.__version__)"]
    if py.is_file():
        res = subprocess.run(check, capture_output=True, text=True, timeout=120)
        if res.returncode == 0 and res.stdout.strip() == MEDIAPIPE_PIN.split("==")[1]:
            return py
    if not quiet:
        print(f"building {venv} with {MEDIAPIPE_PIN} (numpy<2) from the package registry (once, ~1-3 min) ...",
              file=sys.stderr)
    steps = [[sys.executable, "-m", "venv", str(venv)],
             [str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", MEDIAPIPE_PIN, "numpy<2"]]
    for cmd in steps:
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise MediaPipeVenvError(f"could not run {cmd[0]}: {e}") from None
        if res.returncode != 0:
            lines = [ln for ln in (res.stderr or res.stdout).splitlines() if ln.strip()]
            raise MediaPipeVenvError(f"building {venv} failed: {lines[-1] if lines else f'exit {res.returncode}'} "
                                     f"(MediaPipe Pose needs {MEDIAPIPE_PIN}, which has wheels for Python 3.9-3.12)")
    res = subprocess.run(check, capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        raise MediaPipeVenvError(f"{venv}: mediapipe does not import: {(res.stderr.strip().splitlines() or ['?'])[-1]}")
    return py


def run_worker(py: Path, script: str, args: list[str], timeout: float = 1800) -> dict:
    """Run ``script`` with the venv's python; its last stdout line is JSON."""
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(script)
        path = f.name
    try:
        env = {**os.environ, "GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "2"}
        res = subprocess.run([str(py), path, *args], capture_output=True, text=True, timeout=timeout, env=env)
    finally:
        os.unlink(path)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    if res.returncode != 0 or not lines:
        err = [ln for ln in res.stderr.splitlines() if ln.strip()]
        raise MediaPipeVenvError(f"MediaPipe worker failed: {err[-1] if err else f'exit {res.returncode}'}")
    return json.loads(lines[-1])


class MediaPipePoseWorker:
    """MediaPipe Pose in the venv's python as a long-lived process, timed chunk by chunk (see
    :data:`MEDIAPIPE_WORKER`), so both sides can alternate every few frames."""

    def __init__(self, py: Path, video: Path, n: int, complexity: int = 1):
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
            f.write(MEDIAPIPE_WORKER)
            self._script = f.name
        env = {**os.environ, "GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "2"}
        self.proc = subprocess.Popen([str(py), self._script, str(video), str(n), str(complexity)], env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        line = self.proc.stdout.readline()
        if not line.startswith("ready"):
            self.close()
            raise MediaPipeVenvError(f"MediaPipe worker did not start (exit {self.proc.poll()})")

    def next(self, k: int) -> dict:
        self.proc.stdin.write(f"{k}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line.startswith("{"):
            raise MediaPipeVenvError(f"MediaPipe worker stopped (exit {self.proc.poll()})")
        return json.loads(line)

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.stdin.write("0\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
        finally:
            os.unlink(self._script)


def read_frames(video: Path, n: int) -> list[np.ndarray]:
    """The first ``n`` frames, RGB (OpenCV decodes both sides' frames the same way)."""
    import cv2

    from instanthmr.video.sources import SourceError

    cap = cv2.VideoCapture(str(video))
    frames = []
    while len(frames) < n:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
    cap.release()
    if not frames:
        raise SourceError(f"cannot decode any frame of {video}")
    return frames


class FrameFeed(DecodedFrames):
    """Frames decoded beforehand (RGB), handed to :func:`instanthmr.runner.loop.run` as its source, in turns:
    the run's thread waits until :meth:`turn` lets ``k`` more frames through. :attr:`handed`: when each frame
    was handed to the loop (``perf_counter``, ``process_time``), where :class:`Ours` starts a turn's timing (it
    times frames as they are finished: the loop's finishing thread may still be at work on a frame after the
    loop asked for the next). Between turns the run's thread waits, so another side (MediaPipe Pose) can run
    alone."""

    def __init__(self, frames, fps: float = 30.0, name: str = "frames"):
        super().__init__(frames, fps, name)
        self.handed: list[tuple[float, float]] = []  # (perf_counter, process_time) as each frame is handed over
        self._go, self._done = threading.Semaphore(0), threading.Semaphore(0)
        self._budget, self._closed = 0, False

    def __iter__(self):
        for frame in super().__iter__():
            if self._budget == 0:
                self._done.release()  # this turn is over (or the run is ready): wait for the next
                self._go.acquire()
            if self._closed:
                return
            self._budget -= 1
            self.handed.append((time.perf_counter(), time.process_time()))
            yield frame

    def wait(self) -> None:
        """Until the run's thread hands the turn back (or its run ended)."""
        self._done.acquire()

    def turn(self, k: int) -> None:
        """Let ``k`` more frames through and wait until the loop asks for the one after them (or ends)."""
        self._budget = int(k)
        self._go.release()
        self.wait()

    def close(self) -> None:
        """Ends the iteration at the next frame (a run left waiting finishes)."""
        self._closed = True
        self._go.release()

    def run_ended(self) -> None:
        """Called by the run's thread when its run is over (finished or failed): a :meth:`wait` or
        :meth:`turn` still waiting for a turn handed back returns instead of waiting forever."""
        self._done.release()


class Ours:
    """One of our paths as the demo runs it: :func:`instanthmr.runner.loop.run` (tracking, the per-track MHR
    body fit with ``body_fit``, smoothing as ``smooth`` says or the headless demo's default (offline: kept per
    frame, smoothed after the last), the ground stage, the outputs) in its own thread over a :class:`FrameFeed`,
    timed chunk by chunk: the MediaPipe path, or with ``network`` (an InstantHMR ``.onnx``) the network path
    with the MediaPipe person detector on every frame (the previous offline default); ``precision``: the
    MediaPipe path's landmark models (``"int8"``, the default, or ``"float"``); ``threads``: the demo's
    ``--threads`` (0: its default); ``pipeline``: a built pipeline to run instead (the other arguments that
    choose one are then unused; tools/bench_e2e.py --run-loop). No output file is
    written; ``finish_ms`` is the end of the run (the offline passes over all frames), not in the per-frame
    times."""

    def __init__(self, frames, max_persons: int, hands: bool, fps: float = 30.0, network: Path | None = None,
                 body_fit: bool = False, smooth: str | None = None, precision: str = "int8", threads: int = 0,
                 pipeline=None):
        from instanthmr.runner.config import RunConfig
        from instanthmr.runtime.factory import PipelineSpec
        from instanthmr.runtime.session import RuntimeOptions

        spec = (PipelineSpec(model=str(network), detector="mediapipe", detector_stride=1, max_persons=max_persons,
                             hands=False) if network else
                PipelineSpec(model="mediapipe", hands=hands, max_persons=max_persons, mediapipe_precision=precision,
                             runtime=RuntimeOptions(threads=threads)))
        self.pipeline = pipeline
        self.persons: list[int] = []
        self.detected: list[bool] = []
        self.model_ms: list[tuple[float, float]] = []  # (hmr_ms, detector_ms) of each frame finished
        self.done: list[tuple[float, float]] = []  # (perf_counter, process_time) as each frame is finished

        def record(frame, result):  # on the run's finishing thread, after the body fit (runner.finisher)
            self.persons.append(len(result.persons))
            self.detected.append(bool(result.detector_ran))
            self.model_ms.append((float(result.hmr_ms), float(result.detector_ms)))
            self.done.append((time.perf_counter(), time.process_time()))
            return result

        self.config = RunConfig(video="frames", pipeline=spec, body_fit=body_fit, smooth=smooth, viewer=False,
                                stages=(record,), quiet=True, verbose=False)
        self.feed = FrameFeed(frames, fps)
        self.finish_ms, self.error = None, None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.feed.wait()  # the pipeline is built and the loop asks for its first frame
        self._raise()

    def _run(self) -> None:
        from instanthmr.runner.loop import run

        try:
            run(self.config, pipeline=self.pipeline, source=self.feed)
            if self.done:
                self.finish_ms = (time.perf_counter() - self.done[-1][0]) * 1e3
        except BaseException as e:  # handed to the caller's thread
            self.error = e
        finally:
            self.feed.run_ended()

    def next(self, k: int):
        """``(ms, cpu_ms, persons, detector_ran)`` lists for the next ``k`` frames, once they are finished (the
        turn ends when the run's finishing thread is done with them too: nothing spills into another side's
        turn). A frame's ms is the time from the previous frame finished to this one finished (the first of a
        turn: from its hand-over), so a turn's frames add up to the turn and work that overlaps the next frame's
        models (runner.finisher) is counted once; ``cpu_ms`` likewise, this process's CPU time, all threads.
        The other sides wait meanwhile. Empty once the run has ended."""
        n0 = len(self.done)
        if not self.thread.is_alive():  # between turns the run's thread waits for one or has ended
            return [], [], [], []
        self.feed.turn(k)
        while len(self.done) < len(self.feed.handed) and self.thread.is_alive() and self.error is None:
            time.sleep(0.0002)  # the last frames handed over are still being finished
        self._raise()
        done = self.done[n0:]
        start = self.feed.handed[n0] if done else None
        ms, cpu = [], []
        for t, c in done:
            ms.append((t - start[0]) * 1e3)
            cpu.append((c - start[1]) * 1e3)
            start = (t, c)
        n1 = n0 + len(done)
        return ms, cpu, self.persons[n0:n1], self.detected[n0:n1]

    def close(self) -> None:
        self.feed.close()
        self.thread.join(timeout=60)

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error


def frame_stats(ms) -> dict:
    """Median / mean / p90 / p95 of per-frame ms, and the frame count."""
    v = np.asarray(ms, np.float64)
    return {"median": float(np.median(v)), "mean": float(v.mean()), "p90": float(np.percentile(v, 90)),
            "p95": float(np.percentile(v, 95)), "frames": int(v.size)}


def detector_frame_medians(ms, detected) -> dict:
    """Median ms of the frames where the detector ran and of the others (a stall shows as their ratio); ``None``
    where a kind of frame is missing."""
    v, d = np.asarray(ms, np.float64), np.asarray(detected, bool)
    return {"median_detector_frames": float(np.median(v[d])) if d.any() else None,
            "median_other_frames": float(np.median(v[~d])) if (~d).any() else None}


def paired_extra_ms(with_ms, without_ms) -> float | None:
    """What a stage adds to a frame, median ms: the median over frames of ``with_ms[i] - without_ms[i]``, two
    configurations timed on the same frames in the same order (frame ``i`` of the same round: the same
    person, the same hand passes). The difference of the two medians is a poor estimate where the frame
    times are bimodal (one or two hand passes a frame: ~13 against ~24 ms on openpose_video.avi): the medians
    fall between the modes and move by 1-2 ms with a few frames, whereas each frame's pair differs by the
    stage's own cost. None when the lists differ in length (a run ended early: frames not aligned)."""
    a, b = np.asarray(with_ms, np.float64), np.asarray(without_ms, np.float64)
    if a.size == 0 or a.shape != b.shape:
        return None
    return float(np.median(a - b))


def per_person_ms(ms, persons, detected) -> float | None:
    """Slope of per-frame ms over persons per frame (least squares), frames where the detector ran left out;
    None when the number of persons never changes."""
    m = ~np.asarray(detected, bool)
    x = np.asarray(persons, np.float64)[m]
    y = np.asarray(ms, np.float64)[m]
    if x.size < 3 or np.ptp(x) == 0:
        return None
    return float(np.polyfit(x, y, 1)[0])
