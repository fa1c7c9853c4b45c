#!/usr/bin/env python3
"""Memory of a long run: peak RSS and RSS every ``--every`` frames while looping a shared clip.

    python tools/bench_memory.py                                   # 2,400 frames, openpose_video.avi looped
    python tools/bench_memory.py --frames 5000 --int8 --async-detector --json mem.json

The video is re-opened at each loop (decoder included). The pipeline is the deployment one (ONNX network
+ ONNX RF-DETR, ``--stride`` default 30 so the run stays short); per-frame results are dropped as soon as
they are counted, like a live viewer (``demo.py`` keeps them for its CSV/NPZ/BVH outputs, see
docs/temporal.md, so its memory grows by design). Growth is reported as the RSS change from the first
checkpoint after ``--settle`` frames to the last, and as a least-squares slope in MB per 1,000 frames.
Without weights the random-init network and a random-weight RF-DETR are used (same compute; the detector's
boxes are replaced by one fixed person box so every frame runs the network).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from instanthmr.cli.common import (
    add_bench_flags,
    describe_load,
    load_average,
    run_main,
    utc_stamp,
    write_json_report,
)
from instanthmr.core.paths import DEFAULT_MODEL, shared_data_dir
from instanthmr.video.sources import SourceError


def rss_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MB, from /proc (Linux) or resource (elsewhere; peak only)."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
        return int(fields["VmRSS"].split()[0]) / 1024.0, int(fields["VmHWM"].split()[0]) / 1024.0
    except (OSError, KeyError, ValueError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024.0 if sys.platform != "darwin" else 2 ** 20)
        return peak, peak


def frames_forever(path: str, size=(1280, 720)):
    """Frames of ``path`` resized to ``size``, the video re-opened at its end, forever."""
    import cv2

    from instanthmr.video.sources import VideoSource

    while True:
        src = VideoSource(path)
        n = 0
        for f in src:
            n += 1
            img = f.image
            yield img if img.shape[1::-1] == size else cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        src.close()
        if n == 0:
            raise SourceError(f"no frame decoded from {path}")


def run(args) -> dict:
    from instanthmr.runner.speed import FixedBoxes
    from instanthmr.runtime.detector import OnnxDetector
    from instanthmr.runtime.pipeline import PosePipeline, load_hmr
    from instanthmr.runtime.session import RuntimeOptions
    from instanthmr.training.export import random_init_onnx

    if args.frames < 1 or args.every < 1:
        raise ValueError("--frames and --every must be >= 1")
    video = args.video or str(shared_data_dir() / "videos" / "openpose_video.avi")
    cache = Path(args.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    random_hmr = args.model is None and not DEFAULT_MODEL.is_file()
    model = Path(args.model or DEFAULT_MODEL)
    if random_hmr:  # the cached export when there is one: exporting imports torch, which would inflate RSS
        name = args.random_init_config or "instanthmr_repvit_m1_5"
        cached = Path(tempfile.gettempdir()) / "instanthmr_random_init" / f"{name}-seed0-optimized.onnx"
        model = cached if cached.is_file() else random_init_onnx(name)
    det_path, random_det = (Path(args.detector), False) if args.detector else (
        cache / "rf-detr-nano-native-random.onnx", True)
    if random_det and not det_path.is_file():
        from instanthmr.training.export_detector import export_detector

        export_detector("nano", det_path, pretrained=False)
    if args.int8:
        from instanthmr.training.quantize import quantize

        model = quantize(model, cache / f"{model.stem}.static.int8.onnx") if not (
            cache / f"{model.stem}.static.int8.onnx").is_file() else cache / f"{model.stem}.static.int8.onnx"
    start_rss = rss_mb()[0]
    runtime = RuntimeOptions.from_flags(args.threads, async_detector=args.async_detector)
    hmr = load_hmr(model, "cpu", 1, runtime=runtime)
    det = OnnxDetector(det_path, confidence=0.0, max_persons=1, device="cpu",
                       runtime=RuntimeOptions(threads=args.threads))
    frames = frames_forever(video)
    first = next(frames)
    h, w = first.shape[:2]
    if random_det:
        det = FixedBoxes(det, [w * 0.40, h * 0.12, w * 0.60, h * 0.92])
    pipe = PosePipeline(det, hmr, detector_stride=args.stride, max_persons=1,
                        async_detector=runtime.async_detector)
    print(f"{video} looped to {args.frames} frames ({w}x{h}); network {model.name}"
          f"{' (random-init)' if random_hmr else ''}, detector {det_path.name} every {args.stride} frames"
          f"{' (async)' if args.async_detector else ''}; RSS after imports {start_rss:.0f} MB "
          f"(torch {'loaded' if 'torch' in sys.modules else 'not loaded'}); "
          f"{describe_load(load_average())}", flush=True)
    checkpoints = []
    persons = 0
    t0 = time.perf_counter()
    img = first
    for i in range(args.frames):
        persons += len(pipe.predict(img, frame_index=i).persons)  # the result is dropped here
        img = next(frames)
        if (i + 1) % args.every == 0 or i + 1 == args.frames:
            cur, peak = rss_mb()
            el = time.perf_counter() - t0
            checkpoints.append({"frame": i + 1, "rss_mb": cur, "peak_mb": peak, "elapsed_s": el})
            print(f"  frame {i + 1:6d}  RSS {cur:7.1f} MB  peak {peak:7.1f} MB  {(i + 1) / el:5.1f} FPS", flush=True)
    pipe.close()
    settled = [c for c in checkpoints if c["frame"] >= args.settle] or checkpoints
    x = np.array([c["frame"] for c in settled], float)
    y = np.array([c["rss_mb"] for c in settled], float)
    slope = float(np.polyfit(x, y, 1)[0] * 1000.0) if len(settled) >= 2 else 0.0
    report = {"video": video, "frames": args.frames, "stride": args.stride, "model": str(model),
              "random_init": random_hmr, "detector": str(det_path), "int8": args.int8,
              "async_detector": args.async_detector, "threads": args.threads, "persons": persons,
              "peak_rss_mb": max(c["peak_mb"] for c in checkpoints),
              "growth_mb": float(y[-1] - y[0]), "growth_from_frame": int(x[0]),
              "slope_mb_per_1000_frames": slope, "checkpoints": checkpoints, "load_after": load_average(),
              "date": utc_stamp()}
    print(f"peak RSS {report['peak_rss_mb']:.1f} MB; RSS change frame {int(x[0])} -> {int(x[-1])}: "
          f"{report['growth_mb']:+.1f} MB (slope {slope:+.2f} MB / 1000 frames); {persons} person-frames")
    write_json_report(args.json, report)
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_bench_flags(p, video="clip to loop (default: the shared openpose_video.avi)",
                    model=f"InstantHMR ONNX (default: {DEFAULT_MODEL}, else random-init)", threads=1,
                    threads_help="intra-op threads per model (0 = ORT default)", cache_dir="instanthmr_perf",
                    json_help="write the checkpoints and summary to this JSON file")
    p.add_argument("--random-init-config", default=None, help="architecture when no model is found")
    p.add_argument("--detector", default=None, help="RF-DETR .onnx (default: a random-weight nano export)")
    p.add_argument("--frames", type=int, default=2400, help="frames to run (default: 2400)")
    p.add_argument("--every", type=int, default=200, help="print RSS every N frames (default: 200)")
    p.add_argument("--settle", type=int, default=200, help="growth is measured from this frame (default: 200)")
    p.add_argument("--stride", type=int, default=30, help="detector stride (default: 30)")
    p.add_argument("--int8", action="store_true", help="int8 network (quantised once into --cache-dir)")
    p.add_argument("--async-detector", action="store_true", help="detector on its own thread")
    return run_main(p, run, argv)
