"""Offline teacher: MediaPipe BlazePose (+ hand landmarks) labels in the MHR70 / COCO-WholeBody layouts.

This is the teacher a machine without internet can run (models from PyPI, see
:mod:`instanthmr.runtime.mediapipe`). It is much weaker than SAM 3D Body: no body-model parameters, no
olecranon / cubital fossa / acromion / neck / small toes / face, and its 3D is BlazePose's metric "world"
estimate. Every label comes with a validity mask so the trainer ignores what it does not know.

Per person it gives (units and frames are the shard contract of :mod:`instanthmr.training.data.shards`):

* ``joints_2d`` (70, 2) full-image pixels, valid where BlazePose says the point is inside the image
  (presence >= 0.5) and, for hands, where the hand model found the hand;
* ``joints_3d`` (70, 3) metres, camera axes (x right, y down, z forward), origin at the mid-hip (the
  trainer's root); hands are the hand model's metric landmarks placed at the body's wrists;
* ``cam_trans`` (3,) metres: the translation that best projects ``joints_3d`` onto ``joints_2d`` with the
  default pinhole (focal = image diagonal, principal point = centre), so ``joints_3d + cam_trans`` is
  camera space;
* ``joints_2d_wholebody`` (133, 2) pixels: body, heels and big toes, hands (no face, no small toes), the
  LLM lifter's input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from instanthmr.core import geometry
from instanthmr.core.skeleton import COCO_WHOLEBODY_INDEX, COCO_WHOLEBODY_TO_MHR70, MHR70_INDEX, MHR70_NAMES
from instanthmr.runtime.mediapipe import (
    BLAZEPOSE33_INDEX,
    BlazePosePeople,
    HandLandmarker,
    HandLandmarks,
    PersonPose,
    hand_roi_from_pose,
    model_path,
)

TEACHER_NAME = "mediapipe"
TEACHER_VERSION = "blazepose_full+hand_full@mediapipe0.10.21"

#: MHR70 name -> BlazePose-33 name, for the body and feet points BlazePose has.
MHR70_FROM_BLAZEPOSE: dict[str, str] = {
    "nose": "nose", "left_eye": "left_eye", "right_eye": "right_eye", "left_ear": "left_ear",
    "right_ear": "right_ear", "left_shoulder": "left_shoulder", "right_shoulder": "right_shoulder",
    "left_elbow": "left_elbow", "right_elbow": "right_elbow", "left_hip": "left_hip", "right_hip": "right_hip",
    "left_knee": "left_knee", "right_knee": "right_knee", "left_ankle": "left_ankle",
    "right_ankle": "right_ankle", "left_heel": "left_heel", "right_heel": "right_heel",
    # BlazePose's "foot index" is the tip of the foot between the first two toes: the nearest MHR70 point
    # is the big-toe tip (a few cm off; the small-toe tip stays unlabelled).
    "left_big_toe_tip": "left_foot_index", "right_big_toe_tip": "right_foot_index",
    "left_wrist": "left_wrist", "right_wrist": "right_wrist",
}
_BODY_MHR = np.array([MHR70_INDEX[m] for m in MHR70_FROM_BLAZEPOSE], np.int64)
_BODY_BP = np.array([BLAZEPOSE33_INDEX[b] for b in MHR70_FROM_BLAZEPOSE.values()], np.int64)
#: For each side, ``(hand landmark index, MHR70 index)`` of the 20 finger joints (the hand order is
#: COCO-WholeBody's, so the skeleton module's name map applies; the wrist comes from the body).
_HAND_TO_MHR: dict[str, tuple[np.ndarray, np.ndarray]] = {
    side: (np.arange(1, 21), np.array([COCO_WHOLEBODY_TO_MHR70[COCO_WHOLEBODY_INDEX[f"{side}_hand_{i}"]]
                                       for i in range(1, 21)]))
    for side in ("left", "right")
}
#: MHR70 joints this teacher never labels.
UNLABELLED_MHR70: tuple[str, ...] = tuple(
    n for i, n in enumerate(MHR70_NAMES)
    if i not in set(_BODY_MHR.tolist()) | {int(j) for _, m in _HAND_TO_MHR.values() for j in m}
)


@dataclass
class MediaPipeLabel:
    """One person's teacher labels (see the module docstring for units) plus what they came from."""

    box: np.ndarray
    score: float
    joints_2d: np.ndarray
    joints_2d_valid: np.ndarray
    joints_3d: np.ndarray
    joints_3d_valid: np.ndarray
    cam_trans: np.ndarray
    cam_trans_valid: bool
    joints_2d_wholebody: np.ndarray
    joints_2d_wholebody_valid: np.ndarray
    intrinsics: np.ndarray
    image_size: tuple[int, int]
    person: PersonPose
    hands: dict[str, HandLandmarks | None]

    def instance(self, source: str = "", image_path: str = "") -> dict:
        """The shard instance dict (:class:`instanthmr.training.data.shards.ShardWriter` fields)."""
        return {
            "source": source, "image_path": image_path, "box": self.box, "image_size": self.image_size,
            "intrinsics": self.intrinsics,
            "joints_2d": self.joints_2d, "joints_2d_valid": self.joints_2d_valid,
            "joints_3d": self.joints_3d, "joints_3d_valid": self.joints_3d_valid,
            "cam_trans": self.cam_trans, "cam_trans_valid": self.cam_trans_valid,
            "joints_2d_wholebody": self.joints_2d_wholebody,
            "joints_2d_wholebody_valid": self.joints_2d_wholebody_valid,
        }


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


class MediaPipeTeacher:
    """``teacher(image_rgb) -> list[MediaPipeLabel]``, most confident person first.

    ``hands=False`` skips the hand model (hands then stay unlabelled). ``focal`` (pixels) overrides the
    default focal used for ``cam_trans`` and the stored intrinsics.
    """

    def __init__(self, models_dir: str | Path | None = None, hands: bool = True, max_people: int = 10,
                 tiles: bool = True, num_threads: int | None = None, min_presence: float = 0.5):
        self.people = BlazePosePeople(models_dir, max_people=max_people, tiles=tiles, num_threads=num_threads)
        self.hand = HandLandmarker(model_path("hand_landmark_full", models_dir), num_threads=num_threads) \
            if hands else None
        self.min_presence = float(min_presence)

    def __call__(self, image_rgb: np.ndarray, focal: float | None = None) -> list[MediaPipeLabel]:
        return [self.label(image_rgb, p, focal) for p in self.people(image_rgb)]

    def label(self, image_rgb: np.ndarray, person: PersonPose, focal: float | None = None) -> MediaPipeLabel:
        """Labels for one person already found by :class:`BlazePosePeople`."""
        h, w = image_rgb.shape[:2]
        pose = person.pose
        inside = ((pose.points[:, 0] >= 0) & (pose.points[:, 0] <= w - 1)
                  & (pose.points[:, 1] >= 0) & (pose.points[:, 1] <= h - 1))
        present = pose.presence >= self.min_presence

        j2 = np.zeros((70, 2), np.float32)
        j3 = np.zeros((70, 3), np.float32)
        v2 = np.zeros(70, bool)
        v3 = np.zeros(70, bool)
        j2[_BODY_MHR] = pose.points[_BODY_BP]
        j3[_BODY_MHR] = pose.world[_BODY_BP]
        v2[_BODY_MHR] = (present & inside)[_BODY_BP]
        v3[_BODY_MHR] = present[_BODY_BP]

        hands: dict[str, HandLandmarks | None] = {"left": None, "right": None}
        if self.hand is not None:
            for side in ("left", "right"):
                wi = BLAZEPOSE33_INDEX[f"{side}_wrist"]
                # MediaPipe Holistic also skips hands whose wrist the body model does not see.
                if pose.presence[wi] < self.min_presence or pose.visibility[wi] < 0.3:
                    continue
                roi = hand_roi_from_pose(pose.points[wi], pose.points[BLAZEPOSE33_INDEX[f"{side}_pinky"]],
                                         pose.points[BLAZEPOSE33_INDEX[f"{side}_index"]])
                hand = self.hand.track(image_rgb, roi)
                if hand is None:
                    continue
                # A hand crop that drifted onto the other hand / another person: its wrist lands far from
                # the body's wrist. Reject beyond half a hand length.
                hand_len = float(np.linalg.norm(hand.points[9] - hand.points[0]))
                if np.linalg.norm(hand.points[0] - pose.points[wi]) > max(0.75 * hand_len, 4.0):
                    continue
                hands[side] = hand
                hi, mi = _HAND_TO_MHR[side]
                h_inside = ((hand.points[:, 0] >= 0) & (hand.points[:, 0] <= w - 1)
                            & (hand.points[:, 1] >= 0) & (hand.points[:, 1] <= h - 1))
                j2[mi] = hand.points[hi]
                v2[mi] = h_inside[hi]
                wrist_mhr = MHR70_INDEX[f"{side}_wrist"]
                j2[wrist_mhr] = hand.points[0]  # the hand model's wrist is the sharper 2D estimate
                v2[wrist_mhr] = v2[wrist_mhr] or bool(h_inside[0])
                j3[mi] = hand.world[hi] - hand.world[0] + pose.world[wi]
                v3[mi] = bool(present[wi])

        f = geometry.default_focal((w, h)) if focal is None else float(focal)
        k = geometry.intrinsics((w, h), f)
        both = v2 & v3
        t, rms = (np.zeros(3), np.inf) if both.sum() < 6 else solve_translation(j3[both], j2[both], f, k[:2, 2])
        box = person.box
        t_ok = bool(np.isfinite(t).all() and t[2] > 0.1 and rms < 0.1 * max(box[2] - box[0], box[3] - box[1]))

        wb = np.zeros((133, 2), np.float32)
        wbv = np.zeros(133, bool)
        for ci, mi in COCO_WHOLEBODY_TO_MHR70.items():  # hand roots (index 0) take the wrist
            if v2[mi]:
                wb[ci], wbv[ci] = j2[mi], True
        return MediaPipeLabel(
            box=box.astype(np.float32), score=float(person.score), joints_2d=j2, joints_2d_valid=v2,
            joints_3d=j3, joints_3d_valid=v3, cam_trans=t.astype(np.float32), cam_trans_valid=t_ok,
            joints_2d_wholebody=wb, joints_2d_wholebody_valid=wbv, intrinsics=k.astype(np.float32),
            image_size=(int(w), int(h)), person=person, hands=hands)
