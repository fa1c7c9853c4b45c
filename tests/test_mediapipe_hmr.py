"""The offline MediaPipe path (runtime/mediapipe/: conversion.py, estimator.py): landmarks -> MHR70 HMRPrediction,
honest validity, MediaPipe's tracking rule, smoothing that skips absent joints. Model-free units always run
(stub landmarks); the real BlazePose models run on real photos/clips when fetched (else skip)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from instanthmr.core.skeleton import MHR70_INDEX
from instanthmr.runtime import mediapipe as mpm
from instanthmr.runtime.detector import Detections
from instanthmr.runtime.mediapipe import (
    BLAZEPOSE33_INDEX,
    PREDICTED_MHR70,
    UNLABELLED_MHR70,
    PersonPose,
    PoseLandmarks,
    Roi,
    mhr70_from_landmarks,
)
from instanthmr.runtime.mediapipe.detector import MediaPipeDetector
from instanthmr.runtime.mediapipe.estimator import MediaPipeHMR, PersonLandmarks, mediapipe_pipeline
from instanthmr.runtime.pipeline import PosePipeline
from instanthmr.video.tracking import TrackingPipeline

GRACE_HOPPER = Path(__import__("matplotlib").get_data_path()) / "sample_data" / "grace_hopper.jpg"
ABSENT = ("left_small_toe_tip", "right_small_toe_tip", "left_olecranon", "right_olecranon", "left_cubital_fossa",
          "right_cubital_fossa", "left_acromion", "right_acromion", "neck")


# --------------------------------------------------------------------------------------------------
# Stub landmarks: a standing person seen by a pinhole camera (focal 1000 px, 640x480), so 2D and 3D agree
# --------------------------------------------------------------------------------------------------

F, W, H = 1000.0, 640, 480
_BODY_3D = {  # metres, origin mid-hip, x right (the person's left is +x: they face the camera), y down
    "nose": (0.0, -0.6, -0.1), "left_eye_inner": (0.02, -0.63, -0.08), "left_eye": (0.03, -0.63, -0.08),
    "left_eye_outer": (0.045, -0.63, -0.07), "right_eye_inner": (-0.02, -0.63, -0.08),
    "right_eye": (-0.03, -0.63, -0.08), "right_eye_outer": (-0.045, -0.63, -0.07), "left_ear": (0.07, -0.62, 0.0),
    "right_ear": (-0.07, -0.62, 0.0), "mouth_left": (0.025, -0.57, -0.09), "mouth_right": (-0.025, -0.57, -0.09),
    "left_shoulder": (0.18, -0.45, 0.0), "right_shoulder": (-0.18, -0.45, 0.0), "left_elbow": (0.22, -0.18, 0.02),
    "right_elbow": (-0.22, -0.18, 0.02), "left_wrist": (0.24, 0.08, -0.05), "right_wrist": (-0.24, 0.08, -0.05),
    "left_pinky": (0.25, 0.15, -0.05), "right_pinky": (-0.25, 0.15, -0.05), "left_index": (0.23, 0.16, -0.06),
    "right_index": (-0.23, 0.16, -0.06), "left_thumb": (0.22, 0.12, -0.07), "right_thumb": (-0.22, 0.12, -0.07),
    "left_hip": (0.1, 0.0, 0.0), "right_hip": (-0.1, 0.0, 0.0), "left_knee": (0.1, 0.42, 0.0),
    "right_knee": (-0.1, 0.42, 0.0), "left_ankle": (0.1, 0.82, 0.05), "right_ankle": (-0.1, 0.82, 0.05),
    "left_heel": (0.1, 0.86, 0.1), "right_heel": (-0.1, 0.86, 0.1), "left_foot_index": (0.1, 0.88, -0.1),
    "right_foot_index": (-0.1, 0.88, -0.1),
}
WORLD = np.array([_BODY_3D[n] for n in mpm.BLAZEPOSE33_NAMES], np.float64)


def stub_pose(t=(0.0, -0.05, 4.5), presence=None, score: float = 0.99, roi: Roi | None = None) -> PoseLandmarks:
    cam = WORLD + np.asarray(t)
    pts = F * cam[:, :2] / cam[:, 2:] + [W / 2, H / 2]
    pres = np.ones(33, np.float32) if presence is None else np.asarray(presence, np.float32)
    lo, hi = pts.min(0), pts.max(0)
    return PoseLandmarks(points=pts.astype(np.float32), z=np.zeros(33, np.float32), visibility=np.ones(33, np.float32),
                         presence=pres, world=WORLD.astype(np.float32), score=score,
                         aux=np.array([pts[23:25].mean(0), pts[23:25].mean(0) + [0, -(hi[1] - lo[1]) / 2]], np.float32),
                         roi=roi or Roi(float(pts[:, 0].mean()), float(pts[:, 1].mean()), float(hi[1] - lo[1]) * 1.25))


def test_landmarks_map_to_mhr70_with_a_camera_that_reprojects():
    m = mhr70_from_landmarks(stub_pose(), None, (W, H), focal=F)
    for name in ("left_shoulder", "right_knee", "left_big_toe_tip", "right_heel", "nose"):
        np.testing.assert_allclose(m.joints_3d[MHR70_INDEX[name]],
                                   WORLD[BLAZEPOSE33_INDEX[{"left_big_toe_tip": "left_foot_index"}.get(name, name)]],
                                   atol=1e-6)
    np.testing.assert_allclose(m.cam_trans, [0.0, -0.05, 4.5], atol=1e-4)  # the camera it was made with
    assert m.cam_trans_valid and m.reprojection_px < 1e-3
    assert m.focal_length == F and tuple(m.principal_point) == (W / 2, H / 2)
    assert not m.joints_3d_valid[[MHR70_INDEX[n] for n in ABSENT]].any()
    assert not m.joints_3d_valid[~PREDICTED_MHR70].any() and set(UNLABELLED_MHR70) == set(ABSENT)
    assert m.joints_3d_valid[:15].all()  # the 15 body joints


def test_absent_joints_are_nan_and_invalid_not_numbers_that_look_real():
    pres = np.ones(33)
    pres[[BLAZEPOSE33_INDEX[n] for n in ("left_knee", "left_ankle", "left_heel", "left_foot_index")]] = 0.1
    hmr = MediaPipeHMR.__new__(MediaPipeHMR)  # the conversion only, no model files
    hmr.min_presence, hmr.hand = 0.5, None
    p = hmr.prediction((W, H), stub_pose(presence=pres), None, score=0.8, focal_length=F)
    valid = p.valid_mask
    off = [MHR70_INDEX[n] for n in ABSENT + ("left_knee", "left_ankle", "left_heel", "left_big_toe_tip")]
    assert not valid[off].any() and valid[MHR70_INDEX["right_knee"]]
    assert np.isnan(p.joints_2d[off]).all() and np.isnan(p.joints_3d_local[off]).all()
    assert np.isnan(p.joints_3d_cam[off]).all()
    assert np.isfinite(p.joints_2d[valid]).all() and np.isfinite(p.joints_3d_cam[valid]).all()
    assert p.mhr_params is None and p.shape_params is None and p.joints_3d_wholebody is None
    np.testing.assert_allclose(p.joints_3d_cam[valid], p.joints_3d_local[valid] + p.cam_trans, atol=1e-6)
    assert p.score == pytest.approx(0.8) and p.focal_length == F
    # no hands asked for: finger joints absent too
    assert not valid[[MHR70_INDEX["left_index_tip"], MHR70_INDEX["right_thumb_tip"]]].any()


def test_points_just_outside_the_picture_count_far_outside_do_not():
    pose = stub_pose(t=(0.0, 0.15, 2.2))  # close: the legs leave the 480 px picture at the bottom
    pres = np.where(pose.points[:, 1] > H - 1, 0.02, 1.0)  # BlazePose: "not in the picture"
    pose.presence = pres.astype(np.float32)
    m = mhr70_from_landmarks(pose, None, (W, H), focal=F)
    y = {n: pose.points[BLAZEPOSE33_INDEX[n], 1] for n in ("left_knee", "left_ankle")}
    extent = float(np.ptp(pose.points, axis=0).max())
    assert 0 < y["left_knee"] - (H - 1) < 0.1 * extent < y["left_ankle"] - (H - 1)
    assert m.joints_3d_valid[MHR70_INDEX["left_knee"]]  # just below the edge: predicted
    assert not m.joints_3d_valid[MHR70_INDEX["left_ankle"]]  # far below: a guess, left out
    assert not m.joints_2d_valid[MHR70_INDEX["left_knee"]]  # 2D labels (teacher) stay inside the picture


def test_a_face_close_up_still_gets_a_translation_in_front_of_the_camera():
    pres = np.zeros(33)
    pres[:11] = 1.0  # only the face is in the picture: fewer than 6 joints valid in 2D and 3D
    m = mhr70_from_landmarks(stub_pose(presence=pres), None, (W, H), focal=F)
    assert not m.cam_trans_valid  # flagged as a rough fit ...
    assert np.isfinite(m.cam_trans).all() and m.cam_trans[2] > 1.0  # ... but still a usable translation


# --------------------------------------------------------------------------------------------------
# Tracking rule with stub models
# --------------------------------------------------------------------------------------------------

class StubLandmarker:
    """Returns the stub person when the ROI centre lies on them; counts calls and remembers the ROIs."""

    def __init__(self, person_x: list):
        self.person_x, self.rois, self.frame = person_x, [], 0

    def __call__(self, image, roi):
        self.rois.append(roi)
        pose = stub_pose(t=(self.person_x[self.frame], -0.05, 4.5), roi=roi)
        if abs(roi.cx - pose.points[:, 0].mean()) > 100:  # the region has lost the person
            return None
        return pose


class StubHMR(MediaPipeHMR):
    def __init__(self, landmarker):
        self.landmarker, self.hand, self.min_presence = landmarker, None, 0.5
        self.model_info = {"precision": "fp32"}


class StubDetector(MediaPipeDetector):
    def __init__(self, landmarker):
        super(MediaPipeDetector, self).__init__(0.5, None)
        self.landmarker, self.calls, self.known = landmarker, 0, []

    def detection_parts(self, image_wh):
        return 1  # the stub looks in one go

    def detect_new(self, image, known_boxes, frame_index=None):
        self.calls += 1
        self.known.append(np.asarray(known_boxes).reshape(-1, 4))
        lm = self.landmarker
        pose = stub_pose(t=(lm.person_x[lm.frame], -0.05, 4.5))
        box = mpm.landmark_box(pose, (W, H))
        if len(self.known[-1]) and (self.known[-1][:, 0] < box[2]).any():
            return Detections.empty()  # already followed: nobody new
        return self.detections([PersonPose(box, 0.95, pose, None)])

    def detect(self, image, frame_index=None):
        raise AssertionError("the tracking pipeline asks for newcomers only")


def test_the_next_region_comes_from_the_landmarks_and_the_detector_only_looks_for_newcomers():
    xs = list(np.linspace(-0.3, 0.3, 12)) + [5.0] * 3  # walks right, then jumps out of every region
    lm = StubLandmarker(xs)
    det = StubDetector(lm)
    pipe = PosePipeline(det, StubHMR(lm), detector_stride=5, crops="landmarks")
    video = TrackingPipeline.from_pipeline(pipe, smooth="none")
    assert video.crops == "landmarks" and video.detect_every == 5
    ran, n_persons, ids = [], [], set()
    for i in range(12):
        lm.frame = i
        r = video(np.zeros((H, W, 3), np.uint8), i)
        ran.append(r.detector_ran)
        n_persons.append(len(r.persons))
        ids.update(p.track_id for p in r.persons)
    # detector: first frame, then every 5th frame to look for newcomers; the tracked person is known to it
    assert ran == [True, False, False, False, False, True, False, False, False, False, True, False]
    assert det.calls == 3 and all(len(k) == 1 for k in det.known[1:])
    assert n_persons == [1] * 12 and len(ids) == 1 and video.detector_calls == 3
    # one landmark pass per frame after the first, each in the region the previous frame's landmarks gave
    assert len(lm.rois) == 11
    prev = stub_pose(t=(xs[0], -0.05, 4.5))
    assert lm.rois[0].cx == pytest.approx(prev.tracking_roi().cx)
    p = r.persons[0]
    assert p.source == "keypoints" and isinstance(p.landmarks, PersonLandmarks)  # the landmarks travel as data
    # the person leaves every region: lost, and the detector runs on that very frame
    lm.frame = 12
    r = video(np.zeros((H, W, 3), np.uint8), 12)
    assert r.detector_ran and det.calls == 4
    video.reset()
    lm.frame = 13
    assert video(np.zeros((H, W, 3), np.uint8), 13).detector_ran  # a new stream starts with a detection


class PartsDetector(StubDetector):
    """A look for newcomers in three parts; remembers ``(frame, part, people known)`` per part run."""

    def __init__(self, landmarker):
        super().__init__(landmarker)
        self.parts = []

    def detection_parts(self, image_wh):
        return 3

    def detect_new_part(self, image, known_boxes, part, frame_index=None):
        self.parts.append((frame_index, part, len(np.asarray(known_boxes).reshape(-1, 4))))
        return Detections.empty()


def test_a_look_for_newcomers_is_spread_one_part_per_frame_while_people_are_followed():
    lm = StubLandmarker([0.0] * 12)
    det = PartsDetector(lm)
    video = TrackingPipeline.from_pipeline(PosePipeline(det, StubHMR(lm), detector_stride=5, crops="landmarks"),
                                           smooth="none")
    ran = []
    for i in range(12):
        lm.frame = i
        r = video(np.zeros((H, W, 3), np.uint8), i)
        ran.append(r.detector_ran)
        assert len(r.persons) == 1
    # frame 0: nobody followed yet, so the whole look at once; then every 5 frames one part a frame, the
    # person followed known to each part
    assert det.calls == 1
    assert det.parts == [(5, 0, 1), (6, 1, 1), (7, 2, 1), (10, 0, 1), (11, 1, 1)]
    assert ran == [True, False, False, False, False, True, True, True, False, False, True, True]
    video.reset()  # a new stream: the part under way is dropped, the first frame looks whole
    lm.frame = 0
    assert video(np.zeros((H, W, 3), np.uint8), 0).detector_ran and det.calls == 2


def test_a_lost_person_is_looked_for_one_part_per_frame_too():
    """Nobody followed after the first frame (the person lost): the look is spread as well, one part a frame
    (issue 23 item 3: a whole look, 4 views on 16:9, was a frame of ~2.5x the others), cycling while nobody
    is found; MediaPipe Pose itself runs one detector pass a frame then."""
    lm = StubLandmarker([0.0, 0.0] + [5.0] * 6)  # followed on frames 0-1, then out of every region
    det = PartsDetector(lm)
    video = TrackingPipeline.from_pipeline(PosePipeline(det, StubHMR(lm), detector_stride=5, crops="landmarks"),
                                           smooth="none")
    persons = []
    for i in range(8):
        lm.frame = i
        r = video(np.zeros((H, W, 3), np.uint8), i)
        persons.append(len(r.persons))
        assert r.detector_ran == (i != 1)
    assert persons == [1, 1, 0, 0, 0, 0, 0, 0]
    assert det.calls == 1  # the whole look only on the stream's first frame
    assert det.parts == [(2, 0, 0), (3, 1, 0), (4, 2, 0), (5, 0, 0), (6, 1, 0), (7, 2, 0)]


def test_detector_landmarks_are_reused_not_computed_twice():
    lm = StubLandmarker([0.0])
    det = StubDetector(lm)
    hmr = StubHMR(lm)
    image = np.zeros((H, W, 3), np.uint8)
    pose = stub_pose()
    box = mpm.landmark_box(pose, (W, H))
    dets = det.detections([PersonPose(box, 0.9, pose, None)])
    preds = PosePipeline(det, hmr).estimate(image, dets.boxes, dets.scores, dets.landmarks)
    assert len(preds) == 1 and lm.rois == []  # no landmark pass: the detector's landmarks were used
    np.testing.assert_allclose(preds[0].joints_2d[MHR70_INDEX["nose"]], pose.points[0])
    assert preds[0].landmarks.pose is pose


def test_landmark_crops_need_an_estimator_that_follows():
    lm = StubLandmarker([0.0])

    class BoxesOnly:
        name, provider = "boxes-only", "cpu"

        def predict(self, image_rgb, boxes, scores=None, focal_length=None, *, landmarks=None):
            return []

        def describe(self):
            return "boxes only"

    with pytest.raises(ValueError, match="crops='landmarks' needs an estimator that follows"):
        PosePipeline(StubDetector(lm), BoxesOnly(), crops="landmarks")
    with pytest.raises(ValueError, match="crops must be one of"):
        PosePipeline(StubDetector(lm), StubHMR(lm), crops="regions")


# --------------------------------------------------------------------------------------------------
# Smoothing skips absent joints
# --------------------------------------------------------------------------------------------------

def test_smoothing_leaves_absent_joints_out_and_restarts_them():
    import dataclasses

    from instanthmr.video.smoothing import OneEuroSmoother, smooth_track_offline

    hmr = MediaPipeHMR.__new__(MediaPipeHMR)
    hmr.min_presence, hmr.hand = 0.5, None
    preds = []
    knee = BLAZEPOSE33_INDEX["left_knee"]
    for i in range(20):
        pres = np.ones(33)
        if 5 <= i < 9:
            pres[knee] = 0.0  # the knee leaves the picture for 4 frames
        preds.append(hmr.prediction((W, H), stub_pose(t=(0.01 * i, -0.05, 4.5), presence=pres), None, focal_length=F))
    k, nose = MHR70_INDEX["left_knee"], MHR70_INDEX["nose"]
    live = OneEuroSmoother()
    out = [live(1, p, i / 30) for i, p in enumerate(preds)]
    assert np.isnan(out[6].joints_2d[k]).all() and np.isfinite(out[6].joints_2d[nose]).all()
    assert np.isfinite(out[9].joints_2d[k]).all()  # back: not poisoned by the NaN frames
    np.testing.assert_allclose(out[9].joints_2d[k], preds[9].joints_2d[k])  # restarts from its own value
    off = smooth_track_offline(preds, list(range(20)), fps=30.0)
    assert np.isnan(off[6].joints_3d_local[k]).all()
    # every frame has absent joints (olecranon, neck, ...), yet the present ones are still smoothed
    assert all(np.isfinite(o.joints_2d[nose]).all() for o in off)
    wobble = [dataclasses.replace(p, joints_2d=p.joints_2d + (3.0 if i % 2 else -3.0)) for i, p in enumerate(preds)]
    sm = smooth_track_offline(wobble, list(range(20)), fps=30.0)
    assert abs(sm[10].joints_2d[nose, 0] - preds[10].joints_2d[nose, 0]) < 1.5  # the +-3 px wobble is damped


# --------------------------------------------------------------------------------------------------
# Real models
# --------------------------------------------------------------------------------------------------

def _rgb(path) -> np.ndarray:
    from instanthmr.video.sources import read_image_rgb

    return read_image_rgb(path)


def test_sample_portrait_face_and_shoulders_where_they_are(mp_models):
    img = _rgb(GRACE_HOPPER)  # 512x600: head and shoulders, arms and legs out of the picture
    r = mediapipe_pipeline().predict(img)
    assert len(r.persons) == 1
    p = r.persons[0]
    v = p.valid_mask
    ls, rs = p.joints_2d[MHR70_INDEX["left_shoulder"]], p.joints_2d[MHR70_INDEX["right_shoulder"]]
    assert v[[MHR70_INDEX[n] for n in ("nose", "left_eye", "right_eye", "left_shoulder", "right_shoulder")]].all()
    # shoulders far apart at chest height (the starter network collapsed them onto the face's midline)
    assert ls[0] - rs[0] > 0.5 * img.shape[1] and 330 < ls[1] < 500 and 330 < rs[1] < 500
    nose = p.joints_2d[MHR70_INDEX["nose"]]
    assert rs[0] < nose[0] < ls[0] and nose[1] < min(ls[1], rs[1]) - 100
    assert not v[[MHR70_INDEX[n] for n in ("left_knee", "right_ankle", "left_hip") + ABSENT]].any()
    # the elbows BlazePose puts just below the bottom edge are drawn (the arms leave the picture there)
    for side in ("left", "right"):
        e, sh = p.joints_2d[MHR70_INDEX[f"{side}_elbow"]], p.joints_2d[MHR70_INDEX[f"{side}_shoulder"]]
        assert v[MHR70_INDEX[f"{side}_elbow"]] and e[1] > sh[1] + 100 and abs(e[0] - sh[0]) < 120
    sw = np.linalg.norm(p.joints_3d_local[MHR70_INDEX["left_shoulder"]] - p.joints_3d_local[MHR70_INDEX["right_shoulder"]])
    assert 0.25 < sw < 0.5  # metres: an adult's shoulders
    assert 0.5 < p.cam_trans[2] < 3.0 and p.mhr_params is None
    cam = p.joints_3d_cam[v]
    proj = cam[:, :2] / cam[:, 2:] * p.focal_length + p.principal_point
    assert np.median(np.linalg.norm(proj - p.joints_2d[v], axis=1)) < 0.05 * img.shape[0]


def test_teacher_labels_are_the_runtime_predictions(mp_models):
    from instanthmr.teachers.mediapipe import MediaPipeTeacher

    img = _rgb(GRACE_HOPPER)
    teacher = MediaPipeTeacher(hands=False)
    # one copy of each model: the teacher's person search runs on its estimator's detector and landmarks
    assert teacher.people.landmarker is teacher.estimator.landmarker
    assert teacher.people.detector is teacher.estimator.box_detector
    pipe = mediapipe_pipeline(hands=False)
    assert pipe.detector.people.landmarker is pipe.estimator.landmarker
    lab = teacher(img)[0]
    hmr = MediaPipeHMR(hands=False)
    p = hmr.prediction((img.shape[1], img.shape[0]), lab.person.pose, lab.hands)
    v = p.valid_mask
    np.testing.assert_allclose(p.joints_2d[v], lab.joints_2d[v], atol=1e-4)
    np.testing.assert_allclose(p.joints_3d_local[v], lab.joints_3d[v], atol=1e-5)
    np.testing.assert_allclose(p.cam_trans, lab.cam_trans, atol=1e-5)
    assert (v == lab.joints_3d_valid).all()


def test_a_box_from_another_detector_gets_the_same_landmarks(mp_models):
    img = _rgb(GRACE_HOPPER)
    det = MediaPipeDetector()
    d = det(img)
    assert d.landmarks is not None and len(d.landmarks) == len(d)
    a = MediaPipeHMR(hands=False).predict(img, d.boxes, d.scores, landmarks=d.landmarks)[0]
    b = MediaPipeHMR(hands=False).predict(img.copy(), d.boxes, d.scores)[0]  # not seeded: its own passes
    both = a.valid_mask & b.valid_mask
    assert both[[MHR70_INDEX["left_shoulder"], MHR70_INDEX["right_shoulder"], MHR70_INDEX["nose"]]].all()
    assert np.median(np.linalg.norm(a.joints_2d[both] - b.joints_2d[both], axis=1)) < 0.05 * img.shape[0]


def test_hands_add_finger_joints(mp_models, shared_data):
    img = _rgb(shared_data / "images" / "4dhumans" / "pexels-anete-lusina-4793258.jpg")  # hands up on a bar
    r = mediapipe_pipeline(hands=True).predict(img)
    p = r.persons[0]
    tips = [MHR70_INDEX[f"{s}_{f}_tip"] for s in ("left", "right") for f in ("thumb", "index", "middle")]
    assert p.valid_mask[tips].all()
    body = mediapipe_pipeline(hands=False).predict(img).persons[0]
    assert not body.valid_mask[tips].any()


def test_one_person_video_costs_one_landmark_pass_per_frame(mp_models, shared_data):
    from instanthmr.video.sources import open_source

    pipe = mediapipe_pipeline(hands=False, max_persons=1, detect_every=10)
    calls = []
    inner = pipe.hmr.landmarker
    pipe.hmr.landmarker = lambda image, roi: calls.append(roi) or inner(image, roi)
    video = TrackingPipeline.from_pipeline(pipe, smooth="causal")
    src = open_source(None, str(shared_data / "videos" / "sports2d_demo.mp4"), None, max_frames=30)
    ids, ran = set(), 0
    for fr in src:
        r = video(fr.image, fr.index, fr.time_s)
        ran += r.detector_ran
        assert len(r.persons) == 1
        assert r.persons[0].source == ("detector" if fr.index == 0 else "keypoints")  # followed by its landmarks
        ids.update(p.track_id for p in r.persons)
    src.close()
    # max_persons followed: the detector never looks again (MediaPipe Pose's rule); one landmark pass a frame
    assert ran == 1 and len(calls) == 29
    assert len(ids) == 1


def test_handedness_reads_right_for_a_right_hand_on_an_unmirrored_frame(mp_models, shared_data):
    """HandLandmarks.right_score's convention on a real frame: sports2d_demo.mp4 frame 97, the walker in front
    (seen side-on, her left toward the camera; BlazePose's sides right there by eye, docs/body_fit_eye_labels.csv)
    has her right hand found at BlazePose's right wrist, and the hand model calls it a right hand."""
    from instanthmr.video.sources import open_source

    src = open_source(None, str(shared_data / "videos" / "sports2d_demo.mp4"), None, max_frames=98)
    image = [fr.image for fr in src][-1]
    src.close()
    persons = mediapipe_pipeline(hands=True).predict(image).persons
    walker = max(persons, key=lambda p: p.box[3])                    # the one nearest the camera, lowest
    hand = walker.landmarks.hands["right"]
    assert hand is not None and hand.right_score > 0.7


def _hands_of(p) -> tuple:
    """A person's hands as numbers: per side None or (points, world, score, right_score)."""
    hands = p.landmarks.hands
    return tuple(None if hands.get(s) is None else
                 (hands[s].points.tolist(), hands[s].world.tolist(), hands[s].score, hands[s].right_score)
                 for s in ("left", "right"))


def test_hands_found_after_tracking_are_the_hands_found_in_the_landmark_pass(mp_models, shared_data):
    """TrackHands (the run loop's hand passes, on its finishing thread): on a real clip with several people and
    their hands, each tracked person's joints, hands and causal smoothing come out exactly as when the
    estimator finds the hands itself, hands followed from frame to frame included (a person followed starts
    from their hands on the last frame: one pass on a re-fitted crop, not the search from the wrists)."""
    from instanthmr.runtime.mediapipe.estimator import TrackHands
    from instanthmr.video.smoothing import OneEuroSmoother
    from instanthmr.video.sources import open_source
    from instanthmr.video.tracking import smooth_causal

    src = open_source(None, str(shared_data / "videos" / "sports2d_demo.mp4"), None, max_frames=132)
    frames = [(fr.image, fr.index, fr.time_s) for fr in src][96:]  # two people, their hands often in view
    src.close()
    inside = TrackingPipeline.from_pipeline(mediapipe_pipeline(hands=True, max_persons=2), smooth="causal")
    later_pipe = mediapipe_pipeline(hands=True, max_persons=2)
    hands = TrackHands.attach(later_pipe.estimator)
    later = TrackingPipeline.from_pipeline(later_pipe, smooth="none")
    smoother = OneEuroSmoother()
    found = followed = 0
    had_hands: set = set()  # the track IDs with a hand found on the last frame
    for image, fi, ts in frames:
        a = inside(image, fi, ts)
        raw = later(image, fi, ts)
        assert all(p.landmarks.hands is None and not p.valid_mask[MHR70_INDEX["left_index_tip"]]
                   for p in raw.persons)  # the landmark pass left the hands out
        b = hands(image, raw)
        b.persons = smooth_causal(smoother, b.persons, b.time_s, b.ended_tracks)
        assert [p.track_id for p in a.persons] == [p.track_id for p in b.persons]
        for p, q in zip(a.persons, b.persons):
            assert _hands_of(p) == _hands_of(q)
            np.testing.assert_array_equal(p.joints_valid, q.joints_valid)
            for name in ("joints_2d", "joints_3d_cam", "joints_3d_local", "cam_trans"):
                np.testing.assert_array_equal(getattr(p, name), getattr(q, name), err_msg=name)
            n = sum(h is not None for h in p.landmarks.hands.values())
            found += n
            followed += n if p.source == "keypoints" and p.track_id in had_hands else 0
        had_hands = {p.track_id for p in a.persons if any(h is not None for h in p.landmarks.hands.values())}
    assert found >= 40 and followed >= 30  # hands were there to find, and followed from frame to frame
    hands.detach()
    assert later_pipe.estimator.hands_later is False


def test_track_hands_only_takes_over_an_estimator_with_hands(mp_models):
    from instanthmr.runtime.mediapipe.estimator import TrackHands

    body = MediaPipeHMR(hands=False)
    assert TrackHands.attach(body) is None and body.hands_later is False
    assert TrackHands.attach(object()) is None


def test_the_run_loop_runs_the_hands_after_tracking_and_gives_the_estimator_back(mp_models, shared_data, tmp_path):
    """The run loop with a caller's MediaPipe pipeline, live (causal) smoothing: the written frames have hand
    joints, and the caller's estimator finds hands itself again afterwards."""
    import json

    from instanthmr.runner.config import RunConfig
    from instanthmr.runner.loop import run

    pipe = mediapipe_pipeline(hands=True, max_persons=2)
    out = tmp_path / "run.json"
    report = run(RunConfig(video=str(shared_data / "videos" / "sports2d_demo.mp4"), max_frames=12, smooth="causal",
                           save_json=str(out), body_fit=False, viewer=False, quiet=True, verbose=False), pipeline=pipe)
    assert report.frames == 12 and pipe.estimator.hands_later is False
    tip = MHR70_INDEX["right_index_tip"]
    people = [p for f in json.loads(out.read_text())["frames"] for p in f["persons"]]
    assert any(p["joints_2d"][tip] is not None and p["joints_2d"][tip][0] is not None for p in people)


def test_heatmap_refinement_counts_only_the_cells_inside_the_heatmap():
    """refine_from_heatmap against a brute-force loop over each 7x7 window: at the border only in-bounds cells
    count (none repeated from the edge), a window with no confident cell leaves the landmark as it was."""
    from instanthmr.runtime.mediapipe.blazepose import refine_from_heatmap
    from instanthmr.runtime.mediapipe.regions import sigmoid

    rng = np.random.default_rng(3)
    hm = rng.normal(-3.0, 1.0, (64, 64, 4)).astype(np.float32)
    hm[0, 0, 0] = hm[1, 0, 0] = 4.0        # landmark 0: a corner, confident
    hm[62, 63, 1] = 4.0                      # landmark 1: by the right edge, confident
    xy = np.array([[0.2 / 64, 0.3 / 64], [63.5 / 64, 62.4 / 64], [0.5, 0.5], [1.2, 0.5]])  # 2: weak; 3: outside
    out = refine_from_heatmap(xy, hm)

    def brute(k):
        c, r = int(xy[k, 0] * 64), int(xy[k, 1] * 64)
        cells = [(rr, cc) for rr in range(r - 3, r + 4) for cc in range(c - 3, c + 4) if 0 <= rr < 64 and 0 <= cc < 64]
        conf = np.array([sigmoid(hm[rr, cc, k]) for rr, cc in cells])
        pos = np.array(cells, np.float64)
        return (conf @ pos[:, 1]) / conf.sum() / 64, (conf @ pos[:, 0]) / conf.sum() / 64

    for k in (0, 1):
        np.testing.assert_allclose(out[k], brute(k), rtol=1e-12)
    np.testing.assert_array_equal(out[2:], xy[2:])  # no cell over 0.5 / outside the heatmap: as given
