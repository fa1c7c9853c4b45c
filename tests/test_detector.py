"""Person detectors: selection rule, torch/ONNX RF-DETR parity (random weights), box files, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from instanthmr.runtime import detector as det_mod
from instanthmr.runtime.detector import (
    BoxFileDetector,
    Detections,
    OnnxDetector,
    PersonDetector,
    RFDETRDetector,
    create_detector,
    decode_rfdetr,
)
from instanthmr.runtime.session import ModelLoadError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def rfdetr_random():
    """RF-DETR nano with random weights (no checkpoint, no network), keeping every query."""
    return RFDETRDetector("nano", confidence=0.0, pretrained=False, device="cpu")


@pytest.fixture(scope="session")
def rfdetr_random_onnx(rfdetr_random, tmp_path_factory) -> Path:
    from instanthmr.training.export_detector import export_detector

    return export_detector(out_path=tmp_path_factory.mktemp("det") / "rf-detr-nano-random.onnx", detector=rfdetr_random)


@pytest.fixture(scope="session")
def small_photo(shared_data) -> np.ndarray:
    import cv2

    from instanthmr.video.sources import read_image_rgb

    img = read_image_rgb(shared_data / "images" / "romp_demo" / "Leo_Messi.jpg")
    return cv2.resize(img, (320, 180), interpolation=cv2.INTER_AREA)


def test_detections_select_filters_sorts_and_caps():
    boxes = np.arange(20, dtype=np.float32).reshape(5, 4)
    scores = np.array([0.2, 0.9, 0.5, 0.95, 0.5], np.float32)
    d = Detections.select(boxes, scores, confidence=0.3, max_persons=3)
    np.testing.assert_array_equal(d.scores, np.float32([0.95, 0.9, 0.5]))
    np.testing.assert_array_equal(d.boxes[0], boxes[3])
    np.testing.assert_array_equal(d.boxes[2], boxes[2])  # ties keep the input order
    assert len(Detections.select(boxes, scores, confidence=0.95)) == 0  # strictly above the threshold
    with pytest.raises(ValueError):
        Detections(np.zeros((2, 4)), np.zeros(3))


def test_decode_rfdetr_boxes_in_pixels_and_clipped():
    boxes = np.array([[0.5, 0.5, 0.2, 0.4], [0.05, 0.5, 0.2, 0.2]], np.float32)
    logits = np.zeros((2, 91), np.float32)
    logits[:, 1] = [0.0, 2.0]
    xyxy, scores = decode_rfdetr(boxes, logits, (200, 100))
    np.testing.assert_allclose(xyxy[0], [80, 30, 120, 70], atol=1e-4)
    np.testing.assert_allclose(xyxy[1], [0, 40, 30, 60], atol=1e-4)  # x1 = -10 clipped to 0
    np.testing.assert_allclose(scores, [0.5, 1 / (1 + np.exp(-2.0))], atol=1e-6)


def test_torch_and_onnx_rfdetr_agree(rfdetr_random, rfdetr_random_onnx, small_photo):
    onnx_det = OnnxDetector(rfdetr_random_onnx, confidence=0.0, device="cpu")
    assert onnx_det.resolution == 384 and onnx_det.metadata["variant"] == "nano"
    assert onnx_det.metadata["weights"] == "random-init"
    bt, lt = rfdetr_random.raw_forward(small_photo)
    bo, lo = onnx_det.raw_forward(small_photo)
    assert bt.shape == bo.shape == (300, 4) and lt.shape == lo.shape
    np.testing.assert_allclose(bo, bt, atol=2e-3)
    np.testing.assert_allclose(lo, lt, atol=2e-2)

    dt, do = rfdetr_random(small_photo), onnx_det(small_photo)
    assert len(dt) == len(do) == 300
    assert np.all(np.diff(dt.scores) <= 0) and np.all(np.diff(do.scores) <= 0)
    # every top ONNX box has a torch box within 1 px and 1e-3 in score (ties may swap order)
    for box, score in zip(do.boxes[:20], do.scores[:20]):
        err = np.abs(dt.boxes - box).max(axis=1) + 1000 * np.abs(dt.scores - score)
        assert err.min() < 1.0 + 1.0, (box, score)


def test_onnx_detector_runs_without_torch(rfdetr_random_onnx):
    code = ("import sys, numpy as np\n"
            "from instanthmr.runtime.detector import OnnxDetector\n"
            f"d = OnnxDetector(r'{rfdetr_random_onnx}', confidence=0.0, max_persons=3)\n"
            "r = d(np.zeros((120, 160, 3), np.uint8))\n"
            "assert len(r) == 3 and r.boxes.dtype == np.float32, r\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def test_onnx_detector_rejects_wrong_files(tmp_path, random_onnx):
    with pytest.raises(ModelLoadError, match="model file not found"):
        OnnxDetector(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not an onnx file")
    with pytest.raises(ModelLoadError, match="junk.onnx"):
        OnnxDetector(junk)
    with pytest.raises(ModelLoadError, match="missing inputs"):  # the pose network is not a detector
        OnnxDetector(random_onnx)


def test_missing_rfdetr_weights_offline_is_one_clear_line(tmp_path, monkeypatch):
    import requests
    import rfdetr.detr

    monkeypatch.setenv("RF_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(det_mod, "MODELS_DIR", tmp_path / "models")

    def offline(*a, **k):
        raise requests.ConnectionError("Failed to resolve 'storage.googleapis.com'")

    monkeypatch.setattr(rfdetr.detr, "download_pretrain_weights", offline)  # never touch the network in tests
    with pytest.raises(ModelLoadError) as e:
        RFDETRDetector("nano")
    msg = str(e.value)
    assert "\n" not in msg
    assert "rf-detr-nano.pth" in msg and "https://storage.googleapis.com/rfdetr/" in msg
    assert str(tmp_path / "cache") in msg and "--detector-weights" in msg


def test_rfdetr_weights_lookup_and_bad_files(tmp_path, monkeypatch):
    monkeypatch.setenv("RF_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(det_mod, "MODELS_DIR", tmp_path / "models")
    path, present = det_mod.resolve_rfdetr_weights("small")
    assert not present and path == tmp_path / "cache" / "rf-detr-small.pth"
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "rf-detr-small.pth").write_bytes(b"x")
    assert det_mod.resolve_rfdetr_weights("small") == (tmp_path / "models" / "rf-detr-small.pth", True)
    with pytest.raises(ModelLoadError, match="nope.pth"):
        RFDETRDetector("nano", weights=tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"garbage, not a checkpoint")
    with pytest.raises(ModelLoadError, match="bad.pth") as e:
        RFDETRDetector("nano", weights=bad)
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="unknown RF-DETR variant"):
        RFDETRDetector("huge", pretrained=False)


def test_box_file_detector_layouts(tmp_path):
    canonical = tmp_path / "boxes.json"
    canonical.write_text(json.dumps({"frames": [
        {"frame_index": 0, "boxes": [[0, 0, 10, 20], [5, 5, 50, 60]], "scores": [0.4, 0.8]},
        {"frame_index": 3, "boxes": [[1, 2, 3, 4]]}]}))
    d = BoxFileDetector(canonical, confidence=0.0)
    r0 = d(None, 0)
    np.testing.assert_array_equal(r0.scores, np.float32([0.8, 0.4]))
    np.testing.assert_array_equal(r0.boxes[0], [5, 5, 50, 60])
    assert len(d(None, 1)) == 0 and len(d(None, 3)) == 1 and d(None, 3).scores[0] == 1.0
    d.reset()
    assert len(d(None)) == 2 and len(d(None)) == 0  # no frame_index: counts calls

    demo_json = tmp_path / "demo.json"  # demo.py --save-json output replays as boxes
    demo_json.write_text(json.dumps({"meta": {}, "frames": [
        {"frame_index": 2, "persons": [{"box": [1, 1, 9, 9], "score": 0.7}]}]}))
    assert BoxFileDetector(demo_json)(None, 2).scores.tolist() == [pytest.approx(0.7)]

    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps([[[0, 0, 4, 4, 0.3]], []]))
    d = BoxFileDetector(plain, confidence=0.5)
    assert len(d(None, 0)) == 0  # 0.3 is below the threshold
    assert BoxFileDetector(plain, confidence=0.0)(None, 0).scores.tolist() == [pytest.approx(0.3)]


@pytest.mark.parametrize("content, match", [
    ("{not json", "not a readable JSON"),
    ('{"frames": 3}', "expected a list of frames"),
    ('{"frames": [{"boxes": [[1, 2, 3]]}]}', "boxes need 4 numbers"),
    ('{"frames": [{"persons": [{"score": 1}]}]}', "malformed box file"),
])
def test_box_file_detector_malformed(tmp_path, content, match):
    p = tmp_path / "bad.json"
    p.write_text(content)
    with pytest.raises(ModelLoadError, match=match):
        BoxFileDetector(p)
    with pytest.raises(ModelLoadError, match="box file not found"):
        BoxFileDetector(tmp_path / "absent.json")


def test_create_detector_dispatch(tmp_path, rfdetr_random_onnx):
    p = tmp_path / "b.json"
    p.write_text("[]")
    assert isinstance(create_detector(p), BoxFileDetector)
    onnx_det = create_detector(str(rfdetr_random_onnx), confidence=0.3, max_persons=2)
    assert isinstance(onnx_det, OnnxDetector) and onnx_det.confidence == 0.3 and onnx_det.max_persons == 2
    assert create_detector(onnx_det) is onnx_det
    with pytest.raises(ValueError, match="unknown detector 'yolo'.*'mediapipe', 'rf-detr', 'rfdetr'"):
        create_detector("yolo")


def test_detect_new_leaves_out_the_people_followed():
    """The default newcomer search (a detector that cannot blank people out): a usable detection overlapping a
    followed person's box (IoU > NEWCOMER_IOU) is theirs; slivers are no one."""
    class Three(PersonDetector):
        def detect(self, image_rgb, frame_index=None):
            return Detections([[0, 0, 50, 100], [100, 0, 150, 100], [200, 0, 201, 100]], [0.9, 0.8, 0.7])

    det = Three(0.5, None)
    image = np.zeros((120, 240, 3), np.uint8)
    assert len(det.detect_new(image, np.zeros((0, 4)))) == 2  # the 1 px sliver is dropped
    new = det.detect_new(image, [[2, 0, 52, 100]])
    np.testing.assert_allclose(new.boxes, [[100, 0, 150, 100]])


def test_a_registered_detector_is_created_by_name(monkeypatch):
    """Registry (timm style): an implementation registers a builder; create_detector passes it the options."""
    class Nobody(PersonDetector):
        def detect(self, image_rgb, frame_index=None):
            return Detections.empty()

    monkeypatch.setattr(det_mod, "_DETECTORS", dict(det_mod._DETECTORS))  # leave the real registry as it was
    det_mod.register_detector("Nobody")(lambda source, *, confidence, max_persons, **_: Nobody(confidence, max_persons))
    assert "nobody" in det_mod.list_detectors()
    det = create_detector("nobody", confidence=0.7, max_persons=2)
    assert isinstance(det, Nobody) and (det.confidence, det.max_persons) == (0.7, 2)


@pytest.mark.parametrize("box, what", [([50, 80, 10, 120], "inverted"), ([10, float("nan"), 50, 90], "not finite")])
def test_box_file_refuses_boxes_that_are_not_boxes(tmp_path, box, what):
    """Checked where the file is read, so every user of BoxFileDetector (not only the demo) gets one line
    naming the file and the frame instead of boxes the pipeline would silently drop."""
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"frames": [{"frame_index": 0, "boxes": [[1, 1, 5, 8]]},
                                           {"frame_index": 7, "boxes": [[0, 0, 9, 9], box]}]}))
    with pytest.raises(ModelLoadError, match=rf"box file .*b\.json: frame 7: box .* is {what}"):
        BoxFileDetector(path)
