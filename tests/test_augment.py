"""Crop augmentation keeps pixels and labels in agreement under flip, rotation, jitter, colour, occlusion."""

from __future__ import annotations

import numpy as np
import pytest

from instanthmr.core import geometry
from instanthmr.core.skeleton import MHR70_INDEX
from instanthmr.training.data.augment import AugmentConfig, make_crop_sample, normalize_crops
from instanthmr.training.data.shards import ShardReader, load_source_image
from instanthmr.training.data.synthetic import synthetic_person, write_synthetic_shards

LW, RW = MHR70_INDEX["left_wrist"], MHR70_INDEX["right_wrist"]


@pytest.fixture(scope="module")
def reader(tmp_path_factory):
    return ShardReader(write_synthetic_shards(tmp_path_factory.mktemp("syn"), 6, seed=3))


def _reproject(s):
    """Teacher 3D + camera -> normalised crop coordinates, with the sample's own camera and crop."""
    px = geometry.project_points(s["joints_3d"] + s["cam_trans"], float(s["focal"]), s["principal_point"])
    cx, cy, side = s["crop_box"]
    return (px - [cx, cy]) / (side / 2.0)


def test_plain_crop_matches_runtime_crop():
    rng = np.random.default_rng(0)
    img, inst = synthetic_person(rng)
    r = {f: np.zeros(s) for f, s in (("joints_3d_wholebody", (133, 3)),)}
    inst = {**inst, **r, "joints_3d_wholebody_valid": np.zeros(133, bool), "joints_2d_valid": np.ones(70, bool),
            "joints_3d_valid": np.ones(70, bool), "cam_trans_valid": True, "mhr_params_valid": True,
            "shape_params_valid": True}
    s = make_crop_sample(inst, img, np.array([[1.0, 0, 0], [0, 1.0, 0]]), AugmentConfig.off())
    crop, _ = geometry.crop_person(img, inst["box"])
    assert np.abs(s["image"].astype(int) - crop.astype(int)).max() <= 1
    np.testing.assert_allclose(s["joints_2d"], geometry.image_to_crop(inst["joints_2d"], inst["box"]), atol=1e-4)
    np.testing.assert_allclose(s["cliff_cond"], geometry.cliff_condition(inst["box"], (320, 240)), atol=1e-6)


@pytest.mark.parametrize("flip,rot", [(1.0, 0.0), (0.0, 1.0), (1.0, 1.0)])
def test_geometry_labels_stay_consistent(reader, flip, rot):
    cfg = AugmentConfig(flip_prob=flip, rot_prob=rot, rot_max_deg=40)
    rng = np.random.default_rng(7)
    for i in range(len(reader)):
        inst = reader[i]
        src, m = load_source_image(inst)
        s = make_crop_sample(inst, src, m, cfg, rng)
        # 2D labels are where the 3D labels project through the sample's camera and crop
        np.testing.assert_allclose(_reproject(s), s["joints_2d"], atol=2e-3)
        # bone lengths survive (a rigid transform of the body)
        np.testing.assert_allclose(np.linalg.norm(s["joints_3d"][LW] - s["joints_3d"][RW]),
                                   np.linalg.norm(inst["joints_3d"][LW] - inst["joints_3d"][RW]), rtol=1e-5)
        assert not s["mhr_params_valid"]
        assert bool(s["shape_params_valid"]) == (flip == 0.0)


def test_flip_swaps_sides_and_pixels_follow_labels(reader):
    cfg = AugmentConfig.off()
    cfg.flip_prob = 1.0
    inst = reader[0]
    src, m = load_source_image(inst)
    s = make_crop_sample(inst, src, m, cfg, np.random.default_rng(0))
    # the joint now labelled "right wrist" is the old left wrist mirrored in camera space
    np.testing.assert_allclose(s["joints_3d"][RW], inst["joints_3d"][LW] * [-1, 1, 1], atol=1e-6)
    # the renderer draws left limbs orange-red and right limbs blue: after a flip the label "left elbow"
    # forearm must sit on blue pixels (the drawn right arm)
    fore = s["joints_2d"][[MHR70_INDEX["left_elbow"], LW]].mean(0)
    x, y = ((fore + 1) * 112).astype(int)
    patch = s["image"][y - 2:y + 3, x - 2:x + 3].reshape(-1, 3).astype(int)
    assert (patch[:, 2] - patch[:, 0]).mean() > 60, patch.mean(0)


def test_rotation_and_jitter_move_pixels_with_labels(reader):
    cfg = AugmentConfig(flip_prob=0, rot_prob=1.0, rot_max_deg=35, scale_jitter=0.2, shift_jitter=0.1,
                        color_prob=0, occlusion_prob=0)
    rng = np.random.default_rng(1)
    hits = 0
    for i in range(len(reader)):
        inst = reader[i]
        src, m = load_source_image(inst)
        s = make_crop_sample(inst, src, m, cfg, rng)
        x, y = ((s["joints_2d"][MHR70_INDEX["nose"]] + 1) * 112).astype(int)
        if 3 <= x < 221 and 3 <= y < 221:
            hits += int(s["image"][y - 2:y + 3, x - 2:x + 3].min(axis=-1).max() > 200)  # the white head dot
    assert hits >= len(reader) - 1


def test_colour_and_occlusion_touch_pixels_only(reader):
    inst = reader[1]
    src, m = load_source_image(inst)
    base = make_crop_sample(inst, src, m, AugmentConfig.off(), np.random.default_rng(0))
    cfg = AugmentConfig(scale_jitter=0, shift_jitter=0, rot_prob=0, flip_prob=0, color_prob=1.0,
                        occlusion_prob=1.0)
    s = make_crop_sample(inst, src, m, cfg, np.random.default_rng(5))
    assert np.abs(s["image"].astype(int) - base["image"].astype(int)).mean() > 5
    for f in ("joints_2d", "joints_3d", "cam_trans", "cliff_cond"):
        np.testing.assert_array_equal(s[f], base[f])


def test_normalize_crops_layout():
    x = normalize_crops(np.full((2, 4, 4, 3), 255, np.uint8))
    assert x.shape == (2, 3, 4, 4) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, :, 0, 0], (1 - np.array([0.485, 0.456, 0.406])) / [0.229, 0.224, 0.225],
                               rtol=1e-5)


def test_truncation_frames_the_upper_body_and_keeps_labels(reader):
    cfg = AugmentConfig.off()
    cfg.truncate_prob, cfg.truncate_min, cfg.truncate_max = 1.0, 0.35, 0.35
    nose, ankle = MHR70_INDEX["nose"], MHR70_INDEX["left_ankle"]
    for i in range(len(reader)):
        inst = reader[i]
        src, m = load_source_image(inst)
        base = make_crop_sample(inst, src, m, AugmentConfig.off(), np.random.default_rng(0))
        s = make_crop_sample(inst, src, m, cfg, np.random.default_rng(0))
        np.testing.assert_allclose(_reproject(s), s["joints_2d"], atol=2e-3)  # labels follow the crop
        for f in ("joints_3d", "cam_trans", "joints_3d_valid", "joints_2d_valid"):
            np.testing.assert_array_equal(s[f], base[f])  # nothing masked: out-of-crop joints supervised
        x0, y0, x1, y1 = inst["box"]
        top = y0 + 0.35 * (y1 - y0) / 2.0
        assert abs(s["crop_box"][1] - top) < 1e-3 and s["crop_box"][0] == pytest.approx((x0 + x1) / 2)
        assert np.abs(s["joints_2d"][nose]).max() < 1.0  # the head is in the crop
        assert s["joints_2d"][ankle, 1] > 1.0  # the feet are below it
        assert not np.array_equal(s["cliff_cond"], base["cliff_cond"])
