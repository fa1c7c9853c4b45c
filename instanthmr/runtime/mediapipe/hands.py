"""MediaPipe's hand landmark model and how a person's hands are found from their BlazePose landmarks.

``hand_landmark_full.tflite``: 21 hand landmarks on a rotated 224x224 ROI in [0, 1] + metric world landmarks
(metres, origin near the hand centre); parameters are MediaPipe 0.10.x's ``hand_landmark_cpu`` graph options.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from instanthmr.core import probe
from instanthmr.runtime.mediapipe.blazepose import BLAZEPOSE33_INDEX, PoseLandmarks
from instanthmr.runtime.mediapipe.files import MediaPipeModelError, model_path
from instanthmr.runtime.mediapipe.regions import Roi, crop_roi, normalize_radians, score_output
from instanthmr.runtime.mediapipe.models import open_model

@dataclass
class HandLandmarks:
    """21 MediaPipe hand landmarks (wrist, then thumb/index/middle/ring/pinky base -> tip: the
    COCO-WholeBody hand order). ``points`` (21, 2) full-image pixels; ``world`` (21, 3) metres, origin near
    the hand centre, camera-aligned axes; ``score`` hand presence in [0, 1]; ``roi`` the crop it ran on;
    ``right_score`` in [0, 1] the model's handedness output as it comes: on an ordinary (unmirrored) camera
    image, the probability that this is the person's RIGHT hand (MediaPipe documents its labels for a
    mirrored selfie image; checked on unmirrored frames: the sports2d walker's left hand, seen side-on,
    median 0.02 over 86 frames, 85 below 0.5; the later jumper's right hand, median 0.97 over 23;
    openpose's woman facing the camera, her left hand 0.06-0.25 on 8). Not reliable everywhere: small
    backlit hands (the sports2d jumper facing the camera) and hands seen from the back (openpose frames
    0-155) gave the opposite, confidently
    (docs/body_fit.md, "Left and right")."""

    points: np.ndarray
    world: np.ndarray
    score: float
    roi: Roi
    right_score: float | None = None


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
    """``hand_landmark_full`` (the ``.tflite`` or its ONNX copy, :func:`~.models.open_model`): image + ROI ->
    :class:`HandLandmarks` (None when no hand)."""

    INPUT = 224

    def __init__(self, path: str | Path | None = None, presence_threshold: float = 0.5,
                 num_threads: int | None = None):
        self.model = open_model(path or model_path("hand_landmark_full"), num_threads)
        if self.model.input_size != self.INPUT or len(self.model.outputs) != 4:
            raise MediaPipeModelError(f"{self.model.path}: not the MediaPipe hand landmark model")
        self.presence_threshold = presence_threshold

    def __call__(self, image: np.ndarray, roi: Roi) -> HandLandmarks | None:
        crop = crop_roi(image, roi, self.INPUT, replicate=True).astype(np.float32) / 255.0
        lms, flag, handedness, world = self.model(crop[None])
        score = score_output(flag)
        if score < self.presence_threshold:
            return None
        pts = roi.to_image(lms.reshape(21, 3)[:, :2], self.INPUT)
        world = roi.rotate_vectors(world.reshape(21, 3))
        return HandLandmarks(pts.astype(np.float32), world.astype(np.float32), score, roi, score_output(handedness))

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
            probe.count("hand:tracked" if hand is not None else "hand:tracked-lost")
        if hand is None:
            roi = hand_roi_from_pose(wrist, pose.points[BLAZEPOSE33_INDEX[f"{side}_pinky"]],
                                     pose.points[BLAZEPOSE33_INDEX[f"{side}_index"]])
            hand = hand_model.track(image, roi)
            probe.count("hand:search-found" if hand is not None else "hand:search-missed")
        if hand is None:
            continue
        hand_len = float(np.linalg.norm(hand.points[9] - hand.points[0]))
        if np.linalg.norm(hand.points[0] - wrist) > max(0.75 * hand_len, 4.0):
            continue
        out[side] = hand
    return out
