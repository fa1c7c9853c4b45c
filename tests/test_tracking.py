"""Tracking on synthetic box sequences: crossing people, leaving and re-entering, missed detections,
keypoint-driven boxes."""

from __future__ import annotations

import numpy as np
import pytest

from instanthmr.core.geometry import box_iou, usable_boxes
from instanthmr.video.tracking import Tracker, box_from_keypoints, keypoint_box_confidence, keypoint_similarity


def _box(cx, cy, w=60.0, h=160.0):
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def test_box_iou_known_values():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    np.testing.assert_allclose(box_iou(a, b)[0], [1.0, 50 / 150, 0.0])
    assert box_iou(a, b).shape == (1, 3) and box_iou(b, a).shape == (3, 1)
    # empty union (two zero-area boxes) and an inverted box: 0, never NaN or negative
    np.testing.assert_array_equal(box_iou([[5, 5, 5, 5]], [[5, 5, 5, 5], [10, 10, 0, 0]]), [[0.0, 0.0]])


def test_usable_boxes_drops_slivers_and_nan():
    boxes = [[0, 0, 10, 10], [0, 0, 3.9, 50], [0, 0, 50, 4.0], [np.nan, 0, 10, 10], [10, 10, 0, 0]]
    np.testing.assert_array_equal(usable_boxes(boxes), [True, False, True, False, False])


def test_crossing_people_keep_their_ids():
    rng = np.random.default_rng(0)
    tracker = Tracker()
    seen = {"A": set(), "B": set()}
    for f in range(60):
        a = _box(100 + 35 * f, 300) + rng.normal(0, 2, 4)  # runs right, over half a box width per frame
        b = _box(2217 - 35 * f, 300) + rng.normal(0, 2, 4)  # same size and height; closest (17 px) at f = 30
        order = [("A", a), ("B", b)] if f % 2 else [("B", b), ("A", a)]  # detector order is arbitrary
        ids = tracker.update(np.stack([x for _, x in order]), np.ones(2))
        for (name, _), tid in zip(order, ids):
            seen[name].add(int(tid))
    assert len(seen["A"]) == 1 and len(seen["B"]) == 1
    assert seen["A"] != seen["B"]


def test_missed_detections_keep_the_track_alive():
    tracker = Tracker(max_missed=5)
    ids = []
    for f in range(40):
        if f % 7 in (3, 4, 5):  # three missed frames out of every seven
            out = tracker.update(np.zeros((0, 4)), np.zeros(0))
            assert out.shape == (0,)
            continue
        ids.append(int(tracker.update(_box(100 + 5 * f, 200)[None], [0.9])[0]))
    assert set(ids) == {ids[0]}


def test_leaving_and_reentering():
    tracker = Tracker(max_missed=5)
    first = int(tracker.update(_box(100, 200)[None])[0])
    for _ in range(3):  # short absence: same person, same ID
        tracker.update(np.zeros((0, 4)))
    assert int(tracker.update(_box(104, 200)[None])[0]) == first
    for _ in range(10):  # long absence: the track ends
        tracker.update(np.zeros((0, 4)))
    assert tracker.active_ids == []
    again = int(tracker.update(_box(104, 200)[None])[0])
    assert again != first and again > first  # new ID, never a reused one


def test_ids_never_reused_and_new_people_get_new_ids():
    tracker = Tracker(max_missed=1)
    all_ids = []
    for k in range(5):  # a new person appears far away each time; the old one vanishes
        for _ in range(3):
            all_ids.append(int(tracker.update(_box(100 + 200 * k, 200)[None])[0]))
    per_person = [all_ids[i:i + 3] for i in range(0, 15, 3)]
    assert all(len(set(p)) == 1 for p in per_person)
    assert len({p[0] for p in per_person}) == 5
    two = tracker.update(np.stack([_box(900, 200), _box(50, 500)]))
    assert two[0] == per_person[-1][0] and two[1] not in all_ids


def test_keypoints_resolve_ambiguous_boxes():
    rng = np.random.default_rng(1)
    kp_a = rng.uniform([0, 0], [100, 200], size=(17, 2))
    kp_b = rng.uniform([0, 0], [100, 200], size=(17, 2))
    box = np.array([0, 0, 100, 200.0])
    for iou_weight, expect_a_second in ((0.3, True),):
        tracker = Tracker(iou_weight=iou_weight)
        tid = tracker.update(box[None], keypoints2d=kp_a[None])[0]
        # Two detections overlapping the track equally; only the second carries A's keypoints.
        dets = np.stack([box + [10, 0, 10, 0], box - [10, 0, 10, 0]])
        ids = tracker.update(dets, keypoints2d=np.stack([kp_b + [10, 0], kp_a - [10, 0]]))
        assert (ids[1] == tid) == expect_a_second and ids[0] != tid


def test_keypoint_similarity_range():
    kp = np.random.default_rng(2).uniform(0, 100, size=(1, 10, 2))
    box = np.array([[0, 0, 100, 100.0]])
    assert keypoint_similarity(kp, kp, box)[0, 0] == pytest.approx(1.0)
    assert keypoint_similarity(kp, kp + 50, box)[0, 0] < 0.01


def test_box_from_keypoints_covers_joints_with_margin():
    j = np.array([[100, 100], [200, 400], [150, 250.0]])
    box = box_from_keypoints(j, margin=0.1, top_margin=0.0)
    np.testing.assert_allclose(box, [70, 70, 230, 430])
    clipped = box_from_keypoints(j, image_wh=(220, 420))
    assert clipped[2] == 220 and clipped[3] == 420 and clipped[0] >= 0
    with pytest.raises(ValueError):
        box_from_keypoints(np.full((3, 2), np.nan))


def test_keypoint_box_confidence_drops_when_the_crop_drifts():
    j = np.stack(np.meshgrid(np.linspace(300, 360, 5), np.linspace(200, 400, 10)), -1).reshape(-1, 2)
    good = box_from_keypoints(j)
    assert keypoint_box_confidence(good, j, (640, 480)) == pytest.approx(1.0)
    drifted = good + [150, 0, 150, 0]
    assert keypoint_box_confidence(drifted, j, (640, 480)) < 0.2
    half_out = j - [330, 0]  # half the joints left of the image
    assert keypoint_box_confidence(box_from_keypoints(half_out), half_out, (640, 480)) < 0.6


# --------------------------------------------------------------------------------------------------
# TrackingPipeline with a fake detector and a fake pose network over a synthetic scene
# --------------------------------------------------------------------------------------------------

from dataclasses import dataclass  # noqa: E402

from instanthmr.runtime.pipeline import FrameResult  # noqa: E402
from instanthmr.video.tracking import TrackingPipeline, smooth_frames_offline  # noqa: E402

W, H = 640, 360


def _scene_joints(f: int) -> dict[str, np.ndarray]:
    """Two people as 10-joint stick clouds; B leaves the image after frame 30."""
    grid = np.stack(np.meshgrid(np.linspace(-20, 20, 2), np.linspace(-60, 60, 5)), -1).reshape(-1, 2)
    out = {"A": grid + [100 + 4 * f, 180]}
    if f <= 30:
        out["B"] = grid + [500 - 2 * f, 190]
    return out


@dataclass
class _Det:
    boxes: np.ndarray
    scores: np.ndarray


@dataclass
class _P:
    """The HMRPrediction fields tracking reads and sets."""

    box: np.ndarray
    joints_2d: np.ndarray
    cam_trans: np.ndarray
    track_id: int | None = None
    source: str = "detector"
    confidence: float | None = None


class _Scene:
    def __init__(self):
        self.f = 0
        self.rng = np.random.default_rng(0)

    def detector(self, image, frame_index):
        people = list(_scene_joints(self.f).values())
        boxes = np.array([box_from_keypoints(j, (W, H)) for j in people]).reshape(-1, 4)
        return _Det(boxes, np.full(len(boxes), 0.9))

    def estimator(self, image, boxes, scores):
        """Joints of the person the crop covers (with noise); garbage in the crop when it covers nobody."""
        people = list(_scene_joints(self.f).values())
        out = []
        for b in boxes:
            ious = [box_iou(b, box_from_keypoints(j, (W, H)))[0, 0] for j in people]
            if ious and max(ious) > 0.2:
                j = people[int(np.argmax(ious))] + self.rng.normal(0, 1.0, (10, 2))
            else:
                j = self.rng.uniform(b[:2], b[2:], size=(10, 2)) * [1, 0.2] + [0, b[1] * 0.8]
            out.append(_P(np.asarray(b), j, np.array([0.0, 0.0, 3.0]) + self.rng.normal(0, 0.05, 3)))
        return out


def _run(n=60, **kw):
    scene = _Scene()
    tp = TrackingPipeline(scene.detector, scene.estimator, fps=30.0, **kw)
    frames = []
    for f in range(n):
        scene.f = f
        frames.append(tp(np.zeros((H, W, 3), np.uint8), f))
    return tp, frames


def test_pipeline_keypoint_crops_save_detector_calls_and_keep_ids():
    tp, frames = _run(detect_every=10, smooth="none")
    assert isinstance(frames[0], FrameResult) and frames[0].detector_ran
    assert frames[3].time_s == pytest.approx(3 / 30.0) and frames[3].image_size == (W, H)
    # the persons are the estimator's predictions with the track columns set (no wrapper)
    assert all(type(p) is _P and p.track_id is not None and 0.0 <= p.confidence <= 1.0
               for fr in frames for p in fr.persons)
    assert [p.source for p in frames[0].persons] == ["detector", "detector"]
    ran = [i for i, fr in enumerate(frames) if fr.detector_ran]
    assert ran[:2] == [0, 10]  # the schedule: every detect_every frames while everybody is followed
    ids_a = {p.track_id for fr in frames for p in fr.persons if p.box[0] < 300 and fr.frame_index < 25}
    assert len(ids_a) == 1
    # Between detector runs, crops follow the people from their joints.
    assert tp.detector_calls <= 12 and any(p.source == "keypoints" for fr in frames for p in fr.persons)
    late = frames[45]
    assert len(late.persons) == 1 and late.persons[0].track_id in ids_a  # B left; A still tracked
    assert box_iou(late.persons[0].box, box_from_keypoints(_scene_joints(45)["A"], (W, H)))[0, 0] > 0.7
    every = _run(detect_every=1, crops="boxes", smooth="none")[0]
    assert every.detector_calls == 60


def test_pipeline_runs_the_detector_when_confidence_drops():
    scene = _Scene()
    tp = TrackingPipeline(scene.detector, scene.estimator, detect_every=50, smooth="none")
    img = np.zeros((H, W, 3), np.uint8)
    tp(img, 0)
    tp(img, 1)
    assert tp.detector_calls == 1
    # Corrupt A's joints so the next keypoint crop lands on nobody: its confidence falls, detector reruns.
    tid = tp.tracker.tracks[0].track_id
    tp.tracker.track(tid).keypoints = tp.tracker.track(tid).keypoints + [250, 0]
    fr = tp(img, 2)
    low = [p for p in fr.persons if p.track_id == tid][0]
    assert low.source == "keypoints" and low.confidence < 0.5
    fr = tp(img, 3)
    assert fr.detector_ran and tp.detector_calls == 2


def test_pipeline_smoothing_modes():
    _, raw = _run(n=40, detect_every=5, smooth="none")
    _, causal = _run(n=40, detect_every=5, smooth="causal")
    before = [(p.cam_trans.copy(), p.joints_2d.copy()) for fr in raw for p in fr.persons]
    off = smooth_frames_offline(raw, fps=30.0)

    def cam_jitter(frames, tid):
        z = np.array([p.cam_trans[2] for fr in frames for p in fr.persons if p.track_id == tid])
        return np.abs(np.diff(z, 2)).mean()

    tid = raw[0].persons[0].track_id
    assert cam_jitter(causal, tid) < 0.5 * cam_jitter(raw, tid)
    assert cam_jitter(off, tid) < 0.5 * cam_jitter(raw, tid)
    after = [(p.cam_trans, p.joints_2d) for fr in raw for p in fr.persons]  # input untouched (values, not ids)
    assert all(np.array_equal(a, c) and np.array_equal(b, d) for (a, b), (c, d) in zip(before, after))
    with pytest.raises(ValueError, match="smooth"):
        TrackingPipeline(None, None, smooth="later")
    with pytest.raises(ValueError, match="crops must be one of"):
        TrackingPipeline(None, None, crops="joints")
    with pytest.raises(ValueError, match="crops='landmarks' needs follow"):
        TrackingPipeline(None, None, crops="landmarks")
