"""The body-fit stage's cost per person per frame on real clips' MediaPipe-path outputs (issue 22 item 5).

    OPENBLAS_NUM_THREADS=1 nice python tools/bench_body_fit_stage.py            # openpose + sports2d
    python tools/bench_body_fit_stage.py --passes 3 --cache /tmp/fitcost --save-keypoints kp.npz
    python tools/bench_body_fit_stage.py --compare old.npz new.npz             # fitted keypoints: mm, px

Method. Each clip runs once through the demo's own loop (:func:`instanthmr.runner.run`, the MediaPipe path
with hands, ``--no-body-fit``, no smoothing: what the stage sees in the demo) and the tracked
``FrameResult`` of every frame is pickled to ``--cache`` (reused afterwards: only the stage is timed). Then
:class:`~instanthmr.video.body_fit.BodyFitStage` runs over the cached frames ``--passes`` times from a fresh
stage; each person-frame keeps its fastest pass (another process can only slow a pass down). A person-frame
is counted as ``no hand`` / ``hand`` (the fit moved one or both hands' fingers: 8 or more finger joints seen)
and, apart, ``mirrored`` (the stage fitted both readings on it). Printed: median / p90 ms per group, and the
process CPU time of the timed passes. ``--save-keypoints``: the live fitted 70 keypoints (m, camera frame)
and 2D joints (px) per person-frame, for ``--compare`` of two versions of the code on the same frames.
"""

from __future__ import annotations

import argparse
import copy
import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np

from instanthmr.cli.common import describe_load, load_average

CLIPS = {"openpose": ("openpose_video.avi", 1), "sports2d": ("sports2d_demo.mp4", 8)}   # clip, max persons


def tracked_frames(clip: str, max_persons: int, max_frames: int, cache: Path) -> list:
    """The clip's tracked FrameResults (MediaPipe path with hands, no body fit), pickled once to ``cache``."""
    path = cache / f"{clip}_{max_persons}_{max_frames}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    from instanthmr.core.paths import shared_data_dir
    from instanthmr.runner.config import RunConfig
    from instanthmr.runner.loop import run
    from instanthmr.runtime.factory import PipelineSpec

    video = shared_data_dir() / "videos" / CLIPS[clip][0]
    if not video.exists():
        raise SystemExit(f"{video}: not found; the shared data folder holds the clips (docs/body_fit.md)")
    frames = []

    def record(frame, result):
        frames.append(copy.deepcopy(result))
        return result

    spec = PipelineSpec(model="mediapipe", hands=True, max_persons=max_persons)
    run(RunConfig(video=str(video), max_frames=max_frames, pipeline=spec, body_fit=False, smooth="none",
                  ground=False, stages=(record,), quiet=True, verbose=False))
    cache.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(frames))
    return frames


def time_stage(frames: list, passes: int):
    """Per person-frame (frame, track): fastest ms, hand group, mirrored fitted; the last pass's results;
    process CPU seconds of all passes."""
    from instanthmr.video.body_fit import BodyFitStage, observation_from

    stage = BodyFitStage(keep_history=False)
    best: dict = {}
    info: dict = {}
    person = stage._person
    fit = stage.fitter.fit
    calls = [0]

    def counted_fit(*a, **k):
        calls[0] += 1
        return fit(*a, **k)

    def timed_person(pred, frame_index, *rest):
        calls[0] = 0
        t0 = time.perf_counter()
        out = person(pred, frame_index, *rest)
        ms = (time.perf_counter() - t0) * 1000
        if calls[0]:
            key = (frame_index, pred.track_id)
            best[key] = min(best.get(key, np.inf), ms)
            plan = stage.fitter._plan_for(observation_from(pred).clean())
            hands = sum(bool(np.isin(stage.fitter.groups[side], plan.active).any()) for side in ("left", "right"))
            info[key] = (hands, calls[0] > 1)
        return out

    stage._person = timed_person
    stage.fitter.fit = counted_fit
    cpu0 = time.process_time()
    out = []
    for _ in range(passes):
        stage.reset()
        out = [stage(copy.deepcopy(r)) for r in frames]
    cpu = time.process_time() - cpu0
    return best, info, out, cpu


def keypoints_of(results: list) -> dict:
    """{"frame_track": (joints_3d_cam (70,3) m, joints_2d (70,2) px)} of every fitted person."""
    kp = {}
    for r in results:
        for p in r.persons:
            if getattr(p, "mhr_params", None) is not None:
                kp[f"{r.frame_index}_{p.track_id}_3d"] = np.asarray(p.joints_3d_cam, np.float64)
                kp[f"{r.frame_index}_{p.track_id}_2d"] = np.asarray(p.joints_2d, np.float64)
    return kp


def compare(a_path: str, b_path: str) -> None:
    a, b = np.load(a_path), np.load(b_path)
    for kind, unit, scale in (("3d", "mm", 1000.0), ("2d", "px", 1.0)):
        keys = sorted(k for k in a.files if k.endswith(kind) and k in b.files)
        d = np.concatenate([np.linalg.norm(a[k] - b[k], axis=-1).reshape(-1) for k in keys]) * scale
        print(f"{kind}: {len(keys)} person-frames, keypoint difference median {np.median(d):.3g} {unit}, "
              f"p99 {np.percentile(d, 99):.3g}, max {d.max():.3g} {unit}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", nargs="+", default=list(CLIPS), choices=list(CLIPS))
    ap.add_argument("--max-frames", type=int, default=206)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--cache", default="/tmp/instanthmr_fitcost")
    ap.add_argument("--save-keypoints", default=None)
    ap.add_argument("--compare", nargs=2, default=None)
    args = ap.parse_args(argv)
    if args.compare:
        compare(*args.compare)
        return 0
    print(f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}; {describe_load(load_average())}")
    kp = {}
    for clip in args.clips:
        frames = tracked_frames(clip, CLIPS[clip][1], args.max_frames, Path(args.cache))
        best, info, out, cpu = time_stage(frames, args.passes)
        kp.update({f"{clip}_{k}": v for k, v in keypoints_of(out).items()})
        print(f"{clip}: {len(frames)} frames, {len(best)} person-frames, {args.passes} passes, "
              f"CPU {cpu:.2f} s ({describe_load(load_average())})")
        groups = {"all": list(best), "no hand": [k for k in best if info[k][0] == 0 and not info[k][1]],
                  "hand": [k for k in best if info[k][0] > 0 and not info[k][1]],
                  "mirrored fitted": [k for k in best if info[k][1]]}
        for name, keys in groups.items():
            if keys:
                t = np.asarray([best[k] for k in keys])
                print(f"  {name:16s} n={len(t):4d}  median {np.median(t):.2f} ms  p90 {np.percentile(t, 90):.2f} ms")
    if args.save_keypoints:
        np.savez(args.save_keypoints, **kp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
