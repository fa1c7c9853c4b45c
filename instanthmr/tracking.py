"""Person tracks across video frames: stable IDs, keypoint-driven crops between detector runs, smoothing.

This is a wrapper around the per-frame pipeline, not part of any model (rtmlib's ``PoseTracker`` idea):

* :class:`Tracker` gives every person a ``track_id`` that stays the same across frames. Detections are
  matched to tracks by the Hungarian algorithm on a similarity that mixes box IoU (against each track's
  constant-velocity prediction) and keypoint similarity (OKS, when 2D keypoints are known). Unmatched
  tracks live on for ``max_missed`` frames; unmatched detections open new tracks; IDs are never reused
  within a run.
* :func:`box_from_keypoints` turns a person's 2D joints into the box for the next frame's crop (as
  MediaPipe and rtmlib do), so the detector need not run every frame. :class:`TrackingPipeline` runs the
  detector only when a track's confidence drops, when nobody is tracked, or every ``max_detector_stride``
  frames to catch newcomers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# --------------------------------------------------------------------------------------------------
# Geometry helpers
# --------------------------------------------------------------------------------------------------


def box_iou(a, b) -> np.ndarray:
    """Pairwise IoU of boxes ``a (N, 4)`` and ``b (M, 4)`` (xyxy pixels) -> ``(N, M)``."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0.0, None), axis=-1)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0.0, None), axis=-1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0.0, None), axis=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def keypoint_similarity(kpts_a, kpts_b, boxes_b, kappa: float = 0.1) -> np.ndarray:
    """Pairwise object keypoint similarity (COCO OKS with one constant per-joint falloff ``kappa``).

    ``kpts_a (N, J, 2)`` and ``kpts_b (M, J, 2)`` in pixels; the scale is the area of ``boxes_b (M, 4)``.
    Returns ``(N, M)`` in ``[0, 1]``; joints that are NaN in either set are ignored.
    """
    a = np.asarray(kpts_a, dtype=np.float64)
    b = np.asarray(kpts_b, dtype=np.float64)
    bb = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    area = np.maximum(np.prod(bb[:, 2:] - bb[:, :2], axis=-1), 1.0)  # (M,)
    d2 = ((a[:, None] - b[None]) ** 2).sum(-1)  # (N, M, J)
    e = np.exp(-d2 / (2.0 * area[None, :, None] * kappa ** 2))
    ok = np.isfinite(e)
    n = ok.sum(-1)
    return np.where(n > 0, np.where(ok, e, 0.0).sum(-1) / np.maximum(n, 1), 0.0)


def box_from_keypoints(joints_2d, image_wh=None, margin: float = 0.12, top_margin: float = 0.1,
                       min_size: float = 8.0) -> np.ndarray:
    """The person box implied by 2D joints ``(J, 2)`` px: their bounds grown by ``margin`` of the box size on
    every side and ``top_margin`` more above (joints stop at the eyes, a detector box at the crown).
    Clipped to the image when ``image_wh`` is given. Returns ``(4,)`` xyxy px."""
    p = np.asarray(joints_2d, dtype=np.float64).reshape(-1, 2)
    p = p[np.isfinite(p).all(axis=1)]
    if len(p) == 0:
        raise ValueError("box_from_keypoints needs at least one finite joint")
    lo, hi = p.min(axis=0), p.max(axis=0)
    size = max(float((hi - lo).max()), min_size)
    x1, y1 = lo[0] - margin * size, lo[1] - (margin + top_margin) * size
    x2, y2 = hi[0] + margin * size, hi[1] + margin * size
    box = np.array([x1, y1, x2, y2])
    if image_wh is not None:
        w, h = float(image_wh[0]), float(image_wh[1])
        box = np.clip(box, [0, 0, 0, 0], [w, h, w, h])
    return box


def keypoint_box_confidence(crop_box, joints_2d, image_wh=None) -> float:
    """How much to trust a keypoint-driven crop, in ``[0, 1]``.

    The product of (a) the IoU between the box the crop was cut from and the box the resulting joints imply
    (a network looking at a person returns joints that fill its crop; when the crop has drifted off the
    person they stop agreeing) and (b) the fraction of joints inside the image.
    """
    j = np.asarray(joints_2d, dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(j).all() or len(j) == 0:
        return 0.0
    kbox = box_from_keypoints(j, image_wh)
    agree = float(box_iou(crop_box, kbox)[0, 0])
    if image_wh is None:
        return agree
    w, h = float(image_wh[0]), float(image_wh[1])
    inside = ((j[:, 0] >= 0) & (j[:, 0] < w) & (j[:, 1] >= 0) & (j[:, 1] < h)).mean()
    return agree * float(inside)


# --------------------------------------------------------------------------------------------------
# Tracker
# --------------------------------------------------------------------------------------------------


@dataclass
class Track:
    """State of one tracked person. Boxes are xyxy pixels; ``velocity`` is box motion per frame."""

    track_id: int
    box: np.ndarray
    score: float
    keypoints: np.ndarray | None = None
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))
    hits: int = 1
    missed: int = 0  # consecutive frames without a match
    last_frame: int = 0

    def predicted_box(self, frame: int) -> np.ndarray:
        """Constant-velocity guess of the box at ``frame``."""
        return self.box + self.velocity * (frame - self.last_frame)


class Tracker:
    """Associates per-frame detections with persistent track IDs.

    Args:
        iou_weight: weight of box IoU in the similarity; ``1 - iou_weight`` goes to keypoint similarity when
            both the track and the detection have keypoints (otherwise IoU alone).
        min_similarity: pairs below it are never matched.
        max_missed: frames a track survives without a match before it ends.
        velocity_momentum: exponential averaging of the box velocity (0 = last step only).
        first_id: the first ID handed out; IDs increase by one and are never reused.
    """

    def __init__(self, iou_weight: float = 0.5, min_similarity: float = 0.15, max_missed: int = 10,
                 velocity_momentum: float = 0.6, kappa: float = 0.1, first_id: int = 1):
        if not 0.0 <= iou_weight <= 1.0:
            raise ValueError(f"iou_weight must be in [0, 1], got {iou_weight}")
        self.iou_weight = float(iou_weight)
        self.min_similarity = float(min_similarity)
        self.max_missed = int(max_missed)
        self.velocity_momentum = float(velocity_momentum)
        self.kappa = float(kappa)
        self.tracks: list[Track] = []
        self.frame = -1
        self._next_id = int(first_id)

    def reset(self) -> None:
        """Forget all tracks (IDs keep increasing; they are never reused within a run)."""
        self.tracks = []

    def similarity(self, boxes: np.ndarray, keypoints: np.ndarray | None, frame: int) -> np.ndarray:
        """``(num_tracks, num_detections)`` similarity in ``[0, 1]``."""
        if not self.tracks or len(boxes) == 0:
            return np.zeros((len(self.tracks), len(boxes)))
        pred = np.stack([t.predicted_box(frame) for t in self.tracks])
        sim = box_iou(pred, boxes)
        if keypoints is None or self.iou_weight >= 1.0:
            return sim
        have = [t.keypoints is not None for t in self.tracks]
        if not any(have):
            return sim
        j = keypoints.shape[1]
        tk = np.full((len(self.tracks), j, 2), np.nan)
        for i, t in enumerate(self.tracks):
            if t.keypoints is not None and t.keypoints.shape == (j, 2):
                # Move the last keypoints with the box motion, like the box prediction.
                shift = (t.predicted_box(frame) - t.box).reshape(2, 2).mean(axis=0)
                tk[i] = t.keypoints + shift
        oks = keypoint_similarity(tk, keypoints, boxes, self.kappa)
        has = np.isfinite(tk).all(axis=(1, 2))[:, None] & np.isfinite(keypoints).all(axis=(1, 2))[None, :]
        mixed = self.iou_weight * sim + (1.0 - self.iou_weight) * oks
        return np.where(has, mixed, sim)

    def update(self, boxes, scores=None, keypoints2d=None) -> np.ndarray:
        """Advance one frame with this frame's detections; returns their track IDs ``(N,)`` int64.

        ``boxes (N, 4)`` xyxy px, ``scores (N,)``, ``keypoints2d (N, J, 2)`` px or None.
        """
        from scipy.optimize import linear_sum_assignment

        self.frame += 1
        frame = self.frame
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        n = len(boxes)
        scores = np.ones(n) if scores is None else np.asarray(scores, dtype=np.float64).reshape(n)
        kpts = None if keypoints2d is None else np.asarray(keypoints2d, dtype=np.float64).reshape(n, -1, 2)

        sim = self.similarity(boxes, kpts, frame)
        ids = np.full(n, -1, dtype=np.int64)
        matched_tracks = set()
        if sim.size:
            rows, cols = linear_sum_assignment(-sim)
            for r, c in zip(rows, cols):
                if sim[r, c] >= self.min_similarity:
                    self._apply_match(self.tracks[r], boxes[c], scores[c], None if kpts is None else kpts[c], frame)
                    ids[c] = self.tracks[r].track_id
                    matched_tracks.add(r)
        for i, t in enumerate(self.tracks):
            if i not in matched_tracks:
                t.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for c in np.flatnonzero(ids < 0):
            t = Track(self._next_id, boxes[c].copy(), float(scores[c]),
                      None if kpts is None else kpts[c].copy(), last_frame=frame)
            self._next_id += 1
            self.tracks.append(t)
            ids[c] = t.track_id
        return ids

    def _apply_match(self, t: Track, box, score, kpts, frame: int) -> None:
        step = max(frame - t.last_frame, 1)
        v = (box - t.box) / step
        m = self.velocity_momentum if t.hits > 1 else 0.0
        t.velocity = m * t.velocity + (1.0 - m) * v
        t.box = np.asarray(box, dtype=np.float64).copy()
        t.score = float(score)
        t.keypoints = None if kpts is None else np.asarray(kpts, dtype=np.float64).copy()
        t.hits += 1
        t.missed = 0
        t.last_frame = frame

    def track(self, track_id: int) -> Track | None:
        for t in self.tracks:
            if t.track_id == track_id:
                return t
        return None

    @property
    def active_ids(self) -> list[int]:
        return [t.track_id for t in self.tracks]
