"""BlazePose-33 (+ hand-21) landmarks -> MHR70: the one conversion the run-time path and the teacher share.

Frames and units: ``joints_2d`` full-image pixels; ``joints_3d`` BlazePose's metric world landmarks (metres,
origin between the hips, camera axes x right, y down, z forward); ``cam_trans`` the translation that best
projects them onto ``joints_2d`` with a pinhole of the given focal (default: the image diagonal) and the
principal point at the image centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from instanthmr.core import geometry
from instanthmr.core.skeleton import COCO_WHOLEBODY_INDEX, COCO_WHOLEBODY_TO_MHR70, MHR70_INDEX, MHR70_NAMES
from instanthmr.runtime.mediapipe.blazepose import BLAZEPOSE33_INDEX, PoseLandmarks, landmark_box

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
    """Least-squares ``t`` with ``project(joints_3d + t) ~ joints_2d`` (pinhole, fixed focal/centre;
    :func:`~instanthmr.core.geometry.solve_camera_translation`) and its reprojection RMS: ``(t, rms_px)``."""
    x3 = np.asarray(joints_3d, np.float64)
    uv = np.asarray(joints_2d, np.float64) - np.asarray(pp, np.float64)
    t = geometry.solve_camera_translation(x3, joints_2d, focal, pp)
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
