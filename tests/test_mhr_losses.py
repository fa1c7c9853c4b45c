"""MHR consistency loss, root rotation and the teacher-data check, on a toy rig and on real SAM 3D Body
outputs (converted model from the cache made by tools/convert_mhr.py; skipped when unavailable)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_mhr_layer import _converted, toy_assets

from instanthmr.body.mhr import MHRNumpy
from instanthmr.body.mhr_torch import MHRModel
from instanthmr.cli.mhr import check_main as main
from instanthmr.core.rotations import axis_rotation
from instanthmr.core.skeleton import MHR70_FLIP_PERM
from instanthmr.training.data.shards import ShardWriter
from instanthmr.training.mhr_losses import (
    check_param_keypoint_agreement,
    check_shards,
    keypoints_from_params,
    mhr_consistency_loss,
    rotate_root,
)


def toy_with_regressor():
    a = toy_assets()
    reg = np.zeros((70, a.num_vertices + 127), np.float32)
    reg[np.arange(70), a.num_vertices + np.arange(70)] = 1.0     # keypoint k = joint k
    a.keypoint_regressor = reg
    return a


def test_loss_is_zero_on_own_keypoints_and_grows_with_error():
    layer = MHRModel(toy_with_regressor())
    params = (0.3 * torch.randn(4, 204, generator=torch.Generator().manual_seed(0))).requires_grad_(True)
    shape = torch.zeros(4, 45)
    target = keypoints_from_params(layer, params, shape).detach()
    assert mhr_consistency_loss(layer, params, shape, target).item() < 1e-6
    moved = target.clone()
    moved[:, 5] += 0.05                                           # one joint 5 cm off in x, y, z
    loss = mhr_consistency_loss(layer, params, shape, moved, align="none")
    assert abs(loss.item() - 0.05 / 70) < 1e-5                    # mean over 70 joints x 3 coords
    loss.backward()
    assert params.grad.abs().sum() > 0


def test_loss_masks_and_ignores_root_translation():
    layer = MHRModel(toy_with_regressor())
    params = torch.zeros(2, 204)
    target = keypoints_from_params(layer, params, torch.zeros(2, 45))
    shifted = params.clone()
    shifted[:, 0:3] = 3.0                                         # 30 cm root translation: dropped
    assert float(mhr_consistency_loss(layer, shifted, torch.zeros(2, 45), target, align="none")) < 1e-6
    wrong = target + 1.0
    mask = torch.zeros(2, 70, dtype=torch.bool)
    empty = mhr_consistency_loss(layer, params.requires_grad_(True), torch.zeros(2, 45), wrong, mask=mask)
    assert empty.item() == 0.0 and empty.requires_grad
    per_sample = mhr_consistency_loss(layer, params, torch.zeros(2, 45), wrong, mask=torch.tensor([True, False]),
                                      align="none")
    assert abs(per_sample.item() - 1.0) < 1e-5


def test_rotate_root_matches_rotating_keypoints(lod6_model):
    rng = np.random.default_rng(2)
    p = np.zeros((3, 204), np.float32)
    p[:, 3:6] = rng.uniform(-0.5, 0.5, (3, 3))
    p[:, 6:130] = rng.uniform(-0.3, 0.3, (3, 124))
    shape = rng.normal(0, 0.5, (3, 45)).astype(np.float32)
    th = np.deg2rad(30.0)
    rot_cam = axis_rotation(2, th)  # about the optical axis
    k0 = lod6_model(shape, p).keypoints.astype(np.float64)
    k1 = lod6_model(shape, rotate_root(p, rot_cam)).keypoints.astype(np.float64)
    hip = lambda k: k - k[:, [9, 10]].mean(1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(hip(k1), hip(k0) @ rot_cam.T, atol=2e-5)


# ---------------------------------------------------------------------------------------------- real data
@pytest.fixture(scope="module")
def lod3_model(mhr_dir):
    return MHRNumpy.from_npz(_converted(3, mhr_dir)[0])


@pytest.fixture(scope="module")
def lod6_model(mhr_dir):
    return MHRNumpy.from_npz(_converted(6, mhr_dir)[0])


@pytest.fixture(scope="module")
def samples(mhr_dir):
    ds = [np.load(f) for f in sorted((mhr_dir / "samples").glob("*.npz"))]
    return {k: np.stack([d[k] for d in ds]) for k in ("mhr_model_params", "shape_params", "pred_keypoints_3d")}


def test_torch_loss_on_real_teacher_outputs(mhr_dir, samples):
    layer = MHRModel.from_npz(_converted(3, mhr_dir)[0])
    args = [torch.from_numpy(samples[k]) for k in ("mhr_model_params", "shape_params", "pred_keypoints_3d")]
    loss = float(mhr_consistency_loss(layer, *args, align="none"))
    assert loss < 0.001, f"{loss * 1000:.2f} mm"                  # derived regressor: ~0.3 mm per coordinate
    swapped = args[2][:, :, [0, 2, 1]]
    assert float(mhr_consistency_loss(layer, args[0], args[1], swapped)) > 20 * loss


def test_check_passes_real_teacher_outputs_and_names_mistakes(lod3_model, samples):
    p, s, k = samples["mhr_model_params"], samples["shape_params"], samples["pred_keypoints_3d"]
    good = check_param_keypoint_agreement(lod3_model, p, s, k)
    assert good.ok and good.checked == 4 and np.median(good.errors_mm) < 2.0, good.summary()
    assert good.diagnosis is None
    cases = {
        "centimetres": k * 100.0,
        "Y-up frame": k * np.array([1.0, -1.0, -1.0]),
        "left/right": k[:, list(MHR70_FLIP_PERM)],
    }
    for words, joints in cases.items():
        bad = check_param_keypoint_agreement(lod3_model, p, s, joints)
        assert not bad.ok and words in (bad.diagnosis or ""), bad.summary()


def test_check_shards_and_cli(lod3_model, samples, mhr_dir, tmp_path, capsys):
    p, s, k = samples["mhr_model_params"], samples["shape_params"], samples["pred_keypoints_3d"]
    with ShardWriter(tmp_path / "shards", teacher="sam3d_body") as w:
        for i in range(4):
            joints = k[i] * (100.0 if i == 3 else 1.0)            # one instance written in centimetres
            w.add({"box": [0, 0, 10, 10], "image_size": [100, 100], "source": f"img{i}",
                   "mhr_params": p[i], "shape_params": s[i], "joints_3d": joints})
            w.mark_done(f"img{i}")
        w.add({"box": [0, 0, 10, 10], "image_size": [100, 100], "source": "mp", "joints_3d": k[0]})
        w.mark_done("mp")                                          # keypoints without parameters: skipped
    report = check_shards(lod3_model, tmp_path / "shards")
    assert report.checked == 4 and report.skipped == 1
    assert [src.split(":")[-1] for src, _ in report.bad] == ["img3"]
    assert main([str(tmp_path / "shards"), "--mhr-model", str(_converted(3, mhr_dir)[0])]) == 1
    assert "1 above" in capsys.readouterr().out
    assert main([str(tmp_path / "shards"), "--mhr-model", str(tmp_path / "missing.npz")]) == 2
    assert "missing.npz: MHR model file not found" in capsys.readouterr().err
