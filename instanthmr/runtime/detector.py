"""Person detectors behind one small interface.

Every detector is a callable ``detector(image_rgb, frame_index=None) -> Detections`` that returns persons only,
sorted by descending score, at most ``max_persons`` of them, with ``score > confidence``. Three
implementations ship:

* :class:`RFDETRDetector`: Roboflow's RF-DETR through the ``rfdetr`` package (torch). Variants
  ``nano | small | medium | base | large``.
* :class:`OnnxDetector`: an RF-DETR graph exported once with ``tools/export_detector.py`` and run by ONNX
  Runtime with numpy/OpenCV pre- and post-processing, so a deployed pipeline needs no torch.
* :class:`BoxFileDetector`: precomputed boxes read from a JSON file, one entry per frame.

:func:`create_detector` picks one from a name or a file path in a registry (timm style): an implementation
subclasses :class:`PersonDetector` (``detect``) and registers a builder with :func:`register_detector` in its own
module; a name whose module is elsewhere is listed in :data:`DETECTOR_MODULES` and imported on first use
(``"mediapipe"``), so this base never imports an implementation.

RF-DETR weights
---------------
The COCO checkpoints are looked up, in order, at ``--detector-weights PATH``, ``models/<file>`` in this
repository, and the ``rfdetr`` cache folder ``$RF_HOME`` (default ``~/.roboflow/models``); when none has it,
``rfdetr`` downloads it into that cache on first use. Offline, the failed download becomes one
:class:`~instanthmr.runtime.session.ModelLoadError` naming the file, where to put it and its URL.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from instanthmr.core.errors import first_line
from instanthmr.core.geometry import IMAGENET_MEAN, IMAGENET_STD, box_iou, usable_boxes
from instanthmr.core.paths import MODELS_DIR
from instanthmr.runtime.session import ModelLoadError, OnnxModel, RuntimeOptions, precision_path

#: A detection overlapping a followed person's box by more than this IoU is that person, not a newcomer.
NEWCOMER_IOU = 0.5
#: RF-DETR's COCO label space keeps the original sparse COCO category ids, where person is 1.
COCO_PERSON_ID = 1
_MEAN = np.asarray(IMAGENET_MEAN, dtype=np.float32)  # float32: the preprocessing math stays in float32
_STD = np.asarray(IMAGENET_STD, dtype=np.float32)


@dataclass(frozen=True)
class RFDETRVariant:
    """One RF-DETR size: its ``rfdetr`` class, checkpoint file name, download URL and input resolution."""

    class_name: str
    checkpoint: str
    url: str
    resolution: int


_GCS = "https://storage.googleapis.com/rfdetr"
RFDETR_VARIANTS: dict[str, RFDETRVariant] = {
    "nano": RFDETRVariant("RFDETRNano", "rf-detr-nano.pth", f"{_GCS}/nano_coco/checkpoint_best_regular.pth", 384),
    "small": RFDETRVariant("RFDETRSmall", "rf-detr-small.pth", f"{_GCS}/small_coco/checkpoint_best_regular.pth",
                           512),
    "medium": RFDETRVariant("RFDETRMedium", "rf-detr-medium.pth",
                            f"{_GCS}/medium_coco/checkpoint_best_regular.pth", 576),
    "base": RFDETRVariant("RFDETRBase", "rf-detr-base.pth", f"{_GCS}/rf-detr-base-coco.pth", 560),
    "large": RFDETRVariant("RFDETRLarge", "rf-detr-large-2026.pth", f"{_GCS}/rf-detr-large-2026.pth", 704),
}


@dataclass
class Detections:
    """Persons found in one image.

    ``boxes``: ``(N, 4)`` float32 ``[x1, y1, x2, y2]`` in full-image pixels. ``scores``: ``(N,)`` float32 in
    ``[0, 1]``. Rows are sorted by descending score. ``landmarks``: ``None``, or one entry per box of what the
    detector found besides it, handed to the estimator with the boxes (the MediaPipe detector: each person's
    BlazePose landmarks, so they are not computed twice; an entry may be ``None``).
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: list | None = None

    def __post_init__(self):
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        if len(self.boxes) != len(self.scores):
            raise ValueError(f"{len(self.boxes)} boxes but {len(self.scores)} scores")
        if self.landmarks is not None:
            self.landmarks = list(self.landmarks)
            if len(self.landmarks) != len(self.scores):
                raise ValueError(f"{len(self.boxes)} boxes but {len(self.landmarks)} landmark entries")

    def take(self, index) -> "Detections":
        """The rows ``index`` (a slice, integer indices or a boolean mask), landmarks kept with their boxes."""
        rows = np.arange(len(self))[index]
        lms = None if self.landmarks is None else [self.landmarks[i] for i in rows]
        return Detections(self.boxes[rows], self.scores[rows], lms)

    def __len__(self) -> int:
        return len(self.scores)

    def __iter__(self):
        """The reference implementation's form, one dict per person: ``{"bbox": (4,) float32 xyxy px,
        "confidence": float}`` (``for d in detector.detect(image)`` works as it does there)."""
        return iter([{"bbox": b, "confidence": float(s)} for b, s in zip(self.boxes, self.scores)])

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))

    @classmethod
    def select(cls, boxes, scores, confidence: float = 0.0, max_persons: int | None = None,
               landmarks: list | None = None) -> "Detections":
        """Keep ``score > confidence``, sort by descending score (stable), keep the first ``max_persons``."""
        dets = cls(boxes, scores, landmarks)
        keep = np.flatnonzero(dets.scores > confidence)
        keep = keep[np.argsort(-dets.scores[keep], kind="stable")]
        if max_persons is not None:
            keep = keep[:max(0, int(max_persons))]
        return dets.take(keep)


class PersonDetector(ABC):
    """Base of all person detectors: ``detector(image_rgb, frame_index=None) -> Detections``.

    ``image_rgb`` is ``(H, W, 3)`` uint8 RGB. ``frame_index`` is the source frame number; image detectors
    ignore it, detectors that replay stored results (:class:`BoxFileDetector`) use it.
    """

    name = "detector"

    def __init__(self, confidence: float = 0.5, max_persons: int | None = None):
        self.confidence = float(confidence)
        self.max_persons = max_persons

    @abstractmethod
    def detect(self, image_rgb: np.ndarray, frame_index: int | None = None) -> Detections:
        """Persons in ``image_rgb`` (filtered, sorted and capped by the caller, :meth:`__call__`)."""

    def __call__(self, image_rgb: np.ndarray, frame_index: int | None = None) -> Detections:
        det = self.detect(image_rgb, frame_index)
        return Detections.select(det.boxes, det.scores, self.confidence, self.max_persons, det.landmarks)

    def detect_new(self, image_rgb: np.ndarray, known_boxes, frame_index: int | None = None) -> Detections:
        """Persons not already followed: ``known_boxes`` ``(K, 4)`` xyxy px are the people tracked; a usable
        detection overlapping one of them by IoU > :data:`NEWCOMER_IOU` is theirs and left out. A detector that
        can skip known people itself (MediaPipe's blanks them out) overrides this."""
        dets = self(image_rgb, frame_index)
        known = np.asarray(known_boxes, np.float32).reshape(-1, 4)
        keep = usable_boxes(dets.boxes)
        if len(known):
            keep &= box_iou(dets.boxes, known).max(axis=1) <= NEWCOMER_IOU
        return dets if keep.all() else dets.take(keep)

    def detection_parts(self, image_wh) -> int:
        """Into how many parts one look for newcomers can be spread, one per frame (:meth:`detect_new_part`),
        on an image of ``image_wh`` ``(W, H)`` px; 1 (the default): it runs whole."""
        return 1

    def detect_new_part(self, image_rgb: np.ndarray, known_boxes, part: int,
                        frame_index: int | None = None) -> Detections:
        """Newcomers found by part ``part`` (``0 <= part < detection_parts``) of a look spread over frames, so
        that no frame pays for a whole detection (the tracking runs one part a frame after a stream's first
        frame, people followed or not); the parts together look where :meth:`detect_new` does. The default has
        one part, :meth:`detect_new`."""
        return self.detect_new(image_rgb, known_boxes, frame_index)

    def reset(self) -> None:
        """Forget per-stream state (a new video starts)."""


# --------------------------------------------------------------------------------------------------
# Registry (timm style): implementations register a builder under a name or a file suffix
# --------------------------------------------------------------------------------------------------

#: ``builder(source, *, variant, confidence, max_persons, device, weights, resolution, runtime, pretrained)``
#: -> :class:`PersonDetector`; ``source`` is the name or file path asked for, ``runtime`` a RuntimeOptions.
DetectorBuilder = Callable[..., PersonDetector]
_DETECTORS: dict[str, DetectorBuilder] = {}
#: Registered names whose implementation lives in another module, imported on first use: this base module
#: never imports an implementation (they import it to register themselves).
DETECTOR_MODULES: dict[str, str] = {"mediapipe": "instanthmr.runtime.mediapipe.detector"}


def register_detector(*names: str) -> Callable[[DetectorBuilder], DetectorBuilder]:
    """Decorator: register a builder under ``names`` (lower case; a file suffix such as ``".onnx"`` counts)."""

    def add(builder: DetectorBuilder) -> DetectorBuilder:
        for n in names:
            _DETECTORS[n.lower()] = builder
        return builder

    return add


def list_detectors() -> list[str]:
    """The registered detector names (file suffixes left out)."""
    return sorted(n for n in {*_DETECTORS, *DETECTOR_MODULES} if not n.startswith("."))


def detector_builder(name: str) -> DetectorBuilder | None:
    """The builder registered under ``name``, importing its module first when it lives elsewhere."""
    if name not in _DETECTORS and name in DETECTOR_MODULES:
        importlib.import_module(DETECTOR_MODULES[name])
    return _DETECTORS.get(name)


# --------------------------------------------------------------------------------------------------
# RF-DETR (torch, rfdetr package)
# --------------------------------------------------------------------------------------------------

def rfdetr_cache_dir() -> Path:
    """The folder ``rfdetr`` downloads checkpoints into: ``$RF_HOME`` (or ``$ROBOFLOW_HOME``), default
    ``~/.roboflow/models`` (read without importing ``rfdetr``)."""
    d = os.environ.get("RF_HOME") or os.environ.get("ROBOFLOW_HOME") or "~/.roboflow/models"
    return Path(d).expanduser().resolve()


def _variant(variant: str) -> RFDETRVariant:
    if variant not in RFDETR_VARIANTS:
        raise ValueError(f"unknown RF-DETR variant {variant!r}; expected one of {list(RFDETR_VARIANTS)}")
    return RFDETR_VARIANTS[variant]


def resolve_rfdetr_weights(variant: str, weights: str | Path | None = None) -> tuple[Path, bool]:
    """``(path, present)`` of the checkpoint for ``variant``.

    An explicit ``weights`` path must exist. Otherwise ``models/<file>`` then the rfdetr cache are tried;
    when neither has it the cache path is returned with ``present=False`` (rfdetr will download there).
    """
    v = _variant(variant)
    if weights is not None:
        p = Path(weights).expanduser()
        if not p.is_file():
            raise ModelLoadError(f"RF-DETR weights file not found: {p} (from --detector-weights)")
        return p, True
    for cand in (MODELS_DIR / v.checkpoint, rfdetr_cache_dir() / v.checkpoint):
        if cand.is_file():
            return cand, True
    return rfdetr_cache_dir() / v.checkpoint, False


def _reachable(url: str, timeout_s: float = 3.0) -> bool:
    """Whether the host of ``url`` (or the proxy for it) accepts a TCP connection within ``timeout_s``, DNS
    included (the one probe, :func:`instanthmr.runtime.hub.reachable`)."""
    from instanthmr.runtime.hub import reachable

    return reachable(url, timeout_s) is None


def missing_weights_message(variant: str, reason: str = "") -> str:
    v = _variant(variant)
    why = f" ({reason[:90]}{'...' if len(reason) > 90 else ''})" if reason else ""
    return (f"RF-DETR {variant} weights '{v.checkpoint}' are not on this machine and could not be downloaded{why}. "
            f"Download {v.url} and save it as {MODELS_DIR / v.checkpoint} or {rfdetr_cache_dir() / v.checkpoint} "
            f"(rfdetr cache, $RF_HOME), or pass --detector-weights PATH (or use --detector mediapipe / an exported "
            f".onnx / a boxes .json).")


def _torch_device(device: str) -> str:
    import torch

    device = (device or "auto").lower()
    if device in ("auto", "cuda") and torch.cuda.is_available():
        return "cuda"
    if device in ("auto", "coreml", "mps") and getattr(torch.backends, "mps", None) is not None \
            and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _quiet_rfdetr():
    """rfdetr logs training-oriented warnings on every construction and the first predict; keep them off
    the user's console (errors still show)."""
    logging.getLogger("rf-detr").setLevel(logging.ERROR)


class RFDETRDetector(PersonDetector):
    """RF-DETR through the ``rfdetr`` package (torch).

    ``weights``: a checkpoint path; ``None`` looks in ``models/`` and the rfdetr cache and downloads there
    when missing. ``pretrained=False`` builds random weights (no file needed; for tests and exports of the
    plumbing only). ``half``: run the network in float16 (for GPUs; it also runs, slower, on a CPU); inputs
    are cast to it and outputs read back as float32.
    """

    name = "rfdetr"

    def __init__(self, variant: str = "nano", confidence: float = 0.5, max_persons: int | None = None,
                 weights: str | Path | None = None, device: str = "auto", pretrained: bool = True,
                 person_class_id: int = COCO_PERSON_ID, resolution: int | None = None, half: bool = False):
        super().__init__(confidence, max_persons)
        spec = _variant(variant)
        self.half = bool(half)
        self.variant = variant
        self.person_class_id = int(person_class_id)
        self.weights: Path | None = None
        kwargs: dict = {"pretrain_weights": None}
        if resolution is not None:  # rfdetr rescales its position embeddings to the new input size
            kwargs["resolution"] = int(resolution)
        if pretrained:
            self.weights, present = resolve_rfdetr_weights(variant, weights)
            kwargs["pretrain_weights"] = str(self.weights)
            if not present:
                # A firewall that drops packets would leave rfdetr's download waiting: ask first, briefly.
                if not _reachable(spec.url):
                    raise ModelLoadError(missing_weights_message(variant, "download host unreachable"))
                self.weights.parent.mkdir(parents=True, exist_ok=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import rfdetr

                _quiet_rfdetr()
                self.torch_device = _torch_device(device)
                kwargs["device"] = self.torch_device
                self.model = getattr(rfdetr, spec.class_name)(**kwargs)
        except ModelLoadError:
            raise
        except ImportError as e:
            raise ModelLoadError(f"the rfdetr package is needed for the torch RF-DETR detector ({first_line(e)}); "
                                 "pip install rfdetr, or use an exported detector: --detector PATH.onnx") from None
        except Exception as e:  # requests errors, torch.load errors, size mismatches: one clear line
            if pretrained and self.weights is not None and not self.weights.is_file():
                raise ModelLoadError(missing_weights_message(variant, first_line(e))) from None
            raise ModelLoadError(f"cannot load RF-DETR {variant} from {self.weights or 'random init'}: "
                                 f"{first_line(e)}") from None
        self.resolution = int(self.model.model.resolution)
        if self.half:
            self.model.model.model.half()

    def preprocess(self, image_rgb: np.ndarray):
        """``(1, 3, R, R)`` tensor on the model's device, the same transform as :func:`preprocess_rfdetr` (and
        as ``rfdetr.predict``: float bilinear resize without antialias, ImageNet mean/std), done on the device."""
        import torch
        import torch.nn.functional as F

        if image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image_rgb.shape}")
        x = torch.from_numpy(np.ascontiguousarray(image_rgb)).to(self.torch_device)
        x = x.permute(2, 0, 1)[None].float() / 255.0
        x = F.interpolate(x, size=(self.resolution, self.resolution), mode="bilinear", align_corners=False,
                          antialias=False)
        mean = torch.as_tensor(_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.as_tensor(_STD, device=x.device).view(1, 3, 1, 1)
        x = (x - mean) / std
        return x.half() if self.half else x

    def raw_forward(self, image_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw network outputs for one image: ``(boxes (Q, 4) normalised cxcywh, logits (Q, C))``."""
        import torch

        net = self.model.model.model
        net.eval()  # in train mode the decoder returns all 13 query groups
        with torch.no_grad():
            out = net(self.preprocess(image_rgb))
        if isinstance(out, dict):
            boxes, logits = out["pred_boxes"], out["pred_logits"]
        else:
            boxes, logits = out[0], out[1]
        return boxes[0].float().cpu().numpy(), logits[0].float().cpu().numpy()

    def detect(self, image_rgb: np.ndarray, frame_index: int | None = None) -> Detections:
        # Decode the person class per query from the raw outputs (not rfdetr's predict(), whose top-300 over
        # every (query, class) pair can crowd persons out): the ONNX path decodes the same way, so both
        # backends give the same boxes.
        boxes, logits = self.raw_forward(image_rgb)
        xyxy, scores = decode_rfdetr(boxes, logits, (image_rgb.shape[1], image_rgb.shape[0]), self.person_class_id)
        return Detections(xyxy, scores)


# --------------------------------------------------------------------------------------------------
# RF-DETR exported to ONNX (no torch)
# --------------------------------------------------------------------------------------------------

def preprocess_rfdetr(image_rgb: np.ndarray, resolution: int) -> np.ndarray:
    """``(1, 3, R, R)`` float32 input of an RF-DETR graph: bilinear resize to a square (no letterbox, as
    ``rfdetr`` does), scale to [0, 1], ImageNet mean/std."""
    import cv2

    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image_rgb.shape}")
    # Resize in float like rfdetr's torchvision resize (antialias off); cv2 INTER_LINEAR uses the same
    # half-pixel sampling, so torch and ONNX see the same pixels. The /255 and mean/std are linear, so they
    # are applied after the resize, on R x R pixels instead of the full frame (same values to float rounding).
    x = cv2.resize(image_rgb.astype(np.float32), (resolution, resolution), interpolation=cv2.INTER_LINEAR)
    out = np.empty((1, 3, resolution, resolution), np.float32)
    for c in range(3):
        np.multiply(x[..., c], 1.0 / (255.0 * _STD[c]), out=out[0, c])
        out[0, c] -= _MEAN[c] / _STD[c]
    return out


def decode_rfdetr(boxes_cxcywh: np.ndarray, logits: np.ndarray, image_wh, class_id: int = COCO_PERSON_ID,
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per-query boxes in pixels (clipped to the image) and sigmoid scores of one class, unsorted."""
    w, h = float(image_wh[0]), float(image_wh[1])
    b = np.asarray(boxes_cxcywh, dtype=np.float32)
    cx, cy, bw, bh = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    xyxy = np.stack([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h], axis=-1)
    xyxy = np.clip(xyxy, 0.0, [w, h, w, h]).astype(np.float32)
    scores = 1.0 / (1.0 + np.exp(-np.asarray(logits[:, class_id], dtype=np.float32)))
    return xyxy, scores


#: Output names of RF-DETR ONNX files, ``(boxes, logits)``: the ``rfdetr`` package's own exporter (and
#: ``tools/export_detector.py``), and the raw model's names other exporters keep (e.g. the Hub's
#: ``PierreMarieCurie/rf-detr-onnx`` files the public InstantHMR code points to).
RFDETR_ONNX_OUTPUTS = (("dets", "labels"), ("pred_boxes", "pred_logits"))


class OnnxDetector(OnnxModel, PersonDetector):
    """An RF-DETR graph run by ONNX Runtime: one image input ``(1, 3, R, R)`` (any name; ``input`` in the
    ``rfdetr`` export) and outputs ``dets`` / ``labels`` (``tools/export_detector.py``, the ``rfdetr`` package's
    export) or ``pred_boxes`` / ``pred_logits`` (other exporters): ``(1, Q, 4)`` normalised cxcywh boxes and
    ``(1, Q, C)`` class logits. The input side ``R`` comes from the graph (or its ``resolution`` metadata)."""

    name = "rfdetr-onnx"

    def __init__(self, onnx_path: str | Path, confidence: float = 0.5, max_persons: int | None = None,
                 device: str = "auto", person_class_id: int = COCO_PERSON_ID,
                 runtime: RuntimeOptions | str | None = None):
        OnnxModel.__init__(self, onnx_path, device, runtime)
        PersonDetector.__init__(self, confidence, max_persons)
        self.person_class_id = int(person_class_id)
        self._outputs = next((list(pair) for pair in RFDETR_ONNX_OUTPUTS if set(pair) <= set(self.output_names)), None)
        inputs = self.session.get_inputs()
        if self._outputs is None or len(inputs) != 1:
            raise ModelLoadError(f"{self.path}: not an RF-DETR export: missing inputs or outputs (expected one image "
                                 f"input and outputs {' or '.join('/'.join(p) for p in RFDETR_ONNX_OUTPUTS)}; the "
                                 f"file has inputs {self.input_names}, outputs {self.output_names})")
        self._input = inputs[0].name
        shape = inputs[0].shape
        side = [d for d in shape[-2:] if isinstance(d, int)] if len(shape) == 4 else []
        if len(shape) != 4 or len(set(side)) > 1 or (shape[1] != 3 and isinstance(shape[1], int)):
            raise ModelLoadError(f"{self.path}: the detector input must be (1, 3, R, R), got {shape}")
        res = side[0] if side else self.metadata.get("resolution")
        if res is None:
            raise ModelLoadError(f"{self.path}: cannot tell the detector input resolution (input shape {shape}, no "
                                 "'resolution' metadata); export it with a fixed input size")
        self.resolution = int(res)
        self.variant = self.metadata.get("variant", "unknown")

    def preprocess(self, image_rgb: np.ndarray) -> np.ndarray:
        return preprocess_rfdetr(image_rgb, self.resolution)

    def raw_forward(self, image_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(boxes (Q, 4) normalised cxcywh, logits (Q, C))`` for one image."""
        boxes, logits = self.run({self._input: self.preprocess(image_rgb)}, self._outputs)
        return boxes[0], logits[0]

    def postprocess(self, boxes: np.ndarray, logits: np.ndarray, image_wh) -> Detections:
        xyxy, scores = decode_rfdetr(boxes, logits, image_wh, self.person_class_id)
        return Detections(xyxy, scores)

    def detect(self, image_rgb: np.ndarray, frame_index: int | None = None) -> Detections:
        boxes, logits = self.raw_forward(image_rgb)
        return self.postprocess(boxes, logits, (image_rgb.shape[1], image_rgb.shape[0]))


# --------------------------------------------------------------------------------------------------
# Precomputed boxes
# --------------------------------------------------------------------------------------------------

class BoxFileDetector(PersonDetector):
    """Replays boxes stored in a JSON file, keyed by source frame index.

    Accepted layouts (boxes in pixels ``[x1, y1, x2, y2]``, optional 5th number = score):

    * ``{"frames": [{"frame_index": 0, "boxes": [[...], ...], "scores": [...]}, ...]}``;
    * the ``--save-json`` output of ``demo.py`` (``frames[i].persons[j].box`` / ``.score``);
    * a plain list, one entry per frame, each a list of boxes.

    Frames absent from the file have no persons. Called without ``frame_index``, it counts calls.
    """

    name = "boxes"

    def __init__(self, path: str | Path, confidence: float = 0.0, max_persons: int | None = None):
        super().__init__(confidence, max_persons)
        self.path = Path(path)
        self.frames = self._load(self.path)
        self._next = 0

    @staticmethod
    def _load(path: Path) -> dict[int, Detections]:
        if not path.is_file():
            raise ModelLoadError(f"box file not found: {path}")
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ModelLoadError(f"{path}: not a readable JSON box file ({first_line(e)})") from None
        entries = data.get("frames") if isinstance(data, dict) else data
        if not isinstance(entries, list):
            raise ModelLoadError(f"{path}: expected a list of frames or {{'frames': [...]}} at the top level")
        frames: dict[int, Detections] = {}
        try:
            for pos, entry in enumerate(entries):
                idx = pos
                if isinstance(entry, dict):
                    idx = int(entry.get("frame_index", entry.get("frame", pos)))
                    if "persons" in entry:
                        boxes = [p["box"] for p in entry["persons"]]
                        scores = [p.get("score", 1.0) for p in entry["persons"]]
                    else:
                        boxes = entry.get("boxes", [])
                        scores = entry.get("scores")
                else:
                    boxes, scores = entry, None
                if len(boxes) == 0:
                    frames[idx] = Detections.empty()
                    continue
                b = np.asarray(boxes, dtype=np.float32).reshape(len(boxes), -1)
                if b.shape[1] not in (4, 5):
                    raise ValueError(f"frame {idx}: boxes need 4 numbers (or 5 with a score), got {b.shape[1]}")
                if scores is None:
                    scores = b[:, 4] if b.shape[1] == 5 else np.ones(len(b), np.float32)
                BoxFileDetector._check_boxes(path, idx, b[:, :4])
                frames[idx] = Detections(b[:, :4], scores)
        except (TypeError, ValueError, KeyError) as e:
            raise ModelLoadError(f"{path}: malformed box file ({first_line(e)})") from None
        return frames

    @staticmethod
    def _check_boxes(path: Path, index: int, boxes: np.ndarray) -> None:
        """Real boxes only: finite, x1 < x2 and y1 < y2 (the pipeline would silently drop the others)."""
        b = np.asarray(boxes, np.float64)
        bad = ~np.isfinite(b).all(axis=1) | (b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1])
        if bad.any():
            raise ModelLoadError(f"box file {path}: frame {index}: box {b[bad][0].tolist()} is "
                                 f"{'not finite' if not np.isfinite(b[bad][0]).all() else 'inverted'} (boxes are "
                                 "[x1, y1, x2, y2] pixels with x1 < x2, y1 < y2); fix the file")

    def reset(self) -> None:
        self._next = 0

    def detect(self, image_rgb: np.ndarray, frame_index: int | None = None) -> Detections:
        if frame_index is None:
            frame_index = self._next
        self._next = frame_index + 1
        return self.frames.get(int(frame_index), Detections.empty())


# --------------------------------------------------------------------------------------------------
# Factory
# --------------------------------------------------------------------------------------------------

def create_detector(detector: "str | Path | PersonDetector" = "rfdetr", *, variant: str = "nano",
                    confidence: float = 0.5, max_persons: int | None = None, device: str = "auto",
                    weights: str | Path | None = None, resolution: int | None = None,
                    runtime: RuntimeOptions | str | None = None, pretrained: bool = True,
                    fallback: bool = True) -> PersonDetector:
    """A detector from a registered name or a file: ``"rfdetr"`` (torch), ``"mediapipe"``, a ``.onnx`` RF-DETR
    export, or a ``.json`` box file (:func:`list_detectors`; the registry looks names up, file paths by suffix).

    A :class:`PersonDetector` instance is returned unchanged. With ``fallback`` (default), ``"rfdetr"`` whose
    checkpoint is absent and cannot be downloaded becomes the offline MediaPipe detector when its models are
    installed (a warning says so); otherwise the RF-DETR error is raised. ``pretrained=False``: random RF-DETR
    weights (tests, plumbing).

    ``resolution``: the RF-DETR input side (the torch detector is built at it; an ``.onnx`` file must have been
    exported at it: ``tools/export_detector.py --resolution``). ``runtime`` (:class:`RuntimeOptions` or a preset
    name): an ``.onnx`` detector runs its ``precision`` copy (``<stem>.fp16.onnx`` / ``<stem>.int8.onnx`` from
    ``tools/quantize_onnx.py``) with its ``threads`` / ``spinning``; the torch RF-DETR runs in float16 for
    ``fp16`` and ignores ``int8``; the other detectors ignore it. The network-only options (``io_binding``,
    ``cuda_graph``, ``padding``) are not applied to detectors.
    """
    if isinstance(detector, PersonDetector):
        return detector
    s = str(detector)
    key = s.lower() if s.lower() in list_detectors() else Path(s).suffix.lower()
    build = detector_builder(key)
    if build is None:
        raise ValueError(f"unknown detector {s!r}: expected one of {list_detectors()} (names), a .onnx export or a "
                         ".json box file")
    rt = RuntimeOptions.resolve(runtime).replace(io_binding=False, cuda_graph=False)
    try:
        return build(s, variant=variant, confidence=confidence, max_persons=max_persons, device=device,
                     weights=weights, resolution=resolution, runtime=rt, pretrained=pretrained)
    except ModelLoadError as e:
        if not (key == "rfdetr" and fallback and pretrained and weights is None):
            raise
        try:  # RF-DETR's checkpoint cannot be had: the offline detector, when its models are here
            det = create_detector("mediapipe", confidence=confidence, max_persons=max_persons, fallback=False)
        except ModelLoadError:
            raise e from None
        logging.getLogger("instanthmr").warning(
            "%s; using the offline MediaPipe person detector instead (weaker; see docs/offline.md)",
            str(e).split(". ")[0])
        return det


@register_detector("rfdetr", "rf-detr")
def _build_rfdetr(source, *, variant, confidence, max_persons, device, weights, resolution, runtime, pretrained):
    return RFDETRDetector(variant, confidence, max_persons, weights=weights, device=device, pretrained=pretrained,
                          resolution=resolution, half=runtime.precision == "fp16")


@register_detector(".onnx")
def _build_onnx(source, *, variant, confidence, max_persons, device, resolution, runtime, **_):
    det = OnnxDetector(precision_path(source, runtime.precision), confidence, max_persons, device=device,
                       runtime=runtime)
    if resolution is not None and det.resolution != int(resolution):
        raise ModelLoadError(f"{det.path} takes {det.resolution}x{det.resolution} input, not the requested "
                             f"{resolution}; export one with: python tools/export_detector.py --variant "
                             f"{det.variant if det.variant != 'unknown' else variant} --resolution {resolution}")
    return det


@register_detector(".json")
def _build_box_file(source, *, confidence, max_persons, **_):
    return BoxFileDetector(source, confidence, max_persons)
