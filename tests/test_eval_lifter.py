"""Lifter evaluation: metrics on worked examples, the virtual camera, 2D filling, and the CLI on real mocap."""

from __future__ import annotations

import json

import numpy as np
import pytest

from instanthmr.cli import eval_lifter  # noqa: E402
from instanthmr.core.skeleton import COCO_WHOLEBODY_INDEX as CI
from instanthmr.teachers.lifter import format_target, normalize_3d, parse_output
from instanthmr.teachers.lifter.evaluate import evaluate_lifter, fill_missing_2d, project_to_image, world_to_camera


def pose(seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(133, 3))


def test_perfect_prediction_scores_zero():
    gt = np.stack([pose(i) for i in range(3)])
    pred = normalize_3d(gt)[0]
    r = evaluate_lifter(pred, np.ones((3, 133), bool), gt * 2.0 + 5.0)  # unit/offset of gt irrelevant
    assert r["samples"] == 3 and r["parsed"] == 3 and r["parse_rate"] == 1.0 and r["scored"] == 3
    assert r["mpjpe"] == pytest.approx(0, abs=1e-12) and r["pa_mpjpe"] == pytest.approx(0, abs=1e-9)
    assert r["joints_scored"] == 133 and set(r["per_part"]) == {"body", "feet", "face", "left_hand", "right_hand", "all"}


def test_worked_example_one_joint_off():
    gt = normalize_3d(pose())[0]
    far = np.unravel_index(np.abs(gt).argmax(), gt.shape)[0]
    j = next(i for i in range(91, 133) if i != far and np.abs(gt[i]).max() < 0.9)  # a hand joint, not the scale
    pred = gt.copy()
    pred[j, 2] += 0.1
    r = evaluate_lifter(pred[None], np.ones((1, 133), bool), gt[None])
    assert r["mpjpe"] == pytest.approx(0.1 / 133)
    assert r["per_part"]["body"] == pytest.approx(0.0, abs=1e-12)
    side = "left_hand" if j < 112 else "right_hand"
    assert r["per_part"][side] == pytest.approx(0.1 / 21)


def test_parse_rate_and_partial_ground_truth():
    gt = np.stack([pose(i) for i in range(4)])
    pred = normalize_3d(gt)[0]
    mask = np.ones((4, 133), bool)
    mask[0, :80] = False  # 53/133 parsed: below 50%, not scored
    mask[1, 100:] = False  # parsed (100/133), scored on the joints it has
    gt_valid = np.zeros(133, bool)
    gt_valid[:23] = True  # body + feet ground truth only (like mocap)
    r = evaluate_lifter(pred, mask, gt, gt_valid)
    assert r["parsed"] == 3 and r["parse_rate"] == 0.75 and r["scored"] == 3
    assert r["mean_joints_parsed"] == pytest.approx((53 + 100 + 133 + 133) / 4)
    assert r["joints_scored"] == 23
    assert np.isnan(r["per_part"]["face"]) and np.isnan(r["per_part"]["left_hand"])
    # Re-normalised over the 23 shared joints, an exact prediction still scores 0.
    assert r["mpjpe"] == pytest.approx(0, abs=1e-12)
    none = evaluate_lifter(pred, np.zeros((4, 133), bool), gt)
    assert none["parse_rate"] == 0 and none["scored"] == 0 and np.isnan(none["mpjpe"])


def test_scale_error_is_forgiven_by_pa_only():
    gt = normalize_3d(pose())[0]
    pred = gt.copy()
    pred[:, 2] *= 0.5  # squashed depth: a real error, PA cannot undo an anisotropic scale
    rot = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1.0]])
    r_rot = evaluate_lifter((gt @ rot.T)[None], np.ones((1, 133), bool), gt[None])
    r_sq = evaluate_lifter(pred[None], np.ones((1, 133), bool), gt[None])
    assert r_rot["mpjpe"] > 0.1 and r_rot["pa_mpjpe"] == pytest.approx(0, abs=1e-9)
    assert r_sq["pa_mpjpe"] > 0.01


def test_virtual_camera_axes():
    world = np.zeros((1, 133, 3))
    world[0, CI["left_hip"]] = [0.1, 1.0, 0]
    world[0, CI["right_hip"]] = [-0.1, 1.0, 0]
    world[0, CI["nose"]] = [0, 1.7, 0]  # Y up
    world[0, CI["left_ankle"]] = [0.1, 0.1, 0]
    cam = world_to_camera(world, up_axis=1, azimuth_deg=0, elevation_deg=0, distance=4.0)
    np.testing.assert_allclose(cam[0, CI["nose"]], [0, -0.7, 4.0], atol=1e-12)  # above the hips: Y down
    tilted = world_to_camera(world, 1, 0, 20.0, 4.0)
    assert tilted[0, CI["nose"], 2] < 4.0 < tilted[0, CI["left_ankle"], 2]  # seen from above
    z_up = world[..., [0, 2, 1]] * np.array([1, -1, 1])  # the same body, Z up
    np.testing.assert_allclose(world_to_camera(z_up, up_axis=2, elevation_deg=0), cam, atol=1e-12)
    px = project_to_image(cam, (1000, 1000))
    assert px[0, CI["nose"], 1] < 500 < px[0, CI["left_ankle"], 1]


def test_fill_missing_2d_anchors():
    kp = np.zeros((133, 2))
    valid = np.zeros(133, bool)
    for name, xy in [("left_shoulder", (10, 10)), ("right_shoulder", (30, 10)), ("left_hip", (10, 50)),
                     ("right_hip", (30, 50)), ("left_wrist", (0, 40)), ("left_ankle", (12, 90))]:
        kp[CI[name]], valid[CI[name]] = xy, True
    out = fill_missing_2d(kp, valid)
    np.testing.assert_allclose(out[CI["nose"]], [20, 10 - 0.35 * 40])
    np.testing.assert_allclose(out[CI["face_30"]], out[CI["nose"]])
    np.testing.assert_allclose(out[CI["left_hand_8"]], [0, 40])
    np.testing.assert_allclose(out[CI["left_heel"]], [12, 90])
    np.testing.assert_allclose(out[CI["right_hand_3"]], kp[valid].mean(0))  # no right wrist: centroid
    np.testing.assert_allclose(out[valid], kp[valid])
    with pytest.raises(ValueError):
        fill_missing_2d(kp, np.zeros(133, bool))


def test_cli_make_set_and_score(shared_data, tmp_path, capsys):
    out = tmp_path / "set.npz"
    assert eval_lifter.main(["make-set", "--out", str(out), "--data", str(shared_data), "--stride-seconds", "2",
                             "--azimuths", "0,90"]) == 0
    s = np.load(out)
    assert s["kp2d"].shape[1:] == (133, 2) and len(s["keys"]) == len(s["gt3d"]) > 20
    assert set(s["source"]) >= {"bvh:cmu", "bvh:bandai", "h36m"}
    assert 12 <= s["gt_valid"].sum(1).min() and s["gt_valid"].sum(1).max() <= 14
    js = tmp_path / "r.json"
    assert eval_lifter.main(["score", "--set", str(out), "--baseline", "protocol", "--json", str(js)]) == 0
    proto = json.loads(js.read_text())["all"]
    assert proto["parse_rate"] == 1.0 and proto["mpjpe"] < 3 / 255  # the quantisation floor
    assert eval_lifter.main(["score", "--set", str(out), "--baseline", "flat", "--json", str(js)]) == 0
    flat = json.loads(js.read_text())["all"]
    assert flat["mpjpe"] > 10 * proto["mpjpe"]  # no depth is much worse
    assert "face" in capsys.readouterr().out

    # Raw lifter text (as annotate_llm writes it): half the samples answered, one garbled.
    keys = [str(k) for k in s["keys"]]
    gt_filled = np.where(s["gt_valid"][..., None], s["gt3d"], s["gt3d"][:, [11, 12]].mean(1, keepdims=True))
    raw = tmp_path / "raw.jsonl"
    with raw.open("w") as f:
        for k, g in list(zip(keys, gt_filled))[: len(keys) // 2]:
            f.write(json.dumps({"key": k, "text": format_target(g), "coord_format": "bins", "truncated": False}) + "\n")
        f.write("{not json\n")
    assert eval_lifter.main(["score", "--set", str(out), "--outputs", str(raw), "--json", str(js)]) == 0
    r = json.loads(js.read_text())["all"]
    assert r["parsed"] == len(keys) // 2 and r["mpjpe"] == pytest.approx(proto["mpjpe"], rel=0.2)


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert eval_lifter.main(["score", "--set", str(tmp_path / "nope.npz"), "--baseline", "flat"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    np.savez(tmp_path / "bad.npz", x=np.zeros(3))
    assert eval_lifter.main(["score", "--set", str(tmp_path / "bad.npz"), "--baseline", "flat"]) == 2
    assert "not an evaluation set" in capsys.readouterr().err
    assert eval_lifter.main(["make-set", "--out", str(tmp_path / "o.npz"), "--data", str(tmp_path / "none")]) == 2
    assert "data folder not found" in capsys.readouterr().err


def test_parse_helpers_consistent():
    # The protocol baseline relies on format_target/parse_output agreeing on a metric pose.
    g = pose(5) + 3.0
    j, m, f = parse_output(format_target(g))
    assert f == 1.0 and np.abs(j - normalize_3d(g)[0]).max() < 3 / 255


def test_head_errors_against_lifter_and_ground_truth():
    from instanthmr.teachers.lifter.evaluate import head_errors

    gt = np.stack([pose(i) for i in range(2)])
    lifter = normalize_3d(gt)[0]
    lifter[:, 91:112] += 0.05  # the teacher is off on the left hand
    mask = np.ones((2, 133), bool)
    mask[:, 23:91] = False  # and gave no face
    head = gt * 1.7 + 3.0  # a head that matches the ground truth, in metres somewhere in space
    r = head_errors(head, lifter, mask, gt, np.ones(133, bool))
    assert r["vs_gt"]["mpjpe"] == pytest.approx(0, abs=1e-12)
    assert r["vs_lifter"]["joints_scored"] == 133 - 68 and np.isnan(r["vs_lifter"]["per_part"]["face"])
    assert r["vs_lifter"]["per_part"]["left_hand"] > 0.05 and r["vs_lifter"]["per_part"]["body"] < 0.02
    assert "vs_gt" not in head_errors(head, lifter, mask)
