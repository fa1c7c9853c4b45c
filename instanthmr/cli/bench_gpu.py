#!/usr/bin/env python3
"""The GPU table of docs/performance.md in one command: HMR milliseconds per person for each GPU lever, decode
speed and end-to-end FPS per detector stride on 1080p video, beside the published RTX 4070 figures, with the
device named.

    python tools/bench_gpu.py --video ../shared/data/videos/openpose_video.avi            # a CUDA machine
    python tools/bench_gpu.py --model models/instanthmr.onnx --video clip.mp4 --json gpu.json
    python tools/bench_gpu.py --device cpu --config instanthmr_tiny_test --height 240 \\
        --frames 12 --runs 5 --batches 1 2 --strides 1,2                              # smoke run, any machine

1. Network alone, crops already cut (what ``InstantHMR.__call__`` costs: host->device copy, the graph, the
   copy back): the fp32 file and its fp16 copy (``tools/quantize_onnx.py --mode fp16``), each plain, with
   I/O binding, and with I/O binding + a captured CUDA graph (CUDA provider only), at fixed batches
   ``--batches``; timed in round-robin blocks of 10 calls, median of ``--runs`` calls.
2. The clip is re-encoded once at ``--height`` (1080 by default, 16:9) and looped to ``--frames``, so decoding
   costs what a real 1080p file costs; decode-only FPS is measured on that file.
3. End to end per stride with ``tools/bench.py``'s loop (frames decoded up front, so this is the models' own
   speed) using the fastest network variant of step 1 and the RF-DETR detector on the same device (torch by
   default; ``--detector rf-detr-nano.onnx`` for the exported one, which then also runs in fp16 when fp16 won
   step 1). The table states whether decoding or the models bound the frame rate.

Without ``--model`` the architecture ``--config`` (default ``instanthmr_repvit_m1_5``) is exported with random
weights: speed is real, poses are meaningless. Without an RF-DETR checkpoint the detector runs with random
weights too, at ``--det-confidence 0`` and one person per frame (so the network always has a person to run
on); both are printed. Benchmark tool, not a test: run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from instanthmr.cli.common import add_bench_flags, run_main, utc_stamp, write_json_report
from instanthmr.core.errors import first_line
from instanthmr.runtime.session import DEVICES, ModelLoadError, providers_for
from instanthmr.video.sources import SourceError

# Published by the InstantHMR authors (README of mohamdev/InstantHMR): RTX 4070, fp16, CUDA provider, 1080p video.
RTX4070 = {"hmr_ms_per_frame": 5.0, "fps_per_stride": {1: 30.9, 2: 53.8, 3: 70.4, 4: 83.9}}
LEVERS = ("plain", "io_binding", "cuda_graph")


def device_name(device: str) -> str:
    """The GPU's name (``nvidia-smi``) on CUDA, else the CPU's model name."""
    if device == "cuda" and shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                                  "--format=csv,noheader"], capture_output=True, text=True, timeout=10).stdout
            if out.strip():
                return "GPU: " + out.strip().splitlines()[0]
        except (OSError, subprocess.SubprocessError):
            pass
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU: {cpu}, {os.cpu_count()} logical cores"


def network_files(model: str | None, config: str, cache: Path) -> tuple[dict[str, Path], bool]:
    """``({"fp32": path, "fp16": path}, random_init)``: the given file (checked by :func:`run`) or a random-init
    export of ``config``, and its fp16 copy, made once beside it."""
    from instanthmr.training.export import random_init_onnx
    from instanthmr.training.quantize import quantize

    fp32 = Path(model) if model else random_init_onnx(config, cache_dir=cache)
    fp16 = fp32.with_name(f"{fp32.stem}.fp16.onnx")
    if not fp16.is_file():
        quantize(fp32, fp16, mode="fp16")
        print(f"wrote the fp16 copy {fp16}", flush=True)
    return {"fp32": fp32, "fp16": fp16}, not model


def hmr_latency(files: dict[str, Path], batches: list[int], device: str, runs: int, warmup: int,
                threads: int = 0) -> list[dict]:
    """One row per (precision, lever, batch): median / min ms per call and per person. A variant the runtime
    refuses (a CUDA graph needs every node on the GPU, say) gets a row with ``error`` and no times; the
    others are still measured."""
    from instanthmr.runner.speed import blocked_round_robin_ms
    from instanthmr.runtime.hmr import InstantHMR

    levers = [lv for lv in LEVERS if lv != "cuda_graph" or providers_for(device)[0] == "CUDAExecutionProvider"]
    rows = []
    for batch in batches:
        fns, providers = {}, {}
        cliff = np.tile(np.float32([[0.1, -0.1, 0.5]]), (batch, 1))
        for prec, path in files.items():
            for lever in levers:
                try:  # building warms up (and captures a CUDA graph); the first call checks the shapes
                    hmr = InstantHMR(path, device=device, max_persons=batch, padding="fixed", threads=threads,
                                     io_binding=lever != "plain", cuda_graph=lever == "cuda_graph")
                    x = np.random.default_rng(batch).standard_normal(
                        (batch, 3, hmr.input_size, hmr.input_size)).astype(np.float32)
                    hmr(x, cliff)
                except Exception as e:  # noqa: BLE001 - any runtime refusal becomes a row, not a traceback
                    msg = first_line(e)
                    print(f"{prec} + {lever} at batch {batch}: not measured ({msg})", file=sys.stderr, flush=True)
                    rows.append({"precision": prec, "lever": lever, "batch": batch, "error": msg})
                    continue
                fns[(prec, lever)] = lambda hmr=hmr, x=x, cliff=cliff: hmr(x, cliff)
                providers[(prec, lever)] = hmr.provider
        times = blocked_round_robin_ms(fns, runs, warmup)
        for (prec, lever), ms in times.items():
            med = statistics.median(ms)
            rows.append({"precision": prec, "lever": lever, "batch": batch, "provider": providers[(prec, lever)],
                         "median_ms": med, "min_ms": min(ms), "ms_per_person": med / batch})
    return rows


def make_video(src: str, height: int, frames: int, out: Path) -> Path:
    """Re-encode ``src`` at ``height`` (16:9, letterboxed), looped to ``frames`` frames (mp4v)."""
    import cv2

    width = int(round(height * 16 / 9 / 2)) * 2
    cap = cv2.VideoCapture(str(src))
    if not cap.isOpened():
        raise SourceError(f"cannot open video {src}")
    clip = []
    while len(clip) < frames:
        ok, img = cap.read()
        if not ok:
            break
        clip.append(img)
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    cap.release()
    if not clip:
        raise SourceError(f"no frame decoded from {src}")
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise SourceError(f"cannot write {out} (no mp4v encoder in this OpenCV)")
    for i in range(frames):
        img = clip[i % len(clip)]
        h, w = img.shape[:2]
        s = min(width / w, height / h)
        canvas = np.zeros((height, width, 3), np.uint8)
        rw, rh = int(round(w * s)), int(round(h * s))
        x0, y0 = (width - rw) // 2, (height - rh) // 2
        canvas[y0:y0 + rh, x0:x0 + rw] = cv2.resize(img, (rw, rh), interpolation=cv2.INTER_LINEAR)
        writer.write(canvas)
    writer.release()
    return out


def decode_fps(path: Path, rounds: int = 3) -> dict:
    """Frames per second of OpenCV decoding ``path`` to BGR arrays (median of ``rounds`` full passes)."""
    import cv2

    fps, count = [], 0
    for _ in range(rounds):
        cap = cv2.VideoCapture(str(path))
        count, t0 = 0, time.perf_counter()
        while cap.read()[0]:
            count += 1
        fps.append(count / max(time.perf_counter() - t0, 1e-9))
        cap.release()
    if not count:
        raise SourceError(f"no frame decoded from {path}")
    return {"frames": count, "fps": statistics.median(fps)}


def end_to_end(video: Path, files: dict[str, Path], best: dict, args) -> dict:
    """The stride benchmark (``instanthmr.runner.speed``) on ``video`` with the fastest network variant."""
    from instanthmr.runner.speed import StrideBenchmark, stride_benchmark
    from instanthmr.runtime.detector import resolve_rfdetr_weights
    from instanthmr.runtime.session import RuntimeOptions

    random_det = args.detector == "rfdetr" and (args.random_detector or
                                                not resolve_rfdetr_weights(args.detector_variant)[1])
    if best["precision"] == "fp16":  # an exported detector then runs its fp16 copy too
        det = Path(args.detector)
        if det.suffix.lower() == ".onnx" and not det.with_name(f"{det.stem}.fp16.onnx").is_file():
            from instanthmr.training.quantize import quantize

            print(f"wrote the detector's fp16 copy {quantize(det, mode='fp16')}", flush=True)
    runtime = RuntimeOptions.from_flags(args.threads, fp16=best["precision"] == "fp16",
                                        io_binding=best["lever"] != "plain", cuda_graph=best["lever"] == "cuda_graph")
    print(f"+ stride benchmark: {best['precision']} + {best['lever']}, strides {args.strides}", flush=True)
    # the random-init export too: its fp16 copy lies beside it
    return stride_benchmark(StrideBenchmark(
        video=str(video), model=str(files["fp32"]), device=args.device, detector=args.detector,
        detector_variant=args.detector_variant, random_detector=random_det,
        det_confidence=0.0 if random_det else 0.5, max_persons=1 if random_det else args.max_persons,
        strides=tuple(int(v) for v in args.strides.split(",") if v.strip()),
        max_frames=args.frames - args.warmup, warmup=args.warmup, runtime=runtime))


def format_report(report: dict) -> str:
    lines = [f"Device: {report['device_name']} (ONNX Runtime {report['onnxruntime']}, {report['provider']}); "
             f"{report['date']}", ""]
    lines += ["| network | lever | batch | ms per call | ms per person |", "| --- | --- | ---: | ---: | ---: |"]
    for r in report["hmr"]:
        if "error" in r:
            lines.append(f"| {r['precision']} | {r['lever']} | {r['batch']} | not run: {r['error'][:80]} | - |")
            continue
        lines.append(f"| {r['precision']} | {r['lever']} | {r['batch']} | {r['median_ms']:.2f} | "
                     f"{r['ms_per_person']:.2f} |")
    best = report["best_hmr"]
    lines += ["", f"End-to-end variant: {best['precision']} + {best['lever']}: {best['median_ms']:.2f} ms per "
                  f"person (published RTX 4070, fp16: ~{RTX4070['hmr_ms_per_frame']:.0f} ms per frame)", ""]
    dec = report["decode"]
    lines += [f"Decoding {report['video_size'][0]}x{report['video_size'][1]} ({dec['frames']} frames, OpenCV): "
              f"{dec['fps']:.1f} FPS", ""]
    lines += ["| stride | detector ms | HMR ms | models FPS | bound by | published RTX 4070 FPS |",
              "| ---: | ---: | ---: | ---: | --- | ---: |"]
    for r in report["end_to_end"]["strides"]:
        pub = RTX4070["fps_per_stride"].get(r["stride"])
        bound = "decoding" if dec["fps"] < r["fps"] else "models"
        lines.append(f"| {r['stride']} | {r['detector_ms']['mean']:.1f} | {r['hmr_ms']['mean']:.1f} | "
                     f"{r['fps']:.1f} | {bound} | {pub if pub is not None else '-'} |")
    if report["provider"] == "CPUExecutionProvider":
        lines.append("\n(published CPU figures: ~8 FPS at stride 1, ~13 FPS with the nano detector at stride 3)")
    for note in report["notes"]:
        lines.append(f"\nNOTE: {note}")
    return "\n".join(lines)


def run(args) -> dict:
    import onnxruntime as ort

    if args.frames <= args.warmup or args.runs < 1:
        raise ValueError("--frames must exceed --warmup, --runs must be >= 1")
    cache = Path(args.cache_dir)
    if args.model and not Path(args.model).is_file():
        raise ModelLoadError(f"InstantHMR model not found: {args.model} (see models/README.md)")
    video = make_video(args.video, args.height, args.frames, cache / f"bench_gpu_{args.height}p.mp4")
    files, random_init = network_files(args.model, args.config, cache)
    notes = []
    if random_init:
        notes.append(f"random-init {args.config} weights: speed is real, poses are meaningless")
    hmr = hmr_latency(files, args.batches, args.device, args.runs, args.warmup_calls, args.threads)
    ones = [r for r in hmr if r["batch"] == min(args.batches) and "error" not in r
            and args.e2e_precision in ("best", r["precision"])]
    if not ones:
        raise ModelLoadError(f"no network variant ran at batch {min(args.batches)} (see the lines above)")
    best = min(ones, key=lambda r: r["median_ms"])
    dec = decode_fps(video)
    e2e = end_to_end(video, files, best, args)
    if e2e.get("random_detector"):
        notes.append("random RF-DETR weights (no checkpoint here): detector speed is real, boxes are not; "
                     "1 person per frame at --det-confidence 0")
    report = {
        "device_name": device_name(args.device), "device": args.device, "provider": e2e["provider"],
        "onnxruntime": ort.__version__, "date": utc_stamp(),
        "model": str(files["fp32"]), "random_init": random_init, "hmr": hmr, "best_hmr": best,
        "video": str(args.video), "video_size": [int(round(args.height * 16 / 9 / 2)) * 2, args.height],
        "decode": dec, "end_to_end": e2e, "published_rtx4070": RTX4070, "notes": notes,
    }
    print("\n" + format_report(report))
    write_json_report(args.json, report)
    return report


def build_parser() -> argparse.ArgumentParser:
    from instanthmr.runtime.detector import RFDETR_VARIANTS
    from instanthmr.training.model import DEFAULT_CONFIG

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_bench_flags(p, video="a clip with people (re-encoded at --height, looped)", video_required=True,
                    model="InstantHMR ONNX (default: random-init --config export)", threads=0,
                    cache_dir="instanthmr_bench_gpu",
                    cache_help="where the random-init export, fp16 copy and re-encoded video are kept",
                    json_help="write every figure to this JSON file")
    p.add_argument("--config", default=DEFAULT_CONFIG, help=f"architecture without --model (default: {DEFAULT_CONFIG})")
    p.add_argument("--device", default="cuda", choices=DEVICES, help="default: cuda")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8], help="network batches (default: 1 4 8)")
    p.add_argument("--runs", type=int, default=200, help="timed network calls per variant (default: 200)")
    p.add_argument("--warmup-calls", type=int, default=20, help="untimed network calls per variant (default: 20)")
    p.add_argument("--height", type=int, default=1080, help="video height, 16:9 (default: 1080)")
    p.add_argument("--frames", type=int, default=300, help="video frames: --warmup + measured (default: 300)")
    p.add_argument("--warmup", type=int, default=20, help="untimed frames per stride (default: 20)")
    p.add_argument("--strides", default="1,2,3,4", help="detector strides (default: 1,2,3,4)")
    p.add_argument("--e2e-precision", default="best", choices=("best", "fp32", "fp16"),
                   help="network precision of the end-to-end runs (default: the fastest at the smallest batch)")
    p.add_argument("--detector", default="rfdetr",
                   help="rfdetr (torch, default), an RF-DETR .onnx export, or a .json box file (see tools/bench.py)")
    p.add_argument("--detector-variant", default="nano", choices=list(RFDETR_VARIANTS))
    p.add_argument("--random-detector", action="store_true", help="RF-DETR with random weights even if a checkpoint exists")
    p.add_argument("--max-persons", type=int, default=8, help="persons per frame with a real detector (default: 8)")
    return p


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), run, argv)
