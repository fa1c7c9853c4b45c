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

Timed on our side: one call of the tracking wrapper per frame (``TrackingPipeline`` around
``mediapipe_pipeline``: landmarks in the region the last frame gave, MHR70 2D + metric 3D + camera
translation, track IDs, One-Euro smoothing), i.e. what the demo does per frame without drawing. Decoding
and the BGR->RGB conversion are not timed on either side. MediaPipe Pose runs in a long-lived worker process;
the sides take turns every ``--chunk`` frames (so a busy machine slows both alike), ``--rounds`` times from
the first frame (tracking restarts); the first ``--warmup`` frames of each round are left out. Reported per configuration: median / mean / p90 ms per frame, and the
ratio to MediaPipe Pose's median:

* ``body``: one person (``--max-persons 1``), no hands: the like-for-like comparison;
* ``hands``: one person with the hand model (its extra cost);
* ``people``: up to ``--people`` persons, no hands: the extra cost of each extra person tracked (slope of
  the per-frame time over the number of persons, frames where the detector ran left out);
* ``starter``: the previous offline default, ``models/instanthmr-starter.onnx`` with the MediaPipe person
  detector on every frame, one person.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

import numpy as np

from instanthmr.cli.common import add_bench_flags, run_main, utc_stamp, write_json_report
from instanthmr.core.paths import STARTER_MODEL, shared_data_dir
from instanthmr.teachers.mediapipe_pose import (
    DEFAULT_VENV,
    MEDIAPIPE_PIN,
    MediaPipePoseWorker,
    MediaPipeVenvError,
    Ours,
    frame_stats,
    ensure_mediapipe_venv,
    per_person_ms,
    read_frames,
)

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_bench_flags(p, video="video to time on (default: the shared openpose_video.avi, 1280x720, one dancer in "
                             "front)", video_type=Path, json_help="also write the report here")
    p.add_argument("--frames", type=int, default=100, help="frames per round (default: 100)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds of both sides (default: 3)")
    p.add_argument("--warmup", type=int, default=5, help="frames left out at the start of each round (default: 5)")
    p.add_argument("--chunk", type=int, default=5, help="frames each side runs before the other's turn (default: 5)")
    p.add_argument("--people", type=int, default=4, help="max persons for the per-person cost (default: 4)")
    p.add_argument("--venv", type=Path, default=DEFAULT_VENV,
                   help=f"virtual environment with {MEDIAPIPE_PIN} (built when missing; default: .venv-mp)")
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
    configs = {"body": (1, False, None), "hands": (1, True, None), "people": (args.people, False, None)}
    if STARTER_MODEL.is_file():
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
              f"ours body {np.median(ms['body']):.1f} ms (so far)", file=sys.stderr)
    ref = float(np.median(ms["mediapipe_pose"]))
    report = {"time": utc_stamp(), "video": str(video), "size": [w, h], "frames": len(frames), "rounds": args.rounds,
              "warmup": w0, "cpu_count": os.cpu_count(), "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
              "mediapipe_pose": {**frame_stats(ms["mediapipe_pose"]), "found": float(np.mean(found))}}
    for name in configs:
        report[name] = {**frame_stats(ms[name]), "ratio_to_mediapipe_pose": float(np.median(ms[name])) / ref,
                        "persons_per_frame": float(np.mean(persons[name])),
                        "detector_frames": float(np.mean(detected[name]))}
    report["hands_extra_ms"] = report["hands"]["median"] - report["body"]["median"]
    report["per_extra_person_ms"] = per_person_ms(ms["people"], persons["people"], detected["people"])
    print_report(report)
    write_json_report(args.json, report)
    return report


def print_report(r: dict) -> None:
    mp_ = r["mediapipe_pose"]
    print(f"\nms per frame ({r['size'][0]}x{r['size'][1]}, {mp_['frames']} timed frames per row; load average "
          f"{', '.join(f'{v:.1f}' for v in r['load_avg'] or [])})")
    print(f"{'':50}{'median':>8}{'mean':>8}{'p90':>8}{'ratio':>7}{'persons':>9}")
    print(f"{'MediaPipe Pose 0.10.21 (complexity 1)':50}{mp_['median']:8.1f}{mp_['mean']:8.1f}{mp_['p90']:8.1f}"
          f"{1.0:7.2f}{mp_['found']:9.2f}")
    labels = {"body": "MediaPipe path, 1 person, body only", "hands": "MediaPipe path, 1 person, + hands",
              "people": "MediaPipe path, several people, body only",
              "starter": "starter network + MediaPipe detector, 1 person"}
    for k, label in labels.items():
        if k not in r:
            continue
        s = r[k]
        print(f"{label:50}{s['median']:8.1f}{s['mean']:8.1f}{s['p90']:8.1f}{s['ratio_to_mediapipe_pose']:7.2f}"
              f"{s['persons_per_frame']:9.2f}")
    print(f"hands: +{r['hands_extra_ms']:.1f} ms per frame (median, both hands of one person)")
    ppm = r["per_extra_person_ms"]
    print("each extra person: " + (f"+{ppm:.1f} ms per frame (slope over frames without a detector run)"
                                   if ppm is not None else "n/a (the number of persons never changed)"))


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
