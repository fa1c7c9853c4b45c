"""BlazePose: the SSD person detector, the 33-landmark model, and the multi-person search built on them.

* ``pose_detection.tflite``: SSD person detector, 224x224 letterboxed input in [-1, 1], 2254 anchors, each
  detection carries 4 alignment keypoints (0 mid-hip, 1 full-body size/rotation point, 2 mid-shoulder,
  3 upper-body size/rotation point).
* ``pose_landmark_full.tflite``: 33 BlazePose landmarks (+ 6 auxiliary) on a rotated 256x256 ROI in [0, 1],
  with per-landmark visibility/presence and metric "world" landmarks (metres, origin between the hips).

Outputs are full-image pixels; world landmarks are metres in camera-aligned axes (x right, y down, z away from
the camera). Parameters (anchors, decoding scales, thresholds, ROI scales) are MediaPipe 0.10.x's graph options
for ``pose_detection_cpu`` and ``pose_landmark_by_roi_cpu``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from instanthmr.core.geometry import box_iou
from instanthmr.runtime.mediapipe.files import MEDIAPIPE_VERSION, MediaPipeModelError, model_path
from instanthmr.runtime.mediapipe.regions import (
    Roi,
    crop_roi,
    roi_from_alignment,
    score_output,
    sigmoid,
    weighted_nms,
)
from instanthmr.runtime.mediapipe.models import open_model
from instanthmr.runtime.mediapipe.tflite import TFLiteModel

# --------------------------------------------------------------------------------------------------
# Pose detection (SSD)
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

    Vectorised over landmarks (one gather, no Python loop: it runs on every frame). Window cells outside the
    heatmap count 0, so windows at the border count in-bounds cells only (gathered at clipped indices and
    masked: padding the whole 64x64x39 heatmap every frame cost half the function's time)."""
    hm_h, hm_w, n = heatmap.shape
    out = np.array(xy, np.float64, copy=True)
    off = (kernel - 1) // 2
    col = np.trunc(out[:n, 0] * hm_w).astype(np.int64)  # C++ int() truncation, as MediaPipe does
    row = np.trunc(out[:n, 1] * hm_h).astype(np.int64)
    ok = (col >= 0) & (col < hm_w) & (row >= 0) & (row < hm_h)
    if not ok.any():
        return out
    ids = np.flatnonzero(ok)
    d = np.arange(kernel) - off
    rr = row[ids, None] + d[None, :]  # window rows row-off .. row+off, (m, k)
    cc = col[ids, None] + d[None, :]
    inside = ((rr >= 0) & (rr < hm_h))[:, :, None] & ((cc >= 0) & (cc < hm_w))[:, None, :]
    logits = np.asarray(heatmap)[np.clip(rr, 0, hm_h - 1)[:, :, None], np.clip(cc, 0, hm_w - 1)[:, None, :],
                                 ids[:, None, None]]
    conf = np.where(inside, sigmoid(logits), 0.0)  # (m, k, k)
    total = conf.sum(axis=(1, 2))
    good = (conf.max(axis=(1, 2)) >= min_conf) & (total > 0)
    rows = rr[:, :, None].astype(np.float64)
    cols = cc[:, None, :].astype(np.float64)
    safe = np.maximum(total, 1e-12)
    x = (conf * cols).sum(axis=(1, 2)) / hm_w / safe
    y = (conf * rows).sum(axis=(1, 2)) / hm_h / safe
    sel = ids[good]
    out[sel, 0], out[sel, 1] = x[good], y[good]
    return out


class BlazePoseLandmarker:
    """``pose_landmark_full`` (the ``.tflite`` or its ONNX copy, :func:`~.models.open_model`): image + ROI ->
    :class:`PoseLandmarks` (or None when the model says no pose is in the ROI)."""

    INPUT = 256
    NUM = 39  # 33 landmarks + 2 auxiliary (tracking) + 4 unused
    #: The segmentation mask (256x256), which nothing here reads: left out of the graph, with the decoder
    #: branch only it needs (~30 % of the model's time on a 2-core CPU; the other outputs are unchanged).
    SEGMENTATION = "Identity_2"

    def __init__(self, path: str | Path | None = None, presence_threshold: float = 0.5,
                 num_threads: int | None = None):
        self.model = open_model(path or model_path("pose_landmark_full"), num_threads,
                                 drop_outputs=(self.SEGMENTATION,))
        if self.model.input_size != self.INPUT or len(self.model.outputs) != 4:
            raise MediaPipeModelError(f"{self.model.path}: not the BlazePose landmark model (input "
                                      f"{self.model.input_size}, {len(self.model.outputs)} outputs)")
        self.presence_threshold = presence_threshold

    def __call__(self, image: np.ndarray, roi: Roi) -> PoseLandmarks | None:
        crop = crop_roi(image, roi, self.INPUT, replicate=True).astype(np.float32) / 255.0
        lms, flag, heatmap, world = self.model(crop[None])
        score = score_output(flag)
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
    person per input), each detection is refined by the landmark model and duplicates are merged.
    ``detector`` / ``landmarker``: models already loaded (the estimator's) instead of loading the files again
    from ``models_dir`` (``det_threshold`` then is the given detector's)."""

    def __init__(self, models_dir: str | Path | None = None, max_people: int = 10, tiles: bool = True,
                 rounds: int = 2, det_threshold: float = 0.5, num_threads: int | None = None,
                 detector: BlazePoseDetector | None = None, landmarker: BlazePoseLandmarker | None = None):
        self.detector = detector or BlazePoseDetector(model_path("pose_detection", models_dir), det_threshold,
                                                      num_threads=num_threads)
        self.landmarker = landmarker or BlazePoseLandmarker(model_path("pose_landmark_full", models_dir),
                                                            num_threads=num_threads)
        self.max_people, self.tiles, self.rounds = int(max_people), bool(tiles), max(1, int(rounds))

    def __call__(self, image: np.ndarray, known_boxes=None, views: list[Roi] | None = None) -> list[PersonPose]:
        """People in ``image``, most confident first. ``known_boxes`` ``(K, 4)`` xyxy px: people already
        tracked (their landmarks are known): they are blanked out before detecting and detections that
        fall on them are skipped, so only newcomers pay for the landmark model. ``views``: look through these
        only (default: :func:`detection_views`; one at a time spreads a look over frames)."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an RGB image (H, W, 3), got shape {image.shape}")
        h, w = image.shape[:2]
        known = np.zeros((0, 4), np.float32) if known_boxes is None else \
            np.asarray(known_boxes, np.float32).reshape(-1, 4)
        people: list[PersonPose] = []
        masked = _blank(image, known) if len(known) else None
        for view in detection_views((w, h), self.tiles) if views is None else views:
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
