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
from pathlib import Path

from instanthmr.cli.common import add_bench_flags, run_main, write_json_report
from instanthmr.core.paths import DEFAULT_MODEL
from instanthmr.runner.speed import StrideBenchmark, stride_benchmark
from instanthmr.runtime.detector import RFDETR_VARIANTS
from instanthmr.runtime.session import DEVICES, ModelLoadError, RuntimeOptions


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
    add_bench_flags(p, video="video file to run on", video_required=True,
                    model=f"InstantHMR ONNX (default: {DEFAULT_MODEL})", threads=0,
                    json_help="write all statistics to this JSON file")
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
    return p


def run(args) -> dict:
    runtime = RuntimeOptions.from_flags(args.threads, args.int8, args.fp16, args.io_binding, args.cuda_graph,
                                        args.async_detector)
    if args.random_init:
        if args.model:
            raise ModelLoadError("give either --model or --random-init, not both")
        from instanthmr.training.export import random_init_onnx

        model = random_init_onnx(args.random_init_config)
        precision = runtime.precision
        if precision != "fp32" and not model.with_name(f"{model.stem}.{precision}.onnx").is_file():
            from instanthmr.training.quantize import quantize

            quantize(model, mode="fp16" if precision == "fp16" else None)  # writes <stem>.<precision>.onnx beside it
    else:
        model = Path(args.model) if args.model else DEFAULT_MODEL
        if not model.is_file():
            raise ModelLoadError(f"InstantHMR model not found: {model} (see models/README.md); "
                                 "use --random-init to measure speed without weights")
    report = stride_benchmark(StrideBenchmark(
        video=args.video, model=str(model), device=args.device, detector=args.detector,
        detector_variant=args.detector_variant, detector_weights=args.detector_weights,
        detector_resolution=args.detector_resolution, random_detector=args.random_detector,
        det_confidence=args.det_confidence, max_persons=args.max_persons, strides=tuple(args.detector_stride),
        batch_persons=not args.no_batch_persons, max_frames=args.max_frames, warmup=args.warmup, runtime=runtime,
        random_init=args.random_init))
    write_json_report(args.json, report)
    return report


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), run, argv)
