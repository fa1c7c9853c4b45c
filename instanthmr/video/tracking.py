"""Person tracks across video frames: stable IDs, keypoint-driven crops between detector runs, smoothing.

This is a wrapper around the per-frame pipeline, not part of any model (rtmlib's ``PoseTracker`` idea):

* :class:`Tracker` gives every person a ``track_id`` that stays the same across frames. Detections are
  matched to tracks by the Hungarian algorithm on a similarity that mixes box IoU (against each track's
  constant-velocity prediction) and keypoint similarity (OKS, when 2D keypoints are known). Unmatched
  tracks live on for ``max_missed`` frames; unmatched detections open new tracks; IDs are never reused
  within a run.
* Between detector runs a followed person's crop comes from one of three strategies (``crops``):
  ``"keypoints"``, :func:`box_from_keypoints` of their previous 2D joints (as rtmlib does); ``"boxes"``, the
  last detection box (the per-frame pipeline's stride and box reuse); ``"landmarks"``, the region the
  estimator's own landmarks give (MediaPipe's rule: the estimator's ``follow``; the detector then looks for
  newcomers only, with the people followed left out). :class:`TrackingPipeline` runs the detector (on
  :class:`~instanthmr.runtime.pipeline.DetectorSchedule`, the pipeline's one schedule) every ``detect_every``
  frames to catch newcomers, and sooner when a track's confidence drops, a person is lost or nobody is tracked.

Tracking adds columns, not a wrapper: each frame is a :class:`~instanthmr.runtime.pipeline.FrameResult`
whose persons are the predictions with ``track_id``, ``source`` and ``confidence`` set.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from instanthmr.core.geometry import box_iou, usable_boxes
from instanthmr.runtime.detector import Detections
from instanthmr.runtime.pipeline import (
    CROP_STRATEGIES,
    REUSE_ENLARGE,
    AsyncDetector,
    DetectorSchedule,
    FrameResult,
    enlarge_boxes,
)

#: Two people followed by their landmarks whose boxes overlap more than this are one person: the one followed
#: longer keeps them (two regions converged).
DUPLICATE_IOU = 0.5

# --------------------------------------------------------------------------------------------------
# Geometry helpers (box IoU: instanthmr.core.geometry.box_iou)
# --------------------------------------------------------------------------------------------------


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
        matched = set()
        if sim.size:
            rows, cols = linear_sum_assignment(-sim)
            for r, c in zip(rows, cols):
                if sim[r, c] >= self.min_similarity:
                    self._apply_match(self.tracks[r], boxes[c], scores[c], None if kpts is None else kpts[c], frame)
                    ids[c] = self.tracks[r].track_id
                    matched.add(self.tracks[r].track_id)
        self._age_unmatched(matched)
        for c in np.flatnonzero(ids < 0):
            ids[c] = self._new_track(boxes[c], scores[c], None if kpts is None else kpts[c]).track_id
        return ids

    def advance(self, updates: dict[int, tuple]) -> None:
        """Advance one frame with known identities (no association): ``{track_id: (box, score, keypoints)}``.
        Used between detector runs, when each crop was cut for one track; other tracks count a miss."""
        self.frame += 1
        for tid, (box, score, kpts) in updates.items():
            t = self.track(tid)
            if t is None:
                raise KeyError(f"no active track {tid}")
            self._apply_match(t, np.asarray(box, dtype=np.float64), score, kpts, self.frame)
        self._age_unmatched(set(updates))

    def _age_unmatched(self, matched: set[int]) -> None:
        for t in self.tracks:
            if t.track_id not in matched:
                t.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]

    def _new_track(self, box, score, kpts) -> Track:
        t = Track(self._next_id, np.asarray(box, dtype=np.float64).copy(), float(score),
                  None if kpts is None else np.asarray(kpts, dtype=np.float64).copy(), last_frame=self.frame)
        self._next_id += 1
        self.tracks.append(t)
        return t

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


# --------------------------------------------------------------------------------------------------
# Tracking pipeline (wrapper)
# --------------------------------------------------------------------------------------------------


class TrackingPipeline:
    """Video wrapper around a detector and a per-crop pose estimator: IDs, keypoint-driven crops, smoothing.

    Each call returns a :class:`~instanthmr.runtime.pipeline.FrameResult` whose persons are the estimator's
    predictions with ``track_id``, ``source`` and ``confidence`` set (``dataclasses.replace``), plus ``time_s``
    and ``ended_tracks``. ``source``: ``"detector"`` when the crop came from a detection this frame,
    ``"keypoints"`` when it came from the track's previous 2D joints or landmarks, ``"reused_box"`` when a
    ``PosePipeline`` reused its last detection box (plain detector stride, :meth:`track`). ``confidence`` in
    ``[0, 1]``: the detection score, or for a keypoint-driven crop the agreement between the crop and the joints
    found in it (:func:`keypoint_box_confidence`).

    Args:
        detector: ``detector(image_rgb, frame_index) -> Detections`` (``.boxes (N, 4)``, ``.scores (N,)``).
        estimator: ``estimator(image_rgb, boxes (N, 4), scores (N,)) -> list of predictions``: dataclasses with
            the :class:`~instanthmr.runtime.hmr.HMRPrediction` fields this wrapper reads and sets (at least
            ``box``, ``joints_2d (J, 2)`` px, ``track_id``, ``source``, ``confidence``); with
            ``crops="landmarks"`` it also takes the detector's ``landmarks=`` (``Detections.landmarks``).
            :meth:`from_pipeline` builds both from a ``PosePipeline``.
        frame_pipeline: optional ``predict(image_rgb, frame_index) -> FrameResult`` (a ``PosePipeline``);
            when given and ``crops`` is ``"boxes"``, each frame is that pipeline's result (its own
            detector schedule: stride, enlarged box reuse) and this wrapper only adds IDs and smoothing
            (:meth:`track`); ``detect_every`` then does not apply.
        crops: between detector runs, cut each tracked person's crop from the box of their previous 2D joints
            (``"keypoints"``), reuse the previous box (``"boxes"``, plain detector stride), or find them in
            the region their landmarks give (``"landmarks"``: needs ``follow`` and a detector with
            ``detect_new``, a :class:`~instanthmr.runtime.detector.PersonDetector`).
        detect_every: the detector runs at least every this many frames (to find newcomers).
        refresh_below: a keypoint-driven crop whose confidence falls below this makes the detector run on
            the next frame (1.0 = the detector runs every frame).
        smooth: ``"none"``, ``"causal"`` (One-Euro, live) or ``"offline"`` (centred; applied by
            :func:`smooth_frames_offline` once all frames are in, so :meth:`__call__` returns raw results).
        fps: frame rate used for timestamps when ``time_s`` is not given.
        follow: ``follow(image_rgb, people) -> list[prediction | None]``, each of last frame's predictions
            found again from its own landmarks or ``None`` (lost): the ``"landmarks"`` strategy's step.
        max_persons: ``"landmarks"``: the most people followed (the detector does not run while they are).
        frames_in_flight: ``"keypoints"`` (and ``"boxes"`` without ``frame_pipeline``): frames whose model calls run
            at once on worker threads (:meth:`submit`; :class:`~instanthmr.runtime.session.RuntimeOptions`).
            Frame t's crops then come from frame t - frames_in_flight's joints, moved by that many steps of the
            box velocity; on 2 CPU cores two frames at 1 thread each do more work per second than one at 2.
        async_detector: ``"keypoints"`` (and ``"boxes"`` without ``frame_pipeline``): while people are followed, a
            due detector run goes to its own thread instead of blocking a frame; the people keep their crops,
            and the first frame after it finishes runs on its boxes (from a few frames earlier, enlarged as
            :class:`~instanthmr.runtime.pipeline.DetectorSchedule` reuses boxes; ``FrameResult.detector_lag``
            says how many frames). With nobody followed the detector runs in the frame (nothing to show
            without it). Results then depend on timing (live sources).

    ``detector_calls`` and ``frames_seen`` count the whole run (:meth:`reset` does not clear them).
    """

    def __init__(self, detector, estimator, tracker: Tracker | None = None, crops: str = "keypoints",
                 detect_every: int = 10, refresh_below: float = 0.5, smooth: str = "causal",
                 fps: float = 30.0, smoother=None, frame_pipeline=None, follow=None, max_persons: int = 8,
                 frames_in_flight: int = 1, async_detector: bool = False):
        from instanthmr.video.smoothing import SMOOTH_MODES, OneEuroSmoother

        if smooth not in SMOOTH_MODES:
            raise ValueError(f"smooth must be one of {SMOOTH_MODES}, got {smooth!r}")
        if detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {detect_every}")
        if int(frames_in_flight) < 1:
            raise ValueError(f"frames_in_flight must be >= 1, got {frames_in_flight}")
        if crops not in CROP_STRATEGIES:
            raise ValueError(f"crops must be one of {CROP_STRATEGIES}, got {crops!r}")
        if crops == "landmarks" and follow is None:
            raise ValueError("crops='landmarks' needs follow(image, people): an estimator that follows people by "
                             "its own landmarks (TrackingPipeline.from_pipeline passes the pipeline's)")
        self.detector, self.estimator = detector, estimator
        self.frame_pipeline = frame_pipeline
        self.tracker = tracker or Tracker()
        self.crops = crops
        self.follow = follow
        self.max_persons = int(max_persons)
        self._followed: list = []  # "landmarks": last frame's raw predictions, each found again from its own
        self._scan: int | None = None  # "landmarks": the next part of a look for newcomers spread over frames
        self.schedule = DetectorSchedule(detect_every)
        self.refresh_below = float(refresh_below)
        self.smooth = smooth
        self.fps = float(fps)
        self.smoother = smoother or (OneEuroSmoother() if smooth == "causal" else None)
        self.detector_calls = 0
        self.frames_seen = 0
        self.frames_in_flight = int(frames_in_flight)
        self._pending: collections.deque = collections.deque()  # (tag, job) of the frames in flight, in order
        self._workers = None  # ThreadPoolExecutor, made on the first frame in flight
        self._detector_lock = threading.Lock()
        self.async_detector = bool(async_detector)
        self._async = None  # AsyncDetector, made on the first hidden detector run
        self._run_s = 0.0  # frames in flight: a frame's estimator call, seconds (moving average)
        self._last_start = 0.0  # perf_counter of the last frame started

    @property
    def detect_every(self) -> int:
        return self.schedule.stride

    @classmethod
    def from_pipeline(cls, pipeline, **kwargs) -> "TrackingPipeline":
        """Wrap a :class:`~instanthmr.runtime.pipeline.PosePipeline`: its ``detector``, its crop estimator
        (``pipeline.estimate``) and ``follow``; ``crops``, ``detect_every`` (the pipeline's ``detector_stride``:
        one stride for both) and ``max_persons`` default to the pipeline's. With ``crops="boxes"`` the
        pipeline's own ``predict`` (detector stride, enlarged box reuse) makes each frame and the wrapper adds
        IDs and smoothing."""
        kwargs.setdefault("crops", pipeline.crops)
        kwargs.setdefault("detect_every", pipeline.detector_stride)
        kwargs.setdefault("max_persons", pipeline.max_persons)
        kwargs.setdefault("frames_in_flight", getattr(pipeline, "frames_in_flight", 1))
        kwargs.setdefault("async_detector", bool(getattr(pipeline, "async_detector", False)))
        return cls(pipeline.detector, pipeline.estimate, frame_pipeline=pipeline, follow=pipeline.follow, **kwargs)

    def reset(self) -> None:
        """Start a new video (tracks and filters forgotten, frames in flight dropped; IDs keep increasing)."""
        self._discard_pending()
        if self._async is not None:  # a detection under way belongs to the old video
            self._async.wait()
        self.tracker.reset()
        self._followed = []
        self._scan = None
        if self.smoother is not None:
            self.smoother.reset()
        self.schedule.reset()
        if self.frame_pipeline is not None and hasattr(self.frame_pipeline, "reset"):
            self.frame_pipeline.reset()

    def _live_tracks(self) -> list[Track]:
        return [t for t in self.tracker.tracks if t.missed == 0 and t.keypoints is not None]

    def __call__(self, image_rgb: np.ndarray, frame_index: int | None = None,
                 time_s: float | None = None) -> FrameResult:
        """One frame (RGB, ``frame_index``, ``time_s`` seconds; default ``frame_index / fps``) -> its tracked
        :class:`FrameResult` at once, whatever ``frames_in_flight``. Frames still in flight from :meth:`submit`
        are finished first (the tracks take them in order) and their results are dropped: :meth:`drain` them
        before switching to calls."""
        fi = self.frames_seen if frame_index is None else int(frame_index)
        if self.crops == "landmarks":
            return self.track(self._landmark_frame(image_rgb, fi), time_s)
        if self.frame_pipeline is not None and self.crops == "boxes":
            return self.track(self.frame_pipeline.predict(image_rgb, frame_index=fi), time_s)
        if self._pending:  # frames in flight: this frame waits for them (results in order)
            return (self.submit(image_rgb, fi, time_s) + self.drain())[-1][1]
        return self._complete(self._start(image_rgb, fi, time_s))

    @property
    def pipelined(self) -> bool:
        """Frames in flight are on: :meth:`submit` returns each result ``frames_in_flight - 1`` frames late."""
        return self.frames_in_flight > 1 and self.crops != "landmarks" and not (
            self.frame_pipeline is not None and self.crops == "boxes")

    def submit(self, image_rgb: np.ndarray, frame_index: int | None = None, time_s: float | None = None,
               tag=None) -> list[tuple]:
        """Hand over one frame; returns ``[(tag, FrameResult), ...]`` for the frames finished meanwhile, in
        frame order. One frame at a time (``frames_in_flight`` 1, or a strategy that cannot overlap frames):
        this frame's result at once. Frames in flight: this frame's network (and detector) call starts on a
        worker thread with crops from the latest finished frame's joints, and the oldest frame is returned once
        ``frames_in_flight`` frames are under way (a frame late for 2); :meth:`drain` returns the rest at
        the end of a source. ``tag``: anything the caller wants back with the result (the runner: the decoded
        frame)."""
        if not self.pipelined:
            return [(tag, self(image_rgb, frame_index, time_s))]
        fi = self.frames_seen if frame_index is None else int(frame_index)
        # Starts spaced by a frame's model time / frames in flight: frames started together finish together and
        # come out in bursts (0 ms, then a whole run) however long they stay in step; one pause re-spaces them.
        pause = self._last_start + self._run_s / self.frames_in_flight - time.perf_counter()
        if self._pending and pause > 0:
            time.sleep(pause)
        self._last_start = time.perf_counter()
        self._pending.append((tag, self._start(image_rgb, fi, time_s)))
        done = []
        while len(self._pending) >= self.frames_in_flight:
            t, job = self._pending.popleft()
            done.append((t, self._complete(job)))
        return done

    def drain(self) -> list[tuple]:
        """The frames still in flight, finished in order: ``[(tag, FrameResult), ...]`` (empty when none)."""
        done = []
        while self._pending:
            t, job = self._pending.popleft()
            done.append((t, self._complete(job)))
        return done

    def close(self) -> None:
        """Finish the frames in flight (their results are dropped) and stop the worker threads."""
        self._discard_pending()
        if self._async is not None:
            self._async.close()
            self._async = None
        if self._workers is not None:
            self._workers.shutdown(wait=True)
            self._workers = None

    def _discard_pending(self) -> None:
        while self._pending:
            _, job = self._pending.popleft()
            if hasattr(job["work"], "exception"):
                job["work"].exception()  # wait: the worker may still use the models

    def crop_boxes(self, live: list[Track], image_wh, ahead: int = 1) -> np.ndarray:
        """``(N, 4)`` xyxy px: the crop of each of ``live`` for the frame ``ahead`` frames after their last
        finished one: the box of their last 2D joints (``"keypoints"``) moved ``ahead`` steps of their box
        velocity, or their last box (``"boxes"``)."""
        boxes = []
        for t in live:
            if self.crops == "keypoints":
                shift = np.tile(t.velocity.reshape(2, 2).mean(axis=0), 2) * ahead  # move with the person
                boxes.append(box_from_keypoints(t.keypoints, image_wh) + shift)
            else:
                boxes.append(t.box.copy())
        return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)

    def _start(self, image_rgb: np.ndarray, fi: int, time_s: float | None) -> dict:
        """Plan one frame from the tracks as they stand (detector, a hidden detection's boxes or keypoint crops)
        and start its model calls: inline, or on a worker thread with frames in flight."""
        t0 = time.perf_counter()
        h, w = image_rgb.shape[:2]
        ts = fi / self.fps if time_s is None else float(time_s)
        self.frames_seen += 1
        live = self._live_tracks()
        if not live:  # nobody to follow: only the detector can find people
            self.schedule.request()
        # Tracks the detector missed stay dormant until its next scheduled run (the tracker keeps them
        # ``max_missed`` frames), rather than forcing a detector call every frame until they end.
        due = self.schedule.should_detect()
        hidden = self._hidden_result((w, h)) if self.async_detector else None
        if self.async_detector and due and live:  # the look goes to its own thread; the people keep their crops
            handed = self._hand_over(image_rgb, fi)
            self.schedule.advance(handed)  # not handed (one under way): due again next frame
            self.detector_calls += int(handed)
            due = False
        else:
            self.schedule.advance(due)
        job = {"t0": t0, "fi": fi, "ts": ts, "wh": (w, h), "ran": due or hidden is not None, "live": [],
               "lag": 0, "det_ms": 0.0}
        if due:
            self.detector_calls += 1
            boxes = scores = None
        elif hidden is not None:
            boxes, scores, job["lag"], job["det_ms"] = hidden
        else:
            boxes = self.crop_boxes(live, (w, h), ahead=len(self._pending) + 1)
            keep = usable_boxes(boxes)  # e.g. joints all off the image: the box clips to nothing
            if not keep.all():
                self.schedule.request()  # those tracks miss this frame; the detector looks next frame
                live = [t for t, k in zip(live, keep) if k]
                boxes = boxes[keep]
            scores = np.array([t.score for t in live], dtype=np.float64)
            job["live"] = [t.track_id for t in live]
        if self.pipelined:
            if self._workers is None:
                self._workers = ThreadPoolExecutor(self.frames_in_flight, thread_name_prefix="instanthmr-frame")
            job["work"] = self._workers.submit(self._models, image_rgb, fi, boxes, scores)
        else:
            job["work"] = self._models(image_rgb, fi, boxes, scores)
        return job

    def _locked_detector(self, image_rgb, fi):
        with self._detector_lock:  # a detector may keep per-call state; its runs never overlap
            return self.detector(image_rgb, fi)

    def _hand_over(self, image_rgb, fi: int) -> bool:
        """Start a hidden detector run on this frame; False when one is under way."""
        if self._async is None:
            self._async = AsyncDetector(self._locked_detector)
        return self._async.submit(image_rgb, fi, self.frames_seen)

    def _hidden_result(self, image_wh):
        """A finished hidden detection as ``(boxes enlarged, scores, lag in frames, detector ms)``, or None (none
        finished, or it found nobody: the people followed keep their crops)."""
        res = self._async.poll() if self._async is not None else None
        if res is None or len(res[1]) == 0:
            return None
        n, dets, ms = res
        boxes = enlarge_boxes(dets.boxes, REUSE_ENLARGE, image_wh).astype(np.float64)  # people moved since
        keep = usable_boxes(boxes)
        if not keep.any():
            return None
        return boxes[keep], np.asarray(dets.scores, np.float64)[keep], self.frames_seen - n, float(ms)

    def _models(self, image_rgb, fi: int, boxes, scores) -> tuple:
        """The model calls of one frame (any thread): the detector when ``boxes`` is None, then the estimator.
        Returns ``(boxes, scores, predictions, detector ms, estimator ms)``."""
        det_ms = 0.0
        if boxes is None:
            td = time.perf_counter()
            dets = self._locked_detector(image_rgb, fi)
            det_ms = (time.perf_counter() - td) * 1e3
            boxes = np.asarray(dets.boxes, dtype=np.float64).reshape(-1, 4)
            scores = np.asarray(dets.scores, dtype=np.float64).reshape(-1)
            keep = usable_boxes(boxes)
            boxes, scores = boxes[keep], scores[keep]
        th = time.perf_counter()
        preds = list(self.estimator(image_rgb, boxes, scores)) if len(boxes) else []
        hmr_ms = (time.perf_counter() - th) * 1e3
        # the pacing's model time: the estimator's alone. A detector run in the frame (a stream's first frames,
        # everybody lost) is a one-off: counted in, it spaced the next ~10 frames' starts by twice their model
        # time (a stream's first frames at 1.5-1.8x the steady frame time, docs/performance.md "Eighth session")
        if len(boxes):  # nobody to run on: no model time to learn from
            run_s = hmr_ms / 1e3
            self._run_s = run_s if self._run_s == 0.0 else 0.8 * self._run_s + 0.2 * run_s  # (a float store: atomic)
        return boxes, scores, preds, det_ms, hmr_ms

    def _complete(self, job: dict) -> FrameResult:
        """Wait for a frame's model calls and fold them into the tracks (in frame order): IDs, the next crops'
        joints, the detector's next run when a crop loses its person, smoothing."""
        work = job["work"]
        boxes, scores, preds, det_ms, hmr_ms = work.result() if hasattr(work, "result") else work
        det_ms = det_ms or job["det_ms"]  # a hidden run's time was on the detector's thread
        w, h = job["wh"]
        before = set(self.tracker.active_ids)
        persons = []
        if job["ran"]:
            kpts = np.stack([np.asarray(p.joints_2d, dtype=np.float64) for p in preds]) if preds else None
            ids = self.tracker.update(boxes, scores, kpts)
            persons = [_tagged(p, tid, "detector", s) for tid, p, s in zip(ids, preds, scores)]
        else:
            updates = {}
            for tid, box, p in zip(job["live"], boxes, preds):
                t = self.tracker.track(tid)
                if t is None:  # ended while this frame was in flight
                    continue
                j2 = np.asarray(p.joints_2d, dtype=np.float64)
                conf = keypoint_box_confidence(box, j2, (w, h)) if self.crops == "keypoints" else t.score
                if conf < self.refresh_below:
                    self.schedule.request()
                new_box = box_from_keypoints(j2, (w, h)) if self.crops == "keypoints" and conf > 0 else box
                updates[tid] = (new_box, t.score, j2)
                persons.append(_tagged(p, tid, "keypoints", conf))
            self.tracker.advance(updates)
        frame = FrameResult(persons=[], detector_ms=det_ms, hmr_ms=hmr_ms, total_ms=0.0, detector_ran=job["ran"],
                            frame_index=job["fi"], image_size=(w, h), detections=Detections(boxes, scores),
                            time_s=job["ts"], detector_lag=job["lag"])
        return self._finish(persons, before, frame, job["t0"])

    def _landmark_frame(self, image_rgb: np.ndarray, fi: int) -> FrameResult:
        """One frame by MediaPipe's rule (``crops="landmarks"``), persons without IDs (:meth:`track` adds
        them): everybody followed is looked for in the region their last landmarks give (one ``follow`` pass
        each); the detector runs when nobody is followed, somebody was lost, or ``detect_every`` frames have
        passed, never while ``max_persons`` people are followed, and only for newcomers (``detect_new``: the
        people followed are left out). After a stream's first frame, a detector whose look comes in parts
        (``detection_parts``, MediaPipe's: one per view) runs one part per frame (``detect_new_part``), so
        no frame stalls on a whole detection, also while nobody is followed (a person lost: MediaPipe Pose
        then runs one detector pass a frame too); ``detector_ran`` is set on each of those frames."""
        t0 = time.perf_counter()
        h, w = image_rgb.shape[:2]
        kept: list = []
        lost = False
        for prev in self._followed:
            (p,) = self.follow(image_rgb, [prev])
            if p is None:
                lost = True
                continue
            if kept and box_iou(p.box, np.stack([k.box for k in kept])).max() > DUPLICATE_IOU:
                continue  # two regions converged on one person: the one followed longer keeps them
            kept.append(p)
        hmr_ms = (time.perf_counter() - t0) * 1e3
        if not kept or lost:
            self.schedule.request()
        start = self._scan is None and self.schedule.should_detect() and len(kept) < self.max_persons
        self.schedule.advance(start)
        if start:
            self._scan = 0
        ran = self._scan is not None and len(kept) < self.max_persons
        if not ran:
            self._scan = None  # max_persons followed: the rest of the look is not needed
        det_ms = 0.0
        dets = Detections.empty()
        if ran:
            td = time.perf_counter()
            known = np.stack([k.box for k in kept]) if kept else np.zeros((0, 4), np.float32)
            # one part of the look per frame (no frame stalls on a whole detection: a lost person's whole
            # look, 4 views on 16:9, cost ~2.5 frames, docs/offline.md "Stalls"); a stream's first frame: all
            # of it now (the schedule's first processed frame since a reset), it has nobody to show otherwise
            parts = 1 if self.schedule.frame == 1 else self.detector.detection_parts((w, h))
            if parts > 1:
                dets = self.detector.detect_new_part(image_rgb, known, self._scan, fi)
                self._scan = self._scan + 1 if self._scan + 1 < parts else None
            else:
                dets = self.detector.detect_new(image_rgb, known, fi)
                self._scan = None
            det_ms = (time.perf_counter() - td) * 1e3
            th = time.perf_counter()
            new = list(self.estimator(image_rgb, dets.boxes, dets.scores, landmarks=dets.landmarks)) if len(dets) \
                else []
            kept += new[:max(0, self.max_persons - len(kept))]
            hmr_ms += (time.perf_counter() - th) * 1e3
        self._followed = kept
        return FrameResult(persons=list(kept), detector_ms=det_ms, hmr_ms=hmr_ms,
                           total_ms=(time.perf_counter() - t0) * 1e3, detector_ran=ran, frame_index=fi,
                           image_size=(w, h), detections=dets)

    def track(self, result: FrameResult, time_s: float | None = None) -> FrameResult:
        """IDs and smoothing for a frame whose persons were found elsewhere: ``result`` is a
        :class:`~instanthmr.runtime.pipeline.FrameResult` (``persons`` with ``box``, ``score``, ``joints_2d``;
        ``frame_index``, ``image_size``, ``detector_ran``, ``reused`` and the timings). The detector runs
        counted are the result's; the returned ``total_ms`` adds this call's time to the result's."""
        t0 = time.perf_counter()
        fi = int(result.frame_index)
        ts = fi / self.fps if time_s is None else float(time_s)
        self.frames_seen += 1
        before = set(self.tracker.active_ids)
        preds = list(result.persons)
        boxes = np.array([np.asarray(p.box, np.float64) for p in preds]).reshape(-1, 4)
        scores = np.array([float(p.score) for p in preds], np.float64)
        kpts = np.stack([np.asarray(p.joints_2d, np.float64) for p in preds]) if preds else None
        ids = self.tracker.update(boxes, scores, kpts)
        self.detector_calls += int(bool(result.detector_ran))
        # people followed by their landmarks say so per person (source "keypoints")
        persons = [_tagged(p, tid, "reused_box" if result.reused else
                           "keypoints" if getattr(p, "source", "") == "keypoints" else "detector", s)
                   for tid, p, s in zip(ids, preds, scores)]
        frame = dataclasses.replace(result, persons=[], time_s=ts, detector_ran=bool(result.detector_ran),
                                    reused=bool(result.reused), image_size=tuple(result.image_size))
        return self._finish(persons, before, frame, t0 - float(result.total_ms) / 1e3)

    def _finish(self, persons: list, before: set[int], frame: FrameResult, t0: float) -> FrameResult:
        """Causal smoothing, ended tracks and the total time (since ``t0``, perf_counter seconds)."""
        ended = sorted(before - set(self.tracker.active_ids))
        if self.smoother is not None:
            persons = smooth_causal(self.smoother, persons, frame.time_s, ended)
        frame.persons, frame.ended_tracks = persons, ended
        frame.total_ms = (time.perf_counter() - t0) * 1e3
        return frame


def smooth_causal(smoother, persons: list, time_s: float, ended: list[int]) -> list:
    """One frame's tracked ``persons`` through a causal ``smoother`` (a
    :class:`~instanthmr.video.smoothing.OneEuroSmoother`, at ``time_s`` seconds); the filters of the ``ended``
    track IDs are dropped. Smoothed copies, in order."""
    persons = [smoother(p.track_id, p, time_s) for p in persons]
    if ended:
        smoother.drop(ended)
    return persons


def _tagged(pred, track_id, source: str, confidence):
    """``pred`` with its track columns set."""
    return dataclasses.replace(pred, track_id=int(track_id), source=source, confidence=float(confidence))


def smooth_frames_offline(frames: list[FrameResult], fps: float = 30.0, sigma_frames: float | None = None,
                          degree: int | None = None) -> list[FrameResult]:
    """Centred smoothing of every track over a whole video (non-causal; the ``offline`` mode). Returns new
    frames; the input is not modified."""
    from instanthmr.video.smoothing import OFFLINE_DEGREE, smooth_track_offline

    where: dict[int, list[tuple[int, int]]] = {}
    for fi, frame in enumerate(frames):
        for pi, person in enumerate(frame.persons):
            where.setdefault(person.track_id, []).append((fi, pi))
    persons = [list(f.persons) for f in frames]
    for tid, slots in where.items():
        preds = [frames[fi].persons[pi] for fi, pi in slots]
        idx = [frames[fi].frame_index for fi, _ in slots]
        smoothed = smooth_track_offline(preds, idx, fps=fps, sigma_frames=sigma_frames,
                                        degree=OFFLINE_DEGREE if degree is None else degree)
        for (fi, pi), p in zip(slots, smoothed):
            persons[fi][pi] = p
    return [dataclasses.replace(f, persons=ps) for f, ps in zip(frames, persons)]
