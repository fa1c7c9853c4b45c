"""Run the InstantHMR network with ONNX Runtime: person boxes in, 3D poses out (numpy + OpenCV only).

>>> hmr = InstantHMR("models/instanthmr.onnx", device="auto")
>>> preds = hmr.predict(image_rgb, boxes_xyxy, scores)   # one HMRPrediction per box
>>> preds[0].joints_3d_cam.shape
(70, 3)

Frames and units: image points are full-image pixels (x right, y down); 3D points are metres in the camera
frame (x right, y down, z forward) of a pinhole camera with focal ``focal_length`` px (default: image
diagonal) and principal point at the image centre.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from instanthmr.core.errors import first_line
from instanthmr.core.geometry import (
    CROP_SCALE,
    CROP_SIZE,
    box_center_size,
    cliff_condition,
    crop_cam_to_full,
    crop_person,
    crop_to_image,
    default_focal,
)
from instanthmr.runtime.session import ModelLoadError, OnnxModel

OUTPUT_NAMES: tuple[str, ...] = ("mhr_params", "shape_params", "cam_trans", "joints_2d", "joints_3d")
WHOLEBODY_OUTPUT = "joints_3d_wholebody"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Per-person shapes every InstantHMR file must have (the batch axis is checked separately).
_OUTPUT_SHAPES = {"mhr_params": (204,), "shape_params": (45,), "cam_trans": (3,), "joints_2d": (70, 2),
                  "joints_3d": (70, 3), WHOLEBODY_OUTPUT: (133, 3)}


@dataclass
class HMRPrediction:
    """One person's 3D pose.

    Attributes:
        box: (4,) ``[x1, y1, x2, y2]`` pixels, the detection box the crop was cut from.
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
        confidence: in ``[0, 1]``: the detection score, or for a keypoint-driven crop the agreement between the
            crop and the joints found in it; ``None`` means ``score``.
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


class InstantHMR(OnnxModel):
    """The InstantHMR network in ONNX Runtime, with its crop/CLIFF preprocessing and full-image outputs.

    ``device``: ``"auto"``, ``"cuda"``, ``"coreml"`` or ``"cpu"``; the matching provider is requested with a
    CPU fallback, and ``self.provider`` / ``self.device`` say what really runs. ``max_persons``: all crops of
    a frame go through one call padded to a fixed batch (so the runtime never re-plans); more persons run
    in chunks of ``max_persons``. ``batch_persons=False`` runs one call per person instead.

    ``padding`` picks the fixed batch sizes: ``"fixed"`` always pads to ``max_persons`` (one plan; what GPUs
    want), ``"buckets"`` pads to the next power of two up to ``max_persons`` (1, 2, 4, 8: a few plans, all
    warmed up, at most 2x wasted work; on a CPU padding 1 person to 8 costs 8x), ``"auto"`` (default) is
    ``"fixed"`` on GPU providers and ``"buckets"`` on the CPU.

    Speed options (see :class:`~instanthmr.runtime.session.OnnxModel`): ``threads`` (ONNX Runtime intra-op threads, 0 =
    its default), ``spinning`` (``False``: idle threads sleep), ``io_binding``, ``cuda_graph`` (CUDA only; forces
    ``padding="fixed"``: one captured graph). fp16 and int8 are other files (``tools/quantize_onnx.py``, see
    :func:`~instanthmr.runtime.session.precision_path`).

    Attributes: ``provider``, ``device``, ``cliff_form`` (``"pixel"`` or ``"focal"``), ``has_wholebody``,
    ``model_info`` (the file's metadata, parsed; files without metadata, like the released instanthmr.onnx, are
    read as ``pixel`` form with ImageNet normalisation).
    """

    expected_inputs = ("image", "cliff_cond")
    expected_outputs = OUTPUT_NAMES

    def __init__(self, onnx_path: str | Path, device: str = "auto", max_persons: int = 8, batch_persons: bool = True,
                 warmup: bool = True, padding: str = "auto", threads: int = 0, spinning: bool | None = None,
                 io_binding: bool = False, cuda_graph: bool = False):
        if max_persons < 1:
            raise ValueError(f"max_persons must be >= 1, got {max_persons}")
        if padding not in ("auto", "fixed", "buckets"):
            raise ValueError(f"padding must be 'auto', 'fixed' or 'buckets', got {padding!r}")
        super().__init__(onnx_path, device, intra_op_threads=threads, spinning=spinning, io_binding=io_binding,
                         cuda_graph=cuda_graph)
        self.model_info = self._read_metadata()
        self.cliff_form: str = self.model_info["cliff_form"]
        self.input_size: int = self.model_info["input_size"]
        self.has_wholebody = WHOLEBODY_OUTPUT in self.output_names
        self._outputs = list(OUTPUT_NAMES) + ([WHOLEBODY_OUTPUT] if self.has_wholebody else [])
        self._check_shapes()
        # mean/std folded into one multiply-add on uint8 pixels
        mean = np.asarray(self.model_info["mean"], dtype=np.float32)
        std = np.asarray(self.model_info["std"], dtype=np.float32)
        self._scale = (1.0 / (255.0 * std)).astype(np.float32)
        self._offset = (-mean / std).astype(np.float32)
        self.batch_persons = batch_persons
        # a file exported with a fixed batch can only ever run that batch
        self.max_persons = self._fixed_batch or max_persons
        if padding == "auto" or self.cuda_graph:  # a captured CUDA graph replays one shape only
            padding = "buckets" if self.provider == "CPUExecutionProvider" and not self.cuda_graph else "fixed"
        self.padding = padding
        if warmup:
            try:
                self.warmup()
            except Exception as e:  # a graph that loads but cannot run here (e.g. CUDA graph capture refused)
                levers = [n for n, on in (("I/O binding", self.io_binding), ("CUDA graph", self.cuda_graph)) if on]
                raise ModelLoadError(f"{self.path}: the first run failed on {self.provider}"
                                     f"{' with ' + ' + '.join(levers) if levers else ''}: {first_line(e)}"
                                     f"{' (try without those flags)' if levers else ''}") from None

    def __repr__(self) -> str:
        return (f"InstantHMR({self.path.name}, provider={self.provider}, cliff_form={self.cliff_form}, "
                f"batches={self.batch_sizes()}, wholebody={self.has_wholebody})")

    # ------------------------------------------------------------------ loading
    def _read_metadata(self) -> dict:
        meta = self.metadata

        def parse(key, default, kind):
            if key not in meta:
                return default
            try:
                return kind(meta[key])
            except (ValueError, TypeError):
                raise ModelLoadError(f"{self.path}: bad metadata {key}={meta[key][:80]!r}") from None

        info = {
            "cliff_form": meta.get("cliff_form", "pixel"),
            "input_size": parse("input_size", CROP_SIZE, int),
            "mean": parse("mean", list(IMAGENET_MEAN), json.loads),
            "std": parse("std", list(IMAGENET_STD), json.loads),
            "pixel_aspect": parse("pixel_aspect", None, float),
            "cam_head": meta.get("cam_head"),
            "train_step": parse("train_step", None, int),
            "version": meta.get("instanthmr_version"),
            "model_name": meta.get("model_name"),
            "precision": meta.get("precision", "fp32"),
            "has_metadata": bool(meta),
        }
        if info["cliff_form"] not in ("pixel", "focal"):
            raise ModelLoadError(f"{self.path}: unknown cliff_form {info['cliff_form']!r} in metadata")
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

    def _padded_size(self, m: int) -> int:
        return next(n for n in self.batch_sizes() if n >= m)

    def warmup(self) -> None:
        """Run every batch size padding can produce once, largest first, so no frame pays a first-run cost."""
        for n in sorted(self.batch_sizes(), reverse=True):
            crops = np.zeros((n, 3, self.input_size, self.input_size), np.float32)
            cliff = np.tile(np.array([[0.0, 0.0, 0.5]], np.float32), (n, 1))
            self.run({"image": crops, "cliff_cond": cliff}, self._outputs)

    # ------------------------------------------------------------------ stages
    def preprocess(self, image_rgb: np.ndarray, boxes, focal_length: float | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
        """Crops ``(N, 3, S, S)`` float32 ImageNet-normalised RGB and CLIFF conditions ``(N, 3)`` float32.

        ``image_rgb`` is ``(H, W, 3)`` uint8 RGB, ``boxes`` ``(N, 4)`` xyxy pixels; each crop is one affine warp
        (the square ``CROP_SCALE`` x box region, zero-padded past the border).
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
        cliff = cliff_condition(boxes, (w, h), focal=focal_length, form=self.cliff_form).reshape(-1, 3)
        return x, cliff.astype(np.float32)

    def __call__(self, crops: np.ndarray, cliff: np.ndarray) -> dict[str, np.ndarray]:
        """Raw network outputs for ``N`` persons (each call padded to one of :meth:`batch_sizes`)."""
        crops = np.asarray(crops, np.float32)
        cliff = np.asarray(cliff, np.float32)
        n = len(crops)
        if len(cliff) != n:
            raise ValueError(f"{n} crops but {len(cliff)} CLIFF conditions")
        if n == 0:
            return {k: np.zeros((0,) + _OUTPUT_SHAPES[k], np.float32) for k in self._outputs}
        step = max(self.batch_sizes())
        chunks = []
        for start in range(0, n, step):
            c, k = crops[start:start + step], cliff[start:start + step]
            m = len(c)
            pad_to = self._padded_size(m)
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
        focal = default_focal((w, h)) if focal_length is None else float(focal_length)
        pp = np.array([w / 2.0, h / 2.0])
        joints_2d = crop_to_image(outputs["joints_2d"], boxes).astype(np.float32)
        cam_trans = self._full_frame_translation(outputs["cam_trans"], cliff, boxes, (w, h), focal)
        local = outputs["joints_3d"]
        wb = outputs.get(WHOLEBODY_OUTPUT)
        return [HMRPrediction(
            box=boxes[i].astype(np.float32), score=float(scores[i]), joints_3d_local=local[i],
            joints_3d_cam=local[i] + cam_trans[i], joints_2d=joints_2d[i], cam_trans=cam_trans[i],
            focal_length=focal, principal_point=pp.copy(), mhr_params=outputs["mhr_params"][i],
            shape_params=outputs["shape_params"][i], joints_3d_wholebody=None if wb is None else wb[i])
            for i in range(n)]

    def predict(self, image_rgb: np.ndarray, boxes, scores=None, focal_length: float | None = None
                ) -> list[HMRPrediction]:
        """3D pose of every person box in one RGB frame (``boxes`` (N, 4) xyxy pixels; empty -> ``[]``).

        ``focal_length`` (px) defaults to the image diagonal; the principal point is the image centre.
        """
        boxes = self._check_boxes(boxes)
        if len(boxes) == 0:
            return []
        h, w = np.asarray(image_rgb).shape[:2]
        crops, cliff = self.preprocess(image_rgb, boxes, focal_length)
        return self.postprocess(self(crops, cliff), boxes, (w, h), cliff, scores, focal_length)

    # ------------------------------------------------------------------ helpers
    def _full_frame_translation(self, cam_trans, cliff, boxes, image_wh, focal) -> np.ndarray:
        """The network's ``cam_trans``, re-targeted to the real image when it used an assumption.

        A ``pixel``-form network assumes a ``pixel_aspect`` image with the default focal (the condition lacks
        both). Its weak-perspective camera is recovered exactly and re-applied with the true image size and
        focal. Files without that metadata (the released model) and ``focal`` form are used as they are.
        """
        cam_trans = np.asarray(cam_trans, np.float32)
        aspect = self.model_info["pixel_aspect"]
        if self.cliff_form != "pixel" or self.model_info["cam_head"] != "cliff_weak_perspective" or aspect is None:
            return cam_trans
        weak = weak_cam_from_pixel_form(cam_trans, cliff, aspect)
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
