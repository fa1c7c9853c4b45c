#!/usr/bin/env python3
"""Headless speed benchmark of the whole pipeline (detector + InstantHMR) on a video; no Rerun, no drawing.

    python tools/bench.py --video clip.mp4 --detector-stride 1,2,3,4
    python tools/bench.py --video clip.mp4 --random-init --detector-variant nano --detector-stride 1,2,3,4 \
        --max-frames 60 --json bench.json

For each stride the same frames are decoded once up front (decoding is not timed), ``--warmup`` frames run
untimed, then ``--max-frames`` frames are measured: mean / median / p95 / min / max of detector_ms (per
frame, 0 on reused frames), hmr_ms, total_ms and wall_ms, detector calls, persons per frame and FPS
(``1000 / mean total_ms``). A final table compares the strides.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

from instanthmr.cli.common import run_main, utc_stamp, write_json_report
from instanthmr.core.paths import DEFAULT_MODEL
from instanthmr.runtime.detector import RFDETR_VARIANTS
from instanthmr.runtime.session import DEVICES, ModelLoadError, RuntimeOptions
from instanthmr.video.sources import SourceError, VideoSource

STAGES = ("detector_ms", "hmr_ms", "total_ms", "wall_ms")


def parse_strides(text: str) -> list[int]:
    try:
        strides = [int(s) for s in str(text).split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--detector-stride: expected N or a list like 1,2,3,4, got {text!r}")
    if not strides or min(strides) < 1:
        raise argparse.ArgumentTypeError(f"--detector-stride: strides must be >= 1, got {text!r}")
    return strides


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", required=True, help="video file to run on")
    p.add_argument("--model", default=None, help=f"InstantHMR ONNX (default: {DEFAULT_MODEL})")
    p.add_argument("--random-init", action="store_true",
                   help="benchmark a random-init export of --random-init-config (no weights needed; "
                        "speed is real, poses are not); the output says so")
    p.add_argument("--random-init-config", default=None,
                   help="architecture for --random-init (default: instanthmr_repvit_m1_5; the notebook's: "
                        "instanthmr_notebook_m2_3)")
    p.add_argument("--device", default="auto", choices=DEVICES, help="cuda | coreml | cpu | auto (default: auto)")
    p.add_argument("--detector", default="rfdetr",
                   help="'rfdetr' (torch), an RF-DETR .onnx export, 'mediapipe' or a boxes .json (default: rfdetr)")
    p.add_argument("--detector-variant", default="nano", choices=list(RFDETR_VARIANTS),
                   help="RF-DETR size (default: nano)")
    p.add_argument("--detector-weights", default=None, help="RF-DETR checkpoint .pth")
    p.add_argument("--random-detector", action="store_true",
                   help="RF-DETR with random weights (no checkpoint; --random-init implies it when no checkpoint "
                        "is found). Boxes are garbage, so use a low --det-confidence to keep persons to crop")
    p.add_argument("--det-confidence", type=float, default=0.5, help="detection threshold (default: 0.5)")
    p.add_argument("--max-persons", type=int, default=8, help="persons per frame (default: 8)")
    p.add_argument("--detector-stride", type=parse_strides, default=[1], metavar="N[,N...]",
                   help="one stride or a list like 1,2,3,4 (default: 1)")
    p.add_argument("--no-batch-persons", action="store_true", help="one network call per person")
    p.add_argument("--max-frames", type=int, default=100, help="measured frames per stride (default: 100)")
    p.add_argument("--warmup", type=int, default=5, help="untimed frames before measuring (default: 5)")
    p.add_argument("--threads", type=int, default=0,
                   help="ONNX Runtime threads per model, idle threads sleep (default: 0 = ORT's choice)")
    prec = p.add_mutually_exclusive_group()
    prec.add_argument("--int8", action="store_true",
                      help="run <model>.int8.onnx / <detector>.int8.onnx (tools/quantize_onnx.py)")
    prec.add_argument("--fp16", action="store_true",
                      help="run <model>.fp16.onnx / <detector>.fp16.onnx (tools/quantize_onnx.py --mode fp16; with "
                           "--random-init the fp16 copy is made on the fly); the torch RF-DETR runs in float16")
    p.add_argument("--io-binding", action="store_true", help="bind the network's inputs/outputs once per shape")
    p.add_argument("--cuda-graph", action="store_true", help="CUDA provider: replay a captured graph of the network")
    p.add_argument("--detector-resolution", type=int, default=None,
                   help="RF-DETR input side (an .onnx detector must be exported at it)")
    p.add_argument("--async-detector", action="store_true", help="detector on its own thread (see PosePipeline)")
    p.add_argument("--json", default=None, metavar="PATH", help="write all statistics to this JSON file")
    return p


def load_frames(path: str, count: int) -> tuple[list, VideoSource]:
    src = VideoSource(path, max_frames=count)
    frames = [f.image for f in src]
    src.close()
    if not frames:
        raise SourceError(f"no frame decoded from {path}")
    return frames, src


def runtime_options(args) -> RuntimeOptions:
    """The speed levers the flags name."""
    return RuntimeOptions.from_flags(args.threads, args.int8, args.fp16, args.io_binding, args.cuda_graph,
                                     args.async_detector)


def build_detector(args):
    """The detector instance, shared by every stride (the model loads once)."""
    from instanthmr.runtime.detector import RFDETRDetector, create_detector, resolve_rfdetr_weights

    random_det = args.random_detector
    if args.detector == "rfdetr" and args.random_init and not random_det and not args.detector_weights:
        random_det = not resolve_rfdetr_weights(args.detector_variant)[1]  # no checkpoint here: random too
    if args.detector == "rfdetr" and random_det:
        return RFDETRDetector(args.detector_variant, args.det_confidence, args.max_persons, device=args.device,
                              pretrained=False, resolution=args.detector_resolution, half=args.fp16), True
    return create_detector(args.detector, variant=args.detector_variant, confidence=args.det_confidence,
                           max_persons=args.max_persons, device=args.device, weights=args.detector_weights,
                           resolution=args.detector_resolution, runtime=runtime_options(args)), False


def bench_stride(pipeline, frames: list, warmup: int) -> dict:
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


def run(args) -> dict:
    from instanthmr.runtime.pipeline import PosePipeline, load_hmr
    from instanthmr.training.export import random_init_onnx

    if args.max_frames < 1 or args.warmup < 0 or args.max_persons < 1:
        raise ValueError("--max-frames and --max-persons must be >= 1, --warmup >= 0")
    frames, src = load_frames(args.video, args.warmup + args.max_frames)
    random_note = None
    if args.random_init:
        if args.model:
            raise ModelLoadError("give either --model or --random-init, not both")
        random_note = "RANDOM-INIT WEIGHTS: speed is representative, poses are meaningless"
        print(f"NOTE: {random_note}", flush=True)
        model = random_init_onnx(args.random_init_config)
    else:
        model = Path(args.model) if args.model else DEFAULT_MODEL
        if not model.is_file():
            raise ModelLoadError(f"InstantHMR model not found: {model} (see models/README.md); "
                                 "use --random-init to measure speed without weights")
    runtime = runtime_options(args)
    precision = runtime.precision
    if args.random_init and precision != "fp32" and not model.with_name(f"{model.stem}.{precision}.onnx").is_file():
        from instanthmr.training.quantize import quantize

        quantize(model, mode="fp16" if precision == "fp16" else None)  # writes <stem>.<precision>.onnx beside it
    hmr = load_hmr(model, args.device, args.max_persons, not args.no_batch_persons, runtime)
    model = hmr.path  # the file the precision named
    detector, random_det = build_detector(args)
    if random_det:
        print("NOTE: RANDOM RF-DETR WEIGHTS: boxes are meaningless (detector speed is real)", flush=True)
    print(f"video: {args.video} ({src.size[0]}x{src.size[1]}, {len(frames)} frames loaded); model: {model} on "
          f"{hmr.provider}; detector: {detector.name} {getattr(detector, 'variant', '')}; "
          f"warmup {args.warmup}, measured {len(frames) - args.warmup}", flush=True)
    if len(frames) <= args.warmup:
        raise SourceError(f"{args.video} has only {len(frames)} frame(s), not more than --warmup {args.warmup}")

    rows = []
    for stride in args.detector_stride:
        pipeline = PosePipeline(detector, hmr, detector_stride=stride, max_persons=args.max_persons,
                                async_detector=runtime.async_detector)
        st = bench_stride(pipeline, frames, args.warmup)
        pipeline.close()
        st["stride"] = stride
        rows.append(st)
        print(f"\nstride {stride}: {st['frames']} frames, {st['detector_calls']} detector calls, "
              f"{st['persons_per_frame']:.2f} persons/frame, {st['fps']:.1f} FPS (1000 / mean total), "
              f"{st['wall_fps']:.1f} FPS wall")
        for name in STAGES:
            print(format_stats(name, st[name]))
    print()
    print(format_table(rows))
    report = {
        "video": str(args.video), "image_size": list(src.size), "model": str(model), "random_init": bool(args.random_init),
        "random_detector": bool(random_det), "note": random_note, "provider": hmr.provider, "device": args.device,
        "detector": detector.name, "detector_variant": getattr(detector, "variant", None),
        "detector_file": str(detector.path) if getattr(detector, "path", None) else None,
        "det_confidence": args.det_confidence, "max_persons": args.max_persons,
        "batch_persons": not args.no_batch_persons, "warmup": args.warmup, "measured_frames": len(frames) - args.warmup,
        "date": utc_stamp(),
        "machine": f"{platform.machine()} {platform.processor() or ''} {platform.system()}".strip(),
        "strides": rows,
    }
    if random_note:
        print(f"\nNOTE: {random_note}")
    write_json_report(args.json, report)
    return report


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), run, argv)
