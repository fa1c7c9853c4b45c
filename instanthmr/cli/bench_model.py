"""Latency of the HMR network alone (no detector, no pre/post-processing), per call and per person.

    python tools/bench_model.py                                   # repvit_m1_5, batches 1/2/4/8, CPU
    python tools/bench_model.py --config instanthmr_repvit_m0_9 --runs 50 --threads 2
    python tools/bench_model.py --config instanthmr_repvit_m1_5 instanthmr_notebook_m2_3   # both, one run
    python tools/bench_model.py --device cuda --fp16              # adds the fp16 graph (GPU)
    python tools/bench_model.py --onnx models/instanthmr.onnx     # an existing file (ONNX Runtime only)
    python tools/bench_model.py --threads 2 --no-torch --batches 1 4 8 --pipeline --int8 --peak

``--pipeline`` adds ``InstantHMR.predict`` rows (crops cut from a 1280x720 frame, normalisation, the network,
decoding to pixels/metres: what a frame really costs) and ``--int8`` the statically quantised network
(``tools/quantize_onnx.py``); the ``x backbone`` column divides each row's per-person time by the bare fused
backbone's at the same batch. ``--peak`` measures this machine's fp32 matmul throughput (numpy and ONNX
Runtime MatMul, ``--threads``) and prints the fraction of it the network reaches (FLOPs from
``tools/model_info.py``).

Rows: the whole network in ONNX Runtime and in torch eager (fused, no_grad), and the bare fused backbone in
both, so the cost of the decoder and heads is visible; each row names the architecture (config) it measured,
and several ``--config`` are timed together in one round-robin. Random-init weights: latency does not depend on them.
Each figure is the median (and min) of ``--runs`` timed calls after ``--warmup`` untimed ones; the variants
are timed round-robin in blocks of 10 consecutive calls, so a busy machine slows all of them alike while each
variant's weights stay in cache during its block. This is a benchmark
tool, not a test: run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from instanthmr.cli.common import add_bench_flags, describe_load, load_average
from instanthmr.training.latency import matmul_peak_gflops, run_benchmark


def main(argv: list[str] | None = None) -> int:
    # torch's OpenMP workers otherwise busy-wait between calls and slow the ONNX Runtime rows timed beside them
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    p = argparse.ArgumentParser(description="HMR network latency (ORT vs torch eager, network vs bare backbone)")
    p.add_argument("--config", nargs="+", default=["instanthmr_repvit_m1_5"],
                   help="registered config(s), each exported with random weights and timed in the same run "
                        "(e.g. instanthmr_repvit_m1_5 instanthmr_notebook_m2_3)")
    p.add_argument("--onnx", type=Path, help="benchmark this ONNX file instead of a random-init export")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    add_bench_flags(p, threads=0, threads_help="CPU threads for ORT and torch", json_help=None)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "coreml", "auto"))
    p.add_argument("--fp16", action="store_true", help="also time the fp16 graph (meant for GPUs)")
    p.add_argument("--no-torch", action="store_true", help="skip the torch eager rows")
    p.add_argument("--pipeline", action="store_true",
                   help="add InstantHMR.predict rows (crop + normalise + network + decode from a 720p frame)")
    p.add_argument("--int8", action="store_true",
                   help="add the int8 networks (static QDQ Conv only; static-linear: + dynamic int8 MatMuls)")
    p.add_argument("--plain-export", action="store_true",
                   help="add the network exported without optimisation (export_onnx(optimize=False)), same run")
    p.add_argument("--peak", action="store_true",
                   help="measure fp32 matmul GFLOP/s here and the fraction of it the network reaches")
    args = p.parse_args(argv)
    if args.onnx is not None and not args.onnx.is_file():
        print(f"error: ONNX file not found: {args.onnx}", file=sys.stderr)
        return 2
    if args.onnx is None:
        from instanthmr.training.model import list_configs

        unknown = [c for c in args.config if c not in list_configs()]
        if unknown:
            print(f"error: unknown config(s) {unknown}; available: {', '.join(list_configs())}", file=sys.stderr)
            return 2
    load_before = load_average()
    rows = run_benchmark(args.config, args.batches, args.runs, args.warmup, args.device, args.threads, args.fp16,
                         args.onnx, not args.no_torch, args.pipeline and args.onnx is None,
                         args.int8 and args.onnx is None, args.plain_export)
    import platform

    import onnxruntime

    archs = list(dict.fromkeys(r["architecture"] for r in rows))
    print(f"# {args.onnx or ', '.join(archs)} (random weights unless --onnx); "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, onnxruntime "
          f"{onnxruntime.__version__}; threads {args.threads or 'default'}; median of {args.runs} runs; "
          f"{describe_load(load_before, load_average())}")
    print("| architecture | variant | provider | batch | median ms / call | median ms / person | min ms / call "
          "| p95 ms / call | x backbone | CPU ms / person | x backbone (CPU) |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    order = {a: i for i, a in enumerate(archs)}
    for r in sorted(rows, key=lambda r: (r["variant"], r["batch"], order[r["architecture"]])):
        xb = f"{r['x_backbone']:.2f}" if r.get("x_backbone") else "-"
        xc = f"{r['x_backbone_cpu']:.2f}" if r.get("x_backbone_cpu") else "-"
        print(f"| {r['architecture']} | {r['variant']} | {r['provider']} | {r['batch']} | {r['ms']:.1f} "
              f"| {r['ms_per_person']:.1f} | {r['min_ms']:.1f} | {r['p95_ms']:.1f} | {xb} "
              f"| {r['cpu_ms'] / r['batch']:.1f} | {xc} |")
    if args.peak and args.onnx is None:
        from instanthmr.training.model_info import model_stats

        peak = matmul_peak_gflops(args.threads)
        gflops = {c: model_stats(c)["gflops"] for c in args.config}
        best = max(peak.values())
        print(f"\n# fp32 square matmul n = 512/768/1536, best of 15 each, ORT threads {args.threads or 'default'}: "
              + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in peak.items()) + "; "
              + ", ".join(f"{c}: {g:.3f} GFLOPs / person" for c, g in gflops.items()))
        print("| architecture | variant | batch | GFLOP/s reached (min ms) | fraction of the best matmul |")
        print("|---|---|---:|---:|---:|")
        for r in sorted(rows, key=lambda r: (r["variant"], r["batch"], order[r["architecture"]])):
            if r["variant"].startswith(("network ORT", "predict")):
                reached = gflops[r["architecture"]] * r["batch"] / (r["min_ms"] * 1e-3)
                print(f"| {r['architecture']} | {r['variant']} | {r['batch']} | {reached:.1f} | {reached / best:.0%} |")
    return 0
