"""Evaluation: ground-truth loaders and MHR70 mapping, oracle predictors score zero, the CLI on an ONNX file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from instanthmr.core.skeleton import MHR70_FLIP_PERM, MHR70_INDEX
from instanthmr.training.data.gt3d import SHARED_NAMES, dataset_to_names, load_gt3d, mhr70_to_names
from instanthmr.training.data.synthetic import write_synthetic_shards
from instanthmr.training.evaluate import Predictor, evaluate_gt3d, evaluate_shards


class QueuePredictor(Predictor):
    """Returns prepared MHR70 joints, one per call, in call order (a stand-in network)."""

    def __init__(self, joints):
        self.joints = list(joints)

    def __call__(self, crops, cliff):
        n = len(crops)
        j, self.joints = np.stack(self.joints[:n]), self.joints[n:]
        return {"joints_3d": j.astype(np.float32), "joints_2d": np.zeros((n, 70, 2), np.float32)}


def _mhr70_from_gt(joints17, dataset):
    out = np.zeros((70, 3))
    named = dataset_to_names(joints17, dataset)
    for name, p in zip(SHARED_NAMES, named):
        if name != "pelvis":
            out[MHR70_INDEX[name]] = p
    return out


@pytest.fixture(scope="module")
def gt_root(shared_data):
    return shared_data / "gt3d"


def test_gt_loaders_and_joint_orders(gt_root):
    for ds in ("h36m", "mpi_inf_3dhp"):
        frames = load_gt3d(gt_root, ds)
        assert len(frames) == 2
        for fr in frames:
            assert fr.image_path.is_file() and fr.joints_cam.shape == (17, 3) and fr.visible.all()
            named = dataset_to_names(fr.joints_cam, ds)
            # each dataset's pelvis is its hips' mid-point (the alignment root used against MHR70)
            np.testing.assert_allclose(named[0], (named[1] + named[2]) / 2, atol=1e-5)
            # the joint-order tables name the right points: every named bone has an adult's length (the oracle
            # tests below build their predictions with the same tables, so they cannot catch a wrong order)
            j = dict(zip(SHARED_NAMES, named))
            for side in ("left", "right"):
                for a, b, lo, hi in (("hip", "knee", 0.3, 0.55), ("knee", "ankle", 0.3, 0.55),
                                     ("shoulder", "elbow", 0.22, 0.38), ("elbow", "wrist", 0.18, 0.32),
                                     ("hip", "shoulder", 0.3, 0.6)):
                    length = np.linalg.norm(j[f"{side}_{a}"] - j[f"{side}_{b}"])
                    assert lo < length < hi, (ds, side, a, b, length)
            for part, lo, hi in (("hip", 0.18, 0.32), ("shoulder", 0.2, 0.35)):
                assert lo < np.linalg.norm(j[f"left_{part}"] - j[f"right_{part}"]) < hi, (ds, part)
            # the 2D box contains every projected joint
            assert (fr.joints_2d >= fr.box[:2]).all() and (fr.joints_2d <= fr.box[2:]).all()
            assert 3.0 < fr.joints_cam[:, 2].mean() < 6.0  # metres in front of the camera
    with pytest.raises(FileNotFoundError, match="h36m_body3d_subset"):
        load_gt3d(gt_root / "nowhere", "h36m")


def test_mhr70_pelvis_is_mid_hips():
    j = np.random.default_rng(0).normal(size=(70, 3))
    named = mhr70_to_names(j)
    np.testing.assert_allclose(named[0], (j[MHR70_INDEX["left_hip"]] + j[MHR70_INDEX["right_hip"]]) / 2)
    np.testing.assert_allclose(named[SHARED_NAMES.index("right_wrist")], j[MHR70_INDEX["right_wrist"]])


def test_oracle_scores_zero_on_ground_truth_and_swapped_sides_do_not(gt_root):
    frames = {ds: load_gt3d(gt_root, ds) for ds in ("h36m", "mpi_inf_3dhp")}
    oracle = [_mhr70_from_gt(fr.joints_cam, ds) for ds in frames for fr in frames[ds]]
    rep = evaluate_gt3d(QueuePredictor([o + [0.3, -0.2, 1.0] for o in oracle]), gt_root)  # any translation
    for ds in frames:
        assert rep[ds]["frames"] == 2
        assert rep[ds]["mpjpe_mm"] < 0.01 and rep[ds]["pa_mpjpe_mm"] < 0.01  # float32 rounding only
    swapped = evaluate_gt3d(QueuePredictor([o[list(MHR70_FLIP_PERM)] for o in oracle]), gt_root)
    for ds in frames:
        assert swapped[ds]["mpjpe_mm"] > 100


def test_oracle_scores_zero_against_the_teacher(tmp_path):
    from instanthmr.training.data.shards import ShardReader

    root = write_synthetic_shards(tmp_path, 6, seed=4)
    teacher = [ShardReader(root)[i]["joints_3d"] for i in range(6)]
    rep = evaluate_shards(QueuePredictor([t + 5.0 for t in teacher]), root, batch_size=4)
    assert rep["instances"] == 6
    assert rep["vs_teacher"]["mpjpe_mm"] < 1e-3 and rep["vs_teacher"]["pa_mpjpe_mm"] < 1e-3
    assert set(rep["vs_teacher"]["per_part_mpjpe_mm"]) == {"body", "feet", "right_hand", "left_hand", "extra", "all"}
    noisy = evaluate_shards(QueuePredictor([t + np.random.default_rng(0).normal(0, 0.02, t.shape) for t in teacher]),
                            root, batch_size=4)
    assert 15 < noisy["vs_teacher"]["mpjpe_mm"] < 60


def test_cli_on_an_onnx_file(random_onnx, tmp_path, capsys):
    from instanthmr.cli.eval import main

    root = write_synthetic_shards(tmp_path / "s", 4, seed=1)
    out = tmp_path / "report.json"
    assert main([str(random_onnx), "--shards", str(root), "--gt3d", "none", "--json", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["instances"] == 4 and np.isfinite(rep["vs_teacher"]["mpjpe_mm"])
    assert "MPJPE" in capsys.readouterr().out
    assert main([str(tmp_path / "missing.onnx"), "--shards", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "missing.onnx" in err and "\n" not in err
