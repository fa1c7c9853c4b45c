"""PosePipeline: the detector stride and box-reuse rule, timings, and an end-to-end run with RF-DETR."""

from __future__ import annotations

import math

import numpy as np
import pytest

from instanthmr.outputs.summary import summarize, timing_stats
from instanthmr.runtime.detector import BoxFileDetector, Detections, PersonDetector, RFDETRDetector
from instanthmr.runtime.pipeline import (
    REUSE_ENLARGE,
    REUSE_SCORE_DECAY,
    DetectorSchedule,
    FrameResult,
    PosePipeline,
    enlarge_boxes,
)

W, H = 160, 120


class ScriptedDetector(PersonDetector):
    """Returns scripted detections per call and counts calls."""

    name = "scripted"

    def __init__(self, script=None, confidence=0.0, max_persons=None):
        super().__init__(confidence, max_persons)
        self.script = script or {}
        self.calls: list[int] = []

    def detect(self, image_rgb, frame_index=None):
        self.calls.append(frame_index)
        boxes = self.script.get(frame_index, self.script.get("default", [[40, 20, 100, 110]]))
        return Detections(np.asarray(boxes, np.float32).reshape(-1, 4), np.full(len(boxes), 0.8, np.float32))


@pytest.fixture(scope="module")
def hmr(random_onnx):
    from instanthmr.runtime.hmr import InstantHMR

    return InstantHMR(random_onnx, device="cpu", max_persons=2)


def frame(seed=0):
    return np.random.default_rng(seed).integers(0, 255, (H, W, 3), dtype=np.uint8)


def test_enlarge_boxes_ten_percent_a_side_and_clipped():
    b = enlarge_boxes([[100, 50, 200, 250]], 0.1)
    np.testing.assert_allclose(b, [[90, 30, 210, 270]])
    np.testing.assert_allclose(enlarge_boxes([[0, 10, 100, 110]], 0.1, image_wh=(105, 200)), [[0, 0, 105, 120]])


@pytest.mark.parametrize("frames, stride", [(10, 1), (10, 3), (7, 2), (5, 5), (4, 7), (12, 4)])
def test_schedule_detects_ceil_f_over_n_times(frames, stride):
    s = DetectorSchedule(stride)
    ran = []
    dets = Detections(np.array([[10, 10, 50, 90]]), np.array([0.9]))
    for _ in range(frames):
        if s.should_detect():
            ran.append(True)
            s.after_detection(dets, (W, H))
        else:
            ran.append(False)
            s.between((W, H))
    assert s.calls == sum(ran) == math.ceil(frames / stride)
    assert [i for i, r in enumerate(ran) if r] == list(range(0, frames, stride))


def test_schedule_reuse_rule():
    s = DetectorSchedule(3)
    dets = Detections(np.array([[40, 20, 100, 110]], np.float32), np.array([0.8], np.float32))
    assert s.should_detect()
    out = s.after_detection(dets, (W, H))
    assert out is dets and not s.reused
    expected = enlarge_boxes(dets.boxes, REUSE_ENLARGE, (W, H))
    for _ in range(2):  # in-between frames: the same enlarged box each time (no compounding)
        assert not s.should_detect()
        out = s.between((W, H))
        assert s.reused
        np.testing.assert_allclose(out.boxes, expected)
        np.testing.assert_allclose(out.boxes, [[34, 11, 106, 119]])
        np.testing.assert_allclose(out.scores, [0.8 * REUSE_SCORE_DECAY])
    # the detector finds nobody right after a detection: the previous boxes are reused once more
    assert s.should_detect()
    out = s.after_detection(Detections.empty(), (W, H))
    assert s.reused and len(out) == 1
    np.testing.assert_allclose(out.boxes, expected)
    s.between((W, H))
    s.between((W, H))
    # a second empty run: nobody is there any more
    out = s.after_detection(Detections.empty(), (W, H))
    assert len(out) == 0 and not s.reused
    assert len(s.between((W, H))) == 0
    with pytest.raises(ValueError):
        DetectorSchedule(0)


def test_schedule_request_and_advance():
    """The path TrackingPipeline drives: it makes its own boxes between runs and asks for early runs."""
    s = DetectorSchedule(4)
    ran = []
    for f in range(12):
        if f == 2:
            s.request()  # e.g. a tracked person was lost: the detector looks on the next frame
        r = s.should_detect()
        s.advance(r)
        ran.append(r)
    # 0; 2 on request; then every 4 frames counted from the last run (not from frame 0)
    assert [i for i, r in enumerate(ran) if r] == [0, 2, 6, 10] and s.calls == 4 and s.frame == 12
    s.reset()
    assert s.should_detect() and s.calls == 0 and s.frame == 0


def test_pipeline_stride_timings_and_reuse(hmr):
    det = ScriptedDetector({0: [[40, 20, 100, 110]], 2: [[10, 10, 60, 100], [70, 5, 150, 115]]})
    pipe = PosePipeline(det, hmr, detector_stride=2)
    results = [pipe.predict(frame(i)) for i in range(5)]
    assert all(r.time_s is None and r.ended_tracks == [] for r in results)  # tracking columns stay empty
    assert all(p.track_id is None for r in results for p in r.persons)
    assert det.calls == [0, 2, 4]
    assert [r.detector_ran for r in results] == [True, False, True, False, True]
    assert [r.reused for r in results] == [False, True, False, True, False]
    assert [len(r.persons) for r in results] == [1, 1, 2, 2, 1]
    assert [r.frame_index for r in results] == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(results[1].persons[0].box, [34, 11, 106, 119])
    assert results[1].persons[0].score == pytest.approx(0.72)
    for r in results:
        assert r.image_size == (W, H)
        assert r.detector_ms >= 0 and r.hmr_ms > 0
        assert r.total_ms >= r.detector_ms + r.hmr_ms
        assert (r.detector_ms > 0) == r.detector_ran
        p = r.persons[0]
        assert p.joints_2d.shape == (70, 2) and p.joints_3d_cam.shape == (70, 3)
    pipe.reset()
    assert pipe.predict(frame(), frame_index=17).detector_ran and det.calls[-1] == 17


def test_pipeline_without_people_and_tiny_boxes(hmr):
    det = ScriptedDetector({"default": []})
    pipe = PosePipeline(det, hmr)
    r = pipe.predict(frame())
    assert r.persons == [] and r.detector_ran and len(r.detections) == 0
    det.script = {"default": [[150, 5, 200, 50], [0, 0, 2, 80], [20, 20, 80, 100]]}  # 2nd: 2 px wide
    r = pipe.predict(frame())
    assert len(r.persons) == 2  # the 2 px sliver is dropped; a box past the border is still cropped (padded)
    with pytest.raises(ValueError, match="uint8 RGB"):
        pipe.predict(np.zeros((H, W), np.uint8))


def test_pipeline_box_file_and_estimate(hmr, tmp_path):
    import json

    p = tmp_path / "boxes.json"
    p.write_text(json.dumps({"frames": [{"frame_index": 4, "boxes": [[30, 10, 90, 110]], "scores": [0.6]}]}))
    pipe = PosePipeline(BoxFileDetector(p), hmr)
    assert pipe.predict(frame(), frame_index=3).persons == []
    r = pipe.predict(frame(), frame_index=4)
    np.testing.assert_allclose(r.persons[0].box, [30, 10, 90, 110])
    assert r.persons[0].score == pytest.approx(0.6)
    # the estimator hook the tracking wrapper uses
    preds = pipe.estimate(frame(), np.array([[30, 10, 90, 110.0]]), np.array([0.5]))
    assert len(preds) == 1 and preds[0].joints_3d_cam.shape == (70, 3)


class RecordingEstimator:
    """A PoseEstimator that records what it is given (boxes, landmarks, focal) and predicts nothing."""

    name, provider = "recorder", "none"

    def __init__(self):
        self.calls = []

    def predict(self, image_rgb, boxes, scores=None, focal_length=None, *, landmarks=None):
        self.calls.append((np.asarray(boxes).copy(), landmarks, focal_length))
        return []

    def describe(self):
        return "records its inputs"


class LandmarkDetector(ScriptedDetector):
    def detect(self, image_rgb, frame_index=None):
        d = super().detect(image_rgb, frame_index)
        return Detections(d.boxes, d.scores, [f"landmarks of box {i}" for i in range(len(d))])


def test_a_pipeline_is_composed_from_parts_and_landmarks_travel_with_boxes():
    est = RecordingEstimator()
    det = LandmarkDetector({0: [[40, 20, 100, 110], [5, 5, 60, 60], [10, 10, 1, 1]]})  # 3rd: inverted
    pipe = PosePipeline(det, est, detector_stride=2, max_persons=1, focal_length=900.0)
    assert pipe.estimator is est and pipe.hmr is est and pipe.crops == "keypoints"
    pipe.predict(frame(), 0)
    pipe.predict(frame(), 1)
    (boxes0, lms0, f0), (boxes1, lms1, _) = est.calls
    # the detector's landmarks reach the estimator with their box; max_persons keeps the best one
    assert lms0 == ["landmarks of box 0"] and len(boxes0) == 1 and f0 == 900.0
    assert lms1 is None and len(boxes1) == 1  # reused (enlarged) boxes on a new image: no landmarks
    with pytest.raises(TypeError, match="PersonDetector"):
        PosePipeline(lambda image, fi: Detections.empty(), est)


def test_detections_keep_landmarks_aligned_through_select_and_take():
    d = Detections.select([[0, 0, 10, 10], [0, 0, 20, 20], [0, 0, 30, 30]], [0.2, 0.9, 0.5], 0.3, None,
                          ["a", "b", "c"])
    assert d.landmarks == ["b", "c"] and d.scores.tolist() == pytest.approx([0.9, 0.5])
    assert d.take(np.array([False, True])).landmarks == ["c"]
    with pytest.raises(ValueError, match="landmark entries"):
        Detections([[0, 0, 1, 1]], [0.5], ["a", "b"])


def test_from_files_builds_the_parts(random_onnx):
    from instanthmr.runtime.hmr import InstantHMR

    det = ScriptedDetector()
    pipe = PosePipeline.from_files(random_onnx, device="cpu", detector=det, max_persons=2, detector_stride=3,
                                   runtime="cpu-fast", crops="boxes")
    assert isinstance(pipe.estimator, InstantHMR) and pipe.detector is det and pipe.detector_stride == 3
    assert pipe.crops == "boxes" and pipe.estimator.describe().endswith("on CPUExecutionProvider")
    with pytest.raises(ValueError, match="detector_stride must be >= 1"):
        PosePipeline.from_files("absent.onnx", detector_stride=0)  # before any model loads


def test_summarize_statistics():
    rs = [FrameResult([object()], 10.0, 5.0, 16.0, True), FrameResult([], 0.0, 4.0, 5.0, False),
          FrameResult([object(), object()], 12.0, 6.0, 19.0, True)]
    s = summarize(rs, wall_ms=[20.0, 6.0, 22.0])
    assert s["frames"] == 3 and s["detector_calls"] == 2 and s["frames_with_persons"] == 2
    assert s["persons_per_frame"] == pytest.approx(1.0)
    assert s["detector_ms"]["mean"] == pytest.approx(22 / 3)
    assert s["detector_call_ms"]["mean"] == pytest.approx(11.0)
    assert s["total_ms"]["max"] == 19.0 and s["total_ms"]["median"] == 16.0
    assert s["fps"] == pytest.approx(1000 / (40 / 3))
    assert s["wall_fps"] == pytest.approx(1000 / 16)
    assert timing_stats([])["mean"] == 0.0
    assert timing_stats(range(1, 101))["p95"] == pytest.approx(95.05)


def test_end_to_end_with_rfdetr_random_weights(random_onnx, shared_data):
    """The real RF-DETR (torch, random weights) -> InstantHMR path on a few real frames."""
    import cv2

    from instanthmr.video.sources import VideoSource

    det = RFDETRDetector("nano", confidence=0.0, max_persons=2, pretrained=False, device="cpu")
    pipe = PosePipeline.from_files(random_onnx, device="cpu", detector=det, max_persons=2, detector_stride=2)
    with VideoSource(shared_data / "videos" / "mmpose_demo_5frames.mp4", max_frames=3) as src:
        results = [pipe.predict(cv2.resize(f.image, (320, 180)), f.index) for f in src]
    assert [r.detector_ran for r in results] == [True, False, True]
    assert pipe.detector_calls == 2
    for r in results:
        assert len(r.persons) == 2 and r.image_size == (320, 180)
        assert np.all(np.isfinite(r.persons[0].joints_3d_cam))
        assert r.persons[0].score >= r.persons[1].score
