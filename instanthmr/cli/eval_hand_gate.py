"""Would a cheap ``hand_landmark_lite`` gate before the full hand model keep the hands? (issue 23 item 4)

    python tools/eval_hand_gate.py --lite .../mediapipe/modules/hand_landmark/hand_landmark_lite.tflite \\
        --max-persons 1 openpose_video.avi sports2d_demo.mp4 romp_sample_video_football.mp4 \\
        mmhuman3d_single_person_demo.mp4

Runs the offline MediaPipe path as it is (:func:`~instanthmr.runtime.mediapipe.estimator.mediapipe_pipeline`
tracked by :class:`~instanthmr.video.tracking.TrackingPipeline`, no smoothing) on the first ``--frames`` frames
of each clip (``CLIP`` as given, else under ``--videos``, default the shared data's ``videos``). For every fresh
hand search (the crop placed from BlazePose's wrist, :meth:`HandLandmarker.track`) it records whether the full
model found a hand and the lite model's presence in [0, 1] on the same first crop; tracked passes would bypass
the gate and are only counted. Prints, per gate threshold: the found hands the gate would drop, the full passes
it would skip, and the net saving once every fresh search pays a lite pass (at the lite / full CPU-time ratio
per pass, crop included, measured in the same run with ``time.process_time``: all threads; and at 0.38x, the
wall-time ratio of the bare passes measured before). The dropped count is a lower bound of the hand-frames lost:
a hand dropped is not tracked on the next frames either.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

GATES = (0.001, 0.002, 0.003, 0.004, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2)


class _Recorder:
    """Stands in for the full :class:`HandLandmarker` in ``find_hands``: runs it, counts its passes and CPU
    seconds, and runs ``lite`` on the first crop of each fresh search."""

    def __init__(self, full, lite):
        self.full, self.lite = full, lite
        self.passes, self.full_cpu, self.lite_cpu, self.lite_passes = 0, 0.0, 0.0, 0
        self.fresh: list[tuple[float, bool, int]] = []  # (lite presence, full found, full passes)

    def __call__(self, image, roi):
        t = time.process_time()
        out = self.full(image, roi)
        self.full_cpu += time.process_time() - t
        self.passes += 1
        return out

    def track(self, image, roi, iterations: int = 2):
        from instanthmr.runtime.mediapipe.hands import HandLandmarker

        t = time.process_time()
        presence = self.lite(image, roi)
        self.lite_cpu += time.process_time() - t
        self.lite_passes += 1
        before = self.passes
        out = HandLandmarker.track(self, image, roi, iterations)  # the real rule, its passes through __call__
        self.fresh.append((presence.score, out is not None, self.passes - before))
        return out


def gate_table(fresh, passes: int, lite_costs: tuple[float, ...]) -> list[str]:
    """Markdown rows, one per gate in :data:`GATES`; one net column per ``lite_costs`` (a lite pass / a full
    pass)."""
    found = sum(f for _, f, _ in fresh) or 1
    rows = ["| gate | found hands dropped | fresh searches skipped | full passes skipped |" + "".join(
        f" net at lite {c:.2f}x |" for c in lite_costs), "| --- " * (4 + len(lite_costs)) + "|"]
    for g in GATES:
        skipped = [(s, f, n) for s, f, n in fresh if s < g]
        drop = sum(f for _, f, _ in skipped)
        saved = sum(n for *_, n in skipped)
        rows.append(f"| {g} | {drop} / {found} ({100 * drop / found:.1f} %) | {len(skipped)} / {len(fresh)} | "
                    f"{saved} / {passes} ({100 * saved / max(passes, 1):.0f} %) |" + "".join(
                    f" {100 * (saved - c * len(fresh)) / max(passes, 1):+.0f} % |" for c in lite_costs))
    return rows


def main(argv=None) -> int:
    import cv2

    from instanthmr.cli.common import clip_path
    from instanthmr.core.paths import shared_data_dir
    from instanthmr.runtime.mediapipe.estimator import mediapipe_pipeline
    from instanthmr.runtime.mediapipe.files import MediaPipeModelError
    from instanthmr.runtime.mediapipe.hands import HandLandmarker
    from instanthmr.video.tracking import TrackingPipeline

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("clips", nargs="+")
    ap.add_argument("--lite", required=True, help="hand_landmark_lite.tflite (in the mediapipe==0.10.21 wheel)")
    ap.add_argument("--videos", default=str(shared_data_dir() / "videos"), help="folder of the clips given by name")
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--max-persons", type=int, default=1)
    args = ap.parse_args(argv)
    try:
        paths = [clip_path(clip, args.videos) for clip in args.clips]  # every clip checked before the first frame
    except ValueError as e:
        raise SystemExit(str(e)) from None
    try:
        lite = HandLandmarker(args.lite, presence_threshold=0.0)
    except MediaPipeModelError as e:
        raise SystemExit(f"{e} (--lite: hand_landmark_lite.tflite, in the mediapipe==0.10.21 wheel's "
                         "mediapipe/modules/hand_landmark/)") from None
    fresh, passes, full_cpu, lite_cpu, lite_passes, frames = [], 0, 0.0, 0.0, 0, 0
    for path in paths:
        pipe = mediapipe_pipeline(max_persons=args.max_persons)
        rec = pipe.estimator.hand = _Recorder(pipe.estimator.hand, lite)
        tp = TrackingPipeline.from_pipeline(pipe, smooth="none")
        cap = cv2.VideoCapture(str(path))
        n = 0
        while n < args.frames:
            ok, frame = cap.read()
            if not ok:
                break
            tp(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), n)
            n += 1
        if n == 0:
            raise SystemExit(f"{path}: no frames read (a video file, or a name under --videos)")
        found = sum(f for _, f, _ in rec.fresh)
        print(f"{path.name}: {n} frames, {rec.passes} full passes, {len(rec.fresh)} fresh searches, {found} found")
        fresh += rec.fresh
        passes, full_cpu, lite_cpu = passes + rec.passes, full_cpu + rec.full_cpu, lite_cpu + rec.lite_cpu
        lite_passes, frames = lite_passes + rec.lite_passes, frames + n
    full_ms, lite_ms = 1e3 * full_cpu / max(passes, 1), 1e3 * lite_cpu / max(lite_passes, 1)
    print(f"all: {frames} frames, {passes} full passes ({full_ms:.2f} ms CPU each, crop included), "
          f"lite {lite_ms:.2f} ms ({lite_ms / max(full_ms, 1e-9):.2f}x)")
    print("lite presence of the found hands:", np.round(sorted(s for s, f, _ in fresh if f), 3).tolist())
    # 0.38x: a lite pass's wall time against a full one's, measured before (docs/offline.md, the levers table)
    print("\n".join(gate_table(fresh, passes, (lite_ms / max(full_ms, 1e-9), 0.38))))
    return 0
