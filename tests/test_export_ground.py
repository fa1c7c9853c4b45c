"""BVH and glTF in the grounded world frame: a real mocap walk (``../shared/data/mocap``, CMU 02_01) seen by a
virtual camera, through the grounded-motion stage, written and read back: contacting feet on the floor
(y = 0), root motion present, and absent with ``in_place``; frames before the floor is known placed without
a jump."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from test_gltf import glb_joint_positions

from instanthmr.core.mocap import load_bvh
from instanthmr.core.skeleton import MHR70_INDEX as I
from instanthmr.outputs.bvh import write_bvh
from instanthmr.outputs.gltf import read_glb, write_gltf
from instanthmr.outputs.rig import fit_world, remove_root_motion
from instanthmr.runtime.hmr import HMRPrediction
from instanthmr.runtime.pipeline import FrameResult
from instanthmr.video.ground import CONTACT_NAMES, FOOT_JOINTS, REST_HEIGHT_M
from instanthmr.video.ground_stage import GroundStage

FPS = 30.0
SOLE = [0, 1, 3, 4]  # heels and big toes in CONTACT_NAMES order
WH = (1920, 1080)


def bvh_joint_positions(path) -> tuple[np.ndarray, list[str]]:
    """World joint positions ``(T, J, 3)`` of a BVH by forward kinematics (ZXY Euler, degrees) and the names."""
    from instanthmr.core.rotations import axis_rotation

    m = load_bvh(path)
    pos = np.zeros((m.num_frames, len(m.names), 3))
    rot = np.zeros((m.num_frames, len(m.names), 3, 3))
    col = 0
    for j, (p, chans) in enumerate(zip(m.parents, m.channels)):
        vals = {c: m.frames[:, col + k] for k, c in enumerate(chans)}
        col += len(chans)
        r = np.tile(np.eye(3), (m.num_frames, 1, 1))
        for c in chans:
            if c.endswith("rotation"):
                r = r @ axis_rotation("xyz".index(c[0].lower()), np.radians(vals[c]))
        t = (np.stack([vals[c] for c in ("Xposition", "Yposition", "Zposition")], -1) if "Xposition" in vals
             else np.broadcast_to(m.offsets[j], (m.num_frames, 3)))
        if p < 0:
            pos[:, j], rot[:, j] = t, r
        else:
            pos[:, j] = pos[:, p] + np.einsum("tij,tj->ti", rot[:, p], t)
            rot[:, j] = rot[:, p] @ r
    return pos, list(m.names)


@pytest.fixture(scope="module")
def walk(shared_data):
    return mocap_walk(shared_data)


def mocap_walk(shared_data):
    """CMU 02_01 (walking, 86 frames at 30 fps: 2.9 s, 3.2 m) as one track seen side-on by a 1.6 m high
    camera (focal = the image diagonal, 3 mm joint noise), through the grounded-motion stage over the whole
    file: the frames, the world joints ``(T, 70, 3)`` and the contacts ``(T, 6)`` (CONTACT_NAMES order)."""
    from instanthmr.cli.eval_ground import camera_pose, load_takes

    takes, _ = load_takes(shared_data / "mocap")
    take = next((t for t in takes if "02_01_walk" in t.name), None)
    if take is None:
        pytest.skip("mocap/cmu_bvh/02_01_walk.bvh not in the shared data")
    rot, centre = camera_pose(take, 1.6, 5.0, "side")
    cam = (take.world - centre) @ rot.T + np.random.default_rng(0).normal(0, 0.003, take.world.shape)
    focal, pp = float(np.hypot(*WH)), np.array(WH, np.float64) / 2
    valid = np.isfinite(cam).all(-1)
    frames = []
    for t in range(len(cam)):
        c = np.where(valid[t, :, None], cam[t], 0.0)
        root = c[[I["left_hip"], I["right_hip"]]].mean(0)
        uv = focal * c[:, :2] / np.where(valid[t, :, None], c[:, 2:3], 1.0) + pp
        p = HMRPrediction(box=np.zeros(4), score=1.0, joints_3d_local=c - root, joints_3d_cam=c,
                          joints_2d=uv, cam_trans=root, focal_length=focal,
                          principal_point=pp, mhr_params=None, shape_params=None, joints_valid=valid[t], track_id=1)
        frames.append(FrameResult(persons=[p], detector_ms=0, hmr_ms=0, total_ms=0, detector_ran=True,
                                  frame_index=t, time_s=t / FPS))
    out = GroundStage(FPS).offline(frames)
    world = np.stack([f.persons[0].joints_3d_world for f in out]).astype(np.float64)
    contact = np.array([[f.persons[0].contacts[n]["contact"] for n in CONTACT_NAMES] for f in out])
    assert contact[:, SOLE].mean() > 0.3 and out[0].ground is not None
    return out, world, contact


def _sole_heights(pos, names, contact) -> np.ndarray:
    """Heights (m) of the heels and big toes over the frames where they touch the floor, minus their resting
    height (2 cm: MHR70's heel and toe points sit on the sole's surface)."""
    cols = [names.index(CONTACT_NAMES[k].replace("big_toe", "big_toe_tip")) for k in SOLE]
    return np.concatenate([pos[contact[:, k], c, 1] - REST_HEIGHT_M[k] for k, c in zip(SOLE, cols)])


@pytest.mark.parametrize("kind", ["glb", "bvh"])
def test_contacting_feet_stand_on_the_floor_with_root_motion(walk, kind, tmp_path):
    frames, world, contact = walk
    for in_place in (False, True):
        if kind == "glb":
            write_gltf(tmp_path / "w.glb", frames, FPS, image_size=WH, in_place=in_place)
            pos, col, _ = glb_joint_positions(tmp_path / "w.glb", 1)
            names = sorted(col, key=col.get)
        else:
            (path,) = write_bvh(tmp_path / "w.bvh", frames, FPS, in_place=in_place)
            pos, names = bvh_joint_positions(path)
        h = _sole_heights(pos, names, contact)
        assert abs(np.median(h)) < 0.01, f"{kind}: contacting soles {np.median(h) * 1e3:.1f} mm off the floor"
        # the files' bones are rigid (median lengths), the stage's are not: 2 cm at the 90th percentile
        assert np.percentile(np.abs(h), 90) < 0.03 and h.min() > -0.05
        pelvis = pos[:, names.index("pelvis")]
        truth = world[:, [I["left_hip"], I["right_hip"]]].mean(1)
        # the root is the world pelvis moved by what plants the rigid skeleton's feet (rig.plant_feet): cm
        assert np.abs(pelvis[:, 1] - truth[:, 1]).max() < 0.05
        travel = np.linalg.norm(pelvis[-1, [0, 2]] - pelvis[0, [0, 2]])
        if in_place:
            assert np.abs(pelvis[:, [0, 2]]).max() < 1e-6  # in place: no horizontal root motion
        else:  # the root follows the world joints: the walk's ~3 m
            assert travel > 2.0 and np.abs(pelvis - truth).max() < 0.05
    if kind == "glb":
        doc, _ = read_glb(tmp_path / "w.glb")
        assert doc["asset"]["extras"]["frame"] == "world"


def test_frames_before_the_floor_hold_the_first_world_placement(walk, tmp_path):
    """The first 30 frames without world joints (as live, before the floor is known): they are the camera's
    motion put where the world motion starts (no jump at frame 30), feet still near the floor."""
    frames, world, contact = walk
    cut = [dataclasses.replace(f, persons=[dataclasses.replace(f.persons[0], joints_3d_world=None, contacts=None)],
                               ground=None) if i < 30 else f for i, f in enumerate(frames)]
    write_gltf(tmp_path / "w.glb", cut, FPS, image_size=WH)
    pos, col, _ = glb_joint_positions(tmp_path / "w.glb", 1)
    pelvis = pos[:, col["pelvis"]]
    steps = np.linalg.norm(np.diff(pelvis, axis=0), axis=1)
    assert steps[29] < 3 * np.median(steps) + 0.01  # no jump where the world joints start
    truth = world[:, [I["left_hip"], I["right_hip"]]].mean(1)
    assert np.abs(pelvis[:30] - truth[:30]).max() < 0.1  # close to where the stage would have put them
    feet = [col[n] for n in ("left_heel", "right_heel")]
    # nothing pins the feet before the floor is known (no contacts, no lock): within a few cm of it
    assert np.abs(pos[:30, feet, 1].min(1) - 0.02).max() < 0.07


def test_without_ground_the_files_stay_in_the_camera_frame(walk, tmp_path):
    frames, _, _ = walk
    plain = [dataclasses.replace(f, persons=[dataclasses.replace(p, joints_3d_world=None, contacts=None)
                                             for p in f.persons], ground=None) for f in frames]
    write_gltf(tmp_path / "c.glb", plain, FPS, image_size=WH)
    doc, _ = read_glb(tmp_path / "c.glb")
    assert doc["asset"]["extras"]["frame"] == "camera"
    write_gltf(tmp_path / "w.glb", frames, FPS, image_size=WH, world=False)  # world=False: the same
    assert (tmp_path / "w.glb").read_bytes() == (tmp_path / "c.glb").read_bytes()


def test_fit_world_recovers_a_rigid_transform_and_holds_it_before_the_floor():
    rng = np.random.default_rng(1)
    cam = rng.normal(0, 0.5, (6, 70, 3)) + [0, 0, 4]
    a = np.radians(20.0)
    rot = np.array([[1, 0, 0], [0, -np.cos(a), -np.sin(a)], [0, np.sin(a), -np.cos(a)]])  # a proper rotation
    off = np.array([[0.1 * t, 1.5, 3.0] for t in range(6)])
    world = cam @ rot.T + off[:, None]
    world[:2] = np.nan  # the floor not known yet
    fit = fit_world(world, cam)
    np.testing.assert_allclose(fit.rotation, rot, atol=1e-9)
    np.testing.assert_allclose(fit.offset[2:], off[2:], atol=1e-9)
    np.testing.assert_allclose(fit.offset[:2], off[[2, 2]], atol=1e-9)  # the first world frame's placement
    assert fit_world(np.full_like(cam, np.nan), cam) is None
    np.testing.assert_array_equal(remove_root_motion([[1.0, 0.9, 2.0]]), [[0.0, 0.9, 0.0]])


def test_in_place_flag_is_shared_by_the_demo_and_batch():
    from instanthmr.cli import batch, demo

    args = demo.build_parser().parse_args(["--video", "clip.mp4", "--save-bvh", "m.bvh", "--in-place"])
    assert demo.config_from_flags(args).in_place
    assert not demo.config_from_flags(demo.build_parser().parse_args(["--video", "clip.mp4"])).in_place
    args = batch.build_parser().parse_args(["clips/", "--out", "runs/x", "--in-place"])
    assert batch.batch_config(args).run.in_place


def test_grounded_mhr_mesh_camera_and_validator(tmp_path):
    """World joints that are a rigid transform of the camera frame (no contacts): the skeleton, the skinned
    MHR mesh and the video camera all land in that world; the Khronos validator accepts the file."""
    from test_gltf import FLIP, khronos_validate, mhr_frames, skinned_vertices, toy_mhr

    from instanthmr.core.rotations import axis_rotation

    rot = axis_rotation(1, np.radians(30.0)) @ np.diag(FLIP)  # camera -> world: a proper rotation
    off = np.array([1.0, 0.2, -2.0])
    frames = mhr_frames(12)
    for f in frames:
        f.persons[0].joints_3d_world = f.persons[0].joints_3d_cam @ rot.T + off
    model = toy_mhr()
    out = tmp_path / "world.glb"
    write_gltf(out, frames, FPS, mhr_model=model, image_size=(640, 480))
    pos, col, _ = glb_joint_positions(out, 1)
    want = np.array([f.persons[0].joints_3d_world for f in frames])
    np.testing.assert_allclose(pos[:, col["left_knee"]], want[:, I["left_knee"]], atol=1e-5)
    persons = [f.persons[0] for f in frames]
    params = np.array([p.mhr_params for p in persons])
    params[:, :3] = 0.0
    verts = model(np.median([p.shape_params for p in persons], axis=0), params).vertices.astype(np.float64)
    mesh = (verts + np.array([p.cam_trans for p in persons])[:, None]) @ rot.T + off
    for t in (0, 6, 11):
        np.testing.assert_allclose(skinned_vertices(out, "track1_mhr_mesh", t), mesh[t], atol=3e-5)
    doc, _ = read_glb(out)
    cam = next(n for n in doc["nodes"] if n.get("name") == "video_camera")
    np.testing.assert_allclose(cam["translation"], off, atol=1e-6)  # the camera centre: camera-frame origin
    (r,) = khronos_validate([out]).values()
    assert r["errors"] == 0 and r["warnings"] == 0, r


def test_short_grounded_tracks_export(tmp_path):
    """Two- and three-frame tracks with world joints and contacts (the smoothing of the foot planting must
    keep the track's length)."""
    from test_gltf import motion_frames

    for n in (2, 3):
        frames = motion_frames(n)
        for f in frames:
            p = f.persons[0]
            p.joints_3d_world = p.joints_3d_cam * [1.0, -1.0, -1.0] + [0.0, 1.0, 0.0]
            p.contacts = {name: {"contact": True, "confidence": 1.0} for name in CONTACT_NAMES}
        (path,) = write_bvh(tmp_path / f"s{n}.bvh", frames, FPS)
        assert load_bvh(path).num_frames == n
        assert write_gltf(tmp_path / f"s{n}.glb", frames, FPS)[0].frames == n


def test_demo_streams_the_world_and_writes_in_place(shared_data, tmp_path, monkeypatch):
    """``demo.py --stream vmc --save-bvh --in-place`` on a real clip, offline smoothing (the headless default):
    the stream gets world joints from a live ground stage of its own (the files' is two-sided, after the
    run), and the BVH's root has no horizontal motion."""
    from test_gltf import mediapipe_demo
    from test_vmc import receiver

    from instanthmr.outputs import vmc

    seen = []
    write = vmc.VMCStreamer.write

    def spy(self, frame, result, meshes=None):
        seen.append(any(getattr(p, "joints_3d_world", None) is not None for p in result.persons))
        return write(self, frame, result, meshes)

    monkeypatch.setattr(vmc.VMCStreamer, "write", spy)
    rx = receiver()
    bvh = tmp_path / "run.bvh"
    assert mediapipe_demo(shared_data, tmp_path, "--stream", f"vmc:127.0.0.1:{rx.getsockname()[1]}",
                          "--save-bvh", str(bvh), "--in-place", "--no-hands", frames=20,
                          video="sports2d_demo.mp4") == 0
    rx.close()
    assert len(seen) == 20 and sum(seen) >= 10  # world joints once the (provisional) floor is there
    paths = sorted(tmp_path.glob("run_track*.bvh"))
    assert paths
    for path in paths:
        m = load_bvh(path)
        assert np.abs(m.frames[:, [0, 2]]).max() == 0.0 and np.ptp(m.frames[:, 1]) > 0.0  # height kept


def test_a_track_without_world_joints_joins_the_file_world(tmp_path):
    """Track 2 never had world joints (e.g. it ended before the floor was known): the .glb puts it in track 1's
    world by track 1's camera -> world fit, so both stand in one frame."""
    from test_gltf import FLIP, motion_frames

    from instanthmr.core.rotations import axis_rotation

    rot = axis_rotation(1, np.radians(-20.0)) @ np.diag(FLIP)
    off = np.array([0.5, 0.1, 1.0])
    frames = motion_frames(8, tracks=(1, 2))
    for f in frames:
        f.persons[0].joints_3d_world = f.persons[0].joints_3d_cam @ rot.T + off
    write_gltf(tmp_path / "two.glb", frames, FPS)
    for tid in (1, 2):
        pos, col, _ = glb_joint_positions(tmp_path / "two.glb", tid)
        cam = np.array([next(p for p in f.persons if p.track_id == tid).joints_3d_cam for f in frames])
        np.testing.assert_allclose(pos[:, col["right_elbow"]], cam[:, I["right_elbow"]] @ rot.T + off, atol=1e-5)
