"""glTF animation export: the file's content (times, held frames and joints, rigs, camera), forward kinematics
of what was written against the keypoints, and the Khronos glTF validator on every kind of file written.

Also home of the helpers the other animation tests import: a rigid human moving (``human_motion``), frames
of ``HMRPrediction`` s built from it (``motion_frames``), and where the validator and Blender's Python are.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from instanthmr.core.mocap import load_bvh
from instanthmr.core.rotations import axis_rotation as _rot
from instanthmr.core.rotations import quaternion_to_matrix
from instanthmr.core.skeleton import MHR70_INDEX, MHR70_NAMES
from instanthmr.outputs.bvh import write_bvh
from instanthmr.outputs.gltf import accessor_array, read_glb, write_gltf
from instanthmr.outputs.rig import RIGS, solve_bvh
from instanthmr.runtime.hmr import HMRPrediction

REPO = Path(__file__).resolve().parent.parent
FLIP = np.array([1.0, -1.0, -1.0])  # camera axes (y down, z forward) -> Y up, Z towards the camera
FPS = 30.0
FINGERS = ("thumb", "index", "middle", "ring", "pinky")
SEGS = ("third_joint", "second_joint", "first_joint", "tip")
FEET = [MHR70_INDEX[f"{s}_{n}"] for s in ("left", "right") for n in ("ankle", "heel", "big_toe_tip", "small_toe_tip")]


# ---------------------------------------------------------------------------------------------- a moving person
def _rest_body() -> dict[str, np.ndarray]:
    """Every MHR70 point of a standing adult, metres, Y up, facing +Z, left = +X, mid-hip at the origin."""
    p = {"neck": np.array([0.0, 0.52, -0.02]), "nose": np.array([0.0, 0.72, 0.08])}
    for s, x in (("left", 1.0), ("right", -1.0)):
        def at(v, x=x):
            return np.array([x * v[0], v[1], v[2]])

        p.update({f"{s}_hip": at((0.09, 0.0, 0.0)), f"{s}_knee": at((0.1, -0.42, 0.01)),
                  f"{s}_ankle": at((0.1, -0.83, -0.02)), f"{s}_heel": at((0.1, -0.9, -0.08)),
                  f"{s}_big_toe_tip": at((0.07, -0.9, 0.15)), f"{s}_small_toe_tip": at((0.14, -0.9, 0.12)),
                  f"{s}_eye": at((0.03, 0.75, 0.06)), f"{s}_ear": at((0.075, 0.73, -0.02)),
                  f"{s}_shoulder": at((0.18, 0.48, -0.02)), f"{s}_elbow": at((0.21, 0.2, -0.03)),
                  f"{s}_wrist": at((0.23, -0.05, 0.0))})
        p[f"{s}_olecranon"] = p[f"{s}_elbow"] + [0, 0, -0.03]
        p[f"{s}_cubital_fossa"] = p[f"{s}_elbow"] + [0, 0, 0.03]
        p[f"{s}_acromion"] = p[f"{s}_shoulder"] + [0, 0.03, 0]
        for fi, f in enumerate(FINGERS):
            base = at((0.235, -0.08 if f == "thumb" else -0.14, (0.035, 0.03, 0.01, -0.01, -0.03)[fi]))
            step = np.array([0.0, -0.03, 0.008 if f == "thumb" else 0.0])
            for k, seg in enumerate(SEGS):
                p[f"{s}_{f}_{seg}"] = base + k * step
    return p


def _turn(p: dict, names, centre: str, r: np.ndarray) -> None:
    c = p[centre].copy()
    for n in names:
        p[n] = (p[n] - c) @ r.T + c


def human_motion(n: int = 30, fps: float = FPS):
    """A person walking in place while turning and drifting, every bone rigid (fingers curl, elbows, knees,
    hips, ankles and the head move): ``(joints_3d_local, joints_3d_cam (T, 70, 3), cam_trans (T, 3))`` in
    camera axes (x right, y down, z forward), metres, the local joints centred on the mid-hip."""
    base = _rest_body()
    loc, trans = [], []
    for t in range(n):
        w = t / fps
        p = {k: v.copy() for k, v in base.items()}
        for s, sg in (("left", 1), ("right", -1)):
            hand = [k for k in p if k.startswith(f"{s}_") and any(f in k for f in FINGERS)]
            for f in FINGERS:
                chain = [f"{s}_{f}_{seg}" for seg in SEGS]
                _turn(p, chain[1:], chain[0], _rot(2, sg * 0.4 * (1 + np.sin(3 * w + len(f)))))
            forearm = [f"{s}_wrist"] + hand
            _turn(p, forearm, f"{s}_elbow", _rot(0, -0.6 - 0.5 * np.sin(4 * w + sg)))
            arm = [f"{s}_elbow", f"{s}_olecranon", f"{s}_cubital_fossa"] + forearm
            _turn(p, arm, f"{s}_shoulder", _rot(2, sg * (0.3 + 0.4 * np.sin(2 * w))))
            foot = [f"{s}_heel", f"{s}_big_toe_tip", f"{s}_small_toe_tip"]
            _turn(p, foot, f"{s}_ankle", _rot(0, 0.2 * np.sin(5 * w)))
            shank = [f"{s}_ankle"] + foot
            _turn(p, shank, f"{s}_knee", _rot(0, 0.5 * (1 - np.cos(5 * w + sg))))
            _turn(p, [f"{s}_knee"] + shank, f"{s}_hip", _rot(0, -sg * 0.4 * np.sin(5 * w)))
        _turn(p, ["nose", "left_eye", "right_eye", "left_ear", "right_ear"], "neck",
              _rot(0, 0.25 * np.sin(3 * w)) @ _rot(1, 0.3 * np.sin(2 * w)))
        pelvis = 0.5 * (p["left_hip"] + p["right_hip"])
        r = _rot(1, 0.6 * np.sin(w)) @ _rot(2, 0.1 * np.sin(3 * w))
        loc.append(np.array([(p[nm] - pelvis) @ r.T for nm in MHR70_NAMES]) * FLIP)
        trans.append([0.5 * np.sin(w), 0.1 + 0.02 * np.sin(10 * w), 4.0 - 0.5 * w])
    loc, trans = np.array(loc), np.array(trans)
    return loc, loc + trans[:, None], trans


@dataclass
class Frame:
    frame_index: int
    time_s: float
    persons: list


def motion_frames(n: int = 30, tracks=(1,), shift: float = 1.2, absent: dict | None = None,
                  invalid: dict | None = None, fps: float = FPS) -> list[Frame]:
    """``n`` frames of :func:`human_motion` per track (track k shifted ``k * shift`` m along x).
    ``absent``: track -> frames it is missing from; ``invalid``: track -> (frames, MHR70 joint indices) the
    model did not predict (NaN values, ``joints_valid`` False)."""
    frames = [Frame(i, i / fps, []) for i in range(n)]
    loc, cam, trans = human_motion(n, fps)
    for k, tid in enumerate(tracks):
        for i in range(n):
            if i in (absent or {}).get(tid, ()):
                continue
            jl, jc = loc[i].copy(), cam[i] + [k * shift, 0, 0]
            valid = None
            bad_frames, bad_joints = (invalid or {}).get(tid, ((), ()))
            if i in bad_frames:
                valid = np.ones(70, bool)
                valid[list(bad_joints)] = False
                jl[~valid] = np.nan
                jc[~valid] = np.nan
            frames[i].persons.append(HMRPrediction(
                box=np.zeros(4), score=1.0, joints_3d_local=jl, joints_3d_cam=jc, joints_2d=np.zeros((70, 2)),
                cam_trans=trans[i] + [k * shift, 0, 0], focal_length=1000.0, principal_point=np.array([640.0, 360.0]),
                mhr_params=np.zeros(204), shape_params=np.zeros(45), joints_valid=valid, track_id=tid))
    return frames


def world_keypoints(frames: list[Frame], tid: int) -> np.ndarray:
    """The written world of a glTF file, computed from the keypoints alone (docs/animation.md): camera
    frame turned half a turn about X, lifted so the median (over tracks and frames) lowest foot joint is at
    y = 0. ``(T, 70, 3)`` for track ``tid`` (NaN where absent)."""
    lows = [float(np.nanmin((p.joints_3d_cam[FEET] * FLIP)[:, 1])) for f in frames for p in f.persons]
    lift = -float(np.median(lows))
    out = np.full((len(frames), 70, 3), np.nan)
    for f in frames:
        for p in f.persons:
            if p.track_id == tid:
                out[f.frame_index] = p.joints_3d_cam * FLIP + [0.0, lift, 0.0]
    return out


# ---------------------------------------------------------------------------------------------- the real tools
def gltf_validator_dir() -> Path | None:
    """A folder holding ``node_modules/gltf-validator``: $INSTANTHMR_GLTF_VALIDATOR, else the one
    ``install.py --extras animation`` makes (.venv-bpy/node); None without node or the validator."""
    if shutil.which("node") is None:
        return None
    for d in (os.environ.get("INSTANTHMR_GLTF_VALIDATOR"), REPO / ".venv-bpy" / "node"):
        if d and (Path(d) / "node_modules" / "gltf-validator").is_dir():
            return Path(d)
    return None


def blender_python() -> Path | None:
    """A Python that imports bpy: $INSTANTHMR_BPY_PYTHON, else .venv-bpy (``install.py --extras animation``)."""
    for p in (os.environ.get("INSTANTHMR_BPY_PYTHON"), REPO / ".venv-bpy" / "bin" / "python"):
        if p and Path(p).is_file():
            return Path(p)
    return None


_VALIDATE_JS = """
const fs = require('fs'), v = require('gltf-validator');
(async () => {
  const out = {};
  for (const f of process.argv.slice(1)) {
    const r = await v.validateBytes(new Uint8Array(fs.readFileSync(f)));
    out[f] = {errors: r.issues.numErrors, warnings: r.issues.numWarnings, infos: r.issues.numInfos,
              messages: r.issues.messages.filter(m => m.severity <= 1).map(m => `${m.code} ${m.pointer || ''} ${m.message}`)};
  }
  console.log(JSON.stringify(out));
})().catch(e => { console.error(String(e)); process.exit(2); });
"""


def khronos_validate(paths) -> dict:
    """The Khronos validator's counts and messages per file; skips the test when it is not installed."""
    d = gltf_validator_dir()
    if d is None:
        pytest.skip("node or gltf-validator not found (python install.py --extras animation, or set "
                    "INSTANTHMR_GLTF_VALIDATOR to a folder holding node_modules/gltf-validator)")
    proc = subprocess.run(["node", "-e", _VALIDATE_JS, *map(str, paths)], capture_output=True, text=True,
                          env={**os.environ, "NODE_PATH": str(d / "node_modules")}, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# ---------------------------------------------------------------------------------------------- reading back
def _nodes_by_name(doc: dict, track: int) -> dict[str, int]:
    """Joint node indices of one track by name (the skin's joints)."""
    skin = next(s for s in doc["skins"] if s["name"] == f"track{track}")
    return {doc["nodes"][j]["name"]: j for j in skin["joints"]}


def _sampled(doc, binary, anim_name: str):
    """``(times (T,), {(node, path): values (T, n)})`` of an animation."""
    anim = next(a for a in doc["animations"] if a["name"] == anim_name)
    times, chans = None, {}
    for c in anim["channels"]:
        s = anim["samplers"][c["sampler"]]
        times = accessor_array(doc, binary, s["input"])[:, 0]
        chans[(c["target"]["node"], c["target"]["path"])] = accessor_array(doc, binary, s["output"])
    return times, chans


def _quat_matrix(q: np.ndarray) -> np.ndarray:
    x, y, z, w = np.moveaxis(q, -1, 0)
    return np.stack([np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
                     np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
                     np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1)], -2)


def glb_joint_positions(path, track: int) -> tuple[np.ndarray, dict[str, int], np.ndarray]:
    """World joint positions ``(T, K, 3)`` by forward kinematics of the written nodes and keys, the joint
    order (name -> column) and the key times."""
    doc, binary = read_glb(path)
    joints = _nodes_by_name(doc, track)
    times, chans = _sampled(doc, binary, f"track{track}")
    order = list(joints.values())
    col = {n: i for i, n in enumerate(joints)}
    parent = {c: i for i in order for c in doc["nodes"][i].get("children", [])}
    pos = np.zeros((len(times), len(order), 3))
    rot = np.zeros((len(times), len(order), 3, 3))
    for k, node in enumerate(order):  # skins list parents before children
        t = chans.get((node, "translation"), np.tile(doc["nodes"][node]["translation"], (len(times), 1)))
        q = chans.get((node, "rotation"), np.tile([0.0, 0, 0, 1], (len(times), 1)))
        r = _quat_matrix(q.astype(np.float64))
        if node in parent and parent[node] in order:
            p = order.index(parent[node])
            pos[:, k] = pos[:, p] + np.einsum("tij,tj->ti", rot[:, p], t)
            rot[:, k] = rot[:, p] @ r
        else:
            pos[:, k], rot[:, k] = t, r
    return pos, col, times


# ---------------------------------------------------------------------------------------------- tests
def test_two_tracks_one_animation_each_on_the_video_clock(tmp_path):
    frames = motion_frames(30, tracks=(1, 2), absent={2: range(10, 15)})
    out = tmp_path / "two.glb"
    report = write_gltf(out, frames, FPS, image_size=(1280, 720))
    assert [(r.track_id, r.frames, r.first_frame) for r in report] == [(1, 30, 0), (2, 30, 0)]
    doc, binary = read_glb(out)
    assert doc["asset"]["version"] == "2.0"
    assert sorted(a["name"] for a in doc["animations"]) == ["track1", "track2"]
    times, chans = _sampled(doc, binary, "track2")
    np.testing.assert_allclose(times, np.arange(30) / FPS, atol=1e-6)  # keys on the source clock
    # Track 2 was not seen in frames 10-14: its pose (every rotation and the root) holds frame 9's.
    for values in chans.values():
        np.testing.assert_array_equal(values[10:15], np.repeat(values[9:10], 5, axis=0))
        assert np.isfinite(values).all()
    assert not np.allclose(chans[next(iter(chans))][15], chans[next(iter(chans))][9])
    cam = doc["cameras"][0]["perspective"]
    assert cam["yfov"] == pytest.approx(2 * np.arctan(360 / 1000.0)) and cam["aspectRatio"] == pytest.approx(16 / 9)


def test_forward_kinematics_of_the_file_gives_back_the_keypoints(tmp_path):
    frames = motion_frames(30, tracks=(1, 2))
    out = tmp_path / "fk.glb"
    write_gltf(out, frames, FPS)
    for tid in (1, 2):
        pos, col, _ = glb_joint_positions(out, tid)
        want = world_keypoints(frames, tid)
        err = max(float(np.abs(pos[:, c] - want[:, MHR70_INDEX[n]]).max()) for n, c in col.items() if n in MHR70_INDEX)
        assert err < 1e-4  # float32 in the file; every joint, every frame


def test_joints_a_model_did_not_predict_are_held_not_invented(tmp_path):
    wrist_and_hand = [i for i, n in enumerate(MHR70_NAMES) if n.startswith("left_") and
                      (n.endswith("wrist") or any(f in n for f in FINGERS))]
    frames = motion_frames(20, invalid={1: (range(5, 10), wrist_and_hand)})
    out = tmp_path / "held.glb"
    assert write_gltf(out, frames, FPS)
    doc, binary = read_glb(out)
    for i in range(len(doc["accessors"])):
        assert np.isfinite(accessor_array(doc, binary, i).astype(np.float64)).all()
    pos, col, _ = glb_joint_positions(out, 1)
    kp = world_keypoints(frames, 1)
    local = np.array([f.persons[0].joints_3d_local for f in frames]) * FLIP  # body-centred, Y up
    held = local[4, MHR70_INDEX["left_wrist"]]  # the last position the model gave (relative to the body)
    for t in range(5, 10):  # the forearm points at the held wrist, not at the (hidden) true one
        got = pos[t, col["left_wrist"]] - pos[t, col["left_elbow"]]
        want = held - local[t, MHR70_INDEX["left_elbow"]]
        np.testing.assert_allclose(got / np.linalg.norm(got), want / np.linalg.norm(want), atol=1e-4)
    lk = MHR70_INDEX["left_knee"]
    np.testing.assert_allclose(pos[:, col["left_knee"]], kp[:, lk], atol=1e-4)  # the rest is untouched


def test_a_model_without_neck_toes_and_hands_still_exports(tmp_path):
    """The MediaPipe path has no neck point, no small toes and (often) no hands: the neck joint sits between
    the shoulders, the missing end points are not in the skeleton, everything else is exact."""
    lacking = [MHR70_INDEX[n] for n in ("neck", "left_small_toe_tip", "right_small_toe_tip")] + [
        i for i, n in enumerate(MHR70_NAMES) if any(f in n for f in FINGERS)]
    frames = motion_frames(12, invalid={1: (range(12), lacking)})
    out = tmp_path / "mediapipe_like.glb"
    assert write_gltf(out, frames, FPS)
    pos, col, _ = glb_joint_positions(out, 1)
    assert "left_small_toe_tip" not in col and "left_index_tip" not in col and "left_heel" in col
    kp = world_keypoints(frames, 1)
    for n in ("left_elbow", "right_knee", "left_heel", "right_big_toe_tip"):
        np.testing.assert_allclose(pos[:, col[n]], kp[:, MHR70_INDEX[n]], atol=1e-4)
    # the head turns about the true neck, not about the shoulders' midpoint: neck-nose is not rigid here
    np.testing.assert_allclose(pos[:, col["nose"]], kp[:, MHR70_INDEX["nose"]], atol=5e-3)
    mid = 0.5 * (kp[:, MHR70_INDEX["left_shoulder"]] + kp[:, MHR70_INDEX["right_shoulder"]])
    np.testing.assert_allclose(pos[:, col["neck"]], mid, atol=1e-4)
    (r,) = khronos_validate([out]).values()
    assert r["errors"] == 0 and r["warnings"] == 0, r["messages"]


def test_mixamo_rig_names_and_t_pose(tmp_path):
    out = tmp_path / "mixamo.glb"
    write_gltf(out, motion_frames(12), FPS, rig="mixamo")
    doc, _ = read_glb(out)
    names = _nodes_by_name(doc, 1)
    assert all(n.startswith("mixamorig:") for n in names)
    for n in ("Hips", "Spine", "Neck", "Head", "LeftShoulder", "LeftArm", "LeftForeArm", "LeftHand", "RightUpLeg",
              "RightLeg", "RightFoot", "LeftHandIndex1", "LeftHandThumb4"):
        assert "mixamorig:" + n in names
    # T-pose rest: the arms stretch sideways (left = +X), the legs straight down
    off = {n: np.array(doc["nodes"][i]["translation"]) for n, i in names.items()}
    for bone, axis in (("mixamorig:LeftForeArm", [1, 0, 0]), ("mixamorig:RightHand", [-1, 0, 0]),
                       ("mixamorig:LeftLeg", [0, -1, 0])):
        np.testing.assert_allclose(off[bone] / np.linalg.norm(off[bone]), axis, atol=1e-6)
    pos, col, _ = glb_joint_positions(out, 1)
    kp = world_keypoints(motion_frames(12), 1)
    for ours, theirs in (("left_elbow", "mixamorig:LeftForeArm"), ("right_knee", "mixamorig:RightLeg"),
                         ("neck", "mixamorig:Neck"), ("left_wrist", "mixamorig:LeftHand")):
        np.testing.assert_allclose(pos[:, col[theirs]], kp[:, MHR70_INDEX[ours]], atol=1e-4)


def test_bvh_takes_the_same_rig_option(tmp_path):
    (path,) = write_bvh(tmp_path / "m.bvh", motion_frames(10), FPS, rig="mixamo")
    m = load_bvh(path)
    assert m.names[0] == "mixamorig:Hips" and "mixamorig:LeftForeArm" in m.names
    fore = m.offsets[m.index("mixamorig:LeftForeArm")]
    np.testing.assert_allclose(fore / np.linalg.norm(fore), [1, 0, 0], atol=1e-5)  # T-pose rest
    loc, _, _ = human_motion(10)
    assert set(RIGS) >= {"mhr70", "mixamo", "unity"}
    with pytest.raises(ValueError, match="unknown rig"):
        solve_bvh(loc, rig="nope")


def test_nothing_to_write(tmp_path):
    out = tmp_path / "none.glb"
    assert write_gltf(out, motion_frames(1), FPS) == []  # one frame: not a motion
    assert not out.exists()


def test_khronos_validator_finds_no_errors(tmp_path):
    wrist_and_hand = [i for i, n in enumerate(MHR70_NAMES) if n.startswith("right_") and
                      (n.endswith("wrist") or any(f in n for f in FINGERS))]
    files = {
        "two_tracks_camera.glb": {"frames": motion_frames(30, tracks=(1, 2), absent={2: range(3, 9)}),
                                  "image_size": (1280, 720)},
        "mixamo.glb": {"frames": motion_frames(10), "rig": "mixamo"},
        "held_joints.glb": {"frames": motion_frames(12, invalid={1: (range(2, 6), wrist_and_hand)})},
        "no_hands.glb": {"frames": motion_frames(10), "hands": False},
    }
    for name, kw in files.items():
        assert write_gltf(tmp_path / name, fps=FPS, **kw)
    report = khronos_validate([tmp_path / n for n in files])
    for path, r in report.items():
        assert r["errors"] == 0 and r["warnings"] == 0, (path, r["messages"])


# ---------------------------------------------------------------------------------------------- MHR mesh
def toy_mhr(seed: int = 0):
    """A small MHR-format model: 127 joints in a branching tree with random pre-rotations; per joint a
    tetrahedron around it, skinned 70/30 to the joint and its parent; model parameters drive the root, the
    rotations of 20 joints and the scale of 5 (all in MHR's cm, Y-up frame)."""
    from instanthmr.body.mhr import MHRAssets, MHRNumpy

    rng = np.random.default_rng(seed)
    j = 127
    parents = np.array([-1] + [int(rng.integers(max(0, i - 4), i)) for i in range(1, j)])
    offsets = rng.normal(0, 6.0, (j, 3)).astype(np.float32)
    offsets[0] = 0.0
    pre = rng.normal(0, 1, (j, 4))
    pre = (pre / np.linalg.norm(pre, axis=1, keepdims=True)).astype(np.float32)
    rot = quaternion_to_matrix(pre)
    g_r, g_t = np.zeros((j, 3, 3)), np.zeros((j, 3))
    for i, p in enumerate(parents):
        g_r[i], g_t[i] = (rot[i], offsets[i]) if p < 0 else (g_r[p] @ rot[i], g_t[p] + g_r[p] @ offsets[i])
    bind = np.tile(np.eye(4), (j, 1, 1))
    bind[:, :3, :3], bind[:, :3, 3] = g_r, g_t
    tet = np.array([[1.5, 0, 0], [0, 1.5, 0], [0, 0, 1.5], [-1, -1, -1]], np.float64)
    verts = (g_t[:, None] + tet[None]).reshape(-1, 3).astype(np.float32)
    faces = np.array([[4 * i + a, 4 * i + b, 4 * i + c] for i in range(j)
                      for a, b, c in ((0, 1, 2), (0, 3, 1), (1, 3, 2), (2, 3, 0))])
    own = np.repeat(np.arange(j), 4)
    idx = np.stack([own, np.maximum(parents[own], 0)], 1)
    w = np.where(parents[own, None] >= 0, [[0.7, 0.3]], [[1.0, 0.0]]).astype(np.float32)
    pt = np.zeros((j * 7, 204), np.float32)
    for k in range(6):
        pt[k, k] = 1.0  # root translation and rotation
    for n, joint in enumerate(range(3, 123, 6)):  # rotations of 20 joints
        for a in range(3):
            pt[7 * joint + 3 + a, 6 + 3 * n + a] = 1.0
    for n, joint in enumerate((5, 17, 40, 77, 101)):
        pt[7 * joint + 6, 136 + n] = 1.0  # log2 scale
    assets = MHRAssets(
        rest_vertices=verts, faces=faces, identity_blendshapes=rng.normal(0, 0.3, (45, len(verts), 3)).astype(np.float32),
        expression_blendshapes=np.zeros((72, len(verts), 3), np.float32), skin_indices=idx, skin_weights=w,
        joint_parents=parents, joint_offsets=offsets, joint_prerotations=pre,
        inverse_bind_pose=np.linalg.inv(bind).astype(np.float32), parameter_transform=pt)
    assets.validate()
    return MHRNumpy(assets, frame="product")


def mhr_frames(n: int = 12, tracks=(1,)) -> list[Frame]:
    """:func:`motion_frames` whose persons carry smoothly changing MHR parameters for :func:`toy_mhr`."""
    frames = motion_frames(n, tracks=tracks)
    rng = np.random.default_rng(1)
    amp, phase = rng.normal(0, 0.6, 204), rng.uniform(0, 6, 204)
    shape = rng.normal(0, 1.0, 45)
    for f in frames:
        for p in f.persons:
            params = amp * np.sin(f.frame_index / 5.0 + phase)
            params[136:] *= 0.5
            p.mhr_params, p.shape_params = params, shape + 0.01 * np.sin(f.frame_index)
    return frames


def expected_mhr_vertices(model, frames, tid: int) -> np.ndarray:
    """``(T, V, 3)`` world vertices the file should show: MHR (track's median shape, no root translation)
    placed by cam_trans, in the glTF world."""
    persons = [next(p for p in f.persons if p.track_id == tid) for f in frames]
    shape = np.median([p.shape_params for p in persons], axis=0)
    params = np.array([p.mhr_params for p in persons])
    params[:, :3] = 0.0
    verts = model(shape, params).vertices.astype(np.float64)
    world = world_keypoints(frames, tid)
    lift = world[0, 0, 1] - frames[0].persons[0].joints_3d_cam[0, 1] * -1.0
    return (verts + np.array([p.cam_trans for p in persons])[:, None]) * FLIP + [0.0, lift, 0.0]


def _trs(t, q, s) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = _quat_matrix(np.asarray(q, np.float64)) * np.asarray(s, np.float64)
    m[:3, 3] = t
    return m


def skinned_vertices(path, mesh_node_name: str, frame: int) -> np.ndarray:
    """glTF linear blend skinning of one mesh node at key ``frame``, done from the file's data alone."""
    doc, binary = read_glb(path)
    nodes = doc["nodes"]
    anims = {}
    for a in doc["animations"]:
        for c in a["channels"]:
            s = a["samplers"][c["sampler"]]
            anims[(c["target"]["node"], c["target"]["path"])] = accessor_array(doc, binary, s["output"])[frame]
    parent = {c: i for i, n in enumerate(nodes) for c in n.get("children", [])}
    cache: dict[int, np.ndarray] = {}

    def world(i: int) -> np.ndarray:
        if i not in cache:
            n = nodes[i]
            local = _trs(anims.get((i, "translation"), n.get("translation", [0, 0, 0])),
                         anims.get((i, "rotation"), n.get("rotation", [0, 0, 0, 1])),
                         anims.get((i, "scale"), n.get("scale", [1, 1, 1])))
            cache[i] = local if i not in parent else world(parent[i]) @ local
        return cache[i]

    node = next(n for n in nodes if n.get("name") == mesh_node_name)
    skin = doc["skins"][node["skin"]]
    ibm = accessor_array(doc, binary, skin["inverseBindMatrices"]).reshape(-1, 4, 4).transpose(0, 2, 1)
    mats = np.stack([world(j) for j in skin["joints"]]) @ ibm
    prim = doc["meshes"][node["mesh"]]["primitives"][0]
    pos = accessor_array(doc, binary, prim["attributes"]["POSITION"]).astype(np.float64)
    out = np.zeros_like(pos)
    sets = sorted(k for k in prim["attributes"] if k.startswith("JOINTS_"))
    for js in sets:
        jj = accessor_array(doc, binary, prim["attributes"][js]).astype(int)
        ww = accessor_array(doc, binary, prim["attributes"][js.replace("JOINTS", "WEIGHTS")]).astype(np.float64)
        for k in range(4):
            m = mats[jj[:, k]]
            out += ww[:, k, None] * (np.einsum("vij,vj->vi", m[:, :3, :3], pos) + m[:, :3, 3])
    return out


def test_mhr_mesh_is_skinned_to_the_predicted_parameters(tmp_path):
    model = toy_mhr()
    frames = mhr_frames(12)
    out = tmp_path / "mhr.glb"
    (rep,) = write_gltf(out, frames, FPS, mhr_model=model)
    assert rep.mhr_mesh
    doc, _ = read_glb(out)
    assert {a["name"] for a in doc["animations"]} == {"track1", "track1_mhr"}
    want = expected_mhr_vertices(model, frames, 1)
    for t in (0, 5, 11):
        np.testing.assert_allclose(skinned_vertices(out, "track1_mhr_mesh", t), want[t], atol=2e-5)


def test_mhr_mesh_needs_the_parameters(tmp_path):
    frames = motion_frames(5)
    for f in frames:
        f.persons[0].mhr_params = None  # a model that does not predict MHR parameters
    (rep,) = write_gltf(tmp_path / "x.glb", frames, FPS, mhr_model=toy_mhr())
    assert not rep.mhr_mesh


def test_khronos_validator_accepts_the_mhr_mesh(tmp_path):
    out = tmp_path / "mhr.glb"
    write_gltf(out, mhr_frames(8, tracks=(1, 2)), FPS, mhr_model=toy_mhr(), image_size=(640, 480))
    (r,) = khronos_validate([out]).values()
    assert r["errors"] == 0 and r["warnings"] == 0, r["messages"]


def test_real_mhr_model_in_the_file(mhr_dir, tmp_path):
    """With the converted MHR model (tools/convert_mhr.py; skips without it): SAM 3D Body's four real outputs
    as a track, the file's skinned mesh against the numpy MHR forward, and the validator."""
    from instanthmr.body.mhr import MHRNumpy
    from instanthmr.cli.convert_mhr import ConvertError, ensure_cached

    try:
        model_path, _ = ensure_cached(3, mhr_dir)
    except ConvertError as e:
        pytest.skip(str(e))
    model = MHRNumpy.from_npz(model_path)
    frames = motion_frames(4)
    for f, sample in zip(frames, sorted((mhr_dir / "samples").glob("*.npz"))):
        with np.load(sample) as z:
            f.persons[0].mhr_params = z["mhr_model_params"].astype(np.float64)
            f.persons[0].shape_params = z["shape_params"].astype(np.float64)
    out = tmp_path / "real_mhr.glb"
    (rep,) = write_gltf(out, frames, FPS, mhr_model=model)
    assert rep.mhr_mesh
    want = expected_mhr_vertices(model, frames, 1)
    for t in range(4):
        np.testing.assert_allclose(skinned_vertices(out, "track1_mhr_mesh", t), want[t], atol=1e-4)
    (r,) = khronos_validate([out]).values()
    assert r["errors"] == 0, r["messages"]


# ---------------------------------------------------------------------------------------------- demo.py
def mediapipe_demo(shared_data, tmp_path, *extra: str, frames: int = 12, video: str = "mmhuman3d_single_person_demo.mp4"):
    """``demo.py`` on a real clip with the offline MediaPipe path (no network weights needed); its exit status."""
    from instanthmr.cli import demo
    from instanthmr.runtime.mediapipe import mediapipe_models_present

    if not mediapipe_models_present():
        pytest.skip("MediaPipe models not fetched (python tools/fetch_models.py mediapipe)")
    return demo.main(["--video", str(shared_data / "videos" / video), "--model", "mediapipe", "--no-spawn", "--quiet",
                      "--threads", "1", "--max-frames", str(frames), *extra])


def test_demo_save_gltf_with_the_mixamo_rig(shared_data, tmp_path, capsys):
    out, bvh = tmp_path / "run.glb", tmp_path / "run.bvh"
    assert mediapipe_demo(shared_data, tmp_path, "--save-gltf", str(out), "--save-bvh", str(bvh), "--rig", "mixamo") == 0
    printed = capsys.readouterr().out
    assert f"wrote gltf: {out}" in printed and "wrote bvh:" in printed
    doc, _ = read_glb(out)
    # the body fit (on by default on the MediaPipe path) adds the skinned MHR body without --mhr-model
    assert [a["name"] for a in doc["animations"]] == ["track1", "track1_mhr"]
    assert any(n.get("name") == "track1_mhr_mesh" and "skin" in n and "mesh" in n for n in doc["nodes"])
    assert "mixamorig:Hips" in _nodes_by_name(doc, 1)
    cam = doc["cameras"][0]["perspective"]
    assert cam["aspectRatio"] == pytest.approx(1080 / 1920)  # the portrait video's camera
    assert load_bvh(tmp_path / "run_track1.bvh").names[0] == "mixamorig:Hips"
    (r,) = khronos_validate([out]).values()
    assert r["errors"] == 0 and r["warnings"] == 0, r["messages"]


def test_demo_rejects_a_bad_stream_target(capsys):
    from instanthmr.cli import demo

    assert demo.main(["--image", "x.jpg", "--stream", "osc:1:2", "--no-spawn"]) == 2
    assert "vmc:HOST:PORT" in capsys.readouterr().err
