"""Speed measurements the benchmarks share, as library calls: the whole pipeline per detector stride on decoded
frames (:func:`stride_benchmark`), a round-robin timer for several variants (:func:`blocked_round_robin_ms`) and
a detector wrapper that keeps a random-weight detector's cost but answers one fixed box (:class:`FixedBoxes`).

Times are milliseconds (``time.perf_counter``); decoding is never inside a timed span.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from instanthmr.runtime.detector import Detections, PersonDetector
from instanthmr.runtime.session import RuntimeOptions
from instanthmr.video.sources import SourceError, VideoSource

STAGES = ("detector_ms", "hmr_ms", "total_ms", "wall_ms")
RANDOM_INIT_NOTE = "RANDOM-INIT WEIGHTS: speed is representative, poses are meaningless"


def utc_stamp() -> str:
    """Now, as reports record it: ``2026-11-21 21:47 UTC``."""
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def load_average() -> float | None:
    """The 1-minute load average (runnable processes, all CPUs together), ``None`` where the OS keeps none
    (Windows). Every benchmark prints it: on a shared machine other jobs skew every figure."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


def describe_load(*loads: float | None) -> str:
    """``load average 1.2`` (one value) or ``load average before/after 1.2/1.5`` (two),
    from :func:`load_average` readings; ``load average unknown`` where the OS keeps none."""
    if not loads or any(v is None for v in loads):
        return "load average unknown"
    label = "load average " if len(loads) == 1 else "load average before/after "
    return label + "/".join(f"{v:.1f}" for v in loads)


def blocked_round_robin_ms(fns: dict, runs: int, warmup: int, block: int = 10, cpu_ms: dict | None = None) -> dict:
    """Each callable ``runs`` timed calls (ms), taken in rounds of ``block`` consecutive calls per callable,
    each block after one untimed call. Rounds spread machine-load drift over all variants; blocks keep each
    variant's weights in cache (alternating call by call measured 49.8 ms against 27.5 ms alone for the same
    RepViT-M1.5 session on the 2-core CPU). ``cpu_ms`` (a dict) receives each call's process CPU time (ms, all
    threads): the work done, which other processes on a shared machine inflate far less than the wall time."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    while any(len(t) < runs for t in times.values()):
        for name, fn in fns.items():
            n = min(block, runs - len(times[name]))
            if n <= 0:
                continue
            fn()
            for _ in range(n):
                c0, t0 = time.process_time(), time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - t0) * 1e3)
                if cpu_ms is not None:
                    cpu_ms.setdefault(name, []).append((time.process_time() - c0) * 1e3)
    return times


class FixedBoxes(PersonDetector):
    """Runs ``inner`` (its full cost) and answers one fixed box (xyxy pixels): random-weight detectors find
    nobody real, and a benchmark needs a person for the network to run on."""

    def __init__(self, inner: PersonDetector, box):
        super().__init__(0.0, 1)
        self.inner, self.box = inner, np.asarray(box, np.float32).reshape(1, 4)
        self.name = f"{inner.name} (fixed box)"
        self.variant = getattr(inner, "variant", "")

    def detect(self, image_rgb, frame_index=None):
        self.inner.detect(image_rgb, frame_index)
        return Detections(self.box, np.array([0.9], np.float32))


class FixedJoints:
    """Runs the pose estimator ``inner`` (its full cost) and answers a fixed standing person's 2D joints inside
    ``box`` (xyxy pixels) for every crop: a random-weight network's joints are noise, so keypoint-driven crops
    would lose their person every frame and call the detector each time, which a trained network does not.
    The crops then stay on ``box`` (:func:`~instanthmr.video.tracking.box_from_keypoints` of these joints)."""

    def __init__(self, inner, box):
        self.inner = inner
        self.name, self.provider = f"{inner.name} (fixed joints)", inner.provider
        x1, y1, x2, y2 = np.asarray(box, np.float64).reshape(4)
        # joints over the box less the margins box_from_keypoints adds back (12 % a side, 10 % more on top)
        size = max(x2 - x1, y2 - y1) / 1.24
        cx = (x1 + x2) / 2.0
        top, bottom = y1 + 0.22 * size, y2 - 0.12 * size
        self._grid = (cx, (x2 - x1) / 1.24, top, bottom)

    def __getattr__(self, name):  # describe(), camera_focal(), path, threads, ... as the inner estimator's
        return getattr(self.inner, name)

    def predict(self, image_rgb, boxes, scores=None, focal_length=None, *, landmarks=None) -> list:
        import dataclasses

        out = self.inner.predict(image_rgb, boxes, scores, focal_length, landmarks=landmarks)
        cx, width, top, bottom = self._grid
        for i, p in enumerate(out):
            j = np.asarray(p.joints_2d).shape[0]
            t = np.linspace(0.0, 1.0, j)
            joints = np.stack([cx + (t * 2 % 1 - 0.5) * width, top + t * (bottom - top)], axis=1)
            out[i] = dataclasses.replace(p, joints_2d=joints.astype(np.float32))
        return out


@dataclass(frozen=True)
class StrideBenchmark:
    """The whole pipeline on ``video``, once per detector stride. ``model``: an InstantHMR ``.onnx`` (its
    ``<stem>.<precision>.onnx`` copy runs when ``runtime.precision`` names one); ``detector``: as
    ``create_detector`` takes it, ``random_detector`` an RF-DETR with random weights (also when
    ``random_init`` and no RF-DETR checkpoint is here); ``warmup`` untimed then ``max_frames`` measured frames
    per stride, decoded once up front; ``random_init``: ``model`` has random weights (said and reported)."""

    video: str
    model: str
    device: str = "auto"
    detector: str = "rfdetr"
    detector_variant: str = "nano"
    detector_weights: str | None = None
    detector_resolution: int | None = None
    random_detector: bool = False
    det_confidence: float = 0.5
    max_persons: int = 8
    strides: tuple[int, ...] = (1,)
    batch_persons: bool = True
    max_frames: int = 100
    warmup: int = 5
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)
    random_init: bool = False


def load_frames(path: str, count: int) -> tuple[list, VideoSource]:
    """The first ``count`` frames of ``path`` (RGB) and the closed source (its size and fps)."""
    src = VideoSource(path, max_frames=count)
    frames = [f.image for f in src]
    src.close()
    if not frames:
        raise SourceError(f"no frame decoded from {path}")
    return frames, src


def build_detector(b: StrideBenchmark):
    """``(detector, random weights?)``: the detector instance every stride shares (the model loads once)."""
    from instanthmr.runtime.detector import RFDETRDetector, create_detector, resolve_rfdetr_weights

    random_det = b.random_detector
    if b.detector == "rfdetr" and b.random_init and not random_det and not b.detector_weights:
        random_det = not resolve_rfdetr_weights(b.detector_variant)[1]  # no checkpoint here: random too
    if b.detector == "rfdetr" and random_det:
        return RFDETRDetector(b.detector_variant, b.det_confidence, b.max_persons, device=b.device, pretrained=False,
                              resolution=b.detector_resolution, half=b.runtime.precision == "fp16"), True
    return create_detector(b.detector, variant=b.detector_variant, confidence=b.det_confidence,
                           max_persons=b.max_persons, device=b.device, weights=b.detector_weights,
                           resolution=b.detector_resolution, runtime=b.runtime), False


def bench_stride(pipeline, frames: list, warmup: int) -> dict:
    """``warmup`` untimed frames, then the rest timed; the summary statistics (``outputs.summary.summarize``)."""
    from instanthmr.outputs.summary import summarize

    pipeline.reset()
    for img in frames[:warmup]:
        pipeline.predict(img)
    pipeline.reset()  # measured frames start on a detector frame
    results, wall = [], []
    for i, img in enumerate(frames[warmup:]):
        t0 = time.perf_counter()
        results.append(pipeline.predict(img, frame_index=warmup + i))
        wall.append((time.perf_counter() - t0) * 1e3)
    return summarize(results, wall)


def format_stats(name: str, st: dict) -> str:
    return (f"  {name:<12} mean {st['mean']:8.1f}  median {st['median']:8.1f}  p95 {st['p95']:8.1f}  "
            f"min {st['min']:8.1f}  max {st['max']:8.1f}  ms")


def format_table(rows: list[dict]) -> str:
    lines = ["| stride | detector ms | HMR ms | total ms | FPS |", "| ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['stride']} | {r['detector_ms']['mean']:.1f} | {r['hmr_ms']['mean']:.1f} | "
                     f"{r['total_ms']['mean']:.1f} | {r['fps']:.1f} |")
    return "\n".join(lines)


def stride_benchmark(b: StrideBenchmark) -> dict:
    """Run ``b`` and print per stride: mean / median / p95 / min / max of detector_ms (0 on reused frames),
    hmr_ms, total_ms and wall_ms, detector calls, persons per frame and FPS (``1000 / mean total_ms``), then a
    table comparing the strides. Returns the report (``strides``: one row per stride)."""
    import platform

    from instanthmr.runtime.pipeline import PosePipeline, load_hmr

    if b.max_frames < 1 or b.warmup < 0 or b.max_persons < 1:
        raise ValueError("--max-frames and --max-persons must be >= 1, --warmup >= 0")
    frames, src = load_frames(b.video, b.warmup + b.max_frames)
    note = RANDOM_INIT_NOTE if b.random_init else None
    if note:
        print(f"NOTE: {note}", flush=True)
    hmr = load_hmr(Path(b.model), b.device, b.max_persons, b.batch_persons, b.runtime)
    model = hmr.path  # the file the precision named
    detector, random_det = build_detector(b)
    if random_det:
        print("NOTE: RANDOM RF-DETR WEIGHTS: boxes are meaningless (detector speed is real)", flush=True)
    print(f"video: {b.video} ({src.size[0]}x{src.size[1]}, {len(frames)} frames loaded); model: {model} on "
          f"{hmr.provider}; detector: {detector.name} {getattr(detector, 'variant', '')}; "
          f"warmup {b.warmup}, measured {len(frames) - b.warmup}", flush=True)
    if len(frames) <= b.warmup:
        raise SourceError(f"{b.video} has only {len(frames)} frame(s), not more than --warmup {b.warmup}")
    rows = []
    load_before = load_average()
    for stride in b.strides:
        pipeline = PosePipeline(detector, hmr, detector_stride=stride, max_persons=b.max_persons,
                                async_detector=b.runtime.async_detector)
        st = bench_stride(pipeline, frames, b.warmup)
        pipeline.close()
        st["stride"] = stride
        rows.append(st)
        print(f"\nstride {stride}: {st['frames']} frames, {st['detector_calls']} detector calls, "
              f"{st['persons_per_frame']:.2f} persons/frame, {st['fps']:.1f} FPS (1000 / mean total), "
              f"{st['wall_fps']:.1f} FPS wall")
        for name in STAGES:
            print(format_stats(name, st[name]))
    load_after = load_average()
    print()
    print(format_table(rows))
    print(f"({os.cpu_count()} CPUs; {describe_load(load_before, load_after)})")
    if note:
        print(f"\nNOTE: {note}")
    return {
        "video": str(b.video), "image_size": list(src.size), "model": str(model), "random_init": b.random_init,
        "random_detector": random_det, "note": note, "provider": hmr.provider, "device": b.device,
        "detector": detector.name, "detector_variant": getattr(detector, "variant", None),
        "detector_file": str(detector.path) if getattr(detector, "path", None) else None,
        "det_confidence": b.det_confidence, "max_persons": b.max_persons, "batch_persons": b.batch_persons,
        "warmup": b.warmup, "measured_frames": len(frames) - b.warmup, "date": utc_stamp(),
        "machine": f"{platform.machine()} {platform.processor() or ''} {platform.system()}".strip(),
        "load_before": load_before, "load_after": load_after, "strides": rows,
    }
