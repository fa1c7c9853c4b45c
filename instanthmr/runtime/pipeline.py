"""A person detector and a pose estimator on whole frames: ``PosePipeline(detector, estimator).predict(image_rgb)
-> FrameResult``.

The pipeline is composed from built parts (a :class:`~instanthmr.runtime.detector.PersonDetector` and a
:class:`PoseEstimator`: the InstantHMR network or the MediaPipe path's estimator); :meth:`PosePipeline.from_files`
builds them from an ``.onnx`` file and a detector name::

    pose = PosePipeline.from_files("models/instanthmr.onnx", detector="rfdetr", runtime="cpu-fast")
    pose = PosePipeline(create_detector("mediapipe"), load_hmr("models/instanthmr.onnx"), detector_stride=3)

The detector is by far the slowest stage, so it can run on every ``detector_stride``-th frame only
(:class:`DetectorSchedule`): frames 0, N, 2N, ... are detected; the frames between reuse the last detected
boxes, enlarged by 10% of their width/height on each side (people move) with their score x 0.9. A detector
run that finds nobody right after one that found people reuses the previous boxes the same way (one miss is
tolerated, a second empty run clears them), so a person is not dropped for one missed detection. What a
detector finds besides the boxes (the MediaPipe detector's landmarks) travels with them to the estimator
(``Detections.landmarks``).

Videos: person IDs, the crops between detector runs (``crops``: keypoints, boxes, or the estimator's own
landmarks) and smoothing are a separate wrapper one floor up (rtmlib style: tracking is not part of a model),
:mod:`instanthmr.video.tracking`; it returns the same :class:`FrameResult`, its persons with ``track_id`` set::

    pose = PosePipeline.from_files("models/instanthmr.onnx", detector_stride=10)  # the one stride, for both
    tracked = TrackingPipeline.from_pipeline(pose, smooth="causal")  # keypoint crops between detector runs
    frame = tracked(image_rgb, frame_index, time_s)       # FrameResult: persons with track_id
    frames = smooth_frames_offline(all_raw_frames, fps)   # smooth="offline": after the whole video

See docs/temporal.md.

Runtime imports are numpy, OpenCV and onnxruntime only (torch only for the torch RF-DETR detector and for
:func:`random_init_onnx`).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from instanthmr.core.geometry import usable_boxes
from instanthmr.runtime.detector import Detections, PersonDetector, create_detector
from instanthmr.runtime.session import RuntimeOptions

REUSE_ENLARGE = 0.10  # fraction of the box width/height added on each side when boxes are reused
REUSE_SCORE_DECAY = 0.9


@dataclass
class FrameResult:
    """Everything known about one frame: the per-frame result of :class:`PosePipeline` and, with track
    columns filled in, of :class:`~instanthmr.video.tracking.TrackingPipeline`.

    ``persons``: one :class:`~instanthmr.runtime.hmr.HMRPrediction` per person (pixels / camera metres, see
    there); tracking sets their ``track_id``, ``source`` and ``confidence``. ``detector_ms`` (0 when the
    detector did not run), ``hmr_ms`` (crops + network + decoding, all persons), ``total_ms`` (the whole call,
    tracking and causal smoothing included when tracked): milliseconds on a monotonic clock, visualisation
    excluded. ``detector_ran``: the detector ran on this frame. ``reused``: the boxes are the previous
    detections (enlarged). ``frame_index``: source frame number. ``image_size``: ``(W, H)`` px.
    ``detections``: the boxes the network ran on. With the asynchronous detector, ``detector_ran`` marks the
    frame whose boxes are a fresh detector result, ``detector_ms`` is how long that run took on the
    detector's own thread (not part of ``total_ms``) and ``detector_lag`` is how many frames older than this
    one the detected image was (0 when synchronous).

    Tracking columns: ``time_s``, seconds from the start of the source (``None`` untracked);
    ``ended_tracks``, the track IDs whose tracks ended at this frame.

    ``ground``: the floor once estimated (:class:`~instanthmr.video.ground_stage.GroundStage`):
    ``{"normal_cam": [nx, ny, nz] (unit, pointing up, camera frame), "camera_height_m": h, "provisional":
    bool}``; ``None`` otherwise.
    """

    persons: list
    detector_ms: float
    hmr_ms: float
    total_ms: float
    detector_ran: bool
    frame_index: int = 0
    image_size: tuple[int, int] = (0, 0)
    reused: bool = False
    detections: Detections = field(default_factory=Detections.empty, repr=False)
    detector_lag: int = 0
    time_s: float | None = None
    ended_tracks: list[int] = field(default_factory=list)
    ground: dict | None = None

    @property
    def fps(self) -> float:
        return 1000.0 / self.total_ms if self.total_ms > 0 else 0.0


def enlarge_boxes(boxes, frac: float = REUSE_ENLARGE, image_wh=None) -> np.ndarray:
    """Boxes ``(N, 4)`` xyxy grown by ``frac`` x width (x) and ``frac`` x height (y) on every side, clipped
    to the image when ``image_wh`` is given."""
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
    w = b[:, 2] - b[:, 0]
    h = b[:, 3] - b[:, 1]
    b[:, 0] -= frac * w
    b[:, 2] += frac * w
    b[:, 1] -= frac * h
    b[:, 3] += frac * h
    if image_wh is not None:
        b = np.clip(b, 0.0, [image_wh[0], image_wh[1], image_wh[0], image_wh[1]]).astype(np.float32)
    return b


class DetectorSchedule:
    """When the detector runs, and which boxes a frame without a run uses: the one schedule of both
    :class:`PosePipeline` and :class:`~instanthmr.video.tracking.TrackingPipeline` (pure: no models, no clocks).

    The detector runs on the first frame, again once ``stride`` processed frames have passed since its last
    run, and on the next frame after :meth:`request` (a tracker that lost a person asks for it). Per processed
    frame: ``if schedule.should_detect(): dets = schedule.after_detection(detector(...), wh)`` else
    ``dets = schedule.between(wh)`` (the reuse rule of the module docstring; ``reused`` tells whether the last
    returned boxes were reused). A caller that makes its own boxes between runs calls :meth:`advance` instead.
    """

    def __init__(self, stride: int = 1):
        if int(stride) < 1:
            raise ValueError(f"detector_stride must be >= 1, got {stride}")
        self.stride = int(stride)
        self.reset()

    def reset(self) -> None:
        """A new stream: the next frame is a detector frame; counters and reused boxes are cleared."""
        self.frame = 0  # processed frames so far
        self.calls = 0
        self.since = self.stride  # processed frames since the last detector run (due at once)
        self.requested = False
        self.last: Detections | None = None  # the last non-empty detector output
        self.missed = False  # the last detector run found nobody while `last` was kept
        self.reused = False

    def should_detect(self) -> bool:
        return self.requested or self.since >= self.stride

    def request(self) -> None:
        """Run the detector on the next frame, whatever the stride."""
        self.requested = True

    def advance(self, ran: bool) -> None:
        """Count one processed frame; ``ran``: the detector ran on it."""
        self.frame += 1
        if ran:
            self.calls += 1
            self.since, self.requested = 1, False
        else:
            self.since += 1

    def _reuse(self, image_wh) -> Detections:
        if self.last is None or len(self.last) == 0:
            self.reused = False
            return Detections.empty()
        self.reused = True
        return Detections(enlarge_boxes(self.last.boxes, REUSE_ENLARGE, image_wh),
                          self.last.scores * REUSE_SCORE_DECAY)

    def after_detection(self, dets: Detections, image_wh) -> Detections:
        """Boxes to use on a frame where the detector ran and returned ``dets``."""
        self.advance(True)
        if len(dets):
            self.last, self.missed, self.reused = dets, False, False
            return dets
        if self.last is not None and not self.missed:  # nobody right after a detection: keep them once
            self.missed = True
            return self._reuse(image_wh)
        self.last, self.reused = None, False
        return Detections.empty()

    def between(self, image_wh) -> Detections:
        """Boxes to use on a frame where the detector did not run."""
        self.advance(False)
        return self._reuse(image_wh)


def drop_tiny_boxes(dets: Detections) -> Detections:
    """``dets`` without the boxes :func:`~instanthmr.core.geometry.usable_boxes` rejects (slivers, NaN)."""
    keep = usable_boxes(dets.boxes)
    return dets if keep.all() else dets.take(keep)


#: How a video follows a person between detector runs (see PosePipeline ``crops``).
CROP_STRATEGIES = ("keypoints", "boxes", "landmarks")


class PoseEstimator(Protocol):
    """What a per-person pose model gives a pipeline: the InstantHMR network
    (:class:`~instanthmr.runtime.hmr.InstantHMR`) and the MediaPipe path implement it.

    ``predict(image_rgb, boxes, scores=None, focal_length=None, *, landmarks=None)``: ``image_rgb`` (H, W, 3)
    uint8, ``boxes`` (N, 4) xyxy px, ``scores`` (N,), ``focal_length`` px (``None``: the model's default),
    ``landmarks`` what the detector found per box (``Detections.landmarks``; a model that cannot use them
    ignores them) -> one :class:`~instanthmr.runtime.hmr.HMRPrediction` per person found (pixels / camera
    metres). ``name``: the model's name; ``provider``: what runs it; ``describe()``: one line for banners.
    An estimator that follows people by its own landmarks also has ``follow(image_rgb, people, focal_length)
    -> list[HMRPrediction | None]`` (the ``"landmarks"`` crop strategy).
    """

    name: str
    provider: str

    def predict(self, image_rgb: np.ndarray, boxes, scores=None, focal_length: float | None = None, *,
                landmarks: list | None = None) -> list: ...

    def describe(self) -> str: ...


def load_hmr(onnx_path: str | Path, device: str = "auto", max_persons: int = 8, batch_persons: bool = True,
             runtime: RuntimeOptions | str | None = None, providers: list | None = None, mhr=None):
    """The :class:`~instanthmr.runtime.hmr.InstantHMR` network of ``onnx_path`` run with ``runtime``, from the
    file its ``precision`` names (:func:`~instanthmr.runtime.hmr.network_path`); ``providers`` / ``mhr`` as
    there (an explicit provider list; the MHR body model an ``mhr_only`` graph needs)."""
    from instanthmr.runtime.hmr import InstantHMR, network_path

    rt = RuntimeOptions.resolve(runtime)
    return InstantHMR(network_path(onnx_path, rt.precision), device=device, max_persons=max_persons,
                      batch_persons=batch_persons, runtime=rt, providers=providers, mhr=mhr)


#: How much lower (Linux nice steps) the hidden detector's thread runs than the frames: while people are followed
#: its boxes are not urgent, and at the frames' priority each of its runs took a core from the network for
#: 2-3 frames, the slowest 5 % of frames (docs/performance.md, "Frames in flight"). The price: a frame that
#: needs the detector while a hidden run is under way (everybody lost meanwhile) waits for that run at this
#: priority, which other busy processes on the machine can stretch (not measured).
DETECTOR_NICE = 10


def _lower_thread_priority(steps: int) -> None:
    """Lower the calling thread's scheduling priority by ``steps`` nice levels: Linux only (there a thread's
    nice value is its own; elsewhere ``setpriority`` would lower the whole process, so nothing is done)."""
    if steps and sys.platform.startswith("linux") and hasattr(os, "setpriority"):
        try:
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + steps)
        except OSError:  # a sandbox may refuse it: the detector then runs at the frames' priority
            pass


class AsyncDetector:
    """A detector on its own thread: :meth:`submit` hands it a frame when it is idle, :meth:`poll` returns each
    finished result once. The caller never waits for it (except :meth:`wait`), so the pose network runs on
    the latest boxes while the next detection is computed: on a multi-core CPU the two models overlap.

    Results are ``(frame_number, Detections, ms)``; ``frame_number`` is the caller's counter passed to
    :meth:`submit`. A detector exception is re-raised by the next :meth:`poll` / :meth:`wait`.
    """

    def __init__(self, detector: PersonDetector):
        self.detector = detector
        self._cv = threading.Condition()
        self._job: tuple | None = None  # (image, frame_index, frame_number) waiting for the worker
        self._result: tuple | None = None
        self._error: BaseException | None = None
        self._running = False
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="instanthmr-detector", daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        with self._cv:
            return self._running or self._job is not None

    def submit(self, image_rgb: np.ndarray, frame_index: int, frame_number: int) -> bool:
        """Queue ``image_rgb`` (copied: the caller may reuse its buffer) unless a detection is under way."""
        with self._cv:
            if self._running or self._job is not None or self._closed:
                return False
            self._job = (image_rgb.copy(), frame_index, frame_number)
            self._cv.notify_all()
            return True

    def poll(self) -> tuple | None:
        with self._cv:
            return self._take()

    def wait(self, timeout: float | None = None) -> tuple | None:
        """Block until the running/queued detection finishes and return it (``None`` if nothing is pending)."""
        with self._cv:
            self._cv.wait_for(lambda: self._result is not None or self._error is not None
                              or not (self._running or self._job is not None), timeout)
            return self._take()

    def _take(self):
        if self._error is not None:
            err, self._error = self._error, None
            raise err
        res, self._result = self._result, None
        return res

    def _loop(self) -> None:
        _lower_thread_priority(DETECTOR_NICE)
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._job is not None or self._closed)
                if self._closed:
                    return
                image, fi, n = self._job
                self._job, self._running = None, True
            try:
                t0 = time.perf_counter()
                dets = self.detector(image, fi)
                res, err = (n, dets, (time.perf_counter() - t0) * 1e3), None
            except BaseException as e:  # handed to the caller's thread
                res, err = None, e
            with self._cv:
                self._result, self._error, self._running = res, err, False
                self._cv.notify_all()

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._job = None
            self._cv.notify_all()
        self._thread.join(timeout=5.0)


class PosePipeline:
    """A person detector and a per-person pose estimator, frame by frame, composed from built parts.

    Args:
        detector: a :class:`~instanthmr.runtime.detector.PersonDetector` (``create_detector`` builds one from a
            name or a file).
        estimator: a :class:`PoseEstimator`: the InstantHMR network (:class:`~instanthmr.runtime.hmr.InstantHMR`,
            :func:`load_hmr`) or the MediaPipe path's estimator.
        detector_stride: run the detector every N frames (see :class:`DetectorSchedule`).
        max_persons: persons per frame (the highest scores), and the most a video follows.
        crops: how :class:`~instanthmr.video.tracking.TrackingPipeline` cuts a followed person's crop between
            detector runs (:data:`CROP_STRATEGIES`): ``"keypoints"`` the box of their previous 2D joints,
            ``"boxes"`` this pipeline's own reuse of the last detection boxes, ``"landmarks"`` the region the
            estimator's own landmarks give (MediaPipe's rule; the estimator must have ``follow``).
        focal_length: the camera's focal length in px, for estimators that can use one; ``None``: what the
            estimator assumes. Also settable later as an attribute.
        async_detector: the detector runs on its own thread on the newest frame while the estimator runs on the
            latest boxes; a new detection starts when the previous one is done and at least ``detector_stride``
            frames have passed; only the first frame waits for it.
        frames_in_flight: how many frames :class:`~instanthmr.video.tracking.TrackingPipeline` runs at once with
            keypoint crops (its ``frames_in_flight``; this pipeline's own ``predict`` is one frame at a time).

    :meth:`from_files` builds the parts from an ``.onnx`` file and a detector name (the old constructor's
    arguments).
    """

    def __init__(self, detector: PersonDetector, estimator: PoseEstimator, *, detector_stride: int = 1,
                 max_persons: int = 8, crops: str = "keypoints", focal_length: float | None = None,
                 async_detector: bool = False, frames_in_flight: int = 1):
        self.schedule = DetectorSchedule(detector_stride)
        if int(frames_in_flight) < 1:
            raise ValueError(f"frames_in_flight must be >= 1, got {frames_in_flight}")
        self.frames_in_flight = int(frames_in_flight)
        if crops not in CROP_STRATEGIES:
            raise ValueError(f"crops must be one of {CROP_STRATEGIES}, got {crops!r}")
        if crops == "landmarks" and not callable(getattr(estimator, "follow", None)):
            raise ValueError(f"crops='landmarks' needs an estimator that follows people by its own landmarks "
                             f"(follow(image, people)); {type(estimator).__name__} has none: use 'keypoints'")
        if not isinstance(detector, PersonDetector):
            raise TypeError(f"detector must be a PersonDetector (create_detector builds one from a name or a "
                            f"file), got {type(detector).__name__}; PosePipeline.from_files builds both parts")
        self.detector, self.estimator = detector, estimator
        self.max_persons = int(max_persons)
        self.crops = crops
        self.focal_length: float | None = focal_length  # px; None = what the estimator assumes
        self._async_wanted = bool(async_detector)
        self._async: AsyncDetector | None = None  # made by the first predict (a tracking wrapper may drive it)
        self._last_submit = -(10 ** 9)  # processed-frame number of the last frame handed to the async detector

    @classmethod
    def from_files(cls, onnx_path: str | Path, *, device: str = "auto",
                   detector: str | Path | PersonDetector = "rfdetr", detector_variant: str = "nano",
                   det_confidence: float = 0.5, max_persons: int = 8, detector_stride: int = 1,
                   batch_persons: bool = True, detector_weights: str | Path | None = None,
                   detector_resolution: int | None = None, runtime: RuntimeOptions | str | None = None,
                   providers: list | None = None, mhr=None, focal_length: float | None = None,
                   crops: str = "keypoints") -> "PosePipeline":
        """The InstantHMR network of ``onnx_path`` and a detector, built and composed.

        ``device``: ``"auto"`` (best available), ``"cuda"``, ``"coreml"`` or ``"cpu"``, for both models.
        ``detector``: a name or file :func:`~instanthmr.runtime.detector.create_detector` takes (``"rfdetr"``,
        ``"mediapipe"``, a ``.onnx`` RF-DETR export, a ``.json`` box file) or a built detector;
        ``detector_variant`` / ``detector_weights`` / ``detector_resolution`` / ``det_confidence``: its RF-DETR
        size, checkpoint, input side and score threshold. ``max_persons``: also the detector's cap and the
        network's padded batch; ``batch_persons``: all persons of a frame in one network call. ``runtime``: the
        speed levers, :class:`~instanthmr.runtime.session.RuntimeOptions` or a preset name (both models;
        ``async_detector`` is the pipeline's). ``providers``: the network's ONNX Runtime providers in order,
        instead of the ones ``device`` names. ``mhr``: the MHR body model ``mhr_only`` networks take their 3D
        keypoints from. The rest as the constructor.
        """
        DetectorSchedule(detector_stride)  # a bad stride fails before any model loads
        rt = RuntimeOptions.resolve(runtime)
        estimator = load_hmr(onnx_path, device, max_persons, batch_persons, rt, providers, mhr)
        det = create_detector(detector, variant=detector_variant, confidence=det_confidence, max_persons=max_persons,
                              device=device, weights=detector_weights, resolution=detector_resolution, runtime=rt)
        return cls(det, estimator, detector_stride=detector_stride, max_persons=max_persons, crops=crops,
                   focal_length=focal_length, async_detector=rt.async_detector,
                   frames_in_flight=rt.frames_in_flight)

    @property
    def hmr(self) -> PoseEstimator:
        """The estimator, under the name the network had here (``pipeline.hmr.provider``)."""
        return self.estimator

    @property
    def async_detector(self) -> bool:
        return self._async_wanted

    def close(self) -> None:
        """Stop the asynchronous detector's thread (no-op otherwise)."""
        self._async_wanted = False
        if self._async is not None:
            self._async.close()
            self._async = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    @property
    def detector_stride(self) -> int:
        return self.schedule.stride

    @property
    def detector_calls(self) -> int:
        return self.schedule.calls

    def reset(self) -> None:
        """Start a new stream: the stride counter restarts at a detector frame, reused boxes are dropped."""
        if self._async is not None:  # a detection in flight belongs to the old stream
            self._async.wait()
        self._last_submit = -(10 ** 9)
        self.schedule.reset()
        self.detector.reset()

    def estimate(self, image_rgb: np.ndarray, boxes, scores=None, landmarks: list | None = None) -> list:
        """The estimator on given boxes (``(N, 4)`` xyxy px; ``landmarks`` a detector's, per box) ->
        ``HMRPrediction`` list (no detector)."""
        return self.estimator.predict(image_rgb, boxes, scores, self.focal_length, landmarks=landmarks)

    def follow(self, image_rgb: np.ndarray, people: list) -> list:
        """Each of ``people`` (last frame's predictions) found again in the region its landmarks give, or
        ``None`` where lost (the ``"landmarks"`` crop strategy; the estimator's ``follow``)."""
        return self.estimator.follow(image_rgb, people, self.focal_length)

    def predict(self, image_rgb: np.ndarray, frame_index: int | None = None) -> FrameResult:
        """Detect (or reuse) person boxes and run the network on them. ``frame_index`` is the source frame
        number (default: frames processed so far); the stride counts processed frames."""
        t0 = time.perf_counter()
        image_rgb = np.asarray(image_rgb)
        if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
            raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {image_rgb.shape} {image_rgb.dtype}")
        h, w = image_rgb.shape[:2]
        fi = self.schedule.frame if frame_index is None else int(frame_index)
        detector_ms = 0.0
        lag = 0
        if self._async_wanted:
            if self._async is None:
                self._async = AsyncDetector(self.detector)
            dets, ran, detector_ms, lag = self._async_boxes(image_rgb, fi, (w, h))
        else:
            ran = self.schedule.should_detect()
            if ran:
                td = time.perf_counter()
                found = self.detector(image_rgb, fi)
                detector_ms = (time.perf_counter() - td) * 1e3
                dets = self.schedule.after_detection(found, (w, h))
            else:
                dets = self.schedule.between((w, h))
        dets = drop_tiny_boxes(dets).take(slice(0, self.max_persons))
        th = time.perf_counter()
        persons = self.estimate(image_rgb, dets.boxes, dets.scores, dets.landmarks) if len(dets) else []
        hmr_ms = (time.perf_counter() - th) * 1e3
        total_ms = (time.perf_counter() - t0) * 1e3
        return FrameResult(persons=persons, detector_ms=detector_ms, hmr_ms=hmr_ms, total_ms=total_ms,
                           detector_ran=ran, frame_index=fi, image_size=(w, h), reused=self.schedule.reused,
                           detections=dets, detector_lag=lag)

    def _async_boxes(self, image_rgb, fi: int, wh) -> tuple[Detections, bool, float, int]:
        """Boxes for this frame with the detector on its thread: a finished detection if one is waiting (the
        very first frame waits for its own), else the reused ones; then hand this frame over when it is idle."""
        n = self.schedule.frame  # processed-frame counter (the stride counts processed frames)
        if self.schedule.calls == 0 and self.schedule.last is None and self._async.submit(image_rgb, fi, n):
            self._last_submit = n
            res = self._async.wait()
        else:
            res = self._async.poll()
        if n - self._last_submit >= self.schedule.stride and self._async.submit(image_rgb, fi, n):
            self._last_submit = n
        if res is None:
            return self.schedule.between(wh), False, 0.0, 0
        done_n, found, ms = res
        return self.schedule.after_detection(found, wh), True, ms, n - done_n

    __call__ = predict
