"""The offline per-person model: MediaPipe's BlazePose (+ hand) landmarks as MHR70 2D and metric 3D.

When no InstantHMR network can be had (no ``models/instanthmr.onnx``, no hub), this is what turns a person
into an :class:`~instanthmr.runtime.hmr.HMRPrediction`, in the same place and with the same outputs as the
network, so the exporters, the viewer and tracking work unchanged::

    hmr = MediaPipeHMR()                                 # BlazePose full (LiteRT) + hand landmarks (int8, ONNX Runtime)
    preds = hmr.predict(image_rgb, boxes, scores)        # one HMRPrediction per box
    pipe = mediapipe_pipeline()                          # a PosePipeline: + MediaPipe's person detector
    result = pipe.predict(image_rgb)                     # FrameResult
    video = TrackingPipeline.from_pipeline(pipe)         # + MediaPipe's tracking rule, track IDs, smoothing

What it predicts (see :func:`~instanthmr.runtime.mediapipe.conversion.mhr70_from_landmarks`): the MHR70 body
joints BlazePose has (face points, shoulders, elbows, wrists, hips, knees, ankles, heels, big-toe tips from
BlazePose's "foot index") and, with ``hands=True``, the 20 finger joints of each hand the hand model finds.
Never predicted, so always marked invalid (``joints_valid`` False, NaN values): small-toe tips, olecranon,
cubital fossa, acromion, neck; nor any ``mhr_params`` / ``shape_params`` (BlazePose has no body model: both are
``None``). A body joint is also invalid where BlazePose's presence (the point is inside the image) is below
``min_presence`` and the point is not just outside the picture (e.g. the hips and legs of a head-and-shoulders
portrait; its elbows just below the bottom edge stay), and hand joints where no hand was found.

Frames and units: ``joints_2d`` full-image pixels; ``joints_3d_local`` BlazePose's metric world landmarks
(metres, origin between the hips, camera axes x right, y down, z forward); ``cam_trans`` the translation
that best projects them onto ``joints_2d`` with a pinhole of focal ``focal_length`` (default: the image
diagonal) and the principal point at the image centre; ``joints_3d_cam = joints_3d_local + cam_trans``.

:func:`mediapipe_pipeline` composes the estimator with a detector; on video, its ``crops="landmarks"`` is
MediaPipe's tracking rule, a crop strategy of :class:`~instanthmr.video.tracking.TrackingPipeline`: once a
person is found, the next frame's crop is the rotated region from this frame's landmarks (one landmark pass
per person per frame, :meth:`MediaPipeHMR.follow`); the person detector runs only to find newcomers (every
``detect_every`` frames, or when a person is lost). Track IDs come from the same tracker as for the network;
the boxes it associates are the landmark-driven ones, so an ID stays with the person the landmarks follow.
"""


from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from instanthmr.runtime.detector import PersonDetector, create_detector
from instanthmr.runtime.hmr import HMRPrediction
from instanthmr.runtime.mediapipe.blazepose import BlazePoseDetector, BlazePoseLandmarker, PoseLandmarks, landmark_box
from instanthmr.runtime.mediapipe.conversion import mhr70_from_landmarks
from instanthmr.runtime.mediapipe.detector import MediaPipeDetector
from instanthmr.runtime.mediapipe.files import MEDIAPIPE_VERSION, landmark_model_path, mediapipe_models_dir, model_path
from instanthmr.runtime.mediapipe.hands import HandLandmarker, find_hands
from instanthmr.runtime.mediapipe.regions import Roi, crop_roi
from instanthmr.runtime.pipeline import PosePipeline

MODEL_NAME = "mediapipe"
MODEL_VERSION = f"blazepose_full+hand_full@mediapipe{MEDIAPIPE_VERSION}"


@dataclass
class PersonLandmarks:
    """What the MediaPipe path found for one person (``HMRPrediction.landmarks``): BlazePose's ``pose`` and the
    ``hands`` (``{"left": HandLandmarks | None, "right": ...}``; None while not looked for yet, see
    :class:`TrackHands`); the next video frame's regions come from them. ``followed``: the last frame's pose
    this person was followed from (MediaPipe's tracking rule), None for a person the detector found."""

    pose: PoseLandmarks
    hands: dict | None
    followed: PoseLandmarks | None = None


def box_roi(box, scale: float = 1.25) -> Roi:
    """An upright landmark-model crop for a person box from elsewhere (RF-DETR, a box file): centred on the
    box, ``scale`` x its long side (BlazePose's crops are square and reach past the body on every side)."""
    x1, y1, x2, y2 = (float(v) for v in np.asarray(box).reshape(4))
    return Roi((x1 + x2) / 2.0, (y1 + y2) / 2.0, max(x2 - x1, y2 - y1, 8.0) * scale, 0.0)


class MediaPipeHMR:
    """BlazePose full (+ hand landmark full) on the CPU, a :class:`~instanthmr.runtime.pipeline.PoseEstimator`:
    ``predict(image_rgb, boxes, scores, focal_length, landmarks=None) -> list[HMRPrediction]``.

    A box that comes with the MediaPipe detector's landmarks (``landmarks[i]``, a ``PoseLandmarks``) uses them
    (no second landmark pass); any other box goes through :meth:`landmarks_in_box`. Each prediction's ``box``
    is the person's full-body box from the landmarks (the MediaPipe detector's kind of box), ``confidence``
    BlazePose's pose presence, ``landmarks`` a :class:`PersonLandmarks`, from which :meth:`follow` finds the
    person on the next frame (MediaPipe's tracking rule, the ``"landmarks"`` crop strategy).

    Args:
        models_dir: folder of the ``.tflite`` files (default ``models/mediapipe``).
        hands: also run the hand landmark model (20 finger joints per hand; ~5 ms per hand and pass).
        min_presence: body joints whose presence (inside the image) is lower are marked invalid.
        num_threads: threads per LiteRT model (default: up to 4); the int8 hand model on ONNX Runtime always
            runs :data:`~.models.ONNX_THREADS` (1: measured, docs/offline.md).
        precision: how the models run (:data:`~.files.LANDMARK_PRECISIONS`): ``"int8"`` (default: the hand
            model as the int8 ONNX copy shipped in the package, on ONNX Runtime, half LiteRT's time; its drift
            from MediaPipe's file in docs/offline.md) or ``"float"`` (MediaPipe's own hand file on LiteRT; what
            the offline teacher runs). The pose landmark model and the person detector are MediaPipe's own
            files either way (the pose model does not survive int8).
    """

    name = MODEL_NAME
    device = "cpu"
    io_binding = False
    cuda_graph = False
    has_wholebody = False
    #: the hands are found after tracking, by :class:`TrackHands` (the run loop's finishing thread), not here:
    #: the predictions come with no hand joints and ``landmarks.hands`` None (set by TrackHands.attach)
    hands_later = False

    def __init__(self, models_dir: str | Path | None = None, hands: bool = True, min_presence: float = 0.5,
                 num_threads: int | None = None, precision: str = "int8"):
        self.models_dir = Path(models_dir or mediapipe_models_dir())
        self.path = landmark_model_path("pose_landmark_full", precision, self.models_dir)
        self.landmarker = BlazePoseLandmarker(self.path, num_threads=num_threads)
        # only for boxes from another detector (see landmarks_in_box); loaded on first use
        self._box_detector_args = (model_path("pose_detection", self.models_dir), num_threads)
        self._box_detector: BlazePoseDetector | None = None
        hand_path = landmark_model_path("hand_landmark_full", precision, self.models_dir)
        #: the hand model runs as its int8 ONNX copy (on ONNX Runtime); every other model is MediaPipe's own file
        self.hand_int8 = bool(hands) and hand_path.suffix == ".onnx"
        # num_threads is LiteRT's: the int8 ONNX copy keeps models.ONNX_THREADS (a second thread only burns a core)
        self.hand = HandLandmarker(hand_path, num_threads=None if self.hand_int8 else num_threads) if hands else None
        self.min_presence = float(min_presence)
        self.provider = "LiteRT CPU (XNNPACK)" + (" + ONNX Runtime CPU (int8 hand model)" if self.hand_int8 else "")
        self.model_info = {"precision": "fp32, hands int8" if self.hand_int8 else "fp32", "model_name": MODEL_NAME,
                           "version": f"{MODEL_VERSION}+hand_int8" if self.hand_int8 else MODEL_VERSION,
                           "hands": self.hands, "has_metadata": False}

    @property
    def box_detector(self) -> BlazePoseDetector:
        """BlazePose's person detector, for boxes that come without landmarks."""
        if self._box_detector is None:
            path, threads = self._box_detector_args
            self._box_detector = BlazePoseDetector(path, num_threads=threads)
        return self._box_detector

    @property
    def hands(self) -> bool:
        return self.hand is not None

    def __repr__(self) -> str:
        return f"MediaPipeHMR({self.model_info['version']}, hands={self.hands}, provider={self.provider})"

    def describe(self) -> str:
        """One line for banners: what runs."""
        return (f"MediaPipe BlazePose full{' + hand landmarks' if self.hands else ' (body only, no hands)'} "
                f"from mediapipe=={MEDIAPIPE_VERSION} ({self.models_dir}"
                f"{'; the hand model as its int8 copy in ' + str(self.hand.model.path.parent) if self.hand_int8 else ''}"
                f") on {self.provider}")

    # ------------------------------------------------------------------ landmarks
    def landmarks_in_box(self, image: np.ndarray, box) -> PoseLandmarks | None:
        """BlazePose on a person box from elsewhere, the way MediaPipe itself starts: its person detector on
        the square around the box gives the body's alignment points, whose rotated crop goes to the landmark
        model. Where the detector finds nobody, an upright crop around the box, re-fitted once to the
        landmarks' own alignment points."""
        view = box_roi(box, 1.1)
        det = self.box_detector
        crop = crop_roi(image, view, det.INPUT).astype(np.float32) / 127.5 - 1.0
        raw_boxes, raw_scores = det.model(crop[None])
        dets = det.postprocess(raw_boxes[0], raw_scores[0, :, 0], view)
        # the square around the box may show someone else too: the box's person has their hips in it
        x1, y1, x2, y2 = (float(v) for v in np.asarray(box).reshape(4))
        mine = [d for d in dets if x1 <= d.keypoints[0][0] <= x2 and y1 <= d.keypoints[0][1] <= y2]
        if mine or dets:
            pose = self.landmarker(image, max(mine or dets, key=lambda d: d.score).body_roi())
            if pose is not None:
                return pose
        pose = self.landmarker(image, box_roi(box))
        if pose is None:
            return None
        again = self.landmarker(image, pose.tracking_roi())
        return again if again is not None else pose

    # ------------------------------------------------------------------ predictions
    def prediction(self, image_wh, pose: PoseLandmarks, hands: dict | None, score: float | None = None,
                   focal_length: float | None = None, source: str = "detector",
                   followed: PoseLandmarks | None = None) -> HMRPrediction:
        """One :class:`HMRPrediction` from landmarks (the invalid joints NaN, see the module docstring)."""
        m = mhr70_from_landmarks(pose, hands, image_wh, focal_length, self.min_presence)
        valid = m.joints_3d_valid
        j2 = np.where(valid[:, None], m.joints_2d, np.nan).astype(np.float32)
        local = np.where(valid[:, None], m.joints_3d, np.nan).astype(np.float32)
        return HMRPrediction(
            box=landmark_box(pose, image_wh), score=float(pose.score if score is None else score),
            joints_3d_local=local, joints_3d_cam=local + m.cam_trans[None], joints_2d=j2, cam_trans=m.cam_trans,
            focal_length=float(m.focal_length), principal_point=m.principal_point.astype(np.float64),
            mhr_params=None, shape_params=None, joints_valid=valid, source=source, confidence=float(pose.score),
            landmarks=PersonLandmarks(pose, None if hands is None and self.hands_later else hands or {}, followed))

    def person(self, image: np.ndarray, pose: PoseLandmarks, score: float | None = None,
               focal_length: float | None = None, source: str = "detector",
               previous_hands: dict | None = None, followed: PoseLandmarks | None = None) -> HMRPrediction:
        """The prediction for landmarks already found (hands looked for here, from ``previous_hands`` when
        the last frame had them; not looked for with ``hands_later``: :class:`TrackHands` adds them, from the
        hands of the ``followed`` pose)."""
        h, w = image.shape[:2]
        hands = None if self.hands_later else self.find_hands(image, pose, previous_hands)
        return self.prediction((w, h), pose, hands, score, focal_length, source, followed)

    def find_hands(self, image: np.ndarray, pose: PoseLandmarks, previous_hands: dict | None = None) -> dict:
        """Both hands of the person with ``pose`` (:func:`~instanthmr.runtime.mediapipe.hands.find_hands`),
        ``{"left": HandLandmarks | None, "right": ...}``; both ``None`` without the hand model."""
        if self.hand is None:
            return {"left": None, "right": None}
        return find_hands(self.hand, image, pose, previous_hands, self.min_presence)

    def predict(self, image_rgb: np.ndarray, boxes, scores=None, focal_length: float | None = None, *,
                landmarks: list | None = None) -> list[HMRPrediction]:
        """3D pose of every person box in one RGB frame (``boxes`` (N, 4) xyxy px; empty -> ``[]``); a box
        where BlazePose finds nobody gives no prediction. ``landmarks``: per box, the detector's
        ``PoseLandmarks`` (used as they are) or ``None``. ``focal_length`` (px) defaults to the image
        diagonal; the principal point is the image centre."""
        image = _check_image(image_rgb)
        boxes = np.asarray(boxes if boxes is not None else np.zeros((0, 4)), np.float64).reshape(-1, 4)
        scores = np.ones(len(boxes)) if scores is None else np.asarray(scores, np.float64).reshape(-1)
        out = []
        for i, box in enumerate(boxes):
            pose = landmarks[i] if landmarks is not None else None
            if pose is None:
                pose = self.landmarks_in_box(image, box)
            if pose is not None:
                out.append(self.person(image, pose, float(scores[i]), focal_length))
        return out

    def follow(self, image_rgb: np.ndarray, people: list[HMRPrediction], focal_length: float | None = None
               ) -> list[HMRPrediction | None]:
        """MediaPipe's tracking rule: each of last frame's ``people`` (this estimator's predictions) looked for
        in the rotated region its landmarks give (:meth:`PoseLandmarks.tracking_roi`), one landmark pass each,
        its hands from where they were (with ``hands_later``, by :class:`TrackHands`, which the new landmarks'
        ``followed`` leads to them); ``None`` where the landmark model finds no pose there (lost).
        Predictions come with ``source="keypoints"`` and BlazePose's pose presence as ``score``."""
        image = _check_image(image_rgb)
        out: list[HMRPrediction | None] = []
        for prev in people:
            lm: PersonLandmarks = prev.landmarks
            pose = self.landmarker(image, lm.pose.tracking_roi())
            out.append(None if pose is None else
                       self.person(image, pose, None, focal_length, "keypoints", lm.hands, lm.pose))
        return out


class TrackHands:
    """The hands of a tracked frame's people, found after tracking rather than inside the landmark pass.

    The next frame's pose regions come from this frame's pose alone, so the hand passes (4.4 ms each, one or
    two a person and frame) need not hold the next frame back: the run loop calls this on its finishing
    thread (:mod:`instanthmr.runner.finisher`) while the next frame's pose model runs. The hands found are
    those the landmark pass would have found: a person followed from the last frame starts from the hands
    found with the pose they were followed from (``landmarks.followed``; kept here from the last frame, which
    is finished first), anyone else looks for them from the wrists
    (:func:`~instanthmr.runtime.mediapipe.hands.find_hands`).

        hands = TrackHands.attach(estimator)   # estimator.hands_later on: its predictions come without hands
        result = hands(image_rgb, result)      # a tracked FrameResult -> the same with every person's hands
        hands.detach()                         # the estimator finds hands itself again
    """

    def __init__(self, estimator: MediaPipeHMR):
        self.estimator = estimator
        self._last: dict[int, tuple] = {}  # id(pose) -> (pose, its hands), the last frame finished

    @classmethod
    def attach(cls, estimator) -> "TrackHands | None":
        """Take the hand passes over from ``estimator`` (a :class:`MediaPipeHMR` with the hand model), or None
        when it has no hands to find (body only, the network, another estimator)."""
        if not isinstance(estimator, MediaPipeHMR) or not estimator.hands:
            return None
        estimator.hands_later = True
        return cls(estimator)

    def detach(self) -> None:
        """The estimator finds hands itself again (idempotent)."""
        self.estimator.hands_later = False

    def __call__(self, image_rgb: np.ndarray, result):
        """``result`` (a tracked ``FrameResult`` of this estimator's predictions, without hands) with each
        person's hand joints and ``landmarks.hands`` in (``joints_*``, ``cam_trans`` and ``joints_valid`` as
        :meth:`MediaPipeHMR.prediction` gives them); a new ``FrameResult``, ``result`` unchanged."""
        image = _check_image(image_rgb)
        h, w = image.shape[:2]
        last, self._last = self._last, {}
        persons = []
        for p in result.persons:
            lm = p.landmarks
            if not isinstance(lm, PersonLandmarks) or lm.hands is not None:
                persons.append(p)
                continue
            then = last.get(id(lm.followed)) if lm.followed is not None else None
            previous = then[1] if then is not None and then[0] is lm.followed else None
            hands = self.estimator.find_hands(image, lm.pose, previous)
            self._last[id(lm.pose)] = (lm.pose, hands)  # the pose kept too: its id is not reused meanwhile
            full = self.estimator.prediction((w, h), lm.pose, hands, p.score, p.focal_length, p.source, lm.followed)
            persons.append(dataclasses.replace(
                p, joints_3d_local=full.joints_3d_local, joints_3d_cam=full.joints_3d_cam, joints_2d=full.joints_2d,
                cam_trans=full.cam_trans, joints_valid=full.joints_valid, landmarks=full.landmarks))
        return dataclasses.replace(result, persons=persons)


def _check_image(image_rgb) -> np.ndarray:
    image = np.asarray(image_rgb)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    return image


# --------------------------------------------------------------------------------------------------
# The composed pipeline
# --------------------------------------------------------------------------------------------------

#: Default for how often the person detector looks for newcomers while people are followed (frames).
DETECT_EVERY = 10


def mediapipe_pipeline(detector: str | Path | PersonDetector = "mediapipe", hands: bool = True,
                       detect_every: int = DETECT_EVERY, max_persons: int = 8, det_confidence: float = 0.5,
                       models_dir: str | Path | None = None, num_threads: int | None = None, device: str = "auto",
                       crops: str = "landmarks", detector_variant: str = "nano",
                       detector_weights: str | Path | None = None, detector_resolution: int | None = None,
                       precision: str = "int8") -> PosePipeline:
    """The offline MediaPipe path as a :class:`~instanthmr.runtime.pipeline.PosePipeline`: a person detector
    (``"mediapipe"``, its landmarks reused, or anything
    :func:`~instanthmr.runtime.detector.create_detector` takes, with ``detector_variant`` /
    ``detector_weights`` / ``detector_resolution`` / ``device``) and :class:`MediaPipeHMR` (``hands``,
    ``models_dir``, ``num_threads``, ``precision``).

    On video (:class:`~instanthmr.video.tracking.TrackingPipeline`), ``crops="landmarks"`` is MediaPipe's
    tracking rule: a person found on one frame is looked for on the next in the region from this frame's
    landmarks; the detector runs on the first frame, whenever nobody is followed, on a frame where somebody
    was lost, and every ``detect_every`` frames to find newcomers (never while ``max_persons`` people are
    followed), with the people followed blanked out. ``crops="boxes"``: each frame on its own (detector
    every ``detect_every`` frames, boxes reused between, like the network path).
    """
    if int(detect_every) < 1:
        raise ValueError(f"detect_every must be >= 1, got {detect_every}")
    estimator = MediaPipeHMR(models_dir, hands=hands, num_threads=num_threads, precision=precision)
    if isinstance(detector, (str, Path)) and str(detector).lower() == "mediapipe":
        detector = MediaPipeDetector(det_confidence, max_persons, models_dir=models_dir, num_threads=num_threads,
                                     landmarker=estimator.landmarker)  # one copy of the landmark model
    det = create_detector(detector, variant=detector_variant, confidence=det_confidence, max_persons=max_persons,
                          device=device, weights=detector_weights, resolution=detector_resolution)
    return PosePipeline(det, estimator, detector_stride=detect_every, max_persons=max_persons, crops=crops)
