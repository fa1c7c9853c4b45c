"""MediaPipe's pretrained BlazePose / hand models, run offline without the MediaPipe package.

Why this module exists: on a machine with no internet there is no RF-DETR checkpoint and no released
``instanthmr.onnx``, but the ``mediapipe==0.10.21`` wheel on PyPI bundles real pretrained TFLite models.
That wheel needs ``numpy<2`` (the main environment has numpy 2), so instead of importing MediaPipe we take
three ``.tflite`` files out of it (:func:`fetch_mediapipe_models`) and run them with the ``ai-edge-litert``
interpreter (numpy-2 ready, no torch), re-implementing the few graph calculators around them:

* ``pose_detection.tflite``: SSD person detector, 224x224 letterboxed input in [-1, 1], 2254 anchors, each
  detection carries 4 alignment keypoints (0 mid-hip, 1 full-body size/rotation point, 2 mid-shoulder,
  3 upper-body size/rotation point).
* ``pose_landmark_full.tflite``: 33 BlazePose landmarks (+ 6 auxiliary) on a rotated 256x256 ROI in [0, 1],
  with per-landmark visibility/presence and metric "world" landmarks (metres, origin between the hips).
* ``hand_landmark_full.tflite``: 21 hand landmarks on a rotated 224x224 ROI in [0, 1] + metric world
  landmarks (metres, origin near the hand centre).

Coordinates: every ROI is a square in full-image pixels ``Roi(cx, cy, side, rotation)`` (OpenCV pixel-index
convention, x right, y down; ``rotation`` in radians, positive turns the ROI's "up" towards +x). Outputs are
full-image pixels; world landmarks are metres in camera-aligned axes (x right, y down, z away from the
camera), already rotated back by the ROI rotation as MediaPipe does.

Parameters (anchors, decoding scales, thresholds, ROI scales) are MediaPipe 0.10.x's graph options for
``pose_detection_cpu``, ``pose_landmark_by_roi_cpu`` and ``hand_landmark_cpu``.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from instanthmr.core.geometry import box_iou
from instanthmr.core.paths import MODELS_DIR
from instanthmr.runtime.session import ModelLoadError

MEDIAPIPE_VERSION = "0.10.21"  # the last release whose wheel bundles the legacy solution models
LITERT_REQUIREMENT = "ai-edge-litert>=2.0"

#: name -> (path inside the wheel, sha256 of the file)
MODEL_FILES: dict[str, tuple[str, str]] = {
    "pose_detection": ("mediapipe/modules/pose_detection/pose_detection.tflite",
                       "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c"),
    "pose_landmark_full": ("mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
                           "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f"),
    "hand_landmark_full": ("mediapipe/modules/hand_landmark/hand_landmark_full.tflite",
                           "11c272b891e1a99ab034208e23937a8008388cf11ed2a9d776ed3d01d0ba00e3"),
}
# Any platform's wheel carries the same model files: ask for one fixed wheel so the download works from
# every host (macOS, Windows, Python versions MediaPipe never built for).
_WHEEL_PLATFORM = ("manylinux_2_28_x86_64", "3.11")


class MediaPipeModelError(ModelLoadError):
    """A MediaPipe model file is missing or corrupt, or the TFLite interpreter is not installed (a
    :class:`~instanthmr.runtime.session.ModelLoadError`, as for every model file)."""


def mediapipe_models_dir() -> Path:
    """Where the extracted ``.tflite`` files live: ``$INSTANTHMR_MEDIAPIPE`` or ``models/mediapipe``."""
    return Path(os.environ.get("INSTANTHMR_MEDIAPIPE", MODELS_DIR / "mediapipe"))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_path(name: str, models_dir: str | Path | None = None) -> Path:
    """Path of one model file, checked to exist; the error says how to get it."""
    if name not in MODEL_FILES:
        raise KeyError(f"unknown MediaPipe model {name!r}; known: {sorted(MODEL_FILES)}")
    path = Path(models_dir or mediapipe_models_dir()) / Path(MODEL_FILES[name][0]).name
    if not path.is_file():
        raise MediaPipeModelError(f"MediaPipe model not found: {path} (get it with: python tools/fetch_models.py "
                                  f"mediapipe, which extracts it from the mediapipe=={MEDIAPIPE_VERSION} wheel)")
    return path


def mediapipe_models_present(models_dir: str | Path | None = None) -> bool:
    d = Path(models_dir or mediapipe_models_dir())
    return all((d / Path(p).name).is_file() for p, _ in MODEL_FILES.values())


def extract_mediapipe_models(wheel: str | Path, dest: str | Path | None = None) -> list[Path]:
    """Copy the model files out of a downloaded ``mediapipe`` wheel into ``dest``, verifying checksums."""
    wheel, dest = Path(wheel), Path(dest or mediapipe_models_dir())
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    try:
        zf = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as e:
        raise MediaPipeModelError(f"{wheel}: not a readable wheel ({e})") from None
    with zf:
        for name, (member, digest) in MODEL_FILES.items():
            target = dest / Path(member).name
            tmp = target.with_name(target.name + ".tmp")
            try:
                with zf.open(member) as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            except KeyError:
                raise MediaPipeModelError(f"{wheel}: has no {member} (use mediapipe=={MEDIAPIPE_VERSION})") from None
            if _sha256(tmp) != digest:
                tmp.unlink(missing_ok=True)
                raise MediaPipeModelError(f"{wheel}: {member} does not match the expected checksum")
            os.replace(tmp, target)
            out.append(target)
    return out


def fetch_mediapipe_models(dest: str | Path | None = None, python: str | None = None,
                           force: bool = False) -> Path:
    """Get the pretrained models from the ``mediapipe==0.10.21`` wheel on PyPI (pip only, no hub).

    Downloads the wheel with ``pip download --no-deps`` (nothing is installed), extracts the three
    ``.tflite`` files into ``dest`` (default :func:`mediapipe_models_dir`) and checks their SHA-256.
    Returns ``dest``. Raises :class:`MediaPipeModelError` with pip's last line when the download fails.
    """
    dest = Path(dest or mediapipe_models_dir())
    if mediapipe_models_present(dest) and not force:
        return dest
    plat, pyver = _WHEEL_PLATFORM
    with tempfile.TemporaryDirectory(prefix="mediapipe-wheel-") as tmp:
        cmd = [python or sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--platform", plat, "--python-version", pyver, "-d", tmp, f"mediapipe=={MEDIAPIPE_VERSION}"]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise MediaPipeModelError(f"could not run pip to download mediapipe=={MEDIAPIPE_VERSION}: {e}") from None
        wheels = sorted(Path(tmp).glob("mediapipe-*.whl"))
        if res.returncode != 0 or not wheels:
            lines = [ln for ln in (res.stderr or res.stdout or "").strip().splitlines() if ln.strip()]
            why = lines[-1].strip() if lines else f"exit {res.returncode}"
            raise MediaPipeModelError(f"pip could not download mediapipe=={MEDIAPIPE_VERSION} "
                                      f"(needed for the offline models): {why}")
        extract_mediapipe_models(wheels[0], dest)
    return dest


# --------------------------------------------------------------------------------------------------
# TFLite runner
# --------------------------------------------------------------------------------------------------

def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise MediaPipeModelError(f"the MediaPipe models need the TFLite interpreter: pip install "
                                  f"'{LITERT_REQUIREMENT}'") from None
    return Interpreter


class TFLiteModel:
    """One ``.tflite`` file on the LiteRT CPU interpreter; outputs are returned in the model's name order
    (``Identity``, ``Identity_1``, ...), which is the order MediaPipe's graphs index them by."""

    def __init__(self, path: str | Path, num_threads: int | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise MediaPipeModelError(f"model file not found: {self.path}")
        Interpreter = _interpreter_class()
        threads = num_threads or min(4, os.cpu_count() or 1)
        try:
            with _quiet_stderr():  # LiteRT prints an INFO line about its XNNPACK delegate on every load
                self.interpreter = Interpreter(model_path=str(self.path), num_threads=threads)
                self.interpreter.allocate_tensors()
        except Exception as e:  # the interpreter raises ValueError/RuntimeError for bad files
            raise MediaPipeModelError(f"{self.path}: not a loadable TFLite model ({str(e).strip()[:200]})") from None
        self.input = self.interpreter.get_input_details()[0]
        outs = self.interpreter.get_output_details()
        self.outputs = sorted(outs, key=lambda o: _output_order(o["name"]))
        self.input_size = int(self.input["shape"][1])

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        self.interpreter.set_tensor(self.input["index"], np.ascontiguousarray(x, np.float32))
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(o["index"]) for o in self.outputs]


class _quiet_stderr:
    """Silence the C-level stderr (file descriptor 2) inside a ``with`` block; Python exceptions still
    propagate with their messages."""

    def __enter__(self):
        try:
            sys.stderr.flush()
            self._saved = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        except OSError:  # no real fd 2 (some embedded consoles): nothing to silence
            self._saved = None
        return self

    def __exit__(self, *exc):
        if self._saved is not None:
            os.dup2(self._saved, 2)
            os.close(self._saved)
        return False


def _output_order(name: str) -> tuple[int, str]:
    base, _, num = name.rpartition("_")
    return (int(num), name) if base and num.isdigit() else (0, name)


# --------------------------------------------------------------------------------------------------
# Regions of interest (rotated squares) and crops
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Roi:
    """A rotated square region: centre ``(cx, cy)`` and ``side`` in full-image pixels, ``rotation`` in
    radians (the angle by which the crop's up-axis is turned clockwise in the image)."""

    cx: float
    cy: float
    side: float
    rotation: float = 0.0

    def crop_to_image(self, size: int) -> np.ndarray:
        """``(2, 3)`` affine from crop *continuous* coordinates (``0..size``, as the models output them)
        to full-image pixel-index coordinates."""
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        k = self.side / size
        a = np.array([[c * k, -s * k], [s * k, c * k]])
        b = np.array([self.cx, self.cy]) - a @ np.array([size / 2.0, size / 2.0])
        return np.concatenate([a, b[:, None]], axis=1)

    def to_image(self, points_crop: np.ndarray, size: int) -> np.ndarray:
        """Crop coordinates ``(..., 2)`` (model output units, ``0..size``) -> image pixels."""
        m = self.crop_to_image(size)
        return np.asarray(points_crop, np.float64) @ m[:, :2].T + m[:, 2]

    def rotate_vectors(self, v: np.ndarray) -> np.ndarray:
        """Rotate ``(..., 3)`` vectors about z by the ROI rotation (world landmarks back to camera axes)."""
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        v = np.asarray(v, np.float64)
        out = v.copy()
        out[..., 0] = c * v[..., 0] - s * v[..., 1]
        out[..., 1] = s * v[..., 0] + c * v[..., 1]
        return out

    def corners(self) -> np.ndarray:
        """The 4 corners in image pixels (for drawing / tests)."""
        return self.to_image(np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float64), 1)


def crop_roi(image: np.ndarray, roi: Roi, size: int, replicate: bool = False) -> np.ndarray:
    """Resample ``roi`` of an RGB ``uint8`` image into a ``(size, size, 3)`` crop, one ``cv2.warpAffine``.

    Outside the image: black (``replicate=False``: MediaPipe's person detector letterboxes with zeros) or
    the border pixels repeated (``replicate=True``: what MediaPipe's landmark graphs do, the default border
    of its ImageToTensorCalculator; it matters when a crop reaches far past the picture, e.g. a
    head-and-shoulders portrait whose body crop is mostly below the image)."""
    import cv2

    # MediaPipe's ImageToTensorCalculator maps the rect's corners to crop coordinates 0 and ``size`` and warps
    # pixel indices with that map: crop pixel i samples image pixel ``m @ i``, indices standing for
    # coordinates on both sides. Doing the same matters: the models were trained on it, and the +0.5
    # pixel-centre convention (tried first) moved the landmarks 2-30 px and the world landmarks ~20-60 mm
    # away from mediapipe's own on real photos.
    m = roi.crop_to_image(size)
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE if replicate else cv2.BORDER_CONSTANT, borderValue=0)


def normalize_radians(a: float) -> float:
    return a - 2.0 * math.pi * math.floor((a + math.pi) / (2.0 * math.pi))


def roi_from_alignment(center, end, scale: float, target_angle: float = math.pi / 2) -> Roi:
    """MediaPipe's alignment-points rectangle: centre at ``center``, side ``2 |end - center| * scale``,
    rotated so that ``center -> end`` points up."""
    center, end = np.asarray(center, np.float64), np.asarray(end, np.float64)
    d = end - center
    rot = normalize_radians(target_angle - math.atan2(-d[1], d[0]))
    return Roi(float(center[0]), float(center[1]), float(2.0 * np.hypot(*d) * scale), rot)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, np.float64), -100.0, 100.0)))


# --------------------------------------------------------------------------------------------------
# Pose detection (SSD + weighted NMS)
# --------------------------------------------------------------------------------------------------

def ssd_anchors(input_size: int, strides: tuple[int, ...], num_layers: int | None = None) -> np.ndarray:
    """``(N, 2)`` anchor centres in [0, 1] for MediaPipe's fixed-size SSD anchors (aspect ratio 1 plus the
    interpolated scale: 2 anchors per layer; consecutive layers of the same stride share a grid)."""
    centres = []
    layer, n = 0, num_layers or len(strides)
    while layer < n:
        count, stride = 0, strides[layer]
        while layer < n and strides[layer] == stride:
            count += 2
            layer += 1
        fm = int(math.ceil(input_size / stride))
        ys, xs = np.meshgrid((np.arange(fm) + 0.5) / fm, (np.arange(fm) + 0.5) / fm, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], -1)
        centres.append(np.repeat(grid, count, axis=0))
    return np.concatenate(centres).astype(np.float32)


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou_threshold: float):
    """MediaPipe's WEIGHTED non-max suppression: each kept detection is the score-weighted mean of the
    boxes/keypoints it suppresses (steadier than hard NMS). Returns ``(boxes, keypoints, scores)``.

    Terminates for any input: candidates with a score, box or keypoint that is not finite (or beyond
    float32, the output type) are dropped, and each pass removes at least the top candidate (a degenerate
    box has IoU 0 even with itself, so without that a zero-size box at the top was never removed and the
    loop ran forever, e.g. at a detection threshold of 0)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    keypoints = np.asarray(keypoints, np.float64)
    scores = np.asarray(scores, np.float64).reshape(-1)
    empty = (np.zeros((0, 4), np.float32), np.zeros((0,) + keypoints.shape[1:], np.float32), np.zeros(0, np.float32))
    if not len(scores):
        return empty
    big = np.finfo(np.float32).max  # NaN fails every comparison: `abs <= big` also drops NaN and inf
    finite = ((np.abs(scores) <= big) & (np.abs(boxes) <= big).all(1)
              & (np.abs(keypoints.reshape(len(keypoints), -1)) <= big).all(1))
    order = np.flatnonzero(finite)[np.argsort(-scores[finite], kind="stable")]
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    remaining = np.arange(len(scores))
    out_b, out_k, out_s = [], [], []
    while remaining.size:
        top = remaining[0]
        overlap = box_iou(boxes[top], boxes[remaining])[0] > iou_threshold
        overlap[0] = True  # the top always goes (the loop shrinks every pass)
        members = remaining[overlap]
        w = np.clip(scores[members], 0.0, None)[:, None]
        total = w.sum()
        b = (boxes[members] * w).sum(0) / total if total > 0 else boxes[top]
        k = (keypoints[members] * w[:, :, None]).sum(0) / total if total > 0 else keypoints[top]
        out_b.append(b)
        out_k.append(k)
        out_s.append(scores[top])
        remaining = remaining[~overlap]
    if not out_s:
        return empty
    return np.array(out_b, np.float32), np.array(out_k, np.float32), np.array(out_s, np.float32)


@dataclass
class PoseDetection:
    """One BlazePose detection, full-image pixels: ``box`` ``[x1, y1, x2, y2]`` of the *face* (what the
    SSD regresses), ``keypoints`` ``(4, 2)`` (mid-hip, full-body size point, mid-shoulder, upper-body size
    point), ``score`` in [0, 1]."""

    box: np.ndarray
    keypoints: np.ndarray
    score: float

    def body_roi(self, scale: float = 1.25) -> Roi:
        """The rotated full-body ROI MediaPipe feeds to the landmark model (hip centre, 1.25 margin)."""
        return roi_from_alignment(self.keypoints[0], self.keypoints[1], scale)


class BlazePoseDetector:
    """``pose_detection.tflite``: RGB ``uint8`` image -> list of :class:`PoseDetection` (several people
    when the image has them; the model was trained for the most prominent person, so crowded scenes are
    best-effort)."""

    INPUT = 224
    STRIDES = (8, 16, 32, 32, 32)

    def __init__(self, path: str | Path | None = None, score_threshold: float = 0.5, iou_threshold: float = 0.3,
                 num_threads: int | None = None):
        self.model = TFLiteModel(path or model_path("pose_detection"), num_threads)
        self.anchors = ssd_anchors(self.INPUT, self.STRIDES)
        n = int(self.model.outputs[0]["shape"][1])
        if n != len(self.anchors):
            raise MediaPipeModelError(f"{self.model.path}: {n} anchors, expected {len(self.anchors)} "
                                      f"(not the mediapipe {MEDIAPIPE_VERSION} pose detector)")
        self.score_threshold, self.iou_threshold = score_threshold, iou_threshold

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, Roi]:
        h, w = image.shape[:2]
        roi = Roi(w / 2.0, h / 2.0, float(max(w, h)))  # letterbox: the centred square
        crop = crop_roi(image, roi, self.INPUT).astype(np.float32)
        return (crop / 127.5 - 1.0)[None], roi

    def __call__(self, image: np.ndarray) -> list[PoseDetection]:
        x, roi = self.preprocess(image)
        raw_boxes, raw_scores = self.model(x)
        return self.postprocess(raw_boxes[0], raw_scores[0, :, 0], roi)

    def postprocess(self, raw_boxes: np.ndarray, raw_scores: np.ndarray, roi: Roi) -> list[PoseDetection]:
        scores = sigmoid(raw_scores)
        keep = scores >= self.score_threshold
        if not keep.any():
            return []
        raw, anchors, scores = raw_boxes[keep], self.anchors[keep], scores[keep]
        s = float(self.INPUT)
        # Fixed-size anchors (w = h = 1): offsets are in input pixels; keep everything in 0..INPUT units.
        cxy = raw[:, 0:2] + anchors * s
        wh = raw[:, 2:4]
        boxes = np.concatenate([cxy - wh / 2, cxy + wh / 2], axis=1)
        kps = raw[:, 4:12].reshape(-1, 4, 2) + anchors[:, None, :] * s
        boxes, kps, scores = weighted_nms(boxes, kps, scores, self.iou_threshold)
        out = []
        for b, k, sc in zip(boxes, kps, scores):
            corners = roi.to_image(b.reshape(2, 2), self.INPUT).reshape(4)
            out.append(PoseDetection(corners.astype(np.float32), roi.to_image(k, self.INPUT).astype(np.float32),
                                     float(sc)))
        return out


# --------------------------------------------------------------------------------------------------
# Pose landmarks
# --------------------------------------------------------------------------------------------------

#: BlazePose's 33 landmark names (MediaPipe ``PoseLandmark`` order; left/right are the person's).
BLAZEPOSE33_NAMES: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel", "right_heel",
    "left_foot_index", "right_foot_index",
)
BLAZEPOSE33_INDEX = {n: i for i, n in enumerate(BLAZEPOSE33_NAMES)}


@dataclass
class PoseLandmarks:
    """BlazePose output for one person.

    ``points`` (33, 2) full-image pixels; ``z`` (33,) relative depth in the same pixel scale (MediaPipe's
    normalised z times the ROI side); ``visibility`` / ``presence`` (33,) in [0, 1] (presence: inside the
    image; visibility: not occluded); ``world`` (33, 3) metres, origin between the hips, camera-aligned
    axes (x right, y down, z away from the camera); ``score`` pose-presence in [0, 1]; ``aux`` (2, 2)
    pixels, the tracking alignment points; ``roi`` the crop it ran on.
    """

    points: np.ndarray
    z: np.ndarray
    visibility: np.ndarray
    presence: np.ndarray
    world: np.ndarray
    score: float
    aux: np.ndarray
    roi: Roi

    def tracking_roi(self, scale: float = 1.25) -> Roi:
        """ROI for the next video frame from this frame's auxiliary points (MediaPipe's tracking mode)."""
        return roi_from_alignment(self.aux[0], self.aux[1], scale)


def refine_from_heatmap(xy: np.ndarray, heatmap: np.ndarray, kernel: int = 7, min_conf: float = 0.5) -> np.ndarray:
    """MediaPipe's heatmap refinement: replace each landmark (normalised [0, 1] coords) by the
    sigmoid-weighted mean position in a ``kernel`` window of its heatmap channel, where confident.

    Vectorised over landmarks (one gather, no Python loop: it runs on every frame). The heatmap is padded
    with a very negative logit, whose sigmoid is 0, so windows at the border count in-bounds cells only."""
    hm_h, hm_w, n = heatmap.shape
    out = np.array(xy, np.float64, copy=True)
    off = (kernel - 1) // 2
    col = np.trunc(out[:n, 0] * hm_w).astype(np.int64)  # C++ int() truncation, as MediaPipe does
    row = np.trunc(out[:n, 1] * hm_h).astype(np.int64)
    ok = (col >= 0) & (col < hm_w) & (row >= 0) & (row < hm_h)
    if not ok.any():
        return out
    ids = np.flatnonzero(ok)
    padded = np.pad(np.asarray(heatmap, np.float32), ((off, off), (off, off), (0, 0)), constant_values=-1e4)
    d = np.arange(kernel)
    rr = row[ids, None] + d[None, :]  # padded coordinates: window rows row-off .. row+off
    cc = col[ids, None] + d[None, :]
    conf = sigmoid(padded[rr[:, :, None], cc[:, None, :], ids[:, None, None]])  # (m, k, k)
    total = conf.sum(axis=(1, 2))
    good = (conf.max(axis=(1, 2)) >= min_conf) & (total > 0)
    rows = (rr - off)[:, :, None].astype(np.float64)
    cols = (cc - off)[:, None, :].astype(np.float64)
    safe = np.maximum(total, 1e-12)
    x = (conf * cols).sum(axis=(1, 2)) / hm_w / safe
    y = (conf * rows).sum(axis=(1, 2)) / hm_h / safe
    sel = ids[good]
    out[sel, 0], out[sel, 1] = x[good], y[good]
    return out


class BlazePoseLandmarker:
    """``pose_landmark_full.tflite``: image + ROI -> :class:`PoseLandmarks` (or None when the model says
    no pose is in the ROI)."""

    INPUT = 256
    NUM = 39  # 33 landmarks + 2 auxiliary (tracking) + 4 unused

    def __init__(self, path: str | Path | None = None, presence_threshold: float = 0.5,
                 num_threads: int | None = None):
        self.model = TFLiteModel(path or model_path("pose_landmark_full"), num_threads)
        if self.model.input_size != self.INPUT or len(self.model.outputs) != 5:
            raise MediaPipeModelError(f"{self.model.path}: not the BlazePose landmark model (input "
                                      f"{self.model.input_size}, {len(self.model.outputs)} outputs)")
        self.presence_threshold = presence_threshold

    def __call__(self, image: np.ndarray, roi: Roi) -> PoseLandmarks | None:
        crop = crop_roi(image, roi, self.INPUT, replicate=True).astype(np.float32) / 255.0
        lms, flag, _seg, heatmap, world = self.model(crop[None])
        score = float(np.ravel(flag)[0])
        if not 0.0 <= score <= 1.0:  # some exports give the logit
            score = float(sigmoid(score))
        if score < self.presence_threshold:
            return None
        lms = lms.reshape(self.NUM, 5)
        xy_norm = refine_from_heatmap(lms[:, :2] / self.INPUT, heatmap[0])
        pts = roi.to_image(xy_norm * self.INPUT, self.INPUT)
        world = roi.rotate_vectors(world.reshape(self.NUM, 3)[:33])
        return PoseLandmarks(
            points=pts[:33].astype(np.float32), z=(lms[:33, 2] / self.INPUT * roi.side).astype(np.float32),
            visibility=sigmoid(lms[:33, 3]).astype(np.float32), presence=sigmoid(lms[:33, 4]).astype(np.float32),
            world=world.astype(np.float32), score=score, aux=pts[33:35].astype(np.float32), roi=roi)


# --------------------------------------------------------------------------------------------------
# Hand landmarks
# --------------------------------------------------------------------------------------------------

@dataclass
class HandLandmarks:
    """21 MediaPipe hand landmarks (wrist, then thumb/index/middle/ring/pinky base -> tip: the
    COCO-WholeBody hand order). ``points`` (21, 2) full-image pixels; ``world`` (21, 3) metres, origin near
    the hand centre, camera-aligned axes; ``score`` hand presence in [0, 1]; ``roi`` the crop it ran on."""

    points: np.ndarray
    world: np.ndarray
    score: float
    roi: Roi


# Landmarks MediaPipe uses to place the next hand crop: wrist, thumb base, and the MCP/PIP of each finger.
_HAND_ROI_IDS = (0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18)


def hand_roi_from_pose(wrist, pinky, index, scale: float = 2.7) -> Roi:
    """First hand crop from the BlazePose wrist/pinky/index points (MediaPipe Holistic's rule): centred
    on the estimated middle-finger knuckle, rotated so wrist -> knuckle points up. Generous on purpose:
    the crop is re-fit from the hand's own landmarks afterwards (:func:`hand_roi_from_landmarks`)."""
    wrist, pinky, index = (np.asarray(p, np.float64) for p in (wrist, pinky, index))
    middle = (2.0 * index + pinky) / 3.0
    d = middle - wrist
    rot = normalize_radians(math.pi / 2 - math.atan2(-d[1], d[0]))
    side = 2.0 * float(np.hypot(*d)) * scale
    return Roi(float(middle[0]), float(middle[1]), max(side, 8.0), rot)


def hand_roi_from_landmarks(points: np.ndarray, scale: float = 2.0, shift_y: float = -0.1) -> Roi:
    """Hand crop from 21 hand landmarks (MediaPipe's tracking rule): the rotated bounding box of the palm
    points (rotation wrist -> middle knuckle), enlarged 2x, squared, shifted towards the fingers."""
    p = np.asarray(points, np.float64)[list(_HAND_ROI_IDS)]
    d = p[6] - p[0]  # middle MCP (id 9) minus wrist
    rot = normalize_radians(math.pi / 2 - math.atan2(-d[1], d[0]))
    c, s = math.cos(rot), math.sin(rot)
    centre = (p.min(0) + p.max(0)) / 2.0
    # Coordinates in the ROI frame: rotate by -rot around the axis-aligned centre.
    q = p - centre
    local = np.stack([c * q[:, 0] + s * q[:, 1], -s * q[:, 0] + c * q[:, 1]], -1)
    lo, hi = local.min(0), local.max(0)
    mid_local = (lo + hi) / 2.0
    w, h = hi - lo
    side = max(w, h) * scale
    mid_local = mid_local + np.array([0.0, shift_y * h * scale])
    mid = centre + np.array([c * mid_local[0] - s * mid_local[1], s * mid_local[0] + c * mid_local[1]])
    return Roi(float(mid[0]), float(mid[1]), float(max(side, 8.0)), rot)


class HandLandmarker:
    """``hand_landmark_full.tflite``: image + ROI -> :class:`HandLandmarks` (None when no hand)."""

    INPUT = 224

    def __init__(self, path: str | Path | None = None, presence_threshold: float = 0.5,
                 num_threads: int | None = None):
        self.model = TFLiteModel(path or model_path("hand_landmark_full"), num_threads)
        if self.model.input_size != self.INPUT or len(self.model.outputs) != 4:
            raise MediaPipeModelError(f"{self.model.path}: not the MediaPipe hand landmark model")
        self.presence_threshold = presence_threshold

    def __call__(self, image: np.ndarray, roi: Roi) -> HandLandmarks | None:
        crop = crop_roi(image, roi, self.INPUT, replicate=True).astype(np.float32) / 255.0
        lms, flag, _handedness, world = self.model(crop[None])
        score = float(np.ravel(flag)[0])
        if not 0.0 <= score <= 1.0:
            score = float(sigmoid(score))
        if score < self.presence_threshold:
            return None
        pts = roi.to_image(lms.reshape(21, 3)[:, :2], self.INPUT)
        world = roi.rotate_vectors(world.reshape(21, 3))
        return HandLandmarks(pts.astype(np.float32), world.astype(np.float32), score, roi)

    def track(self, image: np.ndarray, roi: Roi, iterations: int = 2) -> HandLandmarks | None:
        """Run on ``roi``, then re-fit the crop to the found hand and run again (what MediaPipe's
        tracking does across frames, done here within one image)."""
        result = self(image, roi)
        for _ in range(iterations - 1):
            if result is None:
                break
            refined = self(image, hand_roi_from_landmarks(result.points))
            result = refined if refined is not None else result
        return result


# --------------------------------------------------------------------------------------------------
# Several people: detection over views + landmarks, deduplicated
# --------------------------------------------------------------------------------------------------

@dataclass
class PersonPose:
    """One person found by :class:`BlazePosePeople`: a full-body ``box`` ``[x1, y1, x2, y2]`` (pixels,
    from the landmarks, clipped to the image), ``score`` (the landmark model's pose presence), the landmarks and
    the detection that seeded them."""

    box: np.ndarray
    score: float
    pose: PoseLandmarks
    detection: PoseDetection


def landmark_box(pose: PoseLandmarks, image_wh, pad: float = 0.05) -> np.ndarray:
    """A person detector's box from the landmarks: all 33 points (BlazePose also predicts the ones outside
    the image, so a truncated person's box runs to the image edge, as a detector's would) plus an estimated
    head top (the landmarks stop at the eyes and ears), padded by ``pad`` x the long side, clipped."""
    pts = pose.points
    i = BLAZEPOSE33_INDEX
    eyes = (pts[i["left_eye"]] + pts[i["right_eye"]]) / 2.0
    mouth = (pts[i["mouth_left"]] + pts[i["mouth_right"]]) / 2.0
    head_top = eyes + 2.2 * (eyes - mouth)  # crown ~2x the eye-mouth distance above the eyes
    pts = np.concatenate([pts, head_top[None]])
    lo, hi = pts.min(0), pts.max(0)
    p = pad * float(max(hi - lo))
    w, h = float(image_wh[0]), float(image_wh[1])
    box = np.array([lo[0] - p, lo[1] - p, hi[0] + p, hi[1] + p], np.float64)
    box[[0, 2]] = np.clip(box[[0, 2]], 0, w - 1)
    box[[1, 3]] = np.clip(box[[1, 3]], 0, h - 1)
    return box.astype(np.float32)


def detection_views(image_wh, tiles: bool = True) -> list[Roi]:
    """Square views the detector looks through: the whole (letterboxed) image and, for a wide or tall
    image, overlapping squares of the short side along the long one (BlazePose finds people that fill a
    good part of its 224x224 input; a 16:9 frame letterboxed whole makes everyone small)."""
    w, h = float(image_wh[0]), float(image_wh[1])
    views = [Roi(w / 2.0, h / 2.0, max(w, h))]
    short, long_ = min(w, h), max(w, h)
    if tiles and long_ > 1.2 * short:
        n = int(math.ceil(long_ / short)) + 1  # overlapping: every person is whole in at least one tile
        for c in np.linspace(short / 2.0, long_ - short / 2.0, n):
            views.append(Roi(c, h / 2.0, short) if w >= h else Roi(w / 2.0, c, short))
    return views


class BlazePosePeople:
    """Multi-person BlazePose: the detector runs over :func:`detection_views`, in ``rounds`` passes per
    view where people already found are blanked out (the model tends to report only the most prominent
    person per input), each detection is refined by the landmark model and duplicates are merged."""

    def __init__(self, models_dir: str | Path | None = None, max_people: int = 10, tiles: bool = True,
                 rounds: int = 2, det_threshold: float = 0.5, num_threads: int | None = None):
        self.detector = BlazePoseDetector(model_path("pose_detection", models_dir), det_threshold,
                                          num_threads=num_threads)
        self.landmarker = BlazePoseLandmarker(model_path("pose_landmark_full", models_dir), num_threads=num_threads)
        self.max_people, self.tiles, self.rounds = int(max_people), bool(tiles), max(1, int(rounds))

    def __call__(self, image: np.ndarray, known_boxes=None) -> list[PersonPose]:
        """People in ``image``, most confident first. ``known_boxes`` ``(K, 4)`` xyxy px: people already
        tracked (their landmarks are known): they are blanked out before detecting and detections that
        fall on them are skipped, so only newcomers pay for the landmark model."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an RGB image (H, W, 3), got shape {image.shape}")
        h, w = image.shape[:2]
        known = np.zeros((0, 4), np.float32) if known_boxes is None else \
            np.asarray(known_boxes, np.float32).reshape(-1, 4)
        people: list[PersonPose] = []
        masked = _blank(image, known) if len(known) else None
        for view in detection_views((w, h), self.tiles):
            for _ in range(self.rounds):
                src = image if masked is None else masked
                crop = crop_roi(src, view, self.detector.INPUT).astype(np.float32) / 127.5 - 1.0
                raw_boxes, raw_scores = self.detector.model(crop[None])
                found = False
                for det in self.detector.postprocess(raw_boxes[0], raw_scores[0, :, 0], view):
                    if len(people) >= self.max_people:
                        break
                    if len(known) and _inside(det.keypoints[0], known).any():  # a tracked person's hips
                        continue
                    pose = self.landmarker(image, det.body_roi())
                    if pose is None:
                        continue
                    box = landmark_box(pose, (w, h))
                    if box[2] - box[0] < 4 or box[3] - box[1] < 4:
                        continue
                    others = np.concatenate([known, np.stack([p.box for p in people])]) if people else known
                    if len(others) and box_iou(box, others).max() > 0.5:
                        continue
                    people.append(PersonPose(box, pose.score, pose, det))
                    found = True
                if not found or len(people) >= self.max_people:
                    break
                # hide who we have so the next pass looks at someone else
                masked = _blank(image if masked is None else masked, np.stack([p.box for p in people]),
                                copy=masked is None)
        people.sort(key=lambda p: -p.score)
        return people


def _inside(point, boxes: np.ndarray) -> np.ndarray:
    """``(K,)`` whether ``point`` (x, y) lies in each of ``boxes`` ``(K, 4)``."""
    x, y = float(point[0]), float(point[1])
    return (boxes[:, 0] <= x) & (x <= boxes[:, 2]) & (boxes[:, 1] <= y) & (y <= boxes[:, 3])


def _blank(image: np.ndarray, boxes: np.ndarray, copy: bool = True) -> np.ndarray:
    """``image`` (a copy unless ``copy=False``) with ``boxes`` painted black."""
    out = image.copy() if copy else image
    h, w = out.shape[:2]
    for x1, y1, x2, y2 in np.asarray(boxes, np.float64).reshape(-1, 4):
        x1, y1 = max(int(x1), 0), max(int(y1), 0)
        x2, y2 = min(int(x2), w - 1), min(int(y2), h - 1)
        out[y1:y2 + 1, x1:x2 + 1] = 0
    return out
