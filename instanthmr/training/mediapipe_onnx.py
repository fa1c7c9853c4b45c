"""MediaPipe's ``.tflite`` landmark models as ONNX graphs: our own small converter (no TensorFlow, no tflite2onnx).

It reads the TFLite flatbuffer with ``ai_edge_litert.schema_py_generated`` (the schema LiteRT itself ships)
and writes ONNX (opset 13) with ``onnx.helper``. Only the operators MediaPipe's BlazePose / hand models use
are supported (:data:`SUPPORTED_OPS`); any other one is refused in one line naming it.

The contract with the runtime (``instanthmr/runtime/mediapipe``): ONE input, named and shaped as the tflite's
(NHWC float32, e.g. ``input_1`` (1, 224, 224, 3), pixel values in [0, 1]); the outputs named exactly as the
tflite's output tensors (``Identity``, ``Identity_1``, ...) with the tflite's shapes (maps stay NHWC). Inside,
4-D activations are NCHW (ONNX's layout): weights are transposed once at conversion, and a Transpose is put
only where a layout-blind operator (RESHAPE, FULLY_CONNECTED, the outputs) needs the NHWC order back.

fp16 weights (DEQUANTIZE from FLOAT16) become fp32 constants, and sparse weights (DENSIFY) are densified in
numpy, so the ONNX file computes in fp32 what LiteRT computes (parity: tests/test_mediapipe_onnx.py,
docs/offline.md). ``drop_outputs`` leaves outputs nobody reads out of the graph with the work only they need
(the pose model's segmentation mask, ``Identity_2``), as the LiteRT runner does.

    python tools/convert_mediapipe.py models/mediapipe/hand_landmark_full.tflite   # -> ...hand_landmark_full.onnx
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from instanthmr.core.faults import atomic_path
from instanthmr.runtime.mediapipe.files import MediaPipeModelError
from instanthmr.runtime.mediapipe.tflite import prune_outputs

OPSET = 13  # Resize / Pad / Clip with tensor inputs, ReduceMean with an axes attribute; QDQ needs >= 13

SUPPORTED_OPS = ("ADD", "CONCATENATION", "CONV_2D", "DENSIFY", "DEPTH_TO_SPACE", "DEPTHWISE_CONV_2D",
                 "DEQUANTIZE", "FULLY_CONNECTED", "LOGISTIC", "MAX_POOL_2D", "MEAN", "PAD",
                 "RESHAPE", "RESIZE_BILINEAR")

_NHWC_TO_NCHW = (0, 3, 1, 2)
_NCHW_TO_NHWC = (0, 2, 3, 1)


def _schema():
    from ai_edge_litert import schema_py_generated as schema
    return schema


def _enum_names(enum_class) -> dict[int, str]:
    return {v: k for k, v in vars(enum_class).items() if not k.startswith("_")}


def op_names(model) -> list[str]:
    """The builtin operator name (``"CONV_2D"``, ...) of each operator of subgraph 0 of a ``ModelT``."""
    names = _enum_names(_schema().BuiltinOperator)
    out = []
    for op in model.subgraphs[0].operators:
        code = model.operatorCodes[op.opcodeIndex]
        out.append(names.get(max(code.builtinCode, code.deprecatedBuiltinCode), f"CUSTOM({code.customCode})"))
    return out


def densify(values: np.ndarray, shape, sparsity) -> np.ndarray:
    """A TFLite sparse tensor (``values`` in storage order, ``sparsity`` its ``SparsityParametersT``) as a
    dense array of ``shape``. Dense dimensions multiply the position, CSR dimensions take their coordinates
    from ``array_indices`` between ``array_segments[p]`` and ``[p + 1]``; block-sparse formats are refused."""
    if sparsity.blockMap is not None and len(sparsity.blockMap):
        raise MediaPipeModelError("DENSIFY: block-sparse weights are not supported by the converter")
    order = [int(d) for d in sparsity.traversalOrder]
    pos = np.zeros(1, np.int64)  # storage position at the current level, one per reachable prefix
    coords: list[np.ndarray] = []
    for meta in sparsity.dimMetadata:
        if meta.format == _schema().DimensionType.DENSE:
            n = int(meta.denseSize)
            pos = (pos[:, None] * n + np.arange(n)).ravel()
            coords = [np.repeat(c, n) for c in coords] + [np.tile(np.arange(n), len(pos) // n)]
        else:
            seg = np.asarray(meta.arraySegments.values, np.int64)
            idx = np.asarray(meta.arrayIndices.values, np.int64)
            counts = seg[pos + 1] - seg[pos]
            new = np.concatenate([np.arange(seg[p], seg[p + 1]) for p in pos]) if len(pos) else pos
            coords = [np.repeat(c, counts) for c in coords] + [idx[new]]
            pos = new
    dense = np.zeros(shape, values.dtype)
    index = [None] * len(order)
    for level, dim in enumerate(order):
        index[dim] = coords[level]
    dense[tuple(index)] = values[pos]
    return dense


def _same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's SAME padding along one axis (before, after), in pixels: the extra pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class _Converter:
    """One subgraph -> ONNX nodes. ``self.values[i]``: tflite tensor i as (ONNX name, layout), layout
    ``"nchw"`` (a 4-D NHWC tensor stored transposed) or ``"plain"`` (the tflite's own order)."""

    def __init__(self, model, source: str):
        self.m, self.g, self.source = model, model.subgraphs[0], source
        self.schema = _schema()
        self.nodes, self.inits = [], []
        self.values: dict[int, tuple[str, str]] = {}
        self.consts: dict[int, np.ndarray] = {}
        self._cache: dict[tuple, str] = {}
        self._n = 0
        types = self.schema.TensorType
        self._dtypes = {types.FLOAT32: np.float32, types.FLOAT16: np.float16, types.INT32: np.int32,
                        types.INT64: np.int64, types.INT8: np.int8, types.UINT8: np.uint8}
        for i, t in enumerate(self.g.tensors):
            buf = self.m.buffers[t.buffer].data if t.buffer < len(self.m.buffers) else None
            if buf is not None and len(buf) and t.sparsity is None:
                self.consts[i] = np.frombuffer(bytes(buf), self._dtype(t)).reshape(self._shape(i))
            elif buf is not None and len(buf):  # sparse: kept as storage-order values until DENSIFY
                self.consts[i] = np.frombuffer(bytes(buf), self._dtype(t))

    # ---------------------------------------------------------------- helpers
    def _dtype(self, t):
        if t.type not in self._dtypes:
            raise MediaPipeModelError(f"{self.source}: tensor {t.name.decode()} has TFLite type {t.type}, "
                                      f"not supported by the converter")
        return self._dtypes[t.type]

    def _shape(self, i: int) -> tuple[int, ...]:
        return tuple(int(d) for d in self.g.tensors[i].shape)

    def _name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def _node(self, op: str, inputs, hint: str | None = None, **attrs) -> str:
        from onnx import helper
        out = self._name(hint or op.lower())  # the node is named as its output: nodes_to_exclude can name it
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=out, **attrs))
        return out

    def _init(self, array: np.ndarray, hint: str = "const") -> str:
        from onnx import numpy_helper
        name = self._name(hint)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def _const(self, i: int, what: str) -> np.ndarray:
        if i not in self.consts:
            raise MediaPipeModelError(f"{self.source}: {what} is not a constant (tensor "
                                      f"{self.g.tensors[i].name.decode()}); the converter needs it constant")
        return self.consts[i]

    def nchw(self, i: int) -> str:
        """Tensor ``i`` (4-D, NHWC in the tflite) in NCHW; a lower-rank constant broadcast like NHWC."""
        key = ("nchw", i)
        if key in self._cache:
            return self._cache[key]
        if i in self.consts:
            c = self.consts[i].astype(np.float32) if self.consts[i].dtype == np.float16 else self.consts[i]
            c = c.reshape((1,) * (4 - c.ndim) + c.shape).transpose(_NHWC_TO_NCHW)
            out = self._init(c)
        else:
            name, layout = self.values[i]
            out = name if layout == "nchw" else self._node("Transpose", [name], "to_nchw", perm=list(_NHWC_TO_NCHW))
        self._cache[key] = out
        return out

    def plain(self, i: int) -> str:
        """Tensor ``i`` in the tflite's own order (NHWC for 4-D)."""
        key = ("plain", i)
        if key in self._cache:
            return self._cache[key]
        if i in self.consts:
            out = self._init(self.consts[i])
        else:
            name, layout = self.values[i]
            out = name if layout == "plain" else self._node("Transpose", [name], "to_nhwc",
                                                            perm=list(_NCHW_TO_NHWC))
        self._cache[key] = out
        return out

    def _act(self, x: str, fused: int) -> str:
        a = self.schema.ActivationFunctionType
        if fused == a.NONE:
            return x
        if fused == a.RELU:
            return self._node("Relu", [x])
        if fused in (a.RELU6, a.RELU_N1_TO_1):
            lo, hi = (0.0, 6.0) if fused == a.RELU6 else (-1.0, 1.0)
            return self._node("Clip", [x, self._init(np.float32(lo)), self._init(np.float32(hi))], "clip")
        if fused == a.TANH:
            return self._node("Tanh", [x])
        raise MediaPipeModelError(f"{self.source}: fused activation {fused} is not supported by the converter")

    def _conv_pads(self, opts, x_shape, kh: int, kw: int) -> list[int]:
        if opts.padding == self.schema.Padding.VALID:
            return [0, 0, 0, 0]
        dh = getattr(opts, "dilationHFactor", 1) or 1
        dw = getattr(opts, "dilationWFactor", 1) or 1
        t, b = _same_pads(x_shape[1], kh, opts.strideH, dh)
        left, right = _same_pads(x_shape[2], kw, opts.strideW, dw)
        return [t, left, b, right]

    def _bias(self, op, k: int = 2) -> list[str]:
        if len(op.inputs) > k and op.inputs[k] >= 0:
            return [self._init(self._const(int(op.inputs[k]), "a bias").astype(np.float32), "bias")]
        return []

    # ---------------------------------------------------------------- operators
    def convert(self, op, kind: str, index: int) -> None:
        ins = [int(i) for i in op.inputs]
        out = int(op.outputs[0])
        o = op.builtinOptions
        if kind == "DEQUANTIZE":
            src = self._const(ins[0], "DEQUANTIZE's input")
            q = self.g.tensors[ins[0]].quantization
            if src.dtype != np.float16 and q is not None and q.scale is not None and len(q.scale):
                raise MediaPipeModelError(f"{self.source}: DEQUANTIZE of integer weights is not supported by the "
                                          f"converter (only fp16 weights)")
            self.consts[out] = src.astype(np.float32).reshape(self._shape(out))
            return
        if kind == "DENSIFY":
            t = self.g.tensors[ins[0]]
            self.consts[out] = densify(self._const(ins[0], "DENSIFY's input"), self._shape(out), t.sparsity)
            return
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w = self._const(ins[1], f"{kind}'s weights").astype(np.float32)  # (O, KH, KW, I) / (1, KH, KW, O)
            x_shape = self._shape(ins[0])
            _, kh, kw, _ = w.shape
            if kind == "CONV_2D":
                wt, group = w.transpose(0, 3, 1, 2), 1
            else:
                wt, group = w.transpose(3, 0, 1, 2), x_shape[3]
            y = self._node("Conv", [self.nchw(ins[0]), self._init(wt, "weight")] + self._bias(op), "conv",
                           kernel_shape=[kh, kw], strides=[o.strideH, o.strideW], group=group,
                           dilations=[o.dilationHFactor or 1, o.dilationWFactor or 1],
                           pads=self._conv_pads(o, x_shape, kh, kw))
            self.values[out] = (self._act(y, o.fusedActivationFunction), "nchw")
            return
        if kind == "MAX_POOL_2D":
            y = self._node("MaxPool", [self.nchw(ins[0])], "maxpool", kernel_shape=[o.filterHeight, o.filterWidth],
                           strides=[o.strideH, o.strideW],
                           pads=self._conv_pads(o, self._shape(ins[0]), o.filterHeight, o.filterWidth))
            self.values[out] = (self._act(y, o.fusedActivationFunction), "nchw")
            return
        if kind == "ADD":
            four = len(self._shape(out)) == 4
            get = self.nchw if four else self.plain
            y = self._node("Add", [get(ins[0]), get(ins[1])])
            self.values[out] = (self._act(y, o.fusedActivationFunction), "nchw" if four else "plain")
            return
        if kind == "LOGISTIC":
            name, layout = self.values[ins[0]] if ins[0] in self.values else (self.plain(ins[0]), "plain")
            self.values[out] = (self._node("Sigmoid", [name]), layout)
            return
        if kind == "PAD":
            pads = self._const(ins[1], "PAD's paddings").astype(np.int64)  # (rank, 2), tflite order
            four = len(self._shape(ins[0])) == 4
            if four:
                pads = pads[list(_NHWC_TO_NCHW)]
            x = self.nchw(ins[0]) if four else self.plain(ins[0])
            y = self._node("Pad", [x, self._init(np.concatenate([pads[:, 0], pads[:, 1]]), "pads"),
                                   self._init(np.float32(0.0))], mode="constant")
            self.values[out] = (y, "nchw" if four else "plain")
            return
        if kind == "RESIZE_BILINEAR":
            h, w = (int(v) for v in self._const(ins[1], "RESIZE_BILINEAR's size"))
            n, _, _, c = self._shape(ins[0])
            mode = ("align_corners" if o.alignCorners else "half_pixel" if o.halfPixelCenters else "asymmetric")
            y = self._node("Resize", [self.nchw(ins[0]), "", "", self._init(np.array([n, c, h, w], np.int64), "sizes")],
                           "resize", mode="linear", coordinate_transformation_mode=mode)
            self.values[out] = (y, "nchw")
            return
        if kind == "DEPTH_TO_SPACE":
            y = self._node("DepthToSpace", [self.nchw(ins[0])], blocksize=o.blockSize, mode="DCR")
            self.values[out] = (y, "nchw")
            return
        if kind == "CONCATENATION":
            rank = len(self._shape(out))
            axis = o.axis % rank
            if rank == 4:
                y = self._node("Concat", [self.nchw(i) for i in ins], axis=_NHWC_TO_NCHW.index(axis))
            else:
                y = self._node("Concat", [self.plain(i) for i in ins], axis=axis)
            self.values[out] = (self._act(y, o.fusedActivationFunction), "nchw" if rank == 4 else "plain")
            return
        if kind == "RESHAPE":
            y = self._node("Reshape", [self.plain(ins[0]), self._init(np.array(self._shape(out), np.int64), "shape")])
            self.values[out] = (y, "plain")
            return
        if kind == "MEAN":
            axes = sorted(int(a) % len(self._shape(ins[0])) for a in np.ravel(self._const(ins[1], "MEAN's axes")))
            keep = bool(o.keepDims)
            if len(self._shape(ins[0])) == 4 and ins[0] in self.values and self.values[ins[0]][1] == "nchw":
                kept = [a for a in _NHWC_TO_NCHW if a not in axes]  # NHWC axes left, in NCHW storage order
                if keep or kept == sorted(kept):  # same order either way: reduce in NCHW, no transpose
                    y = self._node("ReduceMean", [self.nchw(ins[0])], axes=[_NHWC_TO_NCHW.index(a) for a in axes],
                                   keepdims=int(keep))
                    self.values[out] = (y, "nchw" if keep else "plain")
                    return
            y = self._node("ReduceMean", [self.plain(ins[0])], axes=axes, keepdims=int(keep))
            self.values[out] = (y, "plain")
            return
        if kind == "FULLY_CONNECTED":
            w = self._const(ins[1], "FULLY_CONNECTED's weights").astype(np.float32)  # (O, I)
            x = self.plain(ins[0])
            if len(self._shape(ins[0])) != 2:
                x = self._node("Reshape", [x, self._init(np.array([-1, w.shape[1]], np.int64), "shape")])
            y = self._node("Gemm", [x, self._init(w, "weight")] + self._bias(op), "gemm", transB=1)
            y = self._act(y, o.fusedActivationFunction)
            if len(self._shape(out)) != 2:
                y = self._node("Reshape", [y, self._init(np.array(self._shape(out), np.int64), "shape")])
            self.values[out] = (y, "plain")
            return
        raise MediaPipeModelError(f"{self.source}: operator {kind} (#{index}) is not supported by the converter "
                                  f"(supported: {', '.join(SUPPORTED_OPS)})")


def convert_tflite(path: str | Path, drop_outputs: tuple[str, ...] = ()):
    """``path`` (a ``.tflite`` file) as an ``onnx.ModelProto`` under the contract of the module docstring
    (input NHWC float32 as in the tflite, outputs named and shaped as the tflite's, minus ``drop_outputs``).
    Raises :class:`MediaPipeModelError` (one line naming the file and the operator) for an unsupported
    operator, fused activation or tensor type."""
    import onnx
    from onnx import TensorProto, helper

    path = Path(path)
    if not path.is_file():
        raise MediaPipeModelError(f"{path}: no such file (fetch it: python tools/fetch_models.py mediapipe)")
    content = path.read_bytes()
    if drop_outputs:
        content = prune_outputs(content, tuple(drop_outputs))
    schema = _schema()
    try:
        model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    except Exception as e:
        raise MediaPipeModelError(f"{path}: not a TFLite flatbuffer ({str(e).strip()[:120]})") from None
    if len(model.subgraphs) != 1:
        raise MediaPipeModelError(f"{path}: {len(model.subgraphs)} subgraphs; the converter handles one")
    conv = _Converter(model, str(path))
    g = model.subgraphs[0]
    if len(g.inputs) != 1:
        raise MediaPipeModelError(f"{path}: {len(g.inputs)} inputs; the converter handles one image input")
    kinds = op_names(model)
    unsupported = sorted({k for k in kinds if k not in SUPPORTED_OPS})
    if unsupported:  # refuse before doing any work, naming every missing operator
        raise MediaPipeModelError(f"{path}: operator {', '.join(unsupported)} is not supported by the converter "
                                  f"(supported: {', '.join(SUPPORTED_OPS)})")
    in_idx = int(g.inputs[0])
    in_name = g.tensors[in_idx].name.decode()
    conv.values[in_idx] = (in_name, "plain")
    for k, (op, kind) in enumerate(zip(g.operators, kinds)):
        conv.convert(op, kind, k)
    outputs = []
    for i in g.outputs:
        i = int(i)
        name = g.tensors[i].name.decode()
        conv.nodes.append(helper.make_node("Identity", [conv.plain(i)], [name], name=f"output_{name}"))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(conv._shape(i))))
    graph = helper.make_graph(
        conv.nodes, path.stem,
        [helper.make_tensor_value_info(in_name, TensorProto.FLOAT, list(conv._shape(in_idx)))],
        outputs, conv.inits)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                   producer_name="instanthmr.training.mediapipe_onnx")
    onnx_model.ir_version = 8  # readable by every onnxruntime >= 1.11
    helper.set_model_props(onnx_model, {
        "source": path.name, "source_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "dropped_outputs": ",".join(drop_outputs), "precision": "fp32"})
    onnx.checker.check_model(onnx_model)
    return onnx_model


def run_litert(tflite: str | Path, inputs: np.ndarray, threads: int = 1) -> dict[str, np.ndarray]:
    """LiteRT's outputs for each of ``inputs`` ((N, H, W, 3) float32, one model call each), by output name,
    stacked along a new first axis: the reference the ONNX files are compared with."""
    from instanthmr.runtime.mediapipe.tflite import TFLiteModel

    model = TFLiteModel(tflite, num_threads=threads)
    names = [o["name"] for o in model.outputs]
    rows = [model(x[None]) for x in np.asarray(inputs, np.float32)]
    return {n: np.stack([r[k] for r in rows]) for k, n in enumerate(names)}


def run_onnx(path: str | Path, inputs: np.ndarray, threads: int = 1) -> dict[str, np.ndarray]:
    """The ONNX file's outputs for each of ``inputs`` (as :func:`run_litert`), run as the pipeline runs it
    (:class:`~instanthmr.runtime.mediapipe.models.OnnxMediaPipeModel`, ONNX Runtime's CPU provider)."""
    from instanthmr.runtime.mediapipe.models import OnnxMediaPipeModel

    model = OnnxMediaPipeModel(path, num_threads=threads)
    rows = [model(x[None]) for x in np.asarray(inputs, np.float32)]
    return {n: np.stack([r[k] for r in rows]) for k, n in enumerate(model.outputs)}


def litert_parity(tflite: str | Path, onnx_path: str | Path, inputs: np.ndarray | None = None) -> dict[str, float]:
    """Largest |ONNX - LiteRT| per output of the ONNX file, over ``inputs`` ((N, H, W, 3) float32 in [0, 1];
    default one uniform random image of the model's input size)."""
    import onnx

    if inputs is None:
        shape = [d.dim_value for d in onnx.load(str(onnx_path)).graph.input[0].type.tensor_type.shape.dim]
        inputs = np.random.default_rng(0).random(shape, dtype=np.float32)
    ref, got = run_litert(tflite, inputs), run_onnx(onnx_path, inputs)
    return {n: float(np.abs(got[n] - ref[n]).max()) for n in got}


# --------------------------------------------------------------------------------------------------
# The models' real inputs, for calibration and drift
# --------------------------------------------------------------------------------------------------

class _Recorder:
    """Wraps a loaded model (``TFLiteModel``): forwards each call and keeps its input, as uint8 (the crops
    are ``uint8 / 255`` exactly, so nothing is lost)."""

    def __init__(self, model, store: list):
        self.model, self.store = model, store

    def __getattr__(self, name):
        return getattr(self.model, name)

    def __call__(self, x):
        self.store.append(np.round(np.asarray(x)[0] * 255.0).astype(np.uint8))
        return self.model(x)


def record_model_inputs(source: str | Path, max_frames: int | None = None) -> dict[str, np.ndarray]:
    """The exact inputs the offline MediaPipe path feeds its landmark models on ``source`` (a video, a photo
    or a folder of photos), run as the demo runs it (tracking, hands on, no body fit): ``{"pose_landmark_full":
    (N, 256, 256, 3) uint8, "hand_landmark_full": (M, 224, 224, 3) uint8}``, the crops in call order
    (divide by 255 for the model input)."""
    from instanthmr.runner.config import RunConfig
    from instanthmr.runner.loop import run
    from instanthmr.runtime.mediapipe.estimator import mediapipe_pipeline
    from instanthmr.video.sources import media_kind

    pipe = mediapipe_pipeline()
    est = pipe.estimator
    pose, hand = [], []
    est.landmarker.model = _Recorder(est.landmarker.model, pose)
    est.hand.model = _Recorder(est.hand.model, hand)
    kind = "video" if media_kind(source) == "video" else "image"
    report = run(RunConfig(**{kind: str(source)}, max_frames=max_frames, body_fit=False, ground=False,
                           quiet=True, verbose=False), pipeline=pipe)
    if not report.frames:
        raise MediaPipeModelError(f"{source}: no frame read (status {report.status})")

    def stack(rows, size):
        return np.stack(rows) if rows else np.zeros((0, size, size, 3), np.uint8)
    return {"pose_landmark_full": stack(pose, 256), "hand_landmark_full": stack(hand, 224)}


# --------------------------------------------------------------------------------------------------
# Static int8
# --------------------------------------------------------------------------------------------------

#: ORT calibration methods by name (activation ranges from the calibration crops).
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
#: Operators quantised by default. Clip / Relu must be in: ORT then gives a conv the range of the activation
#: that follows it ([0, 6] for ReLU6); without them a conv's output is quantised over its whole pre-activation
#: range and the first layer alone falls to 20 dB SQNR (39 dB with them, hand model, real crops).
QUANT_OPS = ("Conv", "Clip", "Relu", "Add", "Gemm", "MaxPool", "Resize")

#: What stays fp32 in the shipped int8 files, per model: the first ``first`` convolutions (the first 3x3
#: depthwise, whose weights reach 77, loses 17 dB SQNR in int8: 38 -> 21 dB after it) and, with ``heads``,
#: the fully connected heads. Chosen on held-out crops (docs/offline.md, "int8 landmark models").
INT8_KEEP_FP32: dict[str, dict] = {
    "hand_landmark_full": {"first": 6, "heads": True},
}
#: Models measured and found unusable in post-training int8, with why (the converter refuses them).
NO_INT8: dict[str, str] = {
    "pose_landmark_full": "its world landmarks drift by 0.5-1.8 m in int8 whatever stays fp32 (docs/offline.md, "
                          "int8 landmark models)",
}


def fp32_nodes(model, first: int = 0, heads: bool = False, last: int = 0) -> tuple[str, ...]:
    """Names of the nodes of a converted ``onnx.ModelProto`` to keep in fp32: its first ``first`` and last
    ``last`` Conv nodes (graph order) and, with ``heads``, every Gemm (the fully connected heads)."""
    convs = [n.name for n in model.graph.node if n.op_type == "Conv"]
    keep = convs[:first] + (convs[-last:] if last else [])
    if heads:
        keep += [n.name for n in model.graph.node if n.op_type == "Gemm"]
    return tuple(dict.fromkeys(keep))


def quantize_static_int8(src: str | Path, dst: str | Path, calib: np.ndarray, fmt: str = "qoperator",
                         method: str = "minmax", exclude: tuple[str, ...] = (),
                         op_types: tuple[str, ...] = QUANT_OPS) -> Path:
    """Static int8 copy of a converted model (``src``, fp32 ONNX from :func:`convert_tflite`): per-channel
    int8 weights, uint8 activations whose ranges come from ``calib`` ((N, H, W, 3) float32 in [0, 1], the
    model's real inputs: :func:`record_model_inputs` / 255). ``fmt``: ``"qoperator"`` (QLinearConv ...
    nodes) or ``"qdq"``; ``method``: one of :data:`CALIBRATION_METHODS`; ``exclude``: node names kept in
    fp32 (e.g. the first conv, the heads). The input and output names and shapes stay the fp32 file's."""
    import tempfile

    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from instanthmr.training.quantize import _Reader

    if method not in CALIBRATION_METHODS:
        raise ValueError(f"method must be one of {CALIBRATION_METHODS}, got {method!r}")
    if fmt not in ("qoperator", "qdq"):
        raise ValueError(f"fmt must be 'qoperator' or 'qdq', got {fmt!r}")
    dst = Path(dst)
    model = onnx.load(str(src))
    feed = model.graph.input[0].name
    meta = {p.key: p.value for p in model.metadata_props}
    with tempfile.TemporaryDirectory(prefix="instanthmr_mpq_") as tmp:
        prepped, quantized = Path(tmp) / "prep.onnx", Path(tmp) / "quant.onnx"
        quant_pre_process(str(src), str(prepped), skip_symbolic_shape=True)
        feeds = [{feed: np.asarray(x, np.float32)[None]} for x in calib]
        calibrate = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                     "entropy": CalibrationMethod.Entropy}[method]
        quantize_static(str(prepped), str(quantized), _Reader(feeds), calibrate_method=calibrate,
                        quant_format=QuantFormat.QOperator if fmt == "qoperator" else QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=list(op_types), nodes_to_exclude=list(exclude),
                        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
        out = onnx.load(str(quantized))
    meta.update({"precision": f"int8-static-{fmt}-{method}", "calibration_crops": str(len(calib)),
                 "fp32_excluded": ",".join(exclude)})
    del out.metadata_props[:]
    onnx.helper.set_model_props(out, meta)
    save_model(out, dst)
    return dst


def save_model(model, path: str | Path) -> Path:
    """``model`` (an ``onnx.ModelProto``) written to ``path`` under a temporary name and renamed into place
    (:func:`~instanthmr.core.faults.atomic_path`: an interrupted run leaves no half-written file)."""
    import onnx

    with atomic_path(path) as part:
        onnx.save(model, str(part))
    return Path(path)


# --------------------------------------------------------------------------------------------------
# Drift of a converted / quantised model from LiteRT, in the units the pipeline reads
# --------------------------------------------------------------------------------------------------

def _scores(raw: np.ndarray) -> np.ndarray:
    from instanthmr.runtime.mediapipe.regions import score_output
    return np.array([score_output(r) for r in raw])


def landmark_drift(model: str, ref: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> dict[str, float]:
    """How far ``got`` (ONNX outputs, :func:`run_onnx`) lands from ``ref`` (LiteRT's, :func:`run_litert`)
    on the same crops, in what the pipeline reads. ``model``: ``"hand_landmark_full"`` (21 points) or
    ``"pose_landmark_full"`` (33 points, after MediaPipe's heatmap refinement, as the pipeline does).

    Keys: ``px_median`` / ``px_p95`` / ``px_max`` (2D landmark distance in crop pixels, 224 or 256 wide,
    over every point of the crops LiteRT says hold a hand / pose), ``world_mm_median`` / ``world_mm_p95``
    (the metric world landmarks, mm), ``presence_agree`` (fraction of ALL crops where both are on the same
    side of 0.5), for hands ``handedness_agree`` (same, over the crops with a hand) and ``handedness_agree_sure``
    (over those where LiteRT's handedness is below 0.2 or above 0.8), ``crops`` / ``present``."""
    from instanthmr.runtime.mediapipe.blazepose import refine_from_heatmap

    pres_ref, pres_got = _scores(ref["Identity_1"]), _scores(got["Identity_1"])
    keep = pres_ref >= 0.5
    n = int(keep.sum())
    if model == "hand_landmark_full":
        k, size = 21, 224
        xy_ref = ref["Identity"].reshape(-1, k, 3)[..., :2]
        xy_got = got["Identity"].reshape(-1, k, 3)[..., :2]
        world = ("Identity_3", k)
    elif model == "pose_landmark_full":
        k, size = 33, 256

        def refined(out, i):
            lms = out["Identity"][i].reshape(39, 5)
            return refine_from_heatmap(lms[:, :2] / size, out["Identity_3"][i][0])[:k] * size
        xy_ref = np.stack([refined(ref, i) for i in range(len(pres_ref))]) if len(pres_ref) else np.zeros((0, k, 2))
        xy_got = np.stack([refined(got, i) for i in range(len(pres_ref))]) if len(pres_ref) else np.zeros((0, k, 2))
        world = ("Identity_4", 39)
    else:
        raise ValueError(f"no drift measure for {model!r} (hand_landmark_full, pose_landmark_full)")
    px = np.linalg.norm(xy_got[keep] - xy_ref[keep], axis=-1).ravel()
    w_ref = ref[world[0]].reshape(-1, world[1], 3)[keep, :k]
    w_got = got[world[0]].reshape(-1, world[1], 3)[keep, :k]
    mm = 1000.0 * np.linalg.norm(w_got - w_ref, axis=-1).ravel()
    out = {"crops": len(pres_ref), "present": n,
           "px_median": float(np.median(px)) if n else 0.0, "px_p95": float(np.percentile(px, 95)) if n else 0.0,
           "px_max": float(px.max()) if n else 0.0,
           "world_mm_median": float(np.median(mm)) if n else 0.0,
           "world_mm_p95": float(np.percentile(mm, 95)) if n else 0.0,
           "presence_agree": float(np.mean((pres_ref >= 0.5) == (pres_got >= 0.5))) if len(pres_ref) else 1.0}
    if model == "hand_landmark_full":
        side_ref, side_got = _scores(ref["Identity_2"][keep]), _scores(got["Identity_2"][keep])
        same = (side_ref >= 0.5) == (side_got >= 0.5)
        sure = np.abs(side_ref - 0.5) > 0.3  # LiteRT confident: below 0.2 or above 0.8
        out["handedness_agree"] = float(np.mean(same)) if n else 1.0
        out["handedness_agree_sure"] = float(np.mean(same[sure])) if sure.any() else 1.0
    return out


def record_sources(sources, model: str, count: int | None = None) -> np.ndarray:
    """``model``'s real inputs over several ``sources`` (:func:`record_model_inputs`), as (N, H, W, 3) float32
    in [0, 1]; with ``count``, that many spread evenly over all of them (deterministic)."""
    crops = np.concatenate([record_model_inputs(s)[model] for s in sources])
    if count is not None and len(crops) > count:
        crops = crops[np.linspace(0, len(crops) - 1, count).round().astype(int)]
    return crops.astype(np.float32) / 255.0


def time_one_thread(tflite: str | Path, onnx_paths: dict[str, str | Path], x: np.ndarray, reps: int = 60,
                    rounds: int = 2, drop_outputs: tuple[str, ...] = ()) -> dict[str, list[tuple[float, float]]]:
    """Median wall and process-CPU milliseconds per call of LiteRT (``"litert"``) and each ONNX file (by the
    name given), one thread each, on the one input ``x`` ((1, H, W, 3) float32), run in turn for ``rounds``
    rounds of ``reps`` calls (after 5 warm-up calls), so every model sees the same machine load."""
    import time

    from instanthmr.runtime.mediapipe.models import open_model

    fns = {"litert": open_model(tflite, num_threads=1, drop_outputs=drop_outputs)}
    for name, path in onnx_paths.items():  # as the pipeline runs them (runtime.mediapipe.models)
        fns[name] = open_model(path, num_threads=1)
    out: dict[str, list[tuple[float, float]]] = {n: [] for n in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(5):
                fn(x)
            wall, cpu = [], []
            for _ in range(reps):
                t0, c0 = time.perf_counter(), time.process_time()
                fn(x)
                wall.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            out[name].append((1e3 * float(np.median(wall)), 1e3 * float(np.median(cpu))))
    return out
