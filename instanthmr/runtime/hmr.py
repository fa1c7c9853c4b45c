"""Run the InstantHMR network with ONNX Runtime: person boxes in, 3D poses out (numpy + OpenCV only).

>>> hmr = InstantHMR("models/instanthmr.onnx", device="auto")
>>> preds = hmr.predict(image_rgb, boxes_xyxy, scores)   # one HMRPrediction per box
>>> preds[0].joints_3d_cam.shape
(70, 3)

Frames and units: image points are full-image pixels (x right, y down); 3D points are metres in the camera
frame (x right, y down, z forward) of a pinhole camera with focal ``focal_length`` px and principal point at
the image centre. Which focal that is depends on the file (:meth:`InstantHMR.camera_focal`): the image
diagonal, 1.05 x the diagonal for the public exporter's ``cliff_focal`` files, or the one the caller gives
to a file that takes a focal.

Which files are read, and how (``InstantHMR.model_info`` holds the result):

* this project's exports (``tools/export_onnx.py``): metadata ``cliff_form`` (``pixel`` / ``focal``),
  ``input_size``, ``mean``/``std``, ``pixel_aspect`` + ``cam_head`` (a ``pixel``-form camera that can be
  re-targeted to the real image and focal), ``precision``, ``model_name``, ``train_step``;
* the public InstantHMR exporter (``tools/pth_to_onnx.py`` of mohamdev/InstantHMR): ``cliff_focal``
  (``true``: the ``angular`` CLIFF form, see :func:`~instanthmr.core.geometry.cliff_condition`),
  ``image_size`` (e.g. 288), ``arch`` (``legacy`` / ``optimized`` / ``correctives`` / ``mhr_only``),
  ``bound_scales``; an ``mhr_only`` graph has four outputs (no ``joints_3d``): its 3D keypoints come from the
  MHR body model (``mhr=``) applied to its ``mhr_params`` / ``shape_params``;
* files with **no metadata** (the released ``instanthmr.onnx`` on the Hub): ``pixel`` CLIFF form, ImageNet
  mean/std, the input size of the graph, ``cam_trans`` used as it is with the image diagonal as focal (the
  camera its teacher labels were made in), no user focal. The weights' precision is read from the graph
  itself (the released file holds fp16 weights: ``model_info["weights"] == "fp16"``).
"""

from __future__ import annotations

import json
import mmap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from instanthmr.body.mhr import NUM_MODEL_PARAMS, NUM_SHAPE
from instanthmr.core.errors import first_line
from instanthmr.core.geometry import (
    CROP_SCALE,
    CROP_SIZE,
    FILE_CLIFF_FORMS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    box_center_size,
    cliff_condition,
    condition_focal,
    crop_cam_to_full,
    crop_person,
    crop_to_image,
)
from instanthmr.runtime.session import ModelLoadError, OnnxModel, RuntimeOptions, precision_path

OUTPUT_NAMES: tuple[str, ...] = ("mhr_params", "shape_params", "cam_trans", "joints_2d", "joints_3d")
#: Outputs every InstantHMR file has; ``joints_3d`` is missing from the public exporter's ``mhr_only`` graphs.
REQUIRED_OUTPUTS: tuple[str, ...] = OUTPUT_NAMES[:4]
WHOLEBODY_OUTPUT = "joints_3d_wholebody"
#: ``arch`` values the public InstantHMR exporter stamps (others are kept as they are, for information).
ANCHOR_ARCHS = ("legacy", "optimized", "correctives", "mhr_only")
# Per-person shapes every InstantHMR file must have (the batch axis is checked separately).
_OUTPUT_SHAPES = {"mhr_params": (NUM_MODEL_PARAMS,), "shape_params": (NUM_SHAPE,), "cam_trans": (3,), "joints_2d": (70, 2),
                  "joints_3d": (70, 3), WHOLEBODY_OUTPUT: (133, 3)}


@dataclass
class HMRPrediction:
    """One person's 3D pose.

    Attributes:
        box: (4,) ``[x1, y1, x2, y2]`` pixels, the detection box the crop was cut from (``bbox`` is the same).
        score: detection confidence (1.0 when none was given).
        joints_3d_local: (70, 3) MHR70 joints, metres, body-centred, camera axes (x right, y down, z forward).
        joints_3d_cam: (70, 3) the same joints in the camera frame, metres (``joints_3d_local + cam_trans``).
        joints_2d: (70, 2) MHR70 joints in full-image pixels (from the network's 2D head, not a projection).
        cam_trans: (3,) metres, translation of the body centre in the camera frame.
        focal_length: px, focal length of the camera ``cam_trans`` refers to.
        principal_point: (2,) px, its principal point (the image centre).
        mhr_params: (204,) MHR model parameters (0:136 pose, 136:204 bone scales); ``None`` when the model that
            made this prediction does not predict them (the offline MediaPipe path).
        shape_params: (45,) MHR identity shape coefficients; ``None`` likewise.
        joints_3d_wholebody: (133, 3) COCO-WholeBody joints, metres, body-centred, camera axes; ``None`` unless
            the model has the wholebody head.
        joints_valid: (70,) bool, which MHR70 joints this model predicts; ``None`` means all of them. The
            values of an invalid joint are meaningless (NaN): every consumer (files, viewer, overlays,
            smoothing, BVH) leaves them out instead of showing numbers that look real.
        track_id: the person's ID across frames (``None`` outside tracking; never reused within a run).
        source: where the crop came from: ``"detector"``, ``"keypoints"`` (the track's previous joints) or
            ``"reused_box"`` (the last detection box, detector stride).
        confidence: in ``[0, 1]``: the detection score (what :class:`InstantHMR` sets), or for a keypoint-driven
            crop the agreement between the crop and the joints found in it; ``None`` means ``score``.
        landmarks: what an estimator that follows people by its own landmarks (the MediaPipe path) found for
            this person, from which it cuts the next video frame's region; ``None`` for the network.
        joints_3d_world: (70, 3) the joints in the world frame (metres, Y up, the floor at y = 0, root motion
            and foot lock applied); ``None`` unless :class:`~instanthmr.video.ground_stage.GroundStage` ran.
        contacts: ``{foot point: {"contact": bool, "confidence": float}}`` for ``left_heel``,
            ``left_big_toe``, ``left_ankle`` and the right ones (confidence in the state given, [0, 1]);
            ``None`` likewise.
        joints_observed: (70,) bool, set by the per-track body fit (:mod:`instanthmr.video.body_fit`): True
            where the estimator gave the joint, False where it comes from the fitted MHR body alone; ``None``
            when no body fit ran (then ``joints_valid`` says which joints exist).
    """

    box: np.ndarray
    score: float
    joints_3d_local: np.ndarray
    joints_3d_cam: np.ndarray
    joints_2d: np.ndarray
    cam_trans: np.ndarray
    focal_length: float
    principal_point: np.ndarray
    mhr_params: np.ndarray
    shape_params: np.ndarray | None
    joints_3d_wholebody: np.ndarray | None = None
    joints_valid: np.ndarray | None = None
    track_id: int | None = None
    source: str = "detector"
    confidence: float | None = None
    landmarks: object | None = field(default=None, repr=False, compare=False)
    joints_3d_world: np.ndarray | None = None
    contacts: dict | None = None
    joints_observed: np.ndarray | None = None

    @property
    def bbox(self) -> np.ndarray:
        """``box`` under the public InstantHMR API's name."""
        return self.box

    @property
    def valid_mask(self) -> np.ndarray:
        """(70,) bool: the joints this prediction really has (all of them unless ``joints_valid`` says otherwise)."""
        n = len(self.joints_2d)
        return np.ones(n, dtype=bool) if self.joints_valid is None else np.asarray(self.joints_valid, dtype=bool)


def _pixel_form_image_wh(pixel_aspect: float) -> tuple[float, float]:
    # Same assumption as instanthmr.training.model.heads.pixel_form_image_wh (kept in sync by tests/test_inference.py).
    return (1.0, 1.0 / pixel_aspect) if pixel_aspect >= 1.0 else (pixel_aspect, 1.0)


def weak_cam_from_pixel_form(cam_trans: np.ndarray, cliff: np.ndarray, pixel_aspect: float) -> np.ndarray:
    """Invert the network's ``pixel``-form camera (see ``instanthmr.training.model.heads``): ``cam_trans (N, 3)`` and the
    condition ``cliff (N, 3)`` -> the weak-perspective crop camera ``(s, tx, ty)`` ``(N, 3)``."""
    t = np.asarray(cam_trans, dtype=np.float64)
    c = np.asarray(cliff, dtype=np.float64)
    w, h = _pixel_form_image_wh(pixel_aspect)
    f = np.hypot(w, h)
    bs = 2.0 * f / np.maximum(t[:, 2], 1e-9)  # crop side * s in the assumed image's units
    s = bs / (CROP_SCALE * np.maximum(c[:, 2], 1e-4))
    tx = t[:, 0] - 2.0 * c[:, 0] * (w / 2.0) / bs
    ty = t[:, 1] - 2.0 * c[:, 1] * (h / 2.0) / bs
    return np.stack([s, tx, ty], axis=1)


# ------------------------------------------------------------------------------------------------------------
# What an ONNX file's weights are, without the onnx package (the run-time floors have only ONNX Runtime, which
# does not tell): a small protobuf walk over the file's initializers and Constant tensors.
# ------------------------------------------------------------------------------------------------------------
_ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 10: "float16", 11: "float64", 16: "bfloat16"}


def _varint(buf, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7


def _fields(buf, start: int, end: int):
    """``(field number, wire type, value)`` of one protobuf message in ``buf[start:end]``; length-delimited
    values are ``(start, end)`` offsets (nothing is copied)."""
    i = start
    while i < end:
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            n, i = _varint(buf, i)
            value, i = (i, i + n), i + n
        elif wire == 1:
            value, i = None, i + 8
        elif wire == 5:
            value, i = None, i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield field, wire, value


def _tensor_size(buf, start: int, end: int) -> tuple[str | None, int]:
    """``(dtype name, element count)`` of a TensorProto (dims: field 1, data_type: field 2)."""
    dtype, dims = None, []
    for field, wire, value in _fields(buf, start, end):
        if field == 1 and wire == 0:
            dims.append(value)
        elif field == 1 and wire == 2:  # packed dims
            i, stop = value
            while i < stop:
                d, i = _varint(buf, i)
                dims.append(d)
        elif field == 2 and wire == 0:
            dtype = _ONNX_DTYPES.get(value)
    return dtype, int(np.prod(dims)) if dims else 1


def onnx_weight_stats(onnx_path: str | Path) -> dict:
    """What an ONNX file's weights are: ``{"params": int, "by_dtype": {"float16": n, ...}, "dtype": "fp16" |
    "fp32" | "int8"}``, counting the floating-point and 8-bit elements of its initializers and Constant nodes
    (``dtype``: the kind holding most of them; ``int8`` for quantised files). Reads the file once through a
    memory map; raises ``ValueError`` for a file that is not an ONNX protobuf."""
    counts: dict[str, int] = {}
    with open(onnx_path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        graph = next(((v[0], v[1]) for k, w, v in _fields(buf, 0, len(buf)) if k == 7 and w == 2), None)
        if graph is None:
            raise ValueError(f"{onnx_path}: no ONNX graph found")
        for field, wire, value in _fields(buf, *graph):
            tensors = []
            if field == 5 and wire == 2:  # initializer
                tensors.append(value)
            elif field == 1 and wire == 2:  # node: a Constant's "value" attribute holds a tensor
                for nf, nw, nv in _fields(buf, *value):
                    if nf == 5 and nw == 2:  # attribute
                        tensors += [av for af, aw, av in _fields(buf, *nv) if af == 5 and aw == 2]
            for start, end in tensors:
                dtype, n = _tensor_size(buf, start, end)
                if dtype is not None:
                    counts[dtype] = counts.get(dtype, 0) + n
    total = sum(counts.values())
    floats = counts.get("float32", 0) + counts.get("float64", 0)
    half = counts.get("float16", 0) + counts.get("bfloat16", 0)
    int8 = counts.get("int8", 0) + counts.get("uint8", 0)
    dtype = "int8" if int8 > max(floats, half) else "fp16" if half > floats else "fp32"
    return {"params": total, "by_dtype": counts, "dtype": dtype}


def network_path(onnx_path: str | Path, precision: str = "fp32") -> Path:
    """The pose-network file to run for ``precision`` (``--fp16`` / ``--int8``), knowing that a file may hold
    fp16 weights already (the released ``instanthmr.onnx`` does): such a file runs as it is for ``fp16``
    (never converted again); for ``int8`` its ``<stem>.int8.onnx`` copy is used when one was made (quantising
    Conv only), else :class:`ModelLoadError` says why in one line. Otherwise as
    :func:`~instanthmr.runtime.session.precision_path`."""
    p = Path(onnx_path)
    if precision == "fp32" or not p.is_file():
        return precision_path(p, precision)
    try:
        weights = onnx_weight_stats(p)["dtype"]
    except (OSError, ValueError, IndexError):
        return precision_path(p, precision)  # unreadable: the session will say so
    if weights == precision:
        return p
    if weights == "fp16" and precision == "int8":
        q = p.with_name(f"{p.stem}.int8.onnx")
        if q.is_file():
            return q
        raise ModelLoadError(f"{p} holds fp16 weights already and has no int8 copy ({q.name}); int8 copies are made "
                             "from fp32 files (export one from the checkpoint, then tools/quantize_onnx.py), or run "
                             "this file as it is (on a GPU: --fp16)")
    return precision_path(p, precision)


def _as_detections(detections) -> tuple[np.ndarray, np.ndarray | None]:
    """Boxes ``(N, 4)`` and scores from the public InstantHMR API's ``[{"bbox": [...], "confidence": s}, ...]``,
    a :class:`~instanthmr.runtime.detector.Detections`, or plain boxes."""
    if hasattr(detections, "boxes") and hasattr(detections, "scores"):
        return np.asarray(detections.boxes, np.float64).reshape(-1, 4), np.asarray(detections.scores, np.float64)
    items = list(detections) if detections is not None else []
    if items and isinstance(items[0], dict):
        try:
            boxes = [d["bbox"] if "bbox" in d else d["box"] for d in items]
        except KeyError:
            raise ValueError("each detection needs a 'bbox' [x1, y1, x2, y2]") from None
        scores = [float(d.get("confidence", d.get("score", 1.0))) for d in items]
        return np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(scores, np.float64)
    return np.asarray(items, np.float64).reshape(-1, 4) if items else np.zeros((0, 4)), None


class InstantHMR(OnnxModel):
    """The InstantHMR network in ONNX Runtime, with its crop/CLIFF preprocessing and full-image outputs.

    ``device``: ``"auto"``, ``"cuda"``, ``"coreml"`` or ``"cpu"``; the matching provider is requested with a
    CPU fallback, and ``self.provider`` (also ``active_provider``) / ``self.device`` say what really runs.
    ``providers``: an explicit ONNX Runtime provider list instead (e.g. ``["TensorrtExecutionProvider",
    "CUDAExecutionProvider"]``; those not installed are skipped, the CPU is always last). ``max_persons``: the
    largest batch one call runs; more persons run in chunks. ``batch_persons=False`` runs one call per person.

    ``padding`` (here or in ``runtime``) picks the batch sizes: ``"buckets"`` (the default, ``"auto"``, on
    every device) pads ``m`` persons to the next power of two up to ``max_persons`` (1, 2, 4, 8: a few
    plans, all warmed up, at most 2x wasted work; one person never runs 8 crops); ``"fixed"`` always pads to
    ``max_persons`` (one plan), only when asked. With ``cuda_graph`` every bucket gets its own captured graph.

    Speed options: ``runtime`` (:class:`~instanthmr.runtime.session.RuntimeOptions` or a preset name) and
    the keyword arguments ``threads``, ``spinning``, ``io_binding``, ``cuda_graph``, ``padding`` that override
    it. fp16 and int8 are other files (:func:`network_path`).

    ``mhr``: the MHR body model (:class:`~instanthmr.body.mhr.MHRNumpy` with the MHR70 keypoint regressor, or
    the path of a converted ``.npz``) for ``mhr_only`` graphs, which have no ``joints_3d`` output; other files
    ignore it.

    Attributes: ``provider``, ``device``, ``cliff_form`` (``"pixel"``, ``"focal"`` or ``"angular"``),
    ``input_size``, ``has_wholebody``, ``has_joints_3d`` (``False``: keypoints from ``mhr``), ``model_info``
    (the file's metadata, parsed, plus ``weights``: the precision its weights really have; see the module
    docstring for files without metadata).
    """

    expected_inputs = ("image", "cliff_cond")
    expected_outputs = REQUIRED_OUTPUTS

    def __init__(self, onnx_path: str | Path, device: str = "auto", max_persons: int = 8, batch_persons: bool = True,
                 warmup: bool = True, padding: str | None = None, threads: int | None = None,
                 spinning: bool | None = None, io_binding: bool | None = None, cuda_graph: bool | None = None,
                 runtime: RuntimeOptions | str | None = None, providers: list | None = None, mhr=None):
        if max_persons < 1:
            raise ValueError(f"max_persons must be >= 1, got {max_persons}")
        rt = RuntimeOptions.resolve(runtime, padding=padding)  # validates padding
        super().__init__(onnx_path, device, rt, intra_op_threads=threads, spinning=spinning, io_binding=io_binding,
                         cuda_graph=cuda_graph, providers=providers)
        self.model_info = self._read_metadata()
        self.cliff_form: str = self.model_info["cliff_form"]
        self.input_size: int = self.model_info["input_size"]
        self.has_wholebody = WHOLEBODY_OUTPUT in self.output_names
        self.has_joints_3d = "joints_3d" in self.output_names
        self._outputs = [n for n in OUTPUT_NAMES if n in self.output_names] + (
            [WHOLEBODY_OUTPUT] if self.has_wholebody else [])
        self._check_shapes()
        self.mhr = None if self.has_joints_3d else self._open_mhr(mhr)
        # mean/std folded into one multiply-add on uint8 pixels
        mean = np.asarray(self.model_info["mean"], dtype=np.float32)
        std = np.asarray(self.model_info["std"], dtype=np.float32)
        self._scale = (1.0 / (255.0 * std)).astype(np.float32)
        self._offset = (-mean / std).astype(np.float32)
        self.batch_persons = batch_persons
        # a file exported with a fixed batch can only ever run that batch
        self.max_persons = self._fixed_batch or max_persons
        self.padding = "fixed" if rt.padding == "fixed" else "buckets"  # "auto" = buckets, on GPUs too
        if warmup:
            try:
                self.warmup()
            except Exception as e:  # a graph that loads but cannot run here (e.g. CUDA graph capture refused)
                levers = [n for n, on in (("I/O binding", self.io_binding), ("CUDA graph", self.cuda_graph)) if on]
                raise ModelLoadError(f"{self.path}: the first run failed on {self.provider}"
                                     f"{' with ' + ' + '.join(levers) if levers else ''}: {first_line(e)}"
                                     f"{' (try without those flags)' if levers else ''}") from None

    @property
    def name(self) -> str:
        """The network's name: its ``model_name`` metadata, else the file name."""
        return self.model_info.get("model_name") or self.path.name

    def describe(self) -> str:
        """One line for banners: which file runs, in which precision, with which levers, on which provider."""
        levers = [n for n, on in (("io binding", self.io_binding), ("CUDA graph", self.cuda_graph)) if on]
        return (f"{self.path} ({self.model_info['precision']}{', ' + ', '.join(levers) if levers else ''}) on "
                f"{self.provider}")

    def __repr__(self) -> str:
        return (f"InstantHMR({self.path.name}, provider={self.provider}, cliff_form={self.cliff_form}, "
                f"input={self.input_size}, weights={self.model_info['weights']}, batches={self.batch_sizes()}, "
                f"wholebody={self.has_wholebody}, joints_3d={'network' if self.has_joints_3d else 'mhr'})")

    # ------------------------------------------------------------------ loading
    def _read_metadata(self) -> dict:
        meta = self.metadata

        def bad(key, why=""):
            return ModelLoadError(f"{self.path}: bad metadata {key}={str(meta[key])[:80]!r}{why}")

        def parse(key, default, kind):
            if key not in meta:
                return default
            try:
                return kind(meta[key])
            except (ValueError, TypeError):
                raise bad(key) from None

        def flag(key):  # the public exporter writes "true" / "false"
            if key not in meta:
                return None
            v = str(meta[key]).strip().lower()
            if v not in ("true", "false", "1", "0"):
                raise bad(key, " (expected true or false)")
            return v in ("true", "1")

        cliff_focal = flag("cliff_focal")
        form = meta.get("cliff_form") or ("angular" if cliff_focal else "pixel")
        if form not in FILE_CLIFF_FORMS:
            raise ModelLoadError(f"{self.path}: unknown cliff_form {form!r} in metadata")
        if cliff_focal is not None and cliff_focal != (form == "angular"):
            raise ModelLoadError(f"{self.path}: metadata disagree: cliff_form={form} but cliff_focal="
                                 f"{meta['cliff_focal']}")
        sizes = {k: parse(k, None, int) for k in ("input_size", "image_size")}
        given = {v for v in sizes.values() if v is not None}
        if len(given) > 1:
            raise ModelLoadError(f"{self.path}: metadata disagree: input_size={sizes['input_size']} but "
                                 f"image_size={sizes['image_size']}")
        graph_side = next((i.shape[-1] for i in self.session.get_inputs() if i.name == "image"), None)
        size = given.pop() if given else graph_side if isinstance(graph_side, int) else CROP_SIZE
        try:
            stats = onnx_weight_stats(self.path)
        except (OSError, ValueError, IndexError):  # ORT read it, so this is only a parser limit: say unknown
            stats = {"params": None, "dtype": "unknown"}
        info = {
            "cliff_form": form,
            "input_size": int(size),
            "mean": parse("mean", list(IMAGENET_MEAN), json.loads),
            "std": parse("std", list(IMAGENET_STD), json.loads),
            "pixel_aspect": parse("pixel_aspect", None, float),
            "cam_head": meta.get("cam_head"),
            "train_step": parse("train_step", None, int),
            "version": meta.get("instanthmr_version"),
            "model_name": meta.get("model_name"),
            "arch": meta.get("arch"),  # the public exporter's architecture tag; None when not stamped
            "bound_scales": flag("bound_scales"),
            "weights": stats["dtype"],  # what the weights really are: fp32 / fp16 / int8
            "params": stats["params"],
            "precision": meta.get("precision") or stats["dtype"],
            "has_metadata": bool(meta),
        }
        if len(info["mean"]) != 3 or len(info["std"]) != 3:
            raise ModelLoadError(f"{self.path}: metadata mean/std must have 3 values")
        return info

    def _check_shapes(self) -> None:
        s = self.input_size
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        outputs = {o.name: o.shape for o in self.session.get_outputs()}
        wanted = {"image": (3, s, s), "cliff_cond": (3,)}
        wanted.update({n: _OUTPUT_SHAPES[n] for n in self._outputs})
        problems = []
        batch_dims = set()
        for name, per_person in wanted.items():
            shape = inputs.get(name, outputs.get(name))
            if len(shape) != len(per_person) + 1:
                problems.append(f"{name} has shape {shape}, expected (N, {', '.join(map(str, per_person))})")
                continue
            batch_dims.add(shape[0])
            for got, want in zip(shape[1:], per_person):
                if isinstance(got, int) and got != want:  # symbolic dims (strings/None) are accepted
                    problems.append(f"{name} has shape {shape}, expected (N, {', '.join(map(str, per_person))})")
                    break
        if problems:
            raise ModelLoadError(f"{self.path}: not an InstantHMR model: {'; '.join(problems)}")
        fixed = {b for b in batch_dims if isinstance(b, int)}
        self._fixed_batch = fixed.pop() if len(fixed) == 1 and all(isinstance(b, int) for b in batch_dims) else None

    def _open_mhr(self, mhr):
        """The MHR layer an ``mhr_only`` graph needs for its 3D keypoints (one clear line when it is missing)."""
        from instanthmr.body.mhr import MHRAssetError, MHRNumpy

        need = (f"{self.path} is an mhr_only graph (no joints_3d output): its 3D keypoints come from the MHR "
                "body model; pass --mhr-model PATH (a converted mhr_lod<N>.npz with the MHR70 keypoint regressor, "
                "tools/convert_mhr.py; Python: InstantHMR(..., mhr=PATH))")
        if mhr is None:
            raise ModelLoadError(need)
        if not isinstance(mhr, MHRNumpy):
            try:
                mhr = MHRNumpy.from_npz(mhr, frame="product")
            except MHRAssetError as e:
                raise ModelLoadError(f"{need}; {first_line(e)}") from None
        if mhr.frame != "product" or not mhr.has_keypoints:
            raise ModelLoadError(f"{need}; the MHR model given has "
                                 f"{'no keypoint regressor' if not mhr.has_keypoints else 'frame ' + mhr.frame}")
        return mhr

    @property
    def active_provider(self) -> str:
        """The execution provider that really runs (the public InstantHMR API's name for ``provider``)."""
        return self.provider

    @property
    def accepts_focal(self) -> bool:
        """Whether a caller's focal length can be honoured: the condition carries a focal (``focal`` /
        ``angular`` forms), or a ``pixel``-form camera can be re-targeted (this project's exports stamp how)."""
        return self.cliff_form != "pixel" or self._retargets

    @property
    def _retargets(self) -> bool:
        info = self.model_info
        return (self.cliff_form == "pixel" and info["cam_head"] == "cliff_weak_perspective"
                and info["pixel_aspect"] is not None)

    def camera_focal(self, image_wh, focal_length: float | None = None) -> float:
        """The focal length (px) of the camera ``cam_trans`` is reported in, for an image of ``image_wh``:
        ``focal_length`` when the file can use it, else what the file assumes (the image diagonal; 1.05 x that
        for the ``angular`` form). A focal the file cannot use raises ``ValueError`` (one line) rather than
        being reported beside a ``cam_trans`` computed for another focal."""
        if focal_length is not None:
            if not self.accepts_focal:
                why = "pixel CLIFF form" + ("" if self.model_info["has_metadata"] else ", no metadata")
                raise ValueError(f"{self.path.name} cannot use focal_length={float(focal_length):g}: its input has no "
                                 f"focal ({why}) and its cam_trans assumes f = the image diagonal "
                                 f"({condition_focal(image_wh):.0f} px here); leave the focal length unset")
            if not np.isfinite(focal_length) or focal_length <= 0:
                raise ValueError(f"focal_length must be a positive number of pixels, got {focal_length}")
        return condition_focal(image_wh, self.cliff_form, focal_length)

    def batch_sizes(self) -> list[int]:
        """The batch sizes this model is ever run with (what padding produces)."""
        if self._fixed_batch:
            return [self._fixed_batch]
        if not self.batch_persons:
            return [1]
        if self.padding == "fixed":
            return [self.max_persons]
        sizes, n = [], 1
        while n < self.max_persons:
            sizes.append(n)
            n *= 2
        return sizes + [self.max_persons]

    def _padded_size(self, m: int, padded_to: int | None = None) -> int:
        if self._fixed_batch:
            return self._fixed_batch
        n = next((n for n in self.batch_sizes() if n >= m), m)
        return max(n, int(padded_to or 0))

    def warmup(self, max_batch_size: int | None = None) -> None:
        """Run every batch size padding can produce (and ``max_batch_size``, for ``predict_batch(padded_to=)``),
        largest first, so no frame pays a first-run cost; with a CUDA graph, enough runs to capture each."""
        sizes = set(self.batch_sizes())
        if max_batch_size and not self._fixed_batch:
            sizes.add(int(max_batch_size))
        runs = 3 if self.cuda_graph else 1  # ONNX Runtime captures after a regular run, then replays
        for n in sorted(sizes, reverse=True):
            crops = np.zeros((n, 3, self.input_size, self.input_size), np.float32)
            cliff = np.tile(np.array([[0.0, 0.0, 0.5]], np.float32), (n, 1))
            for _ in range(runs):
                self.run({"image": crops, "cliff_cond": cliff}, self._outputs)

    # ------------------------------------------------------------------ stages
    def preprocess(self, image_rgb: np.ndarray, boxes, focal_length: float | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
        """Crops ``(N, 3, S, S)`` float32 normalised RGB (ImageNet unless the metadata says otherwise) and CLIFF
        conditions ``(N, 3)`` float32 in this file's form.

        ``image_rgb`` is ``(H, W, 3)`` uint8 RGB, ``boxes`` ``(N, 4)`` xyxy pixels; each crop is one affine warp
        of the square of side ``CROP_SCALE`` x ``max(box w, h)`` around the box centre, zero-padded past the
        border, resized to ``S = input_size``. The condition uses the tight box (not the square).
        """
        image = np.asarray(image_rgb)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
        boxes = self._check_boxes(boxes)
        h, w = image.shape[:2]
        s = self.input_size
        crops = np.empty((len(boxes), s, s, 3), np.uint8)
        for i, box in enumerate(boxes):
            crops[i] = crop_person(image, box, out_size=s)[0]
        # (N,S,S,3) uint8 -> normalised float, channels first: one multiply-add per channel straight into the
        # output (no float (N,S,S,3) temporaries and no transpose copy; 7x faster than the plain expression)
        x = np.empty((len(boxes), 3, s, s), np.float32)
        for c in range(3):
            np.multiply(crops[..., c], self._scale[c], out=x[:, c], casting="unsafe")
            x[:, c] += self._offset[c]
        focal = self.camera_focal((w, h), focal_length)
        cliff = cliff_condition(boxes, (w, h), focal=focal, form=self.cliff_form).reshape(-1, 3)
        return x, cliff.astype(np.float32)

    def __call__(self, crops: np.ndarray, cliff: np.ndarray, padded_to: int | None = None) -> dict[str, np.ndarray]:
        """Raw network outputs for ``N`` persons (each call padded to one of :meth:`batch_sizes`, or to at
        least ``padded_to``)."""
        crops = np.asarray(crops, np.float32)
        cliff = np.asarray(cliff, np.float32)
        n = len(crops)
        if len(cliff) != n:
            raise ValueError(f"{n} crops but {len(cliff)} CLIFF conditions")
        if n == 0:
            return {k: np.zeros((0,) + _OUTPUT_SHAPES[k], np.float32) for k in self._outputs}
        step = max(self.batch_sizes())
        if padded_to and not self._fixed_batch:
            step = max(step, int(padded_to))
        chunks = []
        for start in range(0, n, step):
            c, k = crops[start:start + step], cliff[start:start + step]
            m = len(c)
            pad_to = self._padded_size(m, padded_to)
            if m < pad_to:  # repeat the last person: padding rows stay valid inputs
                c = np.concatenate([c, np.repeat(c[-1:], pad_to - m, axis=0)])
                k = np.concatenate([k, np.repeat(k[-1:], pad_to - m, axis=0)])
            outs = self.run({"image": c, "cliff_cond": k}, self._outputs)
            chunks.append([o[:m] for o in outs])
        return {name: np.concatenate([c[i] for c in chunks]).astype(np.float32, copy=False)
                for i, name in enumerate(self._outputs)}

    def postprocess(self, outputs: dict[str, np.ndarray], boxes, image_wh, cliff: np.ndarray,
                    scores=None, focal_length: float | None = None) -> list[HMRPrediction]:
        """Raw outputs -> :class:`HMRPrediction` list in full-image pixels / camera metres."""
        boxes = self._check_boxes(boxes)
        n = len(boxes)
        scores = np.ones(n) if scores is None else np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(scores) != n:
            raise ValueError(f"{n} boxes but {len(scores)} scores")
        w, h = float(image_wh[0]), float(image_wh[1])
        focal = self.camera_focal((w, h), focal_length)
        pp = np.array([w / 2.0, h / 2.0])
        joints_2d = crop_to_image(outputs["joints_2d"], boxes).astype(np.float32)
        cam_trans = self._full_frame_translation(outputs["cam_trans"], cliff, boxes, (w, h), focal)
        local = outputs["joints_3d"] if self.has_joints_3d else self.mhr_keypoints(outputs)
        wb = outputs.get(WHOLEBODY_OUTPUT)
        return [HMRPrediction(
            box=boxes[i].astype(np.float32), score=float(scores[i]), joints_3d_local=local[i],
            joints_3d_cam=local[i] + cam_trans[i], joints_2d=joints_2d[i], cam_trans=cam_trans[i],
            focal_length=focal, principal_point=pp.copy(), mhr_params=outputs["mhr_params"][i],
            shape_params=outputs["shape_params"][i], joints_3d_wholebody=None if wb is None else wb[i],
            confidence=float(scores[i]))
            for i in range(n)]

    def mhr_keypoints(self, outputs: dict[str, np.ndarray]) -> np.ndarray:
        """``(N, 70, 3)`` MHR70 keypoints (metres, camera axes, body model origin) of the predicted
        ``mhr_params`` / ``shape_params``: the 3D joints of an ``mhr_only`` graph."""
        if self.mhr is None:
            raise ModelLoadError(f"{self.path.name}: no MHR body model to derive joints_3d from")
        return self.mhr(outputs["shape_params"], outputs["mhr_params"]).keypoints.astype(np.float32)

    def predict(self, image_rgb: np.ndarray, boxes, scores=None, focal_length: float | None = None,
                padded_to: int | None = None, *, landmarks: list | None = None) -> list[HMRPrediction]:
        """3D pose of every person box in one RGB frame (``boxes`` (N, 4) xyxy pixels; empty -> ``[]``).

        ``focal_length`` (px): the camera's, for files that can use it (:attr:`accepts_focal`; others raise
        ``ValueError``); default: what the file assumes (:meth:`camera_focal`). The principal point is the
        image centre. ``padded_to``: run at least this batch size (fixed padding, when asked). ``landmarks``
        (a detector's, per box): the network crops from the boxes alone and does not use them.
        """
        boxes = self._check_boxes(boxes)
        if len(boxes) == 0:
            return []
        h, w = np.asarray(image_rgb).shape[:2]
        self.camera_focal((w, h), focal_length)  # a focal this file cannot use fails before any work
        crops, cliff = self.preprocess(image_rgb, boxes, focal_length)
        return self.postprocess(self(crops, cliff, padded_to), boxes, (w, h), cliff, scores, focal_length)

    def predict_batch(self, image_rgb: np.ndarray, detections, padded_to: int | None = None,
                      focal_length: float | None = None) -> list[HMRPrediction]:
        """The public InstantHMR API's spelling: ``detections`` as ``[{"bbox": [x1, y1, x2, y2], "confidence":
        s}, ...]`` (or :class:`~instanthmr.runtime.detector.Detections`, or ``(N, 4)`` boxes), all persons
        in one call padded to at least ``padded_to``; ``[]`` for no detections."""
        boxes, scores = _as_detections(detections)
        return self.predict(image_rgb, boxes, scores, focal_length, padded_to=padded_to)

    # ------------------------------------------------------------------ helpers
    def _full_frame_translation(self, cam_trans, cliff, boxes, image_wh, focal) -> np.ndarray:
        """The network's ``cam_trans``, re-targeted to the real image when it used an assumption.

        A ``pixel``-form network of this project assumes a ``pixel_aspect`` image with the default focal (the
        condition lacks both). Its weak-perspective camera is recovered exactly and re-applied with the true
        image size and focal. Files without that metadata (the released model: its cam_trans is already the
        full-frame translation for the image-diagonal focal) and the ``focal`` / ``angular`` forms (the focal
        is in the condition) are used as they are.
        """
        cam_trans = np.asarray(cam_trans, np.float32)
        if not self._retargets:
            return cam_trans
        weak = weak_cam_from_pixel_form(cam_trans, cliff, self.model_info["pixel_aspect"])
        cx, cy, b = box_center_size(boxes)
        t = crop_cam_to_full(weak, np.stack([cx, cy], axis=1), b * CROP_SCALE, image_wh, focal)
        return t.astype(np.float32)

    @staticmethod
    def _check_boxes(boxes) -> np.ndarray:
        b = np.asarray(boxes if boxes is not None else np.zeros((0, 4)), dtype=np.float64)
        if b.size == 0:
            return np.zeros((0, 4))
        b = b.reshape(-1, 4) if b.ndim == 1 and b.size == 4 else b
        if b.ndim != 2 or b.shape[1] != 4:
            raise ValueError(f"boxes must be (N, 4) [x1, y1, x2, y2] pixels, got shape {b.shape}")
        bad = ~np.isfinite(b).all(axis=1) | (np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) < 1.0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"box {i} {b[i].tolist()} is empty or not finite")
        return b
