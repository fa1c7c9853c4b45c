#!/usr/bin/env python3
"""End-to-end CPU speed: a straightforward pipeline vs the same pipeline with the speed levers on, one run.

    python tools/bench_e2e.py                                   # 720p openpose_video.avi, 1 person, stride 3
    python tools/bench_e2e.py --video clip.mp4 --model models/instanthmr.onnx --detector models/rf-detr-nano.onnx
    python tools/bench_e2e.py --variants straightforward,optimised --rounds 5 --json e2e.json

Variants (``--variants``; all at detector stride ``--stride``, ``--max-persons 1``):

* ``straightforward``: fp32 network and detector at its native resolution, detector synchronous every
  ``--stride``-th frame, ONNX Runtime's default threads, one network call per person;
* ``threads``: + ``--threads`` intra-op threads per model, idle threads sleep (``spinning=False``);
* ``resolution``: + the detector exported at ``--detector-resolution``;
* ``int8-detector``: + int8 detector (dynamic) (``tools/quantize_onnx.py``);
* ``int8``: + int8 network (static) and detector (dynamic);
* ``async``: + the detector on its own thread, the network on the latest boxes (threads as ``threads``);
* ``optimised-sync``: threads + resolution + int8 (both), detector synchronous;
* ``optimised-sync-fp32-net``: threads + resolution + int8 detector, fp32 network, detector synchronous;
* ``optimised``: every lever above together (int8 both);
* ``keypoint``: threads + resolution + int8 (both) in the runner loop's tracking wrapper (``TrackingPipeline``
  around the pipeline, causal smoothing: what ``demo.py --keypoint-crops`` runs per frame), the detector at least
  every ``--keypoint-stride`` frames, crops from each person's joints between;
* ``keypoint-async``: + the detector hidden on its own thread while the person is followed;
* ``in-flight``: ``keypoint`` with ``--in-flight`` frames in flight, threads per model by the rule
  (``threads_per_model``: 1 each on 2 cores); ``in-flight-threads``: the same at ``--threads`` each;
  ``in-flight-async``: + the hidden detector (``demo.py --keypoint-crops --frames-in-flight 2
  --async-detector --int8``).

``--mediapipe-venv DIR`` also times MediaPipe Pose (complexity 1, tracking) on the same frames after each round
(its own process; decoding untimed on both sides) and prints each variant's time per frame as a multiple of
its. A keypoint variant's frame ms is one ``submit`` call (with frames in flight it returns the previous
frame's result); the runner loop's outputs, ground and drawing are not timed. With ``--run-loop`` the keypoint
variants run through the demo's own run loop instead (:func:`instanthmr.runner.loop.run`: the tracking wrapper,
causal smoothing, each frame finished on the loop's finishing thread, no file written): a frame's ms then runs
from the previous frame finished to this one finished, what a viewer of the demo waits between frames.

Every variant runs the same decoded frames (decoding is not timed; frames are 1280x720, resized when the
source is not). Variants are timed round-robin, ``--rounds`` times, so a busy machine slows all of them
alike; each round is a new stream whose first ``--warmup`` frames (its start: the first detection, synchronous,
frames in flight filling up) are run untimed, as MediaPipe Pose's side leaves them out of its rounds; FPS =
timed frames / wall time of their ``predict`` calls (``detector_ms`` of async frames is on another
thread and inside that wall time). Ratios are per round, then the median. The load average is printed.

No weights here? ``--random-init`` (default when ``models/instanthmr.onnx`` is absent) exports
``--random-init-config`` (default ``instanthmr_repvit_m1_5``) with random weights, ``--config A,B`` several
architectures timed in the same run (each row names its architecture), and an RF-DETR with random weights is
exported when ``--detector`` is not given: the compute is the real one. A random detector's boxes are
meaningless, so they are replaced by one
fixed person box (the detector still runs in full; also with a random network and a real detector);
``--keep-boxes`` turns that off. A random network's joints
are noise too: in the keypoint variants they are replaced by a fixed person's inside that box (``FixedJoints``;
the network still runs in full), so the crops stay on the person as a trained network's would.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
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
from instanthmr.runner.speed import FixedBoxes
from instanthmr.runtime.session import ModelLoadError
from instanthmr.training.model_info import network_label
from instanthmr.video.sources import SourceError

LEVER_NAMES = ("threads", "resolution", "int8_detector", "int8_network", "async", "keypoint_crops", "in_flight")
_OPTIMISED = frozenset({"threads", "resolution", "int8_detector", "int8_network"})
LEVERS: dict[str, frozenset[str]] = {  # variant -> the levers it turns on (names from LEVER_NAMES)
    "straightforward": frozenset(),
    "threads": frozenset({"threads"}),
    "resolution": frozenset({"resolution"}),
    "int8-detector": frozenset({"int8_detector"}),
    "int8": frozenset({"int8_detector", "int8_network"}),
    "async": frozenset({"threads", "async"}),
    "optimised-sync": _OPTIMISED,
    "optimised-sync-fp32-net": _OPTIMISED - {"int8_network"},
    "optimised": _OPTIMISED | {"async"},
    # the runner loop's tracking wrapper: keypoint crops, the detector every --keypoint-stride frames
    "keypoint": _OPTIMISED | {"keypoint_crops"},
    # + 2 frames in flight, threads per model by the rule (threads_per_model: 1 each on 2 cores)
    "in-flight": _OPTIMISED - {"threads"} | {"keypoint_crops", "in_flight"},
    # + 2 frames in flight at --threads each (to check the rule against)
    "in-flight-threads": _OPTIMISED | {"keypoint_crops", "in_flight"},
    # keypoint / in-flight with the detector hidden on its own thread while the person is followed
    "keypoint-async": _OPTIMISED | {"async", "keypoint_crops"},
    "in-flight-async": _OPTIMISED - {"threads"} | {"async", "keypoint_crops", "in_flight"},
}
VARIANTS = tuple(LEVERS)


def load_frames(path: str, count: int, size=(1280, 720)) -> list[np.ndarray]:
    import cv2

    from instanthmr.video.sources import VideoSource

    src = VideoSource(path, max_frames=count)
    frames = [f.image if f.image.shape[1::-1] == size else cv2.resize(f.image, size, interpolation=cv2.INTER_AREA)
              for f in src]
    src.close()
    if not frames:
        raise SourceError(f"no frame decoded from {path}")
    return frames


def prepare_models(args, cache: Path) -> dict:
    """Paths of the fp32/int8 network and native/low-resolution detector files (exported or quantised once,
    cached in ``cache``)."""
    from instanthmr.training.export import random_init_onnx
    from instanthmr.training.quantize import quantize

    cache.mkdir(parents=True, exist_ok=True)
    random_hmr = args.random_init or (args.model is None and not DEFAULT_MODEL.is_file())
    hmr = random_init_onnx(args.random_init_config) if random_hmr else Path(args.model or DEFAULT_MODEL)
    if not hmr.is_file():
        raise ModelLoadError(f"InstantHMR model not found: {hmr}")
    out = {"hmr": hmr, "random_hmr": random_hmr}

    def cached_int8(src: Path, mode: str) -> Path:
        dst = cache / f"{src.stem}.{mode}.int8.onnx"
        if not dst.is_file() or dst.stat().st_mtime < src.stat().st_mtime:
            print(f"quantising {src.name} ({mode}) ...", flush=True)
            quantize(src, dst, mode=mode)
        return dst

    def detector_at(res: int | None) -> Path:
        from instanthmr.training.export_detector import export_detector

        dst = cache / f"rf-detr-{args.detector_variant}-{res or 'native'}-random.onnx"
        if not dst.is_file():
            print(f"exporting random-weight RF-DETR {args.detector_variant} at {res or 'native'} ...", flush=True)
            export_detector(args.detector_variant, dst, pretrained=False, resolution=res)
        return dst

    if args.detector:
        out["det"] = Path(args.detector)
        out["det_low"] = Path(args.fast_detector) if args.fast_detector else None
        out["random_det"] = False
        if out["det_low"] is None and any("resolution" in LEVERS[v] for v in args.variants):
            raise ModelLoadError("--detector given: also give --fast-detector (its export at --detector-resolution, "
                                 "tools/export_detector.py --resolution)")
    else:
        out["det"], out["det_low"], out["random_det"] = detector_at(None), detector_at(args.detector_resolution), True
    if any("int8_network" in LEVERS[v] for v in args.variants):
        out["hmr_int8"] = cached_int8(hmr, args.hmr_int8_mode)
    if any("int8_detector" in LEVERS[v] for v in args.variants):
        out["det_int8"] = cached_int8(out["det"], "dynamic")
        if out["det_low"] is not None:
            out["det_low_int8"] = cached_int8(out["det_low"], "dynamic")
    return out


def prepare_architectures(args, cache: Path) -> dict[str, dict]:
    """``{architecture: prepare_models(...)}``: one entry per ``--config`` (random-init exports, timed in the same
    run), else the one network of ``--model`` / ``--random-init``."""
    import copy

    from instanthmr.training.model import DEFAULT_CONFIG

    if not args.config:
        models = prepare_models(args, cache)
        label = (args.random_init_config or DEFAULT_CONFIG) if models["random_hmr"] else network_label(models["hmr"])
        return {label: models}
    out = {}
    for name in args.config:
        a = copy.copy(args)
        a.random_init, a.random_init_config = True, name
        out[name] = prepare_models(a, cache)
    return out


def build_pipeline(variant: str, models: dict, args, box):
    """The variant's pipeline: a :class:`PosePipeline`, or for keypoint crops the runner loop's
    :class:`~instanthmr.video.tracking.TrackingPipeline` around one (causal smoothing, as a live run)."""
    from instanthmr.runner.speed import FixedJoints
    from instanthmr.runtime.detector import OnnxDetector
    from instanthmr.runtime.pipeline import PosePipeline, load_hmr
    from instanthmr.runtime.session import RuntimeOptions
    from instanthmr.video.tracking import TrackingPipeline

    on = LEVERS[variant]
    threads_on, res_on, int8_det, int8_net, async_on, keypoints, in_flight = (n in on for n in LEVER_NAMES)
    runtime = RuntimeOptions(threads=args.threads, spinning=False) if threads_on else RuntimeOptions()
    if in_flight:  # threads 0 here: threads_per_model chooses
        runtime = runtime.replace(spinning=False, frames_in_flight=args.in_flight)
    runtime = runtime.replace(async_detector=async_on)
    det_file = models["det_low" if res_on else "det"]
    if int8_det:
        det_file = models["det_low_int8" if res_on else "det_int8"]
    hmr = load_hmr(models["hmr_int8" if int8_net else "hmr"], "cpu", 1, variant != "straightforward", runtime)
    det = OnnxDetector(det_file, confidence=args.det_confidence, max_persons=1, device="cpu", runtime=runtime)
    if box is not None:
        det = FixedBoxes(det, box)
    if not keypoints:
        return PosePipeline(det, hmr, detector_stride=args.stride, max_persons=1,
                            async_detector=runtime.async_detector)
    if box is not None and models["random_hmr"]:  # random joints would lose the person every frame
        hmr = FixedJoints(hmr, box)
    pose = PosePipeline(det, hmr, detector_stride=args.keypoint_stride, max_persons=1, crops="keypoints",
                        frames_in_flight=runtime.frames_in_flight, async_detector=runtime.async_detector)
    return TrackingPipeline.from_pipeline(pose, smooth="causal", fps=30.0)


def run_once(pipeline, frames: list, warm: list = ()) -> dict:
    """One stream: the ``warm`` frames untimed (its start: the first detection, synchronous, and frames in flight
    filling up; MediaPipe Pose's side leaves the same frames out of its round), then ``frames`` timed, one call
    each as the runner loop makes it (``predict``, or the tracking wrapper's ``submit``, which with frames in
    flight returns an earlier frame's result)."""
    pipeline.reset()
    results, frame_ms = [], []
    tracked = hasattr(pipeline, "submit")
    for i, img in enumerate(warm):
        if tracked:
            pipeline.submit(img, i)
        else:
            pipeline.predict(img, frame_index=i)
    frames = list(enumerate(frames, start=len(warm)))
    c0, t0 = time.process_time(), time.perf_counter()
    for i, img in frames:
        t = time.perf_counter()
        if tracked:
            results += [r for _, r in pipeline.submit(img, i)]
        else:
            results.append(pipeline.predict(img, frame_index=i))
        frame_ms.append((time.perf_counter() - t) * 1e3)
    if tracked:
        results += [r for _, r in pipeline.drain()]
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    results = [r for r in results if r.frame_index >= len(warm)]  # with frames in flight a warm frame's comes late
    return _stream_row(frame_ms, wall, cpu, [r.hmr_ms for r in results],
                       [r.detector_ms for r in results if r.detector_ran], [len(r.persons) for r in results])


def run_loop_once(pipeline, frames: list, warm: list = ()) -> dict:
    """One stream through the demo's own run loop (:func:`instanthmr.runner.loop.run` over ``pipeline``, the
    tracking wrapper's inner :class:`PosePipeline`: causal smoothing as a live run, each frame finished on the
    loop's finishing thread, no body fit, no file written; :class:`~instanthmr.teachers.mediapipe_pose.Ours`):
    a frame's ms runs from the previous frame finished to this one finished; the ``warm`` frames (the stream's
    start) are run and left out, as in :func:`run_once`."""
    from instanthmr.teachers.mediapipe_pose import Ours

    side = Ours(list(warm) + list(frames), 1, False, pipeline=pipeline, smooth="causal", body_fit=False)
    try:
        ms, cpu, persons, detected = side.next(len(warm) + len(frames))
    finally:
        side.close()
    n = len(warm)
    ms, cpu, persons, detected, model = ms[n:], cpu[n:], persons[n:], detected[n:], side.model_ms[n:]
    if len(ms) != len(frames):
        raise RuntimeError(f"the run loop finished {len(ms)} of {len(frames)} timed frames")
    return _stream_row(ms, sum(ms) / 1e3, sum(cpu) / 1e3, [h for h, _ in model],
                       [d for (_, d), ran in zip(model, detected) if ran], persons)


def _stream_row(frame_ms: list, wall_s: float, cpu_s: float, hmr_ms: list, detector_call_ms: list,
                persons: list) -> dict:
    """One timed stream's figures: ``frame_ms`` per timed frame, their ``wall_s`` and ``cpu_s`` (this process,
    all threads), the network's ms per frame, the ms of each detector run, the persons per frame. CPU ms per
    frame: the work per frame, which a busy shared machine inflates far less than the wall time."""
    return {"fps": len(frame_ms) / wall_s, "wall_s": wall_s, "frame_ms": frame_ms,
            "cpu_ms": cpu_s * 1e3 / len(frame_ms), "hmr_ms": statistics.median(hmr_ms),
            "detector_call_ms": statistics.median(detector_call_ms) if detector_call_ms else 0.0,
            "detector_calls": len(detector_call_ms), "persons_per_frame": float(np.mean(persons))}


def run(args) -> dict:
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in args.variants if v not in VARIANTS]
    if bad or not args.variants:
        raise ValueError(f"unknown variant(s) {bad}; choose from {', '.join(VARIANTS)}")
    if args.config:
        from instanthmr.training.model import list_configs

        if args.model:
            raise ValueError("--config exports random-init networks; it does not go with --model")
        unknown = [c for c in args.config if c not in list_configs()]
        if unknown:
            raise ValueError(f"unknown config(s) {unknown}; available: {', '.join(list_configs())}")
    if args.frames < 1 or args.rounds < 1 or args.stride < 1:
        raise ValueError("--frames, --rounds and --stride must be >= 1")
    video = args.video or str(shared_data_dir() / "videos" / "openpose_video.avi")
    frames = load_frames(video, args.frames + args.warmup)
    h, w = frames[0].shape[:2]
    archs = prepare_architectures(args, Path(args.cache_dir))  # label -> models
    first = next(iter(archs.values()))
    box = None
    # a standing person's box in the middle of the frame: a random detector finds nobody real, and a random
    # network's joints (keypoint variants) would lose anybody real
    if (first["random_det"] or first["random_hmr"]) and not args.keep_boxes:
        box = [w * 0.40, h * 0.12, w * 0.60, h * 0.92]
    pipes = {(a, v): build_pipeline(v, m, args, box) for a, m in archs.items() for v in args.variants}
    warm, frames = frames[:args.warmup], frames[args.warmup:]
    for p in pipes.values():  # first-run costs (allocations, thread pools) out of the measurement
        run_once(p, warm or frames[:1])
    load_before = load_average()
    nets = ", ".join(f"{a} ({m['hmr'].name}{', RANDOM-INIT' if m['random_hmr'] else ''})" for a, m in archs.items())
    print(f"video {video} -> {w}x{h}, {len(frames)} frames per variant per round, {args.rounds} rounds, stride "
          f"{args.stride}, 1 person; network {nets}; "
          f"detector {first['det'].name}{' (RANDOM WEIGHTS)' if first['random_det'] else ''}"
          f"{' (fixed box)' if box is not None else ''}; "
          f"{describe_load(load_before)}", flush=True)
    per_round: dict[tuple[str, str], list[dict]] = {k: [] for k in pipes}
    width = max(len(f"{a} {v}") for a, v in pipes)
    mp_ms: list[float] = []  # MediaPipe Pose's ms per frame, every round
    mp_py = mediapipe_python(args)
    for r in range(args.rounds):
        for (a, v), p in pipes.items():
            res = (run_loop_once(p.frame_pipeline, frames, warm) if args.run_loop and hasattr(p, "submit")
                   else run_once(p, frames, warm))
            per_round[(a, v)].append(res)
            print(f"  round {r + 1} {f'{a} {v}':<{width}} {res['fps']:6.2f} FPS  (HMR {res['hmr_ms']:6.1f} ms, "
                  f"detector call {res['detector_call_ms']:6.1f} ms x {res['detector_calls']})", flush=True)
        if mp_py is not None:
            ms = mediapipe_round(mp_py, video, args.warmup, len(frames))
            mp_ms += ms
            print(f"  round {r + 1} MediaPipe Pose {1e3 * len(ms) / sum(ms):6.2f} FPS (median {np.median(ms):.1f} ms)",
                  flush=True)
    for p in pipes.values():
        p.close()
        if hasattr(p, "frame_pipeline"):
            p.frame_pipeline.close()
    load_after = load_average()
    base = "straightforward" if "straightforward" in args.variants else args.variants[0]
    rows = []
    for (a, v), runs in per_round.items():
        ratios = [x["fps"] / y["fps"] for x, y in zip(runs, per_round[(a, base)])]
        rows.append({"architecture": a, "variant": v, "levers": {n: n in LEVERS[v] for n in LEVER_NAMES},
                     "fps_median": statistics.median(x["fps"] for x in runs),
                     "ratio_median": statistics.median(ratios), "ratios": ratios,
                     "hmr_ms_median": statistics.median(x["hmr_ms"] for x in runs),
                     # per frame over all rounds: a detector frame that stalls shows in p95, not in FPS
                     "frame_ms_median": float(np.median([t for x in runs for t in x["frame_ms"]])),
                     "frame_ms_p95": float(np.percentile([t for x in runs for t in x["frame_ms"]], 95)),
                     "cpu_ms_per_frame": statistics.median(x["cpu_ms"] for x in runs),
                     "detector_call_ms_median": statistics.median(x["detector_call_ms"] for x in runs),
                     "persons_per_frame": statistics.mean(x["persons_per_frame"] for x in runs),
                     "detector_calls_per_frame": statistics.mean(x["detector_calls"] for x in runs) / len(frames),
                     "runs": runs})
    print(f"\n# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"{describe_load(load_before, load_after)}; threads lever = {args.threads}; detector resolution lever = "
          f"{args.detector_resolution}; medians of {args.rounds} rounds x {len(frames)} frames")
    # async: the detector runs as often as it keeps up (at most every --stride frames), so its calls per frame
    # can be fewer than 1/stride; the column shows it
    if args.run_loop:
        print("--run-loop: the keypoint variants timed through the demo's run loop (frame to frame finished), the "
              "others as pipeline calls: ratios between the two kinds compare different measurements")
    print(f"| architecture | variant | FPS | x {base} | frame ms median / p95 | CPU ms / frame | HMR ms / frame "
          "| detector ms / call | detector calls / frame | persons / frame |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['architecture']} | {r['variant']} | {r['fps_median']:.2f} | {r['ratio_median']:.2f} | "
              f"{r['frame_ms_median']:.1f} / {r['frame_ms_p95']:.1f} | {r['cpu_ms_per_frame']:.1f} | "
              f"{r['hmr_ms_median']:.1f} | {r['detector_call_ms_median']:.1f} | {r['detector_calls_per_frame']:.3f} | "
              f"{r['persons_per_frame']:.2f} |")
    mediapipe = None
    if mp_ms:  # issue 23's yardstick: time per frame (1000 / FPS) as a multiple of MediaPipe Pose's, same run
        mp_fps = 1e3 * len(mp_ms) / sum(mp_ms)
        mediapipe = {"fps": mp_fps, "frame_ms_median": float(np.median(mp_ms)),
                     "frame_ms_p95": float(np.percentile(mp_ms, 95)), "frame_ms": mp_ms}
        print(f"| MediaPipe Pose (complexity 1, tracking) | same frames | {mp_fps:.2f} | | "
              f"{mediapipe['frame_ms_median']:.1f} / {mediapipe['frame_ms_p95']:.1f} | | | | | |")
        for r in rows:
            r["x_mediapipe_time"] = mp_fps / r["fps_median"]
            print(f"  {r['architecture']} {r['variant']}: {r['x_mediapipe_time']:.2f}x MediaPipe Pose's time per "
                  f"frame, p95 / median {r['frame_ms_p95'] / r['frame_ms_median']:.2f}")
    report = {"video": video, "size": [w, h], "frames": len(frames), "rounds": args.rounds, "stride": args.stride,
              "threads": args.threads, "detector_resolution": args.detector_resolution,
              "hmr": str(first["hmr"]), "random_hmr": first["random_hmr"],
              "architectures": {a: {"hmr": str(m["hmr"]), "random_hmr": m["random_hmr"]} for a, m in archs.items()},
              "detector": str(first["det"]), "random_detector": first["random_det"], "fixed_box": box,
              "load_before": load_before, "load_after": load_after, "cpus": os.cpu_count(),
              "date": utc_stamp(), "rows": rows, "mediapipe_pose": mediapipe}
    write_json_report(args.json, report)
    return report


def mediapipe_python(args):
    """The python of ``--mediapipe-venv`` (MediaPipe Pose 0.10.21; built there from the package registry when
    missing), or None without the flag."""
    if not args.mediapipe_venv:
        return None
    from instanthmr.teachers.mediapipe_pose import ensure_mediapipe_venv

    return ensure_mediapipe_venv(args.mediapipe_venv)


def mediapipe_round(py, video: str, warmup: int, frames: int) -> list[float]:
    """MediaPipe Pose (complexity 1, tracking on) on the same first ``warmup + frames`` frames of ``video`` in its
    own process (decoding there, untimed): ms per frame of the last ``frames``."""
    from instanthmr.teachers.mediapipe_pose import MediaPipePoseWorker

    worker = MediaPipePoseWorker(py, Path(video), warmup + frames)
    try:
        if warmup:
            worker.next(warmup)
        return list(worker.next(frames)["ms"])
    finally:
        worker.close()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_bench_flags(p, video="video (default: the shared openpose_video.avi, 1280x720)",
                    model=f"InstantHMR fp32 ONNX (default: {DEFAULT_MODEL}, else random-init)",
                    threads=1, threads_help="threads lever: intra-op threads per model", cache_dir="instanthmr_perf",
                    json_help="write every figure to this JSON file")
    p.add_argument("--random-init", action="store_true",
                   help="random-init export of --random-init-config (default instanthmr_repvit_m1_5)")
    p.add_argument("--random-init-config", default=None, help="architecture for --random-init")
    p.add_argument("--config", default=None, type=lambda v: [c.strip() for c in v.split(",") if c.strip()],
                   help="comma list of registered configs, each exported with random weights and timed in the same "
                        "run (e.g. instanthmr_repvit_m1_5,instanthmr_notebook_m2_3); implies --random-init")
    p.add_argument("--detector", default=None,
                   help="fp32 RF-DETR .onnx at its native resolution (default: a random-weight nano export)")
    p.add_argument("--fast-detector", default=None, help="the same detector exported at --detector-resolution")
    p.add_argument("--detector-variant", default="nano", help="RF-DETR size for the random export (default: nano)")
    p.add_argument("--detector-resolution", type=int, default=256, help="resolution lever (default: 256)")
    p.add_argument("--det-confidence", type=float, default=0.0, help="detection threshold (default: 0)")
    p.add_argument("--keep-boxes", action="store_true", help="use a random detector's own boxes")
    p.add_argument("--hmr-int8-mode", default="static", choices=("static", "static-linear"),
                   help="the int8 network lever's quantisation (tools/quantize_onnx.py --mode; default: static)")
    p.add_argument("--stride", type=int, default=3, help="detector stride (default: 3)")
    p.add_argument("--keypoint-stride", type=int, default=10,
                   help="keypoint-crop variants: the detector at least every N frames (the demo's --detector-stride "
                        "with --keypoint-crops; default: 10, its default)")
    p.add_argument("--in-flight", "--frames-in-flight", type=int, default=2,
                   help="frames in flight of the in-flight variants (the demo's --frames-in-flight; default: 2)")
    p.add_argument("--mediapipe-venv", default=None, metavar="DIR",
                   help="also time MediaPipe Pose (0.10.21, complexity 1, tracking) on the same frames each round, "
                        "with this virtual environment's python (built there from the package registry when "
                        "missing; tools/bench_mediapipe.py --venv is the same)")
    p.add_argument("--frames", type=int, default=30, help="measured frames per variant per round (default: 30)")
    p.add_argument("--warmup", type=int, default=3,
                   help="untimed frames at the start of each round, both sides (default: 3)")
    p.add_argument("--rounds", type=int, default=3, help="round-robin rounds (default: 3)")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {', '.join(VARIANTS)}")
    p.add_argument("--run-loop", action="store_true",
                   help="time the keypoint variants through the demo's own run loop (runner.loop.run: its finishing "
                        "thread, causal smoothing, outputs) instead of the tracking wrapper's calls")
    return p


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), run, argv)
