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
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from instanthmr.cli.common import network_label


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


def _inputs(batch: int, size: int = 224):
    rng = np.random.default_rng(batch)
    image = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
    cliff = np.tile(np.float32([[0.1, -0.1, 0.5]]), (batch, 1))
    return image, cliff


def _ort_session(path: Path, device: str, threads: int):
    import onnxruntime as ort

    from instanthmr.runtime.session import providers_for

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
            return self.net.image_features(image)

    size = model.config.input_size
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(Backbone(model).eval(), (torch.zeros(2, 3, size, size),), str(path), dynamo=False,
                          input_names=["image"], output_names=["features"], opset_version=17,
                          dynamic_axes={"image": {0: "batch"}, "features": {0: "batch"}})


def matmul_peak_gflops(threads: int = 0, sizes=(512, 768, 1536), runs: int = 15) -> dict[str, float]:
    """Best fp32 GFLOP/s of square ``n x n`` matmuls (2 n^3 FLOPs) over ``sizes`` in numpy (OpenBLAS, its own
    thread count) and in an ONNX Runtime MatMul graph (``threads``): the practical arithmetic ceiling of this
    machine for the network's dense math. Powers of two from 1024 up are avoided: their leading dimension
    thrashes the caches (measured here: 1024 runs at half the speed of 768 or 1536)."""
    best: dict[str, float] = {}
    for n in sizes:
        for k, v in _matmul_gflops(threads, n, runs).items():
            best[k] = max(best.get(k, 0.0), v)
    return best


def _matmul_gflops(threads: int, n: int, runs: int) -> dict[str, float]:
    import onnxruntime as ort
    from onnx import TensorProto, helper

    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    b = np.random.default_rng(1).standard_normal((n, n)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "mm",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n]),
                               helper.make_tensor_value_info("b", TensorProto.FLOAT, [n, n])],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])
    fns = {"numpy": lambda: a @ b, "onnxruntime": lambda: sess.run(None, {"a": a, "b": b})}
    times = blocked_round_robin_ms(fns, runs, 3)
    return {k: 2.0 * n ** 3 / (min(v) * 1e-3) / 1e9 for k, v in times.items()}


def _predict_call(hmr, batch: int):
    """``InstantHMR.predict`` on ``batch`` person boxes of a 1280x720 frame (crop + network + decoding)."""
    import cv2

    rng = np.random.default_rng(7)
    frame = cv2.resize(rng.integers(0, 256, (36, 64, 3), dtype=np.uint8), (1280, 720), interpolation=cv2.INTER_CUBIC)
    boxes = np.array([[60.0 + 140 * i, 80.0 + 5 * i, 220.0 + 140 * i, 640.0] for i in range(batch)])
    return lambda: hmr.predict(frame, boxes)


def run_benchmark(config: str | list[str], batches, runs: int, warmup: int, device: str = "cpu", threads: int = 0,
                  fp16: bool = False, onnx_path: Path | None = None, torch_eager: bool = True,
                  pipeline: bool = False, int8: bool = False, plain_export: bool = False) -> list[dict]:
    """``[{"architecture", "variant", "batch", "ms", "ms_per_person", "min_ms", "provider", "x_backbone"}]`` for
    every architecture (``config``: one registered config or several, each exported with random weights),
    variant and batch size. All of them are timed in the same blocked round-robin, so a busy machine slows
    every architecture alike."""
    configs = [config] if isinstance(config, str) else list(config)
    rows = []
    calls: dict[tuple[str, str], tuple] = {}  # (architecture, variant) -> (make_call(batch) -> fn, provider)
    sizes: dict[str, int] = {}  # architecture -> input size
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if onnx_path is not None:
            label = network_label(onnx_path)
            sess = _ort_session(onnx_path, device, threads)
            shape = sess.get_inputs()[0].shape
            sizes[label] = shape[2] if isinstance(shape[2], int) else 224
            variant = "network ORT fp32" if "fp16" not in onnx_path.name else "network ORT"
            calls[(label, variant)] = _session_call(sess, sizes[label])
        else:
            import torch

            if threads:
                torch.set_num_threads(threads)
            for cfg in configs:
                sizes[cfg] = _add_config_calls(calls, cfg, tmp / cfg, device, threads, fp16, int8, pipeline,
                                               torch_eager, max(batches), plain_export)
        for batch in batches:
            fns = {key: make(batch) for key, (make, _) in calls.items()}
            cpu: dict = {}
            times = blocked_round_robin_ms(fns, runs, warmup, cpu_ms=cpu)
            for (arch, name), ts in times.items():
                base, base_cpu = times.get((arch, "backbone ORT fp32")), cpu.get((arch, "backbone ORT fp32"))
                med, med_cpu = statistics.median(ts), statistics.median(cpu[(arch, name)])
                rows.append({"architecture": arch, "variant": name, "batch": batch, "ms": med,
                             "ms_per_person": med / batch, "min_ms": min(ts), "provider": calls[(arch, name)][1],
                             "p95_ms": float(np.percentile(ts, 95)), "cpu_ms": med_cpu,
                             "x_backbone": med / statistics.median(base) if base else None,
                             "x_backbone_cpu": med_cpu / statistics.median(base_cpu) if base_cpu else None})
    return rows


def _session_call(sess, size: int) -> tuple:
    def make(batch):
        image, cliff = _inputs(batch, size)
        feeds = {"image": image}
        if "cliff_cond" in [i.name for i in sess.get_inputs()]:
            feeds["cliff_cond"] = cliff
        return lambda: sess.run(None, feeds)
    return make, sess.get_providers()[0]


def _add_config_calls(calls: dict, config: str, folder: Path, device: str, threads: int, fp16: bool, int8: bool,
                      pipeline: bool, torch_eager: bool, max_batch: int, plain_export: bool = False) -> int:
    """Export random-init ``config`` (and its bare backbone) into ``folder`` and add its timed variants to
    ``calls``; returns its input size."""
    import torch

    from instanthmr.training.export import export_onnx
    from instanthmr.training.model import build_model
    from instanthmr.training.model.random_init import randomize_

    folder.mkdir(parents=True, exist_ok=True)
    model = randomize_(build_model(config)).eval()
    size = model.config.input_size
    export_onnx(model, folder / "net.onnx", parity=False)
    sessions = {"network ORT fp32": _ort_session(folder / "net.onnx", device, threads)}
    if plain_export:  # the same network without export-time optimisation (tools/export_onnx.py --plain-graph)
        export_onnx(model, folder / "net.plain.onnx", parity=False, optimize=False)
        sessions["network ORT fp32 plain export"] = _ort_session(folder / "net.plain.onnx", device, threads)
    if fp16:
        export_onnx(model, folder / "net16.onnx", fp16=True, parity=False)
        sessions["network ORT fp16"] = _ort_session(folder / "net16.onnx", device, threads)
    fused = model.fuse()
    _export_backbone(fused, folder / "backbone.onnx")
    sessions["backbone ORT fp32"] = _ort_session(folder / "backbone.onnx", device, threads)
    if int8:
        from instanthmr.training.quantize import quantize

        sessions["network ORT int8"] = _ort_session(quantize(folder / "net.onnx", folder / "net.int8.onnx"),
                                                    device, threads)
        linear = quantize(folder / "net.onnx", folder / "net.int8-linear.onnx", mode="static-linear")
        sessions["network ORT int8 static-linear"] = _ort_session(linear, device, threads)
    if pipeline:
        from instanthmr.runtime.hmr import InstantHMR

        files = {"predict fp32 (crop+net+decode)": folder / "net.onnx"}
        if int8:
            files["predict int8 (crop+net+decode)"] = folder / "net.int8.onnx"
        for name, path in files.items():
            hmr = InstantHMR(path, device=device, max_persons=max_batch, threads=threads, spinning=False,
                             padding="buckets")
            calls[(config, name)] = (lambda batch, hmr=hmr: _predict_call(hmr, batch), hmr.provider)
    for name, sess in sessions.items():
        calls[(config, name)] = _session_call(sess, size)
    if torch_eager:
        dev = "cuda" if device == "cuda" and torch.cuda.is_available() else "cpu"
        fused = fused.to(dev)
        for name, fn in (("network torch eager fp32", lambda im, c: fused(im, c)),
                         ("backbone torch eager fp32", lambda im, c: fused.image_features(im))):
            def make(batch, fn=fn, dev=dev):
                image, cliff = _inputs(batch, size)
                im, c = torch.from_numpy(image).to(dev), torch.from_numpy(cliff).to(dev)

                def call():
                    with torch.no_grad():
                        fn(im, c)
                    if dev == "cuda":
                        torch.cuda.synchronize()
                return call
            calls[(config, name)] = (make, f"torch {dev}")
    return size


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
    p.add_argument("--threads", type=int, default=0, help="CPU threads for ORT and torch (0: their default)")
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
    load_before = os.getloadavg()[0]  # other processes on the machine skew every figure; say how busy it was
    rows = run_benchmark(args.config, args.batches, args.runs, args.warmup, args.device, args.threads, args.fp16,
                         args.onnx, not args.no_torch, args.pipeline and args.onnx is None,
                         args.int8 and args.onnx is None, args.plain_export)
    import platform

    import onnxruntime

    archs = list(dict.fromkeys(r["architecture"] for r in rows))
    print(f"# {args.onnx or ', '.join(archs)} (random weights unless --onnx); "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, onnxruntime "
          f"{onnxruntime.__version__}; threads {args.threads or 'default'}; median of {args.runs} runs; "
          f"load average before/after {load_before:.1f}/{os.getloadavg()[0]:.1f}")
    # CPU ms: process CPU time (all threads) per call, the work done; on a shared machine its ratios hold where
    # the wall times swing with other processes' load
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
        from instanthmr.cli.model_info import model_stats

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
