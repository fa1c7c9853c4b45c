"""Latency of the HMR network alone (no detector, no pre/post-processing), per call and per person: the whole
network in ONNX Runtime and in torch eager (fused, no_grad), the bare fused backbone in both, optionally the
fp16 / int8 graphs and ``InstantHMR.predict`` on a 1280x720 frame (``tools/bench_model.py``). Milliseconds,
median and min of timed calls taken round-robin (``instanthmr.runner.speed.blocked_round_robin_ms``).
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import numpy as np

from instanthmr.runner.speed import blocked_round_robin_ms
from instanthmr.training.model_info import network_label


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
