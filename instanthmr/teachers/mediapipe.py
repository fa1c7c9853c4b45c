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
  LLM lifter's input;
* ``mhr_params`` (204) and ``shape_params`` (45) with ``body_fit=True`` (the default): the MHR body fitted to
  this person's 2D and 3D (:mod:`instanthmr.body.fit`, the shipped LOD 6 model, bone lengths from this one
  person, a cold start), so the network can be distilled with MHR targets fully offline. Their keypoints
  (the MHR forward, product frame) are relative to MHR's model origin, not the mid-hip: compare them
  hip-centred (as ``loss.mhr_consistency`` does).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from instanthmr.core import geometry
from instanthmr.core.skeleton import COCO_WHOLEBODY_TO_MHR70
from instanthmr.runtime.mediapipe.blazepose import BlazePosePeople, PersonPose
from instanthmr.runtime.mediapipe.conversion import mhr70_from_landmarks
from instanthmr.runtime.mediapipe.estimator import MODEL_VERSION, MediaPipeHMR
from instanthmr.runtime.mediapipe.hands import HandLandmarks

TEACHER_NAME = "mediapipe"
TEACHER_VERSION = MODEL_VERSION


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
    mhr_params: np.ndarray | None = None
    shape_params: np.ndarray | None = None

    def instance(self, source: str = "", image_path: str = "") -> dict:
        """The shard instance dict (:class:`instanthmr.training.data.shards.ShardWriter` fields)."""
        fitted = {} if self.mhr_params is None else {
            "mhr_params": self.mhr_params, "mhr_params_valid": True,
            "shape_params": self.shape_params, "shape_params_valid": True}
        return {**fitted,
            "source": source, "image_path": image_path, "box": self.box, "image_size": self.image_size,
            "intrinsics": self.intrinsics,
            "joints_2d": self.joints_2d, "joints_2d_valid": self.joints_2d_valid,
            "joints_3d": self.joints_3d, "joints_3d_valid": self.joints_3d_valid,
            "cam_trans": self.cam_trans, "cam_trans_valid": self.cam_trans_valid,
            "joints_2d_wholebody": self.joints_2d_wholebody,
            "joints_2d_wholebody_valid": self.joints_2d_wholebody_valid,
        }


class MediaPipeTeacher:
    """``teacher(image_rgb) -> list[MediaPipeLabel]``, most confident person first.

    ``hands=False`` skips the hand model (hands then stay unlabelled). ``focal`` (pixels) overrides the
    default focal used for ``cam_trans`` and the stored intrinsics. The teacher is the run-time MediaPipe path's
    steps: its estimator (:class:`~instanthmr.runtime.mediapipe.estimator.MediaPipeHMR`: the landmark and hand
    models, loaded once, and how hands are found) and the landmarks -> MHR70 conversion
    (:func:`~instanthmr.runtime.mediapipe.conversion.mhr70_from_landmarks`), so the teacher's labels and the
    MediaPipe path's predictions come from the same code; the multi-person search runs on the estimator's
    models. The teacher runs MediaPipe's own float models (``precision="float"``), the labels it can give at
    their best; the offline default runs their int8 copies (their drift: docs/offline.md).
    """

    def __init__(self, models_dir: str | Path | None = None, hands: bool = True, max_people: int = 10,
                 tiles: bool = True, num_threads: int | None = None, min_presence: float = 0.5,
                 body_fit: bool = True):
        self.estimator = MediaPipeHMR(models_dir, hands=hands, min_presence=min_presence, num_threads=num_threads,
                                      precision="float")
        self.people = BlazePosePeople(max_people=max_people, tiles=tiles, detector=self.estimator.box_detector,
                                      landmarker=self.estimator.landmarker)
        self.min_presence = self.estimator.min_presence
        self.fitter = None
        if body_fit:
            from instanthmr.body.fit import BodyFitter
            from instanthmr.body.mhr import SHIPPED_MHR_MODEL, MHRNumpy

            self.fitter = BodyFitter(MHRNumpy.from_npz(SHIPPED_MHR_MODEL))

    def __call__(self, image_rgb: np.ndarray, focal: float | None = None) -> list[MediaPipeLabel]:
        return [self.label(image_rgb, p, focal) for p in self.people(image_rgb)]

    def label(self, image_rgb: np.ndarray, person: PersonPose, focal: float | None = None) -> MediaPipeLabel:
        """Labels for one person already found by :class:`BlazePosePeople`."""
        h, w = image_rgb.shape[:2]
        hands = self.estimator.find_hands(image_rgb, person.pose)
        m = mhr70_from_landmarks(person.pose, hands, (w, h), focal, self.min_presence)
        wb = np.zeros((133, 2), np.float32)
        wbv = np.zeros(133, bool)
        for ci, mi in COCO_WHOLEBODY_TO_MHR70.items():  # hand roots (index 0) take the wrist
            if m.joints_2d_valid[mi]:
                wb[ci], wbv[ci] = m.joints_2d[mi], True
        k = geometry.intrinsics((w, h), m.focal_length)
        params = shape = None
        if self.fitter is not None:
            params, shape = self._fit(m)
        return MediaPipeLabel(
            box=person.box.astype(np.float32), score=float(person.score), joints_2d=m.joints_2d,
            joints_2d_valid=m.joints_2d_valid, joints_3d=m.joints_3d, joints_3d_valid=m.joints_3d_valid,
            cam_trans=m.cam_trans.astype(np.float32), cam_trans_valid=m.cam_trans_valid,
            joints_2d_wholebody=wb, joints_2d_wholebody_valid=wbv, intrinsics=k.astype(np.float32),
            image_size=(int(w), int(h)), person=person, hands=hands, mhr_params=params, shape_params=shape)

    def _fit(self, m) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(mhr_params (204), shape_params (45)) float32 of the MHR body fitted to one person's labels, or
        (None, None) without a 3D torso to fit."""
        from instanthmr.body.fit import Observation, fit_alone

        obs = Observation(m.joints_3d, m.joints_3d_valid, m.joints_2d, m.joints_2d_valid, m.focal_length,
                          m.principal_point).clean()
        if obs.w3d.sum() < 6:
            return None, None
        fit, shape = fit_alone(self.fitter, obs)
        params = fit.params.astype(np.float32)
        params[130:] = shape.bone_params
        return params, shape.shape_params.astype(np.float32)
