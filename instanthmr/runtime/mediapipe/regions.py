"""Regions of interest (rotated squares in full-image pixels), their crops, and MediaPipe's weighted NMS.

Every ROI is a square ``Roi(cx, cy, side, rotation)`` in full-image pixels (OpenCV pixel-index convention, x
right, y down; ``rotation`` in radians, positive turns the ROI's "up" towards +x). Model outputs in crop units
map back to full-image pixels through it; world landmarks are rotated back by it, as MediaPipe does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from instanthmr.core.geometry import box_iou

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


def score_output(raw) -> float:
    """A model's one-number score output as a probability in [0, 1]: as it comes when it is one, else read as a
    logit (some exports give that)."""
    score = float(np.ravel(raw)[0])
    return score if 0.0 <= score <= 1.0 else float(sigmoid(score))


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
