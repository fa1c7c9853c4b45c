#!/usr/bin/env python3
"""Side by side: the offline MediaPipe path vs MediaPipe Pose itself, on the same frames, in the same run.

    python tools/bench_mediapipe.py                          # openpose_video.avi (1280x720), 100 frames, 3 rounds
    python tools/bench_mediapipe.py --video clip.mp4 --frames 60 --rounds 2 --json bench_mp.json

MediaPipe Pose is ``mediapipe==0.10.21``'s legacy tracking solution (``mp.solutions.pose.Pose(
static_image_mode=False, model_complexity=1)``: the same BlazePose detector + full landmark model, landmark
smoothing on). That release needs numpy<2, so it runs in its own small virtual environment (``--venv``,
default ``.venv-mp``), built from the package registry the first time (``pip install mediapipe==0.10.21
'numpy<2'``, ~100 MB) and reused afterwards; a worker script there decodes the same frames of the same
video and times ``pose.process`` on each.

Timed on our side: what the demo does per frame once a frame is decoded, one call of the tracking wrapper
(``TrackingPipeline`` around ``mediapipe_pipeline``, built as ``demo.py --model mediapipe`` builds it:
landmarks in the region the last frame gave, the person detector for newcomers, MHR70 2D + metric 3D + camera
translation, track IDs, One-Euro smoothing), without drawing or writing. Decoding and the BGR->RGB conversion
are not timed on either side. MediaPipe Pose runs in a long-lived worker process; the sides take turns every
``--chunk`` frames (so a busy machine slows both alike), ``--rounds`` times from the first frame (tracking
restarts); the first ``--warmup`` frames of each round are left out. Reported per configuration: median /
mean / p90 / p95 ms per frame, and the ratios of our median and p95 to MediaPipe Pose's median (issue 23's
targets: at most 0.6 and 1.2 for ``hands``):

* ``hands``: one person (``--max-persons 1``) with the hand model, the demo's default: the headline;
* ``body``: one person, no hands (``--no-hands``): the like-for-like comparison with MediaPipe Pose;
* ``demo``: the demo's defaults on the clip (hands, up to 8 people, the detector looking for newcomers every
  10 frames, one view per frame): what ``demo.py --video`` costs there, detector frames included;
* ``people``: up to ``--people`` persons, no hands: the extra cost of each extra person tracked (slope of
  the per-frame time over the number of persons, frames where the detector ran left out);
* ``starter`` (``--starter``): the previous offline default, ``instanthmr/runtime/models/instanthmr-starter.onnx``
  with the MediaPipe person detector on every frame, one person.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from instanthmr.cli.common import run_main, utc_stamp, write_json_report
from instanthmr.core.paths import REPO_ROOT, STARTER_MODEL, shared_data_dir

MEDIAPIPE_PIN = "mediapipe==0.10.21"
#: ``demo.py --max-persons``'s default (the ``demo`` configuration).
DEMO_MAX_PERSONS = 8
DEFAULT_VENV = REPO_ROOT / ".venv-mp"

#: Runs inside the MediaPipe venv: decodes frames [0, n) of a video (RGB), prints "ready", then for each
#: number k read from stdin times ``pose.process`` on the next k frames and prints their ms as one JSON line
#: (0 ends). One Pose object for the whole run: its tracking carries over from chunk to chunk.
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
    ms, found = [], []
    for rgb in frames[i:i + k]:
        t0 = time.perf_counter()
        res = pose.process(rgb)
        ms.append((time.perf_counter() - t0) * 1e3)
        found.append(res.pose_landmarks is not None)
    i += k
    print(json.dumps({"ms": ms, "found": found}), flush=True)
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


class Ours:
    """One of our paths as the demo runs it per frame (TrackingPipeline, causal smoothing), timed chunk by
    chunk: the MediaPipe path (``mediapipe_pipeline``), or with ``network`` (an InstantHMR ``.onnx``) the
    network path with the MediaPipe person detector on every frame (the previous offline default)."""

    def __init__(self, frames, max_persons: int, hands: bool, fps: float = 30.0, network: Path | None = None):
        from instanthmr.runtime.mediapipe.estimator import mediapipe_pipeline
        from instanthmr.runtime.pipeline import PosePipeline
        from instanthmr.video.tracking import TrackingPipeline

        self.frames, self.fps, self.i = frames, fps, 0
        pipe = (PosePipeline.from_files(network, detector="mediapipe", max_persons=max_persons, crops="boxes")
                if network else mediapipe_pipeline(hands=hands, max_persons=max_persons))
        self.tracking = TrackingPipeline.from_pipeline(pipe, smooth="causal", fps=fps)

    def next(self, k: int):
        """``(ms, persons, detector_ran)`` lists for the next ``k`` frames."""
        ms, persons, detected = [], [], []
        for img in self.frames[self.i:self.i + k]:
            t0 = time.perf_counter()
            r = self.tracking(img, self.i, self.i / self.fps)
            ms.append((time.perf_counter() - t0) * 1e3)
            persons.append(len(r.persons))
            detected.append(bool(r.detector_ran))
            self.i += 1
        return ms, persons, detected


def _stats(ms) -> dict:
    v = np.asarray(ms, np.float64)
    return {"median": float(np.median(v)), "mean": float(v.mean()), "p90": float(np.percentile(v, 90)),
            "p95": float(np.percentile(v, 95)), "frames": int(v.size)}


def per_person_ms(ms, persons, detected) -> float | None:
    """Slope of per-frame ms over persons per frame (least squares), frames where the detector ran left out;
    None when the number of persons never changes."""
    m = ~np.asarray(detected, bool)
    x = np.asarray(persons, np.float64)[m]
    y = np.asarray(ms, np.float64)[m]
    if x.size < 3 or np.ptp(x) == 0:
        return None
    return float(np.polyfit(x, y, 1)[0])


def detector_frame_medians(ms, detected) -> dict:
    """Median ms of the frames where the detector ran and of the others (a stall shows as their ratio); ``None``
    where a kind of frame is missing."""
    v, d = np.asarray(ms, np.float64), np.asarray(detected, bool)
    return {"median_detector_frames": float(np.median(v[d])) if d.any() else None,
            "median_other_frames": float(np.median(v[~d])) if (~d).any() else None}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", type=Path, default=None,
                   help="video to time on (default: the shared openpose_video.avi, 1280x720, one dancer in front)")
    p.add_argument("--frames", type=int, default=100, help="frames per round (default: 100)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds of both sides (default: 3)")
    p.add_argument("--warmup", type=int, default=5, help="frames left out at the start of each round (default: 5)")
    p.add_argument("--chunk", type=int, default=5, help="frames each side runs before the other's turn (default: 5)")
    p.add_argument("--people", type=int, default=4, help="max persons for the per-person cost (default: 4)")
    p.add_argument("--starter", action="store_true",
                   help="also time the previous offline default (starter network + detector every frame)")
    p.add_argument("--venv", type=Path, default=DEFAULT_VENV,
                   help=f"virtual environment with {MEDIAPIPE_PIN} (built when missing; default: .venv-mp)")
    p.add_argument("--json", default=None, help="also write the report here")
    return p


def run(args) -> dict:
    if args.frames < args.warmup + 5 or args.rounds < 1:
        raise ValueError("--frames must exceed --warmup by at least 5 and --rounds must be >= 1")
    video = args.video or shared_data_dir() / "videos" / "openpose_video.avi"
    if not Path(video).is_file():
        raise ValueError(f"video not found: {video} (pass --video PATH)")
    try:
        py = ensure_mediapipe_venv(args.venv)
    except MediaPipeVenvError as e:
        raise ValueError(str(e)) from None
    frames = read_frames(Path(video), args.frames)
    h, w = frames[0].shape[:2]
    print(f"video: {video} ({w}x{h}), {len(frames)} frames x {args.rounds} rounds, first {args.warmup} of each "
          f"round left out; CPU: {os.cpu_count()} cores ({platform.processor() or platform.machine()})")
    configs = {"hands": (1, True, None), "body": (1, False, None), "demo": (DEMO_MAX_PERSONS, True, None),
               "people": (args.people, False, None)}
    if args.starter and STARTER_MODEL.is_file():
        configs["starter"] = (1, False, STARTER_MODEL)
    ms = {"mediapipe_pose": [], **{k: [] for k in configs}}
    persons = {k: [] for k in configs}
    detected = {k: [] for k in configs}
    found = []
    w0, chunk = args.warmup, args.chunk
    for r in range(args.rounds):
        # every side starts afresh each round; then they take turns, `chunk` frames each, so a machine whose
        # load changes slows them alike
        worker = MediaPipePoseWorker(py, Path(video), len(frames))
        try:
            ours = {name: Ours(frames, maxp, hands, network=net) for name, (maxp, hands, net) in configs.items()}
            for start in range(0, len(frames), chunk):
                keep = slice(max(0, w0 - start), None)  # the first frames of a round are warm-up
                out = worker.next(chunk)
                ms["mediapipe_pose"] += out["ms"][keep]
                found += out["found"][keep]
                for name, side in ours.items():
                    t, n, d = side.next(chunk)
                    ms[name] += t[keep]
                    persons[name] += n[keep]
                    detected[name] += d[keep]
        finally:
            worker.close()
        print(f"round {r + 1}/{args.rounds}: MediaPipe Pose median {np.median(ms['mediapipe_pose']):.1f} ms, "
              f"ours with hands {np.median(ms['hands']):.1f} ms (so far)", file=sys.stderr)
    ref = float(np.median(ms["mediapipe_pose"]))
    report = {"time": utc_stamp(), "video": str(video), "size": [w, h], "frames": len(frames), "rounds": args.rounds,
              "warmup": w0, "cpu_count": os.cpu_count(), "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
              "mediapipe_pose": {**_stats(ms["mediapipe_pose"]), "found": float(np.mean(found))}}
    for name in configs:
        report[name] = {**_stats(ms[name]), "ratio_to_mediapipe_pose": float(np.median(ms[name])) / ref,
                        "p95_ratio_to_mediapipe_pose": float(np.percentile(ms[name], 95)) / ref,
                        "persons_per_frame": float(np.mean(persons[name])),
                        "detector_frames": float(np.mean(detected[name])),
                        **detector_frame_medians(ms[name], detected[name])}
    report["hands_extra_ms"] = report["hands"]["median"] - report["body"]["median"]
    report["per_extra_person_ms"] = per_person_ms(ms["people"], persons["people"], detected["people"])
    report["per_extra_person_ms_hands"] = per_person_ms(ms["demo"], persons["demo"], detected["demo"])
    print_report(report)
    write_json_report(args.json, report)
    return report


def print_report(r: dict) -> None:
    mp_ = r["mediapipe_pose"]
    print(f"\nms per frame, decoding excluded ({r['size'][0]}x{r['size'][1]}, {mp_['frames']} timed frames per row; "
          f"load average {', '.join(f'{v:.1f}' for v in r['load_avg'] or [])})")
    head = f"{'':52}{'median':>7}{'mean':>7}{'p90':>7}{'p95':>7}{'median/MP':>10}{'p95/MP':>8}{'persons':>8}{'det':>6}"
    print(head)
    print(f"{'MediaPipe Pose 0.10.21 (complexity 1)':52}{mp_['median']:7.1f}{mp_['mean']:7.1f}{mp_['p90']:7.1f}"
          f"{mp_['p95']:7.1f}{1.0:10.2f}{mp_['p95'] / mp_['median']:8.2f}{mp_['found']:8.2f}{'':>6}")
    labels = {"hands": "MediaPipe path, 1 person, + hands (demo default)", "body": "MediaPipe path, 1 person, body only",
              "demo": f"MediaPipe path, demo defaults (<= {DEMO_MAX_PERSONS} people, hands)",
              "people": "MediaPipe path, several people, body only",
              "starter": "starter network + MediaPipe detector, 1 person"}
    for k, label in labels.items():
        if k not in r:
            continue
        s = r[k]
        print(f"{label:52}{s['median']:7.1f}{s['mean']:7.1f}{s['p90']:7.1f}{s['p95']:7.1f}"
              f"{s['ratio_to_mediapipe_pose']:10.2f}{s['p95_ratio_to_mediapipe_pose']:8.2f}"
              f"{s['persons_per_frame']:8.2f}{s['detector_frames']:6.2f}")
    d = r["demo"]
    if d.get("median_detector_frames") and d.get("median_other_frames"):
        print(f"demo defaults: frames where the detector ran {d['median_detector_frames']:.1f} ms, the others "
              f"{d['median_other_frames']:.1f} ms (medians; {d['median_detector_frames'] / d['median_other_frames']:.2f}x)")
    h = r["hands"]
    print(f"targets (issue 23, hands): median <= 0.60x MediaPipe Pose's median: {h['ratio_to_mediapipe_pose']:.2f}; "
          f"p95 <= 1.20x: {h['p95_ratio_to_mediapipe_pose']:.2f}")
    print(f"hands: +{r['hands_extra_ms']:.1f} ms per frame (median, both hands of one person)")
    for key, what in (("per_extra_person_ms", "body only"), ("per_extra_person_ms_hands", "with hands, demo defaults")):
        ppm = r.get(key)
        print(f"each extra person ({what}): " + (f"+{ppm:.1f} ms per frame (slope over frames without a detector run)"
                                                 if ppm is not None else "n/a (the number of persons never changed)"))


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
