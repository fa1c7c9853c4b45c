"""``python tools/detect_people.py IMAGE [--fast] [--repeat N]``: the offline MediaPipe person detector on one
image: people found, their boxes and the median latency."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from instanthmr.runtime.mediapipe import MediaPipeModelError
from instanthmr.runtime.mediapipe.detector import MediaPipeDetector


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Run the offline MediaPipe person detector on one image.")
    ap.add_argument("image", type=Path)
    ap.add_argument("--fast", action="store_true", help="whole-image detection only")
    ap.add_argument("--repeat", type=int, default=7, help="timed runs after one warm-up (median reported)")
    args = ap.parse_args(argv)
    bgr = cv2.imread(str(args.image))
    if bgr is None:
        print(f"error: image not found or unreadable: {args.image}", file=sys.stderr)
        return 2
    try:
        det = MediaPipeDetector(fast=args.fast)
    except MediaPipeModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    img = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    out = det(img)
    times = []
    for _ in range(max(1, args.repeat)):
        t = time.perf_counter()
        out = det(img)
        times.append(time.perf_counter() - t)
    mode = "fast" if args.fast else "default"
    print(f"mediapipe detector ({mode}) on {args.image.name} {img.shape[1]}x{img.shape[0]}: {len(out)} people, "
          f"median {1000 * float(np.median(times)):.0f} ms over {len(times)} runs")
    for b, s in zip(out.boxes, out.scores):
        print(f"  box [{b[0]:.0f}, {b[1]:.0f}, {b[2]:.0f}, {b[3]:.0f}]  score {s:.2f}")
    return 0
