"""Latency of the HMR network alone (no detector, no pre/post-processing), per call and per person.

    python tools/bench_model.py                                   # repvit_m1_5, batches 1/2/4/8, CPU
    python tools/bench_model.py --config instanthmr_repvit_m0_9 --runs 50 --threads 2
    python tools/bench_model.py --device cuda --fp16              # adds the fp16 graph (GPU)
    python tools/bench_model.py --onnx models/instanthmr.onnx     # an existing file (ONNX Runtime only)

Rows: the whole network in ONNX Runtime and in torch eager (fused, no_grad), and the bare fused backbone in
both, so the cost of the decoder and heads is visible. Random-init weights: latency does not depend on them.
Each figure is the median (and min) of ``--runs`` timed calls after ``--warmup`` untimed ones; the variants
are timed round-robin so a busy machine slows all of them alike. This is a benchmark
tool, not a test: run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import os

    # torch's OpenMP workers otherwise busy-wait between calls and slow the ONNX Runtime rows timed beside them
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np


def _round_robin_ms(fns: dict, runs: int, warmup: int) -> dict[str, list[float]]:
    """Time every callable once per round, ``runs`` rounds: on a shared machine, load changes over time hit
    all variants alike instead of whichever happened to run then."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) * 1e3)
    return times


def _inputs(batch: int, size: int = 224):
    rng = np.random.default_rng(batch)
    image = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
    cliff = np.tile(np.float32([[0.1, -0.1, 0.5]]), (batch, 1))
    return image, cliff


def _ort_session(path: Path, device: str, threads: int):
    import onnxruntime as ort

    from instanthmr.runtime import providers_for

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle pools must not steal CPU
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), sess_options=opts, providers=providers_for(device))


def _export_backbone(model, path: Path) -> None:
    import warnings

    import torch

    class Backbone(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, image):
            return self.net(image)[-1]

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(Backbone(model.backbone).eval(), (torch.zeros(2, 3, 224, 224),), str(path), dynamo=False,
                          input_names=["image"], output_names=["features"], opset_version=17,
                          dynamic_axes={"image": {0: "batch"}, "features": {0: "batch"}})


def run_benchmark(config: str, batches, runs: int, warmup: int, device: str = "cpu", threads: int = 0,
                  fp16: bool = False, onnx_path: Path | None = None, torch_eager: bool = True) -> list[dict]:
    """``[{"variant", "batch", "ms", "ms_per_person", "min_ms", "provider"}]`` for every variant and batch size."""
    rows = []
    sessions: dict[str, object] = {}
    eager: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if onnx_path is not None:
            sessions["network ORT fp32" if "fp16" not in onnx_path.name else "network ORT"] = \
                _ort_session(onnx_path, device, threads)
        else:
            import torch

            from instanthmr.model import build_model
            from instanthmr.model.random_init import randomize_
            from tools.export_onnx import export_onnx

            if threads:
                torch.set_num_threads(threads)
            model = randomize_(build_model(config)).eval()
            export_onnx(model, tmp / "net.onnx", parity=False)
            sessions["network ORT fp32"] = _ort_session(tmp / "net.onnx", device, threads)
            if fp16:
                export_onnx(model, tmp / "net16.onnx", fp16=True, parity=False)
                sessions["network ORT fp16"] = _ort_session(tmp / "net16.onnx", device, threads)
            fused = model.fuse()
            _export_backbone(fused, tmp / "backbone.onnx")
            sessions["backbone ORT fp32"] = _ort_session(tmp / "backbone.onnx", device, threads)
            if torch_eager:
                dev = "cuda" if device == "cuda" and torch.cuda.is_available() else "cpu"
                fused = fused.to(dev)
                eager["network torch eager fp32"] = (lambda im, c: fused(im, c), dev)
                eager["backbone torch eager fp32"] = (lambda im, c: fused.backbone(im), dev)

        calls: dict[str, tuple] = {}  # variant -> (make_call(batch) -> fn, provider)
        for name, sess in sessions.items():
            def make(batch, sess=sess):
                image, cliff = _inputs(batch)
                feeds = {"image": image}
                if "cliff_cond" in [i.name for i in sess.get_inputs()]:
                    feeds["cliff_cond"] = cliff
                return lambda: sess.run(None, feeds)
            calls[name] = (make, sess.get_providers()[0])
        for name, (fn, dev) in eager.items():
            def make(batch, fn=fn, dev=dev):
                import torch

                image, cliff = _inputs(batch)
                im, c = torch.from_numpy(image).to(dev), torch.from_numpy(cliff).to(dev)

                def call():
                    with torch.no_grad():
                        fn(im, c)
                    if dev == "cuda":
                        torch.cuda.synchronize()
                return call
            calls[name] = (make, f"torch {dev}")
        for batch in batches:
            fns = {name: make(batch) for name, (make, _) in calls.items()}
            times = _round_robin_ms(fns, runs, warmup)
            for name, ts in times.items():
                med = statistics.median(ts)
                rows.append({"variant": name, "batch": batch, "ms": med, "ms_per_person": med / batch,
                             "min_ms": min(ts), "provider": calls[name][1]})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="HMR network latency (ORT vs torch eager, network vs bare backbone)")
    p.add_argument("--config", default="instanthmr_repvit_m1_5")
    p.add_argument("--onnx", type=Path, help="benchmark this ONNX file instead of a random-init export")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="CPU threads for ORT and torch (0: their default)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "coreml", "auto"))
    p.add_argument("--fp16", action="store_true", help="also time the fp16 graph (meant for GPUs)")
    p.add_argument("--no-torch", action="store_true", help="skip the torch eager rows")
    args = p.parse_args(argv)
    if args.onnx is not None and not args.onnx.is_file():
        print(f"error: ONNX file not found: {args.onnx}", file=sys.stderr)
        return 2
    import os

    load_before = os.getloadavg()[0]  # other processes on the machine skew every figure; say how busy it was
    rows = run_benchmark(args.config, args.batches, args.runs, args.warmup, args.device, args.threads, args.fp16,
                         args.onnx, not args.no_torch)
    import platform

    import onnxruntime

    print(f"# {args.onnx or args.config}; {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"onnxruntime {onnxruntime.__version__}; threads {args.threads or 'default'}; median of {args.runs} runs; "
          f"load average before/after {load_before:.1f}/{os.getloadavg()[0]:.1f}")
    print("| variant | provider | batch | median ms / call | median ms / person | min ms / call |")
    print("|---|---|---:|---:|---:|---:|")
    for r in sorted(rows, key=lambda r: (r["variant"], r["batch"])):
        print(f"| {r['variant']} | {r['provider']} | {r['batch']} | {r['ms']:.1f} | {r['ms_per_person']:.1f} "
              f"| {r['min_ms']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
