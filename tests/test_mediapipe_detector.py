"""Offline MediaPipe models: geometry/decoding units (always run) and the real pretrained models on real
photos (skipped when ``models/mediapipe`` or the ``ai-edge-litert`` interpreter is absent)."""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np
import pytest

from instanthmr.core.geometry import box_iou
from instanthmr.core.skeleton import MHR70_INDEX
from instanthmr.runtime import mediapipe as mpm
from instanthmr.runtime.mediapipe import (
    MediaPipeModelError,
    Roi,
    crop_roi,
    extract_mediapipe_models,
    hand_roi_from_landmarks,
    model_path,
    roi_from_alignment,
    ssd_anchors,
    weighted_nms,
)
from instanthmr.runtime.mediapipe.conversion import MHR70_FROM_BLAZEPOSE, UNLABELLED_MHR70, solve_translation
from instanthmr.teachers.mediapipe import MediaPipeTeacher

GRACE_HOPPER = Path(__import__("matplotlib").get_data_path()) / "sample_data" / "grace_hopper.jpg"


# --------------------------------------------------------------------------------------------------
# Pure geometry / decoding (no model files)
# --------------------------------------------------------------------------------------------------

def test_anchor_counts_match_the_models():
    assert len(ssd_anchors(224, (8, 16, 32, 32, 32))) == 2254  # pose_detection.tflite
    assert len(ssd_anchors(192, (8, 16, 16, 16))) == 2016  # palm_detection_full.tflite
    a = ssd_anchors(224, (8, 16, 32, 32, 32))
    # First grid: 28x28 cells, 2 anchors each, row-major, centred in the cells.
    np.testing.assert_allclose(a[0], [0.5 / 28, 0.5 / 28])
    np.testing.assert_allclose(a[2], [1.5 / 28, 0.5 / 28])
    np.testing.assert_allclose(a[56], [0.5 / 28, 1.5 / 28])
    np.testing.assert_allclose(a[-1], [6.5 / 7, 6.5 / 7])


def test_roi_crop_and_back_projection_agree():
    """A dot drawn in the image, found in a rotated crop, maps back onto itself."""
    img = np.zeros((300, 400, 3), np.uint8)
    dot = np.array([250.0, 120.0])
    img[119:122, 249:252] = 255
    roi = Roi(230.0, 140.0, 120.0, math.radians(35))
    crop = crop_roi(img, roi, 96)
    ys, xs = np.nonzero(crop[..., 0] > 60)
    w = crop[ys, xs, 0].astype(float)
    found = np.array([(xs * w).sum() / w.sum(), (ys * w).sum() / w.sum()])  # indices are coordinates (MediaPipe's)
    np.testing.assert_allclose(roi.to_image(found, 96), dot, atol=1.0)


def test_alignment_roi_points_up_and_rotation_sign():
    upright = roi_from_alignment((100, 200), (100, 100), scale=1.0)
    assert upright.rotation == pytest.approx(0.0) and upright.side == pytest.approx(200.0)
    tilted = roi_from_alignment((100, 200), (200, 200), scale=1.25)  # body axis points to +x
    assert tilted.rotation == pytest.approx(math.pi / 2)
    # The crop's "up" (0, -1) lands on the body axis direction in the image.
    top = tilted.to_image(np.array([0.5, 0.0]), 1)
    np.testing.assert_allclose(top, [100 + 125, 200], atol=1e-6)
    # World vectors are rotated by the same angle (crop up -> image +x).
    np.testing.assert_allclose(tilted.rotate_vectors(np.array([0.0, -1.0, 0.3])), [1.0, 0.0, 0.3], atol=1e-9)


def test_weighted_nms_merges_overlaps_and_keeps_separate_people():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float32)
    kps = np.array([[[0, 0]], [[2, 0]], [[55, 55]]], np.float32)
    scores = np.array([0.9, 0.3, 0.8], np.float32)
    b, k, s = weighted_nms(boxes, kps, scores, 0.3)
    assert len(s) == 2 and s[0] == pytest.approx(0.9)
    np.testing.assert_allclose(k[0, 0], [0.5, 0], atol=1e-6)  # (0*0.9 + 2*0.3) / 1.2
    np.testing.assert_allclose(b[1], boxes[2])


def test_hand_roi_from_landmarks_is_upright_for_an_upright_hand():
    pts = np.zeros((21, 2))
    pts[0] = (100, 200)  # wrist below
    for f, x in enumerate((80, 90, 100, 110, 120)):
        for j in range(4):
            pts[1 + 4 * f + j] = (x, 180 - 15 * j)
    roi = hand_roi_from_landmarks(pts)
    assert roi.rotation == pytest.approx(0.0, abs=1e-6)
    assert roi.cy < 200 and roi.side > 60  # shifted towards the fingers, enlarged 2x


def test_solve_translation_recovers_a_known_camera():
    rng = np.random.default_rng(0)
    j3 = rng.normal(0, 0.4, (20, 3))
    t_true = np.array([0.3, -0.2, 4.0])
    f, pp = 1000.0, np.array([320.0, 240.0])
    cam = j3 + t_true
    j2 = f * cam[:, :2] / cam[:, 2:] + pp
    t, rms = solve_translation(j3, j2, f, pp)
    np.testing.assert_allclose(t, t_true, atol=1e-6)
    assert rms < 1e-6


def test_mhr70_mapping_covers_body_feet_hands_and_masks_the_rest():
    assert set(UNLABELLED_MHR70) == {"left_small_toe_tip", "right_small_toe_tip", "left_olecranon",
                                     "right_olecranon", "left_cubital_fossa", "right_cubital_fossa",
                                     "left_acromion", "right_acromion", "neck"}
    assert all(n in MHR70_INDEX for n in MHR70_FROM_BLAZEPOSE)
    assert all(n in mpm.BLAZEPOSE33_INDEX for n in MHR70_FROM_BLAZEPOSE.values())


def test_missing_or_bad_model_files_give_one_line_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("INSTANTHMR_MEDIAPIPE", str(tmp_path / "none"))
    with pytest.raises(MediaPipeModelError, match="fetch_models.py mediapipe"):
        model_path("pose_detection")
    wheel = tmp_path / "mediapipe-0.10.21-fake.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("mediapipe/modules/pose_detection/pose_detection.tflite", b"not the model")
    with pytest.raises(MediaPipeModelError, match="checksum"):
        extract_mediapipe_models(wheel, tmp_path / "out")
    assert not list((tmp_path / "out").glob("*.tflite"))  # nothing half-written is left as a model
    (tmp_path / "junk.whl").write_bytes(b"junk")
    with pytest.raises(MediaPipeModelError, match="not a readable wheel"):
        extract_mediapipe_models(tmp_path / "junk.whl", tmp_path / "out")


# --------------------------------------------------------------------------------------------------
# Real pretrained models (skipped when not fetched)
# --------------------------------------------------------------------------------------------------

def _rgb(path) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(path))
    assert bgr is not None, path
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def test_a_non_tflite_file_is_rejected(mp_models, tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(MediaPipeModelError, match="bad.tflite"):
        mpm.TFLiteModel(bad)


def test_leaving_out_the_segmentation_mask_changes_no_other_output(mp_models):
    """The landmark model runs without its unread segmentation branch: fewer operators, the same numbers."""
    from ai_edge_litert import schema_py_generated as schema

    from instanthmr.runtime.mediapipe.tflite import prune_outputs

    path = model_path("pose_landmark_full")
    full = mpm.TFLiteModel(path)
    pruned = mpm.BlazePoseLandmarker(path).model
    names = [o["name"] for o in full.outputs]
    assert [o["name"] for o in pruned.outputs] == [n for n in names if n != "Identity_2"]
    count = lambda b: len(schema.ModelT.InitFromPackedBuf(bytearray(b), 0).subgraphs[0].operators)  # noqa: E731
    raw = path.read_bytes()
    assert count(prune_outputs(raw, ("Identity_2",))) < count(raw)
    crop = crop_roi(_rgb(GRACE_HOPPER), Roi(256, 420, 600), 256).astype(np.float32)[None] / 255.0
    want = dict(zip(names, full(crop)))
    for o, got in zip(pruned.outputs, pruned(crop)):
        np.testing.assert_array_equal(got, want[o["name"]])
    with pytest.raises(MediaPipeModelError, match="no output named"):
        prune_outputs(raw, ("Identity_9",))


def test_detector_finds_grace_hopper_and_nobody_in_a_blank_image(mp_models):
    from instanthmr.runtime.mediapipe.detector import MediaPipeDetector

    img = _rgb(GRACE_HOPPER)  # 512x600 portrait, head and shoulders
    for det in (MediaPipeDetector(), MediaPipeDetector(fast=True)):
        d = det(img)
        assert len(d) == 1 and d.scores[0] > 0.9
        x1, y1, x2, y2 = d.boxes[0]
        # Like a person detector's box: from her cap (top ~ y 25) to the bottom edge where her body leaves the
        # frame, across her shoulders (x ~ 60-470).
        assert 0 <= y1 < 90 and y2 >= 590 and x1 < 120 and x2 > 420
        assert d.boxes.dtype == np.float32 and (d.boxes >= 0).all() and (d.boxes[:, 2] <= 511).all()
        assert len(det(np.zeros((240, 320, 3), np.uint8))) == 0


def test_detector_finds_several_people(mp_models, shared_data):
    from instanthmr.runtime.mediapipe.detector import MediaPipeDetector

    img = _rgb(shared_data / "images" / "romp_demo" / "3dpw_sit_on_street.jpg")  # several people on steps
    d = MediaPipeDetector()(img)
    assert len(d) >= 3
    assert (np.diff(d.scores) <= 0).all()
    ious = box_iou(d.boxes[0], d.boxes[1:])
    assert (ious < 0.5).all()  # distinct people, not the same one found twice


def test_a_look_in_parts_finds_the_people_a_whole_look_finds(mp_models, shared_data):
    from instanthmr.runtime.mediapipe.detector import MediaPipeDetector

    img = _rgb(shared_data / "images" / "romp_demo" / "3dpw_sit_on_street.jpg")  # 1920x1080, several people
    det = MediaPipeDetector()
    whole = det.detect_new(img, np.zeros((0, 4)))
    assert det.detection_parts((1920, 1080)) == 4  # the letterboxed frame + 3 overlapping squares
    known = np.zeros((0, 4), np.float32)
    for part in range(4):  # as over 4 frames: whoever a part finds is followed, so known to the next part
        known = np.concatenate([known, det.detect_new_part(img, known, part).boxes])
    assert len(known) == len(whole) and (box_iou(whole.boxes, known).max(axis=1) > 0.9).all()


def test_teacher_matches_human36m_ground_truth(mp_models, shared_data):
    """BlazePose's 3D on two real Human3.6M frames is within 13 cm PA-MPJPE on the limbs (it measures ~8-9 cm
    here), and its 2D within ~2% of the image."""
    from instanthmr.core.metrics import pa_mpjpe

    d = shared_data / "gt3d" / "h36m"
    z = np.load(d / "h36m_body3d_subset.npz")
    h36m = [1, 2, 3, 4, 5, 6, 11, 12, 13, 14, 15, 16]
    names = ["right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "left_shoulder",
             "left_elbow", "left_wrist", "right_shoulder", "right_elbow", "right_wrist"]
    mhr = [MHR70_INDEX[n] for n in names]
    teacher = MediaPipeTeacher(hands=False)
    for k, name in enumerate(z["imgname"]):
        labels = teacher(_rgb(d / Path(str(name)).name))
        assert len(labels) >= 1
        lab = labels[0]
        assert lab.joints_3d_valid[mhr].all() and lab.joints_2d_valid[mhr].all()
        err2d = np.linalg.norm(lab.joints_2d[mhr] - z["part"][k][h36m, :2], axis=1)
        assert np.median(err2d) < 20.0, err2d  # pixels on a 1000x1002 frame
        assert float(pa_mpjpe(lab.joints_3d[mhr][None], z["S"][k][h36m, :3][None])[0]) < 0.13


def test_teacher_labels_hands_and_a_consistent_camera(mp_models, shared_data):
    img = _rgb(shared_data / "images" / "4dhumans" / "pexels-anete-lusina-4793258.jpg")  # lunge, bar, hands up
    labels = MediaPipeTeacher()(img)
    assert len(labels) == 1
    lab = labels[0]
    inst = lab.instance(source="x")
    for hand in ("left", "right"):
        idx = [MHR70_INDEX[f"{hand}_{f}_tip"] for f in ("thumb", "index", "middle", "ring", "pinky")]
        assert lab.hands[hand] is not None and lab.joints_2d_valid[idx].all() and lab.joints_3d_valid[idx].all()
        # fingertips are within a hand's length (< 25 cm) of the wrist in 3D
        wrist = lab.joints_3d[MHR70_INDEX[f"{hand}_wrist"]]
        assert (np.linalg.norm(lab.joints_3d[idx] - wrist, axis=1) < 0.25).all()
    for n in UNLABELLED_MHR70:
        assert not inst["joints_2d_valid"][MHR70_INDEX[n]] and not inst["joints_3d_valid"][MHR70_INDEX[n]]
    # Metric scale: shoulder width of an adult.
    sw = np.linalg.norm(lab.joints_3d[MHR70_INDEX["left_shoulder"]] - lab.joints_3d[MHR70_INDEX["right_shoulder"]])
    assert 0.2 < sw < 0.5
    # joints_3d + cam_trans projects onto joints_2d with the stored intrinsics.
    assert inst["cam_trans_valid"] and inst["cam_trans"][2] > 1.0
    cam = lab.joints_3d + lab.cam_trans
    k = lab.intrinsics
    proj = cam[:, :2] / cam[:, 2:] * k[0, 0] + k[:2, 2]
    v = lab.joints_2d_valid & lab.joints_3d_valid
    err = np.linalg.norm(proj[v] - lab.joints_2d[v], axis=1)
    box_side = max(lab.box[2] - lab.box[0], lab.box[3] - lab.box[1])
    assert np.median(err) < 0.05 * box_side
    # COCO-WholeBody 2D: body + hands labelled, face not.
    assert inst["joints_2d_wholebody_valid"][:17].sum() >= 15
    assert inst["joints_2d_wholebody_valid"][91:133].sum() >= 40
    assert not inst["joints_2d_wholebody_valid"][23:91].any()


def test_rfdetr_without_weights_offline_falls_back_to_mediapipe(mp_models, tmp_path, monkeypatch, caplog):
    import requests
    import rfdetr.detr

    from instanthmr.runtime import detector as det_mod
    from instanthmr.runtime.mediapipe.detector import MediaPipeDetector
    from instanthmr.runtime.session import ModelLoadError

    monkeypatch.setenv("RF_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(det_mod, "MODELS_DIR", tmp_path / "models")

    def offline(*a, **k):
        raise requests.ConnectionError("Failed to resolve 'storage.googleapis.com'")

    monkeypatch.setattr(rfdetr.detr, "download_pretrain_weights", offline)  # never touch the network in tests
    with caplog.at_level("WARNING", logger="instanthmr"):
        det = det_mod.create_detector("rfdetr", confidence=0.4, max_persons=3)
    assert isinstance(det, MediaPipeDetector) and det.name == "mediapipe"
    assert det.confidence == 0.4 and det.max_persons == 3
    assert "offline MediaPipe person detector" in caplog.text and "rf-detr-nano.pth" in caplog.text
    with pytest.raises(ModelLoadError, match="rf-detr-nano.pth"):  # asked not to fall back
        det_mod.create_detector("rfdetr", fallback=False)
    assert len(det(_rgb(GRACE_HOPPER))) == 1
