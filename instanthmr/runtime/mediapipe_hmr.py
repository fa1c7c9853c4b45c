"""The offline per-person model: MediaPipe's BlazePose (+ hand) landmarks as MHR70 2D and metric 3D.

When no InstantHMR network can be had (no ``models/instanthmr.onnx``, no hub), this is what turns a person
into an :class:`~instanthmr.runtime.hmr.HMRPrediction`, in the same place and with the same outputs as the
network, so the exporters, the viewer and tracking work unchanged::

    hmr = MediaPipeHMR()                                 # BlazePose full + hand landmarks, LiteRT CPU
    preds = hmr.predict(image_rgb, boxes, scores)        # one HMRPrediction per box
    pipe = mediapipe_pipeline()                          # a PosePipeline: + MediaPipe's person detector
    result = pipe.predict(image_rgb)                     # FrameResult
    video = TrackingPipeline.from_pipeline(pipe)         # + MediaPipe's tracking rule, track IDs, smoothing

What it predicts (see :func:`mhr70_from_landmarks`): the MHR70 body joints BlazePose has (face points,
shoulders, elbows, wrists, hips, knees, ankles, heels, big-toe tips from BlazePose's "foot index") and,
with ``hands=True``, the 20 finger joints of each hand the hand model finds. Never predicted, so always
marked invalid (``joints_valid`` False, NaN values): small-toe tips, olecranon, cubital fossa, acromion,
neck; nor any ``mhr_params`` / ``shape_params`` (BlazePose has no body model: both are ``None``). A body
joint is also invalid where BlazePose's presence (the point is inside the image) is below ``min_presence``
and the point is not just outside the picture (e.g. the hips and legs of a head-and-shoulders portrait; its
elbows just below the bottom edge stay), and hand joints where no hand was found.

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

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from instanthmr.core import geometry
from instanthmr.core.skeleton import COCO_WHOLEBODY_INDEX, COCO_WHOLEBODY_TO_MHR70, MHR70_INDEX, MHR70_NAMES
from instanthmr.runtime.detector import PersonDetector, create_detector
from instanthmr.runtime.hmr import HMRPrediction
from instanthmr.runtime.mediapipe import (
    BLAZEPOSE33_INDEX,
    MEDIAPIPE_VERSION,
    BlazePoseDetector,
    BlazePoseLandmarker,
    HandLandmarker,
    HandLandmarks,
    PoseLandmarks,
    Roi,
    crop_roi,
    hand_roi_from_landmarks,
    hand_roi_from_pose,
    landmark_box,
    mediapipe_models_dir,
    model_path,
)
from instanthmr.runtime.mediapipe_detector import MediaPipeDetector
from instanthmr.runtime.pipeline import PosePipeline

MODEL_NAME = "mediapipe"
MODEL_VERSION = f"blazepose_full+hand_full@mediapipe{MEDIAPIPE_VERSION}"

# --------------------------------------------------------------------------------------------------
# BlazePose-33 / hand-21 -> MHR70
# --------------------------------------------------------------------------------------------------

#: MHR70 name -> BlazePose-33 name, for the body and feet points BlazePose has.
MHR70_FROM_BLAZEPOSE: dict[str, str] = {
    "nose": "nose", "left_eye": "left_eye", "right_eye": "right_eye", "left_ear": "left_ear",
    "right_ear": "right_ear", "left_shoulder": "left_shoulder", "right_shoulder": "right_shoulder",
    "left_elbow": "left_elbow", "right_elbow": "right_elbow", "left_hip": "left_hip", "right_hip": "right_hip",
    "left_knee": "left_knee", "right_knee": "right_knee", "left_ankle": "left_ankle",
    "right_ankle": "right_ankle", "left_heel": "left_heel", "right_heel": "right_heel",
    # BlazePose's "foot index" is the tip of the foot between the first two toes: the nearest MHR70 point
    # is the big-toe tip (a few cm off; the small-toe tip stays absent).
    "left_big_toe_tip": "left_foot_index", "right_big_toe_tip": "right_foot_index",
    "left_wrist": "left_wrist", "right_wrist": "right_wrist",
}
_BODY_MHR = np.array([MHR70_INDEX[m] for m in MHR70_FROM_BLAZEPOSE], np.int64)
_BODY_BP = np.array([BLAZEPOSE33_INDEX[b] for b in MHR70_FROM_BLAZEPOSE.values()], np.int64)
#: For each side, ``(hand landmark index, MHR70 index)`` of the 20 finger joints (the hand order is
#: COCO-WholeBody's, so the skeleton module's name map applies; the wrist comes from the body).
HAND_TO_MHR70: dict[str, tuple[np.ndarray, np.ndarray]] = {
    side: (np.arange(1, 21), np.array([COCO_WHOLEBODY_TO_MHR70[COCO_WHOLEBODY_INDEX[f"{side}_hand_{i}"]]
                                       for i in range(1, 21)]))
    for side in ("left", "right")
}
#: A body point outside the picture by at most this fraction of the landmarks' extent still counts as
#: predicted (see :func:`mhr70_from_landmarks`).
EDGE_MARGIN = 0.1
#: (70,) bool: the MHR70 joints this path can ever predict (body + feet + both hands).
PREDICTED_MHR70 = np.zeros(len(MHR70_NAMES), bool)
PREDICTED_MHR70[_BODY_MHR] = True
for _, _m in HAND_TO_MHR70.values():
    PREDICTED_MHR70[_m] = True
#: MHR70 joints MediaPipe never gives: small-toe tips, olecranon, cubital fossa, acromion, neck.
UNLABELLED_MHR70: tuple[str, ...] = tuple(n for i, n in enumerate(MHR70_NAMES) if not PREDICTED_MHR70[i])


def solve_translation(joints_3d: np.ndarray, joints_2d: np.ndarray, focal: float, pp) -> tuple[np.ndarray, float]:
    """Least-squares ``t`` with ``project(joints_3d + t) ~ joints_2d`` (pinhole, fixed focal/centre).

    Linear in ``t``: ``f (X + tx) = (u - px) (Z + tz)`` and the same for y. Returns ``(t, rms_px)``.
    """
    x3 = np.asarray(joints_3d, np.float64)
    uv = np.asarray(joints_2d, np.float64) - np.asarray(pp, np.float64)
    n = len(x3)
    a = np.zeros((2 * n, 3))
    b = np.zeros(2 * n)
    a[0::2, 0] = focal
    a[0::2, 2] = -uv[:, 0]
    b[0::2] = uv[:, 0] * x3[:, 2] - focal * x3[:, 0]
    a[1::2, 1] = focal
    a[1::2, 2] = -uv[:, 1]
    b[1::2] = uv[:, 1] * x3[:, 2] - focal * x3[:, 1]
    t, *_ = np.linalg.lstsq(a, b, rcond=None)
    cam = x3 + t
    proj = focal * cam[:, :2] / np.maximum(cam[:, 2:3], 1e-6)
    rms = float(np.sqrt(np.mean(np.sum((proj - uv) ** 2, axis=1))))
    return t, rms


@dataclass
class MHR70Landmarks:
    """One person's MediaPipe landmarks in the MHR70 layout (values are 0 where not valid).

    ``joints_2d`` (70, 2) full-image pixels, valid (``joints_2d_valid``) where present and inside the image;
    ``joints_3d`` (70, 3) metres, origin mid-hip, camera axes (x right, y down, z forward), valid
    (``joints_3d_valid``, the run-time ``joints_valid``) where predicted (see :func:`mhr70_from_landmarks`;
    hands: the hand was found);
    ``cam_trans`` (3,) metres so that ``joints_3d + cam_trans`` projects onto ``joints_2d`` with
    ``focal_length`` px and ``principal_point`` px; ``cam_trans_valid`` when the fit used >= 6 valid joints,
    lies in front of the camera and reprojects within 10% of the box (``reprojection_px``: its RMS)."""

    joints_2d: np.ndarray
    joints_2d_valid: np.ndarray
    joints_3d: np.ndarray
    joints_3d_valid: np.ndarray
    cam_trans: np.ndarray
    cam_trans_valid: bool
    reprojection_px: float
    focal_length: float
    principal_point: np.ndarray


def _inside(points: np.ndarray, w: int, h: int) -> np.ndarray:
    return (points[:, 0] >= 0) & (points[:, 0] <= w - 1) & (points[:, 1] >= 0) & (points[:, 1] <= h - 1)


def mhr70_from_landmarks(pose: PoseLandmarks, hands: dict | None, image_wh, focal: float | None = None,
                         min_presence: float = 0.5, edge_margin: float = EDGE_MARGIN) -> MHR70Landmarks:
    """BlazePose landmarks (+ the hands found, ``{"left": HandLandmarks | None, "right": ...}``) -> MHR70.

    Which body joints count as predicted (``joints_3d_valid``): BlazePose's presence (the probability that
    the point is in the picture) >= ``min_presence``; and a point BlazePose places just outside the picture
    (at most ``edge_margin`` x the landmarks' extent beyond the border: an elbow below the bottom edge of a
    head-and-shoulders portrait), whose presence is low only because it is outside. Points far outside (that
    portrait's hips and legs) are guesses and stay invalid. In 2D (``joints_2d_valid``, the teacher's label)
    only present points inside the image count.

    Hands: their 2D are the hand model's points (its wrist too: the sharper estimate); their 3D are the hand
    model's metric landmarks placed at the body's wrist. ``cam_trans`` is fitted on the joints valid in 2D
    and 3D; with fewer than 6 of them, on all the body landmarks BlazePose predicted (it extrapolates the
    ones it does not see), so there is always a usable translation (``cam_trans_valid`` says how good)."""
    w, h = int(image_wh[0]), int(image_wh[1])
    present = pose.presence >= min_presence
    inside = _inside(pose.points, w, h)
    beyond = np.maximum(np.maximum(-pose.points, pose.points - [w - 1, h - 1]), 0.0).max(axis=1)  # px outside
    near = ~inside & (beyond <= edge_margin * float(np.ptp(pose.points, axis=0).max()))
    predicted = present | near
    j2 = np.zeros((70, 2), np.float32)
    j3 = np.zeros((70, 3), np.float32)
    v2 = np.zeros(70, bool)
    v3 = np.zeros(70, bool)
    j2[_BODY_MHR] = pose.points[_BODY_BP]
    j3[_BODY_MHR] = pose.world[_BODY_BP]
    v2[_BODY_MHR] = (present & inside)[_BODY_BP]
    v3[_BODY_MHR] = predicted[_BODY_BP]
    for side, hand in (hands or {}).items():
        if hand is None:
            continue
        wi = BLAZEPOSE33_INDEX[f"{side}_wrist"]
        hi, mi = HAND_TO_MHR70[side]
        h_inside = _inside(hand.points, w, h)
        j2[mi] = hand.points[hi]
        v2[mi] = h_inside[hi]
        wrist = MHR70_INDEX[f"{side}_wrist"]
        j2[wrist] = hand.points[0]
        v2[wrist] = v2[wrist] or bool(h_inside[0])
        j3[mi] = hand.world[hi] - hand.world[0] + pose.world[wi]
        v3[mi] = bool(present[wi])

    f = geometry.default_focal((w, h)) if focal is None else float(focal)
    pp = np.array([w / 2.0, h / 2.0])
    both = v2 & v3
    if both.sum() >= 6:
        t, rms = solve_translation(j3[both], j2[both], f, pp)
    else:  # e.g. a face close-up: BlazePose's extrapolated body still gives a sensible distance
        t, rms = solve_translation(pose.world[_BODY_BP], pose.points[_BODY_BP], f, pp)
    box = landmark_box(pose, (w, h))
    t_ok = bool(both.sum() >= 6 and np.isfinite(t).all() and t[2] > 0.1
                and rms < 0.1 * max(box[2] - box[0], box[3] - box[1]))
    if not (np.isfinite(t).all() and t[2] > 0.1):  # degenerate fit: put the body at a plausible distance
        extent3 = float(np.ptp(pose.world[_BODY_BP, 1])) or 1.0
        extent2 = float(np.ptp(pose.points[_BODY_BP, 1])) or 1.0
        z = f * extent3 / extent2
        c = pose.points[_BODY_BP].mean(0)
        t = np.array([(c[0] - pp[0]) * z / f, (c[1] - pp[1]) * z / f, z])
    return MHR70Landmarks(j2, v2, j3, v3, t.astype(np.float32), t_ok, float(rms), f, pp)


# --------------------------------------------------------------------------------------------------
# Hands
# --------------------------------------------------------------------------------------------------

def find_hands(hand_model: HandLandmarker, image: np.ndarray, pose: PoseLandmarks, previous: dict | None = None,
               min_presence: float = 0.5) -> dict[str, HandLandmarks | None]:
    """Both hands of one person. A hand whose wrist BlazePose does not see is skipped (MediaPipe Holistic's
    rule). With the hand found on the previous frame (``previous``), one pass on the crop re-fitted to it
    (MediaPipe's tracking); else the crop placed from the wrist / index / pinky points, run twice (the second
    time re-fitted to the hand found). A hand whose wrist lands over half a hand length from the body's wrist
    (the crop drifted onto the other hand or another person) is rejected."""
    out: dict[str, HandLandmarks | None] = {"left": None, "right": None}
    for side in ("left", "right"):
        wi = BLAZEPOSE33_INDEX[f"{side}_wrist"]
        if pose.presence[wi] < min_presence or pose.visibility[wi] < 0.3:
            continue
        wrist = pose.points[wi]
        hand = None
        prev = (previous or {}).get(side)
        if prev is not None and np.linalg.norm(prev.points[0] - wrist) < max(
                np.linalg.norm(prev.points[9] - prev.points[0]), 4.0):
            hand = hand_model(image, hand_roi_from_landmarks(prev.points))
        if hand is None:
            roi = hand_roi_from_pose(wrist, pose.points[BLAZEPOSE33_INDEX[f"{side}_pinky"]],
                                     pose.points[BLAZEPOSE33_INDEX[f"{side}_index"]])
            hand = hand_model.track(image, roi)
        if hand is None:
            continue
        hand_len = float(np.linalg.norm(hand.points[9] - hand.points[0]))
        if np.linalg.norm(hand.points[0] - wrist) > max(0.75 * hand_len, 4.0):
            continue
        out[side] = hand
    return out


# --------------------------------------------------------------------------------------------------
# The estimator
# --------------------------------------------------------------------------------------------------

@dataclass
class PersonLandmarks:
    """What the MediaPipe path found for one person (``HMRPrediction.landmarks``): BlazePose's ``pose`` and the
    ``hands`` (``{"left": HandLandmarks | None, "right": ...}``); the next video frame's regions come from them."""

    pose: PoseLandmarks
    hands: dict


def box_roi(box, scale: float = 1.25) -> Roi:
    """An upright landmark-model crop for a person box from elsewhere (RF-DETR, a box file): centred on the
    box, ``scale`` x its long side (BlazePose's crops are square and reach past the body on every side)."""
    x1, y1, x2, y2 = (float(v) for v in np.asarray(box).reshape(4))
    return Roi((x1 + x2) / 2.0, (y1 + y2) / 2.0, max(x2 - x1, y2 - y1, 8.0) * scale, 0.0)


class MediaPipeHMR:
    """BlazePose full (+ hand landmark full) on LiteRT, a :class:`~instanthmr.runtime.pipeline.PoseEstimator`:
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
        num_threads: LiteRT threads per model (default: up to 4).
    """

    name = MODEL_NAME
    provider = "LiteRT CPU (XNNPACK)"
    device = "cpu"
    io_binding = False
    cuda_graph = False
    has_wholebody = False

    def __init__(self, models_dir: str | Path | None = None, hands: bool = True, min_presence: float = 0.5,
                 num_threads: int | None = None):
        self.models_dir = Path(models_dir or mediapipe_models_dir())
        self.path = model_path("pose_landmark_full", self.models_dir)
        self.landmarker = BlazePoseLandmarker(self.path, num_threads=num_threads)
        # only for boxes from another detector (see landmarks_in_box); loaded on first use
        self._box_detector_args = (model_path("pose_detection", self.models_dir), num_threads)
        self._box_detector: BlazePoseDetector | None = None
        self.hand = HandLandmarker(model_path("hand_landmark_full", self.models_dir), num_threads=num_threads) \
            if hands else None
        self.min_presence = float(min_presence)
        self.model_info = {"precision": "fp32", "model_name": MODEL_NAME, "version": MODEL_VERSION,
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
        return f"MediaPipeHMR({MODEL_VERSION}, hands={self.hands}, provider={self.provider})"

    def describe(self) -> str:
        """One line for banners: what runs."""
        return (f"MediaPipe BlazePose full{' + hand landmarks' if self.hands else ' (body only, no hands)'} "
                f"from mediapipe=={MEDIAPIPE_VERSION} ({self.models_dir}) on {self.provider}")

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
                   focal_length: float | None = None, source: str = "detector") -> HMRPrediction:
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
            landmarks=PersonLandmarks(pose, hands or {}))

    def person(self, image: np.ndarray, pose: PoseLandmarks, score: float | None = None,
               focal_length: float | None = None, source: str = "detector",
               previous_hands: dict | None = None) -> HMRPrediction:
        """The prediction for landmarks already found (hands looked for here, from ``previous_hands`` when
        the last frame had them)."""
        h, w = image.shape[:2]
        hands = find_hands(self.hand, image, pose, previous_hands, self.min_presence) if self.hand is not None else {}
        return self.prediction((w, h), pose, hands, score, focal_length, source)

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
        its hands from where they were; ``None`` where the landmark model finds no pose there (lost).
        Predictions come with ``source="keypoints"`` and BlazePose's pose presence as ``score``."""
        image = _check_image(image_rgb)
        out: list[HMRPrediction | None] = []
        for prev in people:
            lm: PersonLandmarks = prev.landmarks
            pose = self.landmarker(image, lm.pose.tracking_roi())
            out.append(None if pose is None else
                       self.person(image, pose, None, focal_length, "keypoints", lm.hands))
        return out


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
                       detector_weights: str | Path | None = None, detector_resolution: int | None = None
                       ) -> PosePipeline:
    """The offline MediaPipe path as a :class:`~instanthmr.runtime.pipeline.PosePipeline`: a person detector
    (``"mediapipe"``, its landmarks reused, or anything
    :func:`~instanthmr.runtime.detector.create_detector` takes, with ``detector_variant`` /
    ``detector_weights`` / ``detector_resolution`` / ``device``) and :class:`MediaPipeHMR` (``hands``,
    ``models_dir``, ``num_threads``).

    On video (:class:`~instanthmr.video.tracking.TrackingPipeline`), ``crops="landmarks"`` is MediaPipe's
    tracking rule: a person found on one frame is looked for on the next in the region from this frame's
    landmarks; the detector runs on the first frame, whenever nobody is followed, on a frame where somebody
    was lost, and every ``detect_every`` frames to find newcomers (never while ``max_persons`` people are
    followed), with the people followed blanked out. ``crops="boxes"``: each frame on its own (detector
    every ``detect_every`` frames, boxes reused between, like the network path).
    """
    if int(detect_every) < 1:
        raise ValueError(f"detect_every must be >= 1, got {detect_every}")
    estimator = MediaPipeHMR(models_dir, hands=hands, num_threads=num_threads)
    if isinstance(detector, (str, Path)) and str(detector).lower() == "mediapipe":
        detector = MediaPipeDetector(det_confidence, max_persons, models_dir=models_dir, num_threads=num_threads)
    det = create_detector(detector, variant=detector_variant, confidence=det_confidence, max_persons=max_persons,
                          device=device, weights=detector_weights, resolution=detector_resolution)
    return PosePipeline(det, estimator, detector_stride=detect_every, max_persons=max_persons, crops=crops)


def unavailable_reason(models_dir: str | Path | None = None) -> str | None:
    """``None`` when the MediaPipe path can run here, else one line saying why not (the models are not
    fetched, or the LiteRT interpreter is not installed) and how to fix it."""
    from instanthmr.runtime.mediapipe import LITERT_REQUIREMENT, mediapipe_models_present

    if not mediapipe_models_present(models_dir):
        return (f"the MediaPipe models are not in {Path(models_dir or mediapipe_models_dir())} (get them with: "
                "python tools/fetch_models.py mediapipe)")
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return f"the TFLite interpreter is not installed (pip install '{LITERT_REQUIREMENT}')"
    return None
