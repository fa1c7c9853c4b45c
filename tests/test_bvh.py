"""BVH reading and forward kinematics: worked examples on tiny files, errors, and the real mocap takes."""

from __future__ import annotations

import numpy as np
import pytest

from instanthmr.core.skeleton import COCO_WHOLEBODY_INDEX as CI
from instanthmr.core.mocap import BVHError, coco_wholebody_joints, detect_profile, load_bvh

TINY = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Spine
  {
    OFFSET 0 2 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 3 0
    }
  }
}
MOTION
Frames: 3
Frame Time: 0.5
1 2 3 0 0 0 0 0 0
1 2 3 90 0 0 0 0 0
0 0 0 0 0 90 90 0 0
"""


@pytest.fixture()
def tiny(tmp_path):
    p = tmp_path / "tiny.bvh"
    p.write_text(TINY)
    return p


def test_tiny_hierarchy(tiny):
    m = load_bvh(tiny)
    assert m.names == ["Hips", "Spine", "Spine_End"]
    assert m.parents.tolist() == [-1, 0, 1]
    np.testing.assert_allclose(m.offsets[2], [0, 3, 0])
    assert m.channels[2] == () and m.is_end_site.tolist() == [False, False, True]
    assert m.frames.shape == (3, 9) and m.num_frames == 3 and m.fps == 2.0


def test_tiny_forward_kinematics(tiny):
    pos = load_bvh(tiny).joint_positions()
    # Frame 0: rest pose translated by (1, 2, 3).
    np.testing.assert_allclose(pos[0], [[1, 2, 3], [1, 4, 3], [1, 7, 3]], atol=1e-12)
    # Frame 1: root turned 90 deg about Z: +Y goes to -X.
    np.testing.assert_allclose(pos[1], [[1, 2, 3], [-1, 2, 3], [-4, 2, 3]], atol=1e-12)
    # Frame 2: root turned about Y (no effect on +Y), Spine turned 90 deg about Z: the end site leaves
    # along the root's Y-rotated -X, i.e. +Z.
    np.testing.assert_allclose(pos[2], [[0, 0, 0], [0, 2, 0], [0, 2, 3]], atol=1e-12)
    np.testing.assert_allclose(load_bvh(tiny).joint_positions(scale=0.5)[0, 2], [0.5, 3.5, 1.5])


def test_channel_order_matters(tmp_path):
    # Same angles, two orders: Z then X vs X then Z must differ for a non-trivial pair.
    def end_site(order: str) -> np.ndarray:
        text = TINY.replace("CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation",
                            f"CHANNELS 6 Xposition Yposition Zposition {order}")
        text = text.split("MOTION")[0] + "MOTION\nFrames: 1\nFrame Time: 0.1\n0 0 0 90 90 0 0 0 0\n"
        p = tmp_path / "order.bvh"
        p.write_text(text)
        return load_bvh(p).joint_positions()[0, 2]

    zxy = end_site("Zrotation Xrotation Yrotation")  # Rz(90) @ Rx(90) @ (0,5,0) = Rz(90) @ (0,0,5)
    xzy = end_site("Xrotation Zrotation Yrotation")  # Rx(90) @ Rz(90) @ (0,5,0) = Rx(90) @ (-5,0,0)
    np.testing.assert_allclose(zxy, [0, 0, 5], atol=1e-12)
    np.testing.assert_allclose(xzy, [-5, 0, 0], atol=1e-12)


@pytest.mark.parametrize("mutate, msg", [
    (lambda t: t.replace("Frames: 3", "Frames: 5"), "truncated"),
    (lambda t: t.replace("0 0 0 0 0 90 90 0 0", "0 0 0 0 0 90 90 0"), "malformed|values"),
    (lambda t: t.replace("Zrotation Xrotation Yrotation\n    End", "Zrotation Xrotation Wrotation\n    End"), "CHANNELS"),
    (lambda t: t.replace("MOTION", "MOTON"), "not a BVH"),
    (lambda t: t.replace("  }\n}\nMOTION", "  }\nMOTION"), "unbalanced"),
])
def test_malformed_files_raise_one_clear_error(tmp_path, mutate, msg):
    p = tmp_path / "bad.bvh"
    p.write_text(mutate(TINY))
    with pytest.raises(BVHError, match=msg) as e:
        load_bvh(p)
    assert "bad.bvh" in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(BVHError, match="cannot read"):
        load_bvh(tmp_path / "nope.bvh")


def test_unknown_skeleton(tiny):
    with pytest.raises(BVHError, match="unknown skeleton"):
        detect_profile(load_bvh(tiny))


@pytest.mark.parametrize("rel, profile, fps", [
    ("mocap/cmu_bvh/02_01_walk.bvh", "cmu", 120.0),
    ("mocap/cmu_bvh/131_01_start_walk_stop.bvh", "cmu_alt", 120.0),
    ("mocap/bandai_namco_bvh/dataset-1_walk_normal_001.bvh", "bandai", 30.0),
])
def test_real_takes_give_plausible_bodies(shared_data, rel, profile, fps):
    m = load_bvh(shared_data / rel)
    assert m.fps == pytest.approx(fps, rel=1e-3)
    prof = detect_profile(m)
    assert prof.name == profile
    kp, valid = coco_wholebody_joints(m, prof)
    assert kp.shape == (m.num_frames, 133, 3) and valid.sum() == 14
    assert not valid[CI["nose"]] and not valid[CI["face_0"]] and valid[CI["left_big_toe"]]

    def length(a, b):
        return np.linalg.norm(kp[:, CI[a]] - kp[:, CI[b]], axis=-1)

    for a, b, lo, hi in [("left_hip", "left_knee", 0.33, 0.5), ("right_knee", "right_ankle", 0.33, 0.5),
                         ("left_elbow", "left_wrist", 0.17, 0.3), ("left_hip", "right_hip", 0.1, 0.25)]:
        seg = length(a, b)
        assert lo < seg.mean() < hi, (a, b, seg.mean())
        assert seg.std() < 1e-6  # rigid bones: FK keeps lengths across frames
    up = kp[..., prof.up]
    assert np.median(up[:, CI["left_shoulder"]] - up[:, CI["left_ankle"]]) > 0.9  # upright, up axis, metres
