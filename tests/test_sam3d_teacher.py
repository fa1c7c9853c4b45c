"""SAM 3D Body output conversion (on the four real output dicts) and the teacher's clear failure modes."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from instanthmr.core.geometry import project_points
from instanthmr.core.skeleton import MHR70_INDEX
from instanthmr.teachers import sam3d
from instanthmr.training.data.shards import ShardReader, ShardWriter


@pytest.fixture(scope="module")
def samples(mhr_dir):
    outs = []
    for p in sorted((mhr_dir / "samples").glob("*.npz")):
        with np.load(p) as z:
            outs.append({k: z[k] for k in z.files})
    assert len(outs) == 4
    return outs


# The sample dicts come from a 1920x890 frame (principal point fitted at (960, 445) to 1e-5 px).
IMAGE_WH = (1920, 890)


def test_samples_conventions(samples):
    for out in samples:
        k3, k2, t = out["pred_keypoints_3d"], out["pred_keypoints_2d"], out["pred_cam_t"]
        # camera-space = body-centred + pred_cam_t reproduces the teacher's 2D through a pinhole
        f, pp, resid = sam3d.fit_pinhole(k3 + t, k2)
        assert resid < 0.01 and abs(f - 2535.27) < 0.1
        np.testing.assert_allclose(pp, [960.0, 445.0], atol=0.01)
        # y is down: the nose is above (smaller y than) the ankles; origin = body root near the floor
        assert k3[MHR70_INDEX["nose"], 1] < k3[MHR70_INDEX["left_hip"], 1] < k3[MHR70_INDEX["left_ankle"], 1]
        np.testing.assert_allclose(out["pred_joint_coords"][0], 0.0, atol=1e-6)
        assert -1.0 < k3[MHR70_INDEX["left_hip"], 1] < -0.8  # hips ~0.9 m above the root


def test_converter_on_real_outputs(samples, tmp_path):
    with ShardWriter(tmp_path, teacher=sam3d.TEACHER_NAME, teacher_version="samples") as w:
        for i, out in enumerate(samples):
            inst = sam3d.sam3d_output_to_instance(out, IMAGE_WH, source=f"sample{i}")
            w.add(inst)
            w.mark_done(f"sample{i}")
    r = ShardReader(tmp_path)
    assert len(r) == 4
    for i, out in enumerate(samples):
        inst = r[i]
        assert inst["joints_3d_valid"].all() and inst["mhr_params_valid"] and inst["shape_params_valid"]
        np.testing.assert_allclose(inst["joints_3d"], out["pred_keypoints_3d"][:70], atol=1e-6)
        np.testing.assert_allclose(inst["mhr_params"], out["mhr_model_params"], atol=1e-6)
        np.testing.assert_allclose(inst["box"], out["bbox"], atol=1e-3)
        k = inst["intrinsics"]
        proj = project_points(inst["joints_3d"] + inst["cam_trans"], k[0, 0], k[:2, 2])
        np.testing.assert_allclose(proj, inst["joints_2d"], atol=0.05)  # the stored camera is consistent


def test_converter_takes_given_focal_and_longer_keypoint_sets(samples):
    out = dict(samples[0])
    out["pred_keypoints_3d"] = np.concatenate([out["pred_keypoints_3d"], np.zeros((238, 3))])
    out["pred_keypoints_2d"] = np.concatenate([out["pred_keypoints_2d"], np.zeros((238, 2))])
    out["focal_length"] = np.float32(1234.0)
    inst = sam3d.sam3d_output_to_instance(out, IMAGE_WH)
    assert inst["joints_3d"].shape == (70, 3) and inst["intrinsics"][0, 0] == pytest.approx(1234.0)


def test_converter_rejects_malformed_outputs(samples):
    out = dict(samples[0])
    bad = dict(out)
    del bad["pred_cam_t"]
    with pytest.raises(sam3d.TeacherOutputError, match="pred_cam_t"):
        sam3d.sam3d_output_to_instance(bad, IMAGE_WH)
    bad = dict(out, pred_keypoints_3d=np.zeros((17, 3)))
    with pytest.raises(sam3d.TeacherOutputError, match="pred_keypoints_3d"):
        sam3d.sam3d_output_to_instance(bad, IMAGE_WH)
    bad = dict(out, shape_params=np.zeros(10))
    with pytest.raises(sam3d.TeacherOutputError, match="shape_params"):
        sam3d.sam3d_output_to_instance(bad, IMAGE_WH)
    nan = dict(out, pred_keypoints_3d=out["pred_keypoints_3d"].copy())
    nan["pred_keypoints_3d"][5] = np.nan
    inst = sam3d.sam3d_output_to_instance(nan, IMAGE_WH, focal=2535.0)
    assert not inst["joints_3d_valid"][5] and inst["joints_3d_valid"].sum() == 69


def test_mhr_axis_conversion_round_trip():
    from instanthmr.body.mhr import mhr_to_product, product_to_mhr  # the one MHR -> camera-frame conversion

    p_cm = np.array([[10.0, 170.0, 5.0]])  # MHR: 1.7 m up, 5 cm toward the viewer
    p = mhr_to_product(p_cm)
    np.testing.assert_allclose(p, [[0.1, -1.7, -0.05]])  # camera: y down (up is negative), metres
    np.testing.assert_allclose(product_to_mhr(p), p_cm)


def test_missing_package_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "sam_3d_body", None)  # import fails as if not installed
    with pytest.raises(sam3d.TeacherUnavailableError, match="install Meta's SAM 3D Body"):
        sam3d.SAM3DBodyTeacher(tmp_path / "model.ckpt")


def test_missing_checkpoint_is_one_clear_error(tmp_path):
    with pytest.raises(sam3d.TeacherUnavailableError, match="no \\*.ckpt"):
        sam3d.resolve_checkpoint(tmp_path)
    with pytest.raises(sam3d.TeacherUnavailableError, match="not found"):
        sam3d.resolve_checkpoint(tmp_path / "x.ckpt")


# --------------------------------------------------------------------------------------------------
# tools/annotate_sam3d.py with a stand-in sam_3d_body package (same public API, canned outputs)
# --------------------------------------------------------------------------------------------------


class _FakeSam3d:
    """Mimics ``sam_3d_body``: ``load_sam_3d_body`` + ``SAM3DBodyEstimator.process_one_image``."""

    def __init__(self, template: dict, interrupt_at: int | None = None):
        self.template, self.interrupt_at, self.calls = template, interrupt_at, 0
        fake = self

        class Estimator:
            def __init__(self, sam_3d_body_model=None, model_cfg=None, **_):
                pass

            def process_one_image(self, img, bboxes=None, cam_int=None, **_):
                fake.calls += 1
                if fake.interrupt_at is not None and fake.calls == fake.interrupt_at:
                    raise KeyboardInterrupt
                assert img.ndim == 3 and tuple(cam_int.shape) == (1, 3, 3)
                return [dict(fake.template, bbox=b, focal_length=float(cam_int[0, 0, 0])) for b in bboxes]

        self.module = type(sys)("sam_3d_body")
        self.module.load_sam_3d_body = lambda checkpoint_path, device="cuda", mhr_path="": (object(), {})
        self.module.SAM3DBodyEstimator = Estimator


@pytest.fixture()
def annotate_inputs(tmp_path, samples):
    import json

    import cv2

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(5):
        cv2.imwrite(str(imgs / f"im{i}.png"), np.full((120, 160, 3), 40 * i, np.uint8))
    boxes = {"frames": [{"frame_index": i, "boxes": [[10, 10, 80, 110]] * (0 if i == 2 else 1 + i % 2)}
                        for i in range(5)]}
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    ckpt = tmp_path / "sam-3d-body" / "model.ckpt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"stand-in")
    tmpl = {k: v for k, v in samples[0].items() if k != "bbox"}
    return imgs, tmp_path / "boxes.json", ckpt.parent, tmpl


def _annotate(imgs, boxes, ckpt, out, *extra):
    from instanthmr.cli.annotate_sam3d import main

    return main(["--images", str(imgs), "--detector", str(boxes), "--checkpoint", str(ckpt), "--out", str(out),
                 "--min-box", "8", *extra])


def test_annotate_images_in_parts_then_resume(annotate_inputs, tmp_path, monkeypatch):
    imgs, boxes, ckpt, tmpl = annotate_inputs
    fake = _FakeSam3d(tmpl)
    monkeypatch.setitem(sys.modules, "sam_3d_body", fake.module)
    out = tmp_path / "labels"
    assert _annotate(imgs, boxes, ckpt, out, "--shard", "0/2") == 0
    assert _annotate(imgs, boxes, ckpt, out, "--shard", "1/2") == 0
    r = ShardReader(out)
    assert r.inputs == {f"im{i}.png" for i in range(5)}  # the empty image is done too
    assert len(r) == 1 + 2 + 0 + 2 + 1
    inst = r[0]
    assert inst["teacher"] == "sam3d_body" and inst["image_jpeg"] is not None and inst["mhr_params_valid"]
    assert inst["intrinsics"][0, 0] == pytest.approx(np.hypot(160, 120))  # the runtime's default camera
    calls = fake.calls
    assert _annotate(imgs, boxes, ckpt, out, "--shard", "0/2") == 0 and fake.calls == calls  # nothing redone


def test_annotate_interrupted_run_resumes_without_loss_or_duplicates(annotate_inputs, tmp_path, monkeypatch):
    imgs, boxes, ckpt, tmpl = annotate_inputs
    out = tmp_path / "labels"
    fake = _FakeSam3d(tmpl, interrupt_at=3)
    monkeypatch.setitem(sys.modules, "sam_3d_body", fake.module)
    assert _annotate(imgs, boxes, ckpt, out) == 130
    done_before = ShardReader(out).inputs
    assert done_before == {"im0.png", "im1.png", "im2.png"}  # im2 has nobody: no teacher call
    monkeypatch.setitem(sys.modules, "sam_3d_body", _FakeSam3d(tmpl).module)
    assert _annotate(imgs, boxes, ckpt, out) == 0
    r = ShardReader(out)
    assert len(r) == 6 and r.inputs == {f"im{i}.png" for i in range(5)}


def test_annotate_without_the_package_says_what_to_install(annotate_inputs, tmp_path, monkeypatch, capsys):
    imgs, boxes, ckpt, _ = annotate_inputs
    monkeypatch.setitem(sys.modules, "sam_3d_body", None)
    assert _annotate(imgs, boxes, ckpt, tmp_path / "labels") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error:") and "facebookresearch/sam-3d-body" in err


def test_annotate_video_every_other_frame(annotate_inputs, tmp_path, monkeypatch):
    import cv2

    _, boxes, ckpt, tmpl = annotate_inputs
    video = tmp_path / "clip.avi"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for i in range(5):
        vw.write(np.full((120, 160, 3), 30 * i, np.uint8))
    vw.release()
    monkeypatch.setitem(sys.modules, "sam_3d_body", _FakeSam3d(tmpl).module)
    from instanthmr.cli.annotate_sam3d import main

    out = tmp_path / "vlabels"
    assert main(["--video", str(video), "--every", "2", "--detector", str(boxes), "--checkpoint", str(ckpt),
                 "--out", str(out), "--min-box", "8"]) == 0
    r = ShardReader(out)
    assert r.inputs == {"clip.avi#000000", "clip.avi#000002", "clip.avi#000004"}
    assert len(r) == 1 + 0 + 1  # frames 0, 2 (nobody), 4 from the box file
