#!/usr/bin/env python3
"""int8 and fp16 copies of the InstantHMR network or an exported RF-DETR graph with ONNX Runtime's own tools.

    python tools/quantize_onnx.py models/instanthmr.onnx                      # -> models/instanthmr.int8.onnx
    python tools/quantize_onnx.py models/rf-detr-nano.onnx --mode dynamic     # detector, weights-only int8
    python tools/quantize_onnx.py models/instanthmr.onnx --mode fp16 --check  # -> models/instanthmr.fp16.onnx
    python tools/quantize_onnx.py IN.onnx --out OUT.onnx --calib-dir PHOTOS --calib-count 32 --check

Modes (``onnxruntime.quantization``):

* ``static`` (default for the HMR network): QDQ format, int8 per-channel weights, uint8 activations whose
  ranges come from calibration images (real photos and video frames from the shared media by default).
  ONNX Runtime fuses the QDQ pairs into QLinearConv / QLinearMatMul kernels (VNNI/AMX on recent x86).
* ``static-linear`` (HMR network): ``static`` plus int8 weights on the decoder's and heads' MatMuls with
  activation ranges computed per call (``dynamic``); attention scores, softmax and LayerNorm stay float. For the
  notebook network, whose 141-query decoder is a third of its FLOPs (docs/performance.md: speed and drift).
* ``dynamic`` (default for the detector): int8 MatMul/Gemm weights, activation ranges computed per call;
  no calibration, safest for the transformer detector.
* ``fp16`` (for GPUs; ``onnxruntime.transformers.float16``): weights and math in float16, inputs and outputs
  stay float32, so the file is a drop-in for the fp32 one (``--fp16`` in demo.py / tools/bench.py). Works on
  any exported file, the released ``instanthmr.onnx`` included; ``tools/export_onnx.py --fp16`` does the same
  from a checkpoint and keeps the camera head in float32.

What the file is (HMR network or detector) is read from its input names. The metadata of the source file is
kept, with ``precision=int8-<mode>`` (or ``fp16``) added. ``--check`` prints the output drift against the fp32
file on held-out inputs (frames the calibration did not see). Accuracy on real poses needs trained weights: with
random-init weights the drift only shows the quantisation noise (docs/performance.md says which was used).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from instanthmr.core.faults import atomic_path, check_output_path
from instanthmr.runtime.session import ModelLoadError, stamp_metadata

MODES = ("static", "static-linear", "dynamic", "fp16")


class CalibrationError(ValueError):
    """``--calib-dir`` cannot supply calibration images (missing folder, no readable image)."""


def model_kind(path: str | Path) -> str:
    """``"hmr"`` (inputs ``image`` + ``cliff_cond``) or ``"detector"`` (input ``input``) from the graph inputs."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise ModelLoadError(f"{path}: not a readable ONNX file ({str(e).strip()[:120]})") from None
    names = {i.name for i in model.graph.input}
    if {"image", "cliff_cond"} <= names:
        return "hmr"
    if "input" in names:
        return "detector"
    raise ModelLoadError(f"{path}: neither an InstantHMR network (image, cliff_cond) nor an RF-DETR export "
                         f"(input); it has inputs {sorted(names)}")


def _resolution(path: Path, kind: str) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    meta = {p.key: p.value for p in model.metadata_props}
    key = "input_size" if kind == "hmr" else "resolution"
    if key in meta:
        return int(meta[key])
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return int(dims[-1].dim_value) if dims and dims[-1].dim_value else 224


def calibration_images(calib_dir: str | Path | None = None, count: int = 32, seed: int = 0,
                       holdout: bool = False) -> list[np.ndarray]:
    """RGB uint8 images for calibration (``holdout=False``) or for the drift check (``holdout=True``, frames
    calibration never sees). Default source: the shared photos (calibration) and video frames (both), or
    smooth random images without shared media. With ``calib_dir`` calibration uses that folder's readable
    images only (:class:`CalibrationError` when there is none)."""
    import cv2

    from instanthmr.core.paths import shared_data_dir
    from instanthmr.video.sources import IMAGE_EXTENSIONS

    images: list[np.ndarray] = []
    if not holdout and calib_dir is not None:  # the user's photos only: never topped up with other media
        return _calib_dir_images(Path(calib_dir), count)
    if not holdout:
        files = sorted(p for p in (shared_data_dir() / "images").rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        for p in files[:count]:
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if img is not None:
                images.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    videos = sorted((shared_data_dir() / "videos").glob("*.*"))
    # calibration takes early frames, the drift check late ones: the two sets never share a frame
    for v in videos:
        if len(images) >= count:
            break
        cap = cv2.VideoCapture(str(v))
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if total <= 0:
            cap.release()
            continue
        picks = [int(total * f) for f in ((0.05, 0.2, 0.35) if not holdout else (0.6, 0.75, 0.9))]
        for idx in picks:
            cap.set(cv2.CAP_PROP_POS_FRAMES, idx)
            ok, frame = cap.read()
            if ok:
                images.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        cap.release()
    if not images:  # no shared media: smooth random images keep the tool usable (say so in the output)
        rng = np.random.default_rng(seed + holdout)
        for _ in range(count):
            small = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
            images.append(cv2.resize(small, (640, 480), interpolation=cv2.INTER_CUBIC))
    return images[:count]


def _calib_dir_images(folder: Path, count: int) -> list[np.ndarray]:
    """Up to ``count`` readable images from ``--calib-dir``; raises :class:`CalibrationError` when the folder
    is missing or holds no readable image, and says how many were unreadable."""
    import cv2

    from instanthmr.video.sources import IMAGE_EXTENSIONS

    if not folder.is_dir():
        raise CalibrationError(f"--calib-dir {folder}: not a folder")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise CalibrationError(f"--calib-dir {folder}: no images found (extensions {', '.join(IMAGE_EXTENSIONS)})")
    images, bad = [], []
    for p in files:
        if len(images) >= count:
            break
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            bad.append(p)
        else:
            images.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    if not images:
        raise CalibrationError(f"--calib-dir {folder}: none of its {len(bad)} images could be read "
                               f"(e.g. {bad[0].name}); give a folder of readable photos")
    if bad:
        print(f"note: --calib-dir {folder}: {len(bad)} unreadable images skipped (e.g. {bad[0].name}); "
              f"calibrating on {len(images)}", file=sys.stderr)
    return images


def hmr_inputs(images: list[np.ndarray], size: int = 224, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """One ``{"image", "cliff_cond"}`` feed per image: a person-sized box near the centre (jittered), cut and
    normalised exactly as :class:`~instanthmr.runtime.hmr.InstantHMR` does (ImageNet, pixel-form CLIFF)."""
    from instanthmr.core.geometry import IMAGENET_MEAN, IMAGENET_STD, cliff_condition, crop_person

    rng = np.random.default_rng(seed)
    mean, std = np.float32(IMAGENET_MEAN), np.float32(IMAGENET_STD)
    feeds = []
    for img in images:
        h, w = img.shape[:2]
        bh = h * rng.uniform(0.5, 0.9)
        bw = bh * rng.uniform(0.35, 0.6)
        cx, cy = w * rng.uniform(0.35, 0.65), h * rng.uniform(0.45, 0.55)
        box = np.array([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])
        crop = crop_person(img, box, out_size=size)[0].astype(np.float32) / 255.0
        x = ((crop - mean) / std).transpose(2, 0, 1)[None].astype(np.float32)
        cliff = cliff_condition(box[None], (w, h), form="pixel").reshape(1, 3).astype(np.float32)
        feeds.append({"image": np.ascontiguousarray(x), "cliff_cond": cliff})
    return feeds


def detector_inputs(images: list[np.ndarray], resolution: int) -> list[dict[str, np.ndarray]]:
    from instanthmr.runtime.detector import preprocess_rfdetr

    return [{"input": preprocess_rfdetr(img, resolution)} for img in images]


class _Reader:
    """``onnxruntime.quantization.CalibrationDataReader`` over a list of feeds."""

    def __init__(self, feeds):
        self._it = iter(feeds)

    def get_next(self):
        return next(self._it, None)

    def rewind(self):  # some ORT versions ask for it
        pass


#: Ops the static (calibrated) int8 mode quantises. The HMR network: Conv only. The reference implementation
#: warns that quantising MatMul / Softmax / LayerNorm destroys accuracy; on the starter network (12 held-out
#: frames, `tools/quantize_onnx.py instanthmr/runtime/models/instanthmr-starter.onnx --check`) Conv + MatMul + Gemm drifted max 50 mm / mean 8.6 mm in
#: joints_3d and 86 mm in cam_trans, Conv only 23 mm / 2.7 mm and 22 mm, at the same CPU speed (14.4-14.9 vs
#: 14.7-14.8 ms per batch of 4, 1 thread; fp32 15.3). The detector keeps its MatMuls (not re-measured).
STATIC_OPS = {"hmr": ("Conv",), "detector": ("Conv", "MatMul", "Gemm")}


def quantize(src: str | Path, dst: str | Path | None = None, mode: str | None = None,
             calib_dir: str | Path | None = None, calib_count: int = 32) -> Path:
    """Write an int8 or fp16 copy of ``src`` and return its path (default ``<stem>.int8.onnx`` /
    ``<stem>.fp16.onnx`` beside it).

    ``mode``: ``"static"`` (int8 QDQ, calibrated), ``"static-linear"`` (that + dynamic int8 MatMuls, HMR network
    only), ``"dynamic"`` (int8 weights) or ``"fp16"``; ``None`` picks
    static for the HMR network and dynamic for the detector (their measured best, docs/performance.md).
    """
    import onnx
    from onnxruntime.quantization import (
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    src = Path(src)
    if not src.is_file():
        raise ModelLoadError(f"model file not found: {src}")
    kind = model_kind(src)
    mode = mode or ("static" if kind == "hmr" else "dynamic")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "static-linear" and kind != "hmr":
        raise ValueError(f"{src.name}: --mode static-linear is for the InstantHMR network; quantise a detector with "
                         "--mode dynamic or static")
    from instanthmr.runtime.hmr import onnx_weight_stats

    if onnx_weight_stats(src)["dtype"] == "fp16":  # e.g. the released instanthmr.onnx
        raise ValueError(
            f"{src.name} already has fp16 weights: run it as it is (--fp16 is not needed); an int8 copy must be made "
            "from an fp32 file (export one from the checkpoint: tools/export_onnx.py --checkpoint instanthmr.pth)")
    dst = Path(dst) if dst else src.with_name(f"{src.stem}.{'fp16' if mode == 'fp16' else 'int8'}.onnx")
    check_output_path(dst, "--out")  # before the work: an unwritable output fails now
    meta = {p.key: p.value for p in onnx.load(str(src), load_external_data=False).metadata_props}
    if mode == "fp16":
        return _to_fp16(src, dst, meta)
    images = calibration_images(calib_dir, calib_count) if mode.startswith("static") else []
    with tempfile.TemporaryDirectory(prefix="instanthmr_quant_") as tmp:
        prepped = Path(tmp) / "prep.onnx"
        prep_note = "ok"
        try:  # shape inference + constant folding: lets the quantiser see every tensor's type
            from onnxruntime.quantization.shape_inference import quant_pre_process

            quant_pre_process(str(src), str(prepped), skip_symbolic_shape=kind == "detector")
        except Exception as e:  # best effort: quantising the original works, only less of it may be covered
            prepped = src
            prep_note = f"skipped ({type(e).__name__}: {str(e).strip()[:100]})"
            print(f"note: {src.name}: quantisation pre-processing {prep_note}", file=sys.stderr)
        out_tmp = Path(tmp) / "quant.onnx"
        if mode == "dynamic":
            quantize_dynamic(str(prepped), str(out_tmp), weight_type=QuantType.QInt8, per_channel=False,
                             op_types_to_quantize=["MatMul", "Gemm"])
        else:
            res = _resolution(src, kind)
            feeds = hmr_inputs(images, res) if kind == "hmr" else detector_inputs(images, res)
            quantize_static(str(prepped), str(out_tmp), _Reader(feeds), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            op_types_to_quantize=list(STATIC_OPS[kind]),
                            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
        if mode == "static-linear":  # the float MatMuls left by the Conv-only static pass
            linear = Path(tmp) / "linear.onnx"
            quantize_dynamic(str(out_tmp), str(linear), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["MatMul"])
            out_tmp = linear
        model = onnx.load(str(out_tmp))
        meta.update({"precision": f"int8-{mode}", "quantized_from": src.name, "quant_preprocess": prep_note})
        stamp_metadata(model, meta)
        with atomic_path(dst) as part:
            onnx.save(model, str(part))
    return dst


def _to_fp16(src: Path, dst: Path, meta: dict) -> Path:
    """fp16 weights and math, float32 graph inputs/outputs (casts at the boundary)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    meta.update({"precision": "fp16", "quantized_from": src.name})
    stamp_metadata(model, meta)
    with atomic_path(dst) as part:
        onnx.save(model, str(part))
    return dst


def output_drift(fp32_path: str | Path, other_path: str | Path, feeds: list[dict], threads: int = 0) -> dict:
    """Per output: max and mean absolute difference of the int8 (or fp16) file vs fp32, and the fp32 outputs'
    std (the scale the difference should be read against), over ``feeds`` run one at a time."""
    import onnxruntime as ort

    def session(p):
        o = ort.SessionOptions()
        o.log_severity_level = 3
        if threads:
            o.intra_op_num_threads = threads
        return ort.InferenceSession(str(p), sess_options=o, providers=["CPUExecutionProvider"])

    a, b = session(fp32_path), session(other_path)
    names = [o.name for o in a.get_outputs()]
    ref: dict[str, list] = {n: [] for n in names}
    got: dict[str, list] = {n: [] for n in names}
    for f in feeds:
        for n, x in zip(names, a.run(names, f)):
            ref[n].append(x)
        for n, x in zip(names, b.run(names, f)):
            got[n].append(x)
    out = {}
    for n in names:
        r, g = np.concatenate(ref[n]).astype(np.float64), np.concatenate(got[n]).astype(np.float64)
        d = np.abs(r - g)
        out[n] = {"max_abs": float(d.max()), "mean_abs": float(d.mean()), "ref_std": float(r.std())}
    return out
