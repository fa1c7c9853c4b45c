"""MHR body-model utilities (``python tools/mhr.py``):

    python tools/mhr.py layer models/mhr_lod3.npz --bench            # numpy / torch / ONNX Runtime forward times
    python tools/mhr.py layer models/mhr_lod3.npz --samples DIR      # against real SAM 3D Body output dicts
    python tools/mhr.py check SHARDS... --mhr-model models/mhr_lod3.npz   # teacher shards: params vs keypoints
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from instanthmr.body.mhr import NUM_EXPR, NUM_MODEL_PARAMS, NUM_SHAPE, MHRAssetError, MHRNumpy, load_mhr_assets
from instanthmr.training.mhr_losses import check_shards


def _benchmark(path: str, batches=(1, 64), repeats: int = 20, threads: int = 1) -> None:
    """Median wall time of the numpy, torch and ONNX Runtime forwards (CPU) on random bodies."""
    import tempfile
    import time

    rng = np.random.default_rng(0)
    runners = {"numpy": MHRNumpy.from_npz(path)}
    try:
        import torch

        from instanthmr.body.mhr_torch import MHRModel, export_onnx
    except ImportError:
        torch = None
    if torch is not None:
        torch.set_num_threads(threads)
        model = MHRModel.from_npz(path).eval()
        runners["torch"] = lambda s, p, e: model(torch.from_numpy(s), torch.from_numpy(p), torch.from_numpy(e))
        try:
            import onnxruntime as ort

            onnx_path = export_onnx(model, Path(tempfile.mkdtemp()) / "mhr.onnx")
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
            runners["onnxruntime"] = lambda s, p, e: sess.run(None, {"shape": s, "model_params": p, "expr": e})
        except ImportError:
            pass
    print(f"{path}: LOD {load_mhr_assets(path).lod}, torch / onnxruntime threads: {threads}")
    for n in batches:
        s = (0.8 * rng.standard_normal((n, NUM_SHAPE))).astype(np.float32)
        p = (0.3 * rng.standard_normal((n, NUM_MODEL_PARAMS))).astype(np.float32)
        e = (0.3 * rng.standard_normal((n, NUM_EXPR))).astype(np.float32)
        for name, run in runners.items():
            ctx = torch.no_grad() if torch is not None else None
            with ctx if ctx is not None else _Null():
                run(s, p, e)
                times = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    run(s, p, e)
                    times.append((time.perf_counter() - t0) * 1000)
            print(f"  N={n:3d} {name:12s} {np.median(times):8.2f} ms")


def _compare_samples(path: str, samples_dir: str) -> None:
    """Differences to real SAM 3D Body output dicts (their joints, keypoints and LOD 1 mesh)."""
    from scipy.spatial import cKDTree

    model = MHRNumpy.from_npz(path)
    for f in sorted(Path(samples_dir).glob("*.npz")):
        with np.load(f) as d:
            out = model(d["shape_params"], d["mhr_model_params"], d["expr_params"])
            dj = np.linalg.norm(out.joints[0] - d["pred_joint_coords"], axis=-1) * 1000
            line = f"{f.name}: joints max {dj.max():.4f} mm"
            if out.keypoints is not None:
                dk = np.linalg.norm(out.keypoints[0] - d["pred_keypoints_3d"][:70], axis=-1) * 1000
                line += f"; keypoints mean {dk.mean():.2f} max {dk.max():.2f} mm"
            nn = cKDTree(d["pred_vertices"]).query(out.vertices[0])[0] * 1000
            line += f"; vertices to nearest LOD1 vertex median {np.median(nn):.2f} mean {nn.mean():.2f} mm"
        print(line)


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False




def layer_main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="MHR layer: forward times and agreement with SAM 3D Body outputs")
    ap.add_argument("model", metavar="NPZ", help="converted MHR model")
    ap.add_argument("--bench", action="store_true", help="time the numpy / torch / onnxruntime forwards")
    ap.add_argument("--samples", metavar="DIR", help="compare with SAM 3D Body output dicts in DIR")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1, help="torch / onnxruntime intra-op threads")
    a = ap.parse_args(argv)
    try:
        if a.samples:
            _compare_samples(a.model, a.samples)
        if a.bench:
            _benchmark(a.model, a.batches, a.repeats, a.threads)
    except MHRAssetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def check_main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Check that shard MHR parameters reproduce their 3D keypoints.")
    ap.add_argument("shards", nargs="+", type=Path, help="shard folders or files")
    ap.add_argument("--mhr-model", required=True, type=Path, help="converted MHR .npz with a keypoint regressor")
    ap.add_argument("--threshold-mm", type=float, default=20.0)
    ap.add_argument("--max-instances", type=int, default=None)
    ap.add_argument("--show", type=int, default=5, help="list this many of the worst instances")
    args = ap.parse_args(argv)
    try:
        model = MHRNumpy.from_npz(args.mhr_model)
        if not model.has_keypoints:
            raise MHRAssetError(f"{args.mhr_model}: no keypoint regressor (convert with --regressor)")
        report = check_shards(model, args.shards, args.threshold_mm, args.max_instances)
    except (MHRAssetError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    for src, err in report.bad[:args.show]:
        print(f"  {err:8.1f} mm  {src}")
    return 0 if report.ok else 1


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("layer", "check"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    return (layer_main if argv[0] == "layer" else check_main)(argv[1:])
