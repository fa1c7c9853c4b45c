"""Blender itself (bpy, in its own venv: ``python install.py --extras animation``) imports the BVH and glTF
files the project writes; the bone heads it shows at several frames are compared with the keypoints the
files were made from. Tolerance: 1 mm per joint coordinate (the files hold float32 / 5-6 decimals; the
measured worst case is in docs/animation.md). Skips when no Python with bpy is found.

``INSTANTHMR_DOCS_IMAGES=1`` also saves the picture of the real-clip test as docs/img/animation_blender.png.
"""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest
from test_gltf import (
    FEET,
    FPS,
    REPO,
    blender_python,
    expected_mhr_vertices,
    mhr_frames,
    motion_frames,
    toy_mhr,
    world_keypoints,
)

from instanthmr.core.skeleton import MHR70_INDEX
from instanthmr.outputs.bvh import write_bvh
from instanthmr.outputs.gltf import write_gltf

TOL_M = 1e-3
PROBE = REPO / "tests" / "blender_probe.py"


def blender(path, frames, tmp_path, render=None, render_frame=1, mesh_suffix="", fps=FPS, view="orbit",
            size=(640, 400), ghosts=()) -> dict:
    py = blender_python()
    if py is None:
        pytest.skip("no Python with bpy (python install.py --extras animation, or set INSTANTHMR_BPY_PYTHON)")
    out = tmp_path / f"{path.name}.probe.json"
    cmd = [str(py), str(PROBE), "--input", str(path), "--fps", str(fps), "--frames", ",".join(map(str, frames)),
           "--out", str(out)]
    if render:
        cmd += ["--render", str(render), "--render-frame", str(render_frame), "--render-view", view,
                "--render-size", f"{size[0]}x{size[1]}"]
        if ghosts:
            cmd += ["--render-ghosts", ",".join(map(str, ghosts))]
    if mesh_suffix:
        cmd += ["--mesh-suffix", mesh_suffix]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(out.read_text())


def to_y_up(p) -> np.ndarray:
    """Blender world (Z up) -> the files' Y-up axes: Blender's (x, y, z) is the file's (x, -z, y)."""
    p = np.asarray(p, np.float64)
    return np.stack([p[..., 0], p[..., 2], -p[..., 1]], axis=-1)


def worst_error(arm: dict, want: np.ndarray, frame_of, rename=lambda n: n, min_joints: int = 60) -> float:
    """Largest |Blender head - keypoint| over the bones named like an MHR70 joint and the probed frames."""
    worst, compared = 0.0, 0
    for ours in MHR70_INDEX:
        name = rename(ours)
        if name not in arm["bones"]:
            continue
        b = arm["bones"].index(name)
        for frame, heads in arm["heads"].items():
            got = to_y_up(heads[b])
            worst = max(worst, float(np.abs(got - want[frame_of(int(frame)), MHR70_INDEX[ours]]).max()))
            compared += 1
    assert compared >= min_joints * len(arm["heads"])  # the joints expected, at every probed frame
    return worst


@pytest.fixture(scope="module")
def moving(tmp_path_factory):
    d = tmp_path_factory.mktemp("blender")
    frames = motion_frames(30, tracks=(1, 2), absent={2: range(12, 16)})
    return d, frames


def test_blender_imports_the_glb_and_its_bones_follow_the_keypoints(moving, tmp_path):
    d, frames = moving
    path = d / "motion.glb"
    write_gltf(path, frames, FPS, image_size=(1280, 720))
    probe_frames = [0, 7, 12, 20, 29]  # glTF time t lands on Blender frame t * fps
    render = tmp_path / "two_tracks.png"
    res = blender(path, probe_frames, tmp_path, render=render, render_frame=20)
    assert set(res["armatures"]) == {"track1", "track2"} and res["fps"] == pytest.approx(FPS)
    assert sorted(res["actions"]) == ["track1", "track2"]
    assert ["video_camera", "CAMERA"] in res["objects"]
    errs = {}
    for tid in (1, 2):
        want = world_keypoints(frames, tid)
        if tid == 2:  # not seen in frames 12-15: the file holds frame 11 there
            want[12:16] = want[11]
        errs[tid] = worst_error(res["armatures"][f"track{tid}"], want, frame_of=lambda f: f)
    assert max(errs.values()) < TOL_M, errs
    print(f"\nglb: worst Blender bone head vs keypoint {max(errs.values()) * 1000:.4f} mm")
    png = render.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000  # a picture with something in it


def test_blender_imports_the_bvh_and_its_bones_follow_the_keypoints(moving, tmp_path):
    d, frames = moving
    paths = write_bvh(d / "motion.bvh", frames, FPS)
    assert [p.name for p in paths] == ["motion_track1.bvh", "motion_track2.bvh"]
    res = blender(paths[0], [1, 8, 21, 30], tmp_path)  # BVH frame i lands on Blender frame i + 1
    (arm,) = res["armatures"].values()
    # The BVH world (docs/animation.md): the camera frame turned about X, moved so that frame 0's pelvis is
    # above the origin and frame 0's lowest foot joint is on the floor.
    kp = world_keypoints(frames, 1)
    pelvis0 = 0.5 * (kp[0, MHR70_INDEX["left_hip"]] + kp[0, MHR70_INDEX["right_hip"]])
    want = kp - [pelvis0[0], kp[0, FEET, 1].min(), pelvis0[2]]
    err = worst_error(arm, want, frame_of=lambda f: f - 1)
    assert err < TOL_M
    print(f"\nbvh: worst Blender bone head vs keypoint {err * 1000:.4f} mm")


def test_blender_mixamo_names_drop_onto_a_t_pose_rig(moving, tmp_path):
    d, frames = moving
    path = d / "mixamo.glb"
    write_gltf(path, frames, FPS, rig="mixamo")
    res = blender(path, [0, 15, 29], tmp_path)
    arm = res["armatures"]["track1"]
    assert all(b.startswith("mixamorig:") for b in arm["bones"])
    # T-pose rest: the joints on the limbs' chains are exact; face and foot points (fitted as rigid groups
    # onto a template) are compared with the looser bound of docs/animation.md.
    names = {"neck": "Neck", "left_shoulder": "LeftArm", "left_elbow": "LeftForeArm", "left_wrist": "LeftHand",
             "right_hip": "RightUpLeg", "right_knee": "RightLeg", "right_ankle": "RightFoot",
             "right_index_tip": "RightHandIndex4"}
    err = worst_error({"bones": [b.replace("mixamorig:", "") for b in arm["bones"]], "heads": arm["heads"]},
                      world_keypoints(frames, 1), frame_of=lambda f: f, rename=lambda n: names.get(n, "?"),
                      min_joints=len(names))
    assert err < TOL_M


def test_blender_skins_the_mhr_mesh_like_mhr(tmp_path):
    model = toy_mhr()
    frames = mhr_frames(12)
    path = tmp_path / "mhr.glb"
    write_gltf(path, frames, FPS, mhr_model=model)
    res = blender(path, [0, 6, 11], tmp_path, mesh_suffix="_mhr_mesh")
    got = res["meshes"]["track1_mhr_mesh"]
    want = expected_mhr_vertices(model, frames, 1)
    worst = max(float(np.abs(to_y_up(v) - want[int(f)]).max()) for f, v in got.items())
    assert worst < TOL_M
    print(f"\nMHR mesh: worst Blender vertex vs MHR forward {worst * 1000:.4f} mm")


REAL_MHR_TOL_M = 1e-4  # 0.1 mm; measured worst 0.0094 mm at LOD 6, 0.0095 mm at LOD 3 (float32 in the file)


def test_blender_skins_the_real_mhr_mesh_like_mhr(mhr_dir, tmp_path):
    """The converted MHR model (LOD 6; skips without it) driven by SAM 3D Body's four real outputs, one per
    frame: Blender's skinned vertices against the numpy MHR forward."""
    if blender_python() is None:
        pytest.skip("no Python with bpy (python install.py --extras animation, or set INSTANTHMR_BPY_PYTHON)")
    from test_mhr_layer import _converted

    from instanthmr.body.mhr import MHRNumpy

    model = MHRNumpy.from_npz(_converted(6, mhr_dir)[0])
    samples = sorted((mhr_dir / "samples").glob("*.npz"))
    assert len(samples) == 4
    frames = motion_frames(len(samples))
    for f, sample in zip(frames, samples):
        with np.load(sample) as z:
            f.persons[0].mhr_params = z["mhr_model_params"].astype(np.float64)
            f.persons[0].shape_params = z["shape_params"].astype(np.float64)
    path = tmp_path / "real_mhr.glb"
    (rep,) = write_gltf(path, frames, FPS, mhr_model=model)
    assert rep.mhr_mesh
    res = blender(path, list(range(len(frames))), tmp_path, mesh_suffix="_mhr_mesh")
    got = res["meshes"]["track1_mhr_mesh"]
    want = expected_mhr_vertices(model, frames, 1)
    assert sorted(map(int, got)) == list(range(len(frames))) and np.shape(got["0"]) == want.shape[1:]
    err = np.stack([np.abs(to_y_up(got[str(t)]) - want[t]) for t in range(len(frames))])
    print(f"\nreal MHR LOD 6 ({want.shape[1]} vertices, {len(frames)} bodies): worst Blender vertex coordinate vs "
          f"MHR forward {err.max() * 1000:.4f} mm")
    assert err.max() < REAL_MHR_TOL_M


def test_demo_video_into_blender(shared_data, tmp_path):
    """A real clip through ``demo.py --save-gltf --save-npz`` (MediaPipe path), imported by Blender: its bone
    heads against the keypoints the same run wrote to the NPZ (on real data the bones are not rigid, so this
    measures the fixed-length skeleton's fit, not only the file), and the docs picture."""
    import cv2
    from test_gltf import mediapipe_demo

    from instanthmr.outputs.files import read_npz_tracks

    glb, npz = tmp_path / "clip.glb", tmp_path / "clip.npz"
    # --no-ground: the camera frame, so the file is compared with the run's camera-frame keypoints
    assert mediapipe_demo(shared_data, tmp_path, "--save-gltf", str(glb), "--save-npz", str(npz), "--no-ground",
                          frames=40) == 0
    fps = 12.0  # mmhuman3d_single_person_demo.mp4
    track = read_npz_tracks(npz)[1]
    kp = track["joints_3d_cam"].astype(np.float64) * [1.0, -1.0, -1.0]  # Y up
    lows = np.nanmin(kp[:, FEET, 1], axis=1)
    kp[..., 1] -= np.median(lows)
    shot, frame = tmp_path / "video_view.png", 20
    res = blender(glb, [0, 10, 20, 30, 39], tmp_path, render=shot, render_frame=frame, fps=fps,
                  view="video", size=(270, 480))
    arm = res["armatures"]["track1"]
    errs = []
    for name, b in zip(arm["bones"], range(len(arm["bones"]))):
        if name in MHR70_INDEX and name != "neck":  # the MediaPipe path has no neck point (made between the shoulders)
            for f, heads in arm["heads"].items():
                want = kp[int(f), MHR70_INDEX[name]]
                if np.isfinite(want).all():
                    errs.append(np.linalg.norm(to_y_up(heads[b]) - want))
    errs = np.array(errs)
    print(f"\nreal clip: Blender bone heads vs the run's keypoints over {len(errs)} joint-frames: "
          f"median {np.median(errs) * 1000:.1f} mm, 90th percentile {np.percentile(errs, 90) * 1000:.1f} mm, "
          f"max {errs.max() * 1000:.1f} mm")
    assert len(errs) >= 5 * 20 and np.median(errs) < 0.03
    orbit = tmp_path / "orbit.png"
    blender(glb, [frame], tmp_path, render=orbit, render_frame=frame, fps=fps, size=(480, 480))
    cap = cv2.VideoCapture(str(shared_data / "videos" / "mmhuman3d_single_person_demo.mp4"))
    cap.set(cv2.CAP_PROP_POS_FRAMES, frame)
    ok, image = cap.read()
    cap.release()
    assert ok
    image = cv2.resize(image, (270, 480), interpolation=cv2.INTER_AREA)
    over = cv2.imread(str(shot), cv2.IMREAD_UNCHANGED)
    assert over.shape == (480, 270, 4) and (over[..., 3] > 0).mean() > 0.01  # the skeleton is in the picture
    alpha = over[..., 3:] / 255.0
    picture = np.hstack([(image * (1 - alpha) + over[..., :3] * alpha).astype(np.uint8), cv2.imread(str(orbit))])
    out = tmp_path / "animation_blender.png"
    cv2.imwrite(str(out), picture, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if os.environ.get("INSTANTHMR_DOCS_IMAGES"):  # a small PNG for the docs: 256 colours
        from PIL import Image

        (REPO / "docs" / "img").mkdir(exist_ok=True)
        Image.open(out).convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(
            REPO / "docs" / "img" / "animation_blender.png", optimize=True)


def test_blender_grounded_walk_stands_on_the_floor(shared_data, tmp_path):
    """A mocap walk through the grounded-motion stage (tests/test_export_ground.py), written as .glb and BVH
    and imported by Blender: the heels and big toes Blender shows while they touch the floor are on its
    ground plane (z = 0, plus their 2 cm resting height), and the root walks. The docs picture
    (``INSTANTHMR_DOCS_IMAGES=1``): Blender's render of three moments of the walk on a floor plane."""
    from test_export_ground import bvh_joint_positions, mocap_walk
    from test_gltf import glb_joint_positions

    frames, world, contact = mocap_walk(shared_data)
    glb = tmp_path / "walk.glb"
    write_gltf(glb, frames, FPS, image_size=(1920, 1080))
    (bvh,) = write_bvh(tmp_path / "walk.bvh", frames, FPS)
    sole = {"left_heel": 0, "left_big_toe_tip": 1, "right_heel": 3, "right_big_toe_tip": 4}
    probe = list(range(0, len(frames), 5))
    for path, first in ((glb, 0), (bvh, 1)):  # BVH frame i lands on Blender frame i + 1
        res = blender(path, [f + first for f in probe], tmp_path)
        (arm,) = res["armatures"].values()
        heights, pelvis = [], []
        for f in probe:
            heads = np.array(arm["heads"][str(f + first)])
            pelvis.append(heads[arm["bones"].index("pelvis")])
            for name, k in sole.items():
                if contact[f, k]:
                    heights.append(heads[arm["bones"].index(name), 2] - 0.02)  # Blender: Z up
        heights, pelvis = np.array(heights), np.array(pelvis)
        if path == glb:
            fk, col, _ = glb_joint_positions(glb, 1)
            want = fk[probe, col["pelvis"]]
        else:
            fk, names = bvh_joint_positions(bvh)
            want = fk[probe, names.index("pelvis")]
        assert np.abs(to_y_up(pelvis) - want).max() < TOL_M  # Blender plays the file's root path
        truth = world[probe][:, [MHR70_INDEX["left_hip"], MHR70_INDEX["right_hip"]]].mean(1)
        assert np.abs(want - truth).max() < 0.05  # the world root, moved by what plants the feet
        print(f"\n{path.suffix}: contacting soles in Blender over {len(heights)} point-frames: median "
              f"{np.median(heights) * 1000:.1f} mm, 90th percentile |h| "
              f"{np.percentile(np.abs(heights), 90) * 1000:.1f} mm, lowest {heights.min() * 1000:.1f} mm; "
              f"root travel {np.ptp(pelvis[:, 0]):.2f} m")
        assert len(heights) >= 20 and abs(np.median(heights)) < 0.01 and np.percentile(np.abs(heights), 90) < 0.03
        assert np.linalg.norm(pelvis[-1, :2] - pelvis[0, :2]) > 2.0  # root motion: the walk's ~3 m
    shot = tmp_path / "ground_blender.png"
    last = len(frames) - 1
    blender(glb, [last], tmp_path, render=shot, render_frame=last, size=(960, 360), view="floor",
            ghosts=range(0, last, 15))
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000  # a picture with something in it
    if os.environ.get("INSTANTHMR_DOCS_IMAGES"):  # a small PNG for the docs: 256 colours
        from PIL import Image

        Image.open(shot).convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(
            REPO / "docs" / "img" / "ground_blender.png", optimize=True)


def test_demo_grounded_video_into_blender(shared_data, tmp_path):
    """A real walking clip (``sports2d_demo.mp4``, 90 frames, MediaPipe path) through ``demo.py --save-gltf
    --save-npz`` with grounded motion (the default), imported by Blender: the main walker's heels and big toes
    stand on Blender's ground plane while the run says they touch the floor. The docs picture
    (``INSTANTHMR_DOCS_IMAGES=1``): every track at six moments on a floor plane."""
    from test_gltf import mediapipe_demo

    from instanthmr.outputs.files import read_npz_tracks
    from instanthmr.video.ground import CONTACT_NAMES

    glb, npz = tmp_path / "walk.glb", tmp_path / "walk.npz"
    assert mediapipe_demo(shared_data, tmp_path, "--save-gltf", str(glb), "--save-npz", str(npz), "--no-hands",
                          frames=90, video="sports2d_demo.mp4") == 0
    tracks = read_npz_tracks(npz)
    tid = max(tracks, key=lambda t: tracks[t]["contacts"].sum())  # the walker whose feet touch the floor
    track = tracks[tid]
    probe = [int(f) for f in track["frame_index"]]  # glTF time t lands on frame t x fps: the source frame
    res = blender(glb, probe, tmp_path, fps=30.0)
    arm = res["armatures"][f"track{tid}"]
    heights = []
    for k in (0, 1, 3, 4):  # heels and big toes, 2 cm above the floor when flat on it
        b = arm["bones"].index(CONTACT_NAMES[k].replace("big_toe", "big_toe_tip"))
        heights += [arm["heads"][str(f)][b][2] - 0.02 for f, c in zip(probe, track["contacts"][:, k]) if c]
    heights = np.array(heights)
    print(f"\nreal walk, track {tid}: contacting soles in Blender over {len(heights)} point-frames: median "
          f"{np.median(heights) * 1000:.1f} mm, 90th percentile |h| {np.percentile(np.abs(heights), 90) * 1000:.1f} mm")
    assert len(heights) >= 20 and abs(np.median(heights)) < 0.015 and np.percentile(np.abs(heights), 90) < 0.06
    shot = tmp_path / "ground_blender_video.png"
    blender(glb, [89], tmp_path, render=shot, render_frame=89, size=(960, 400), view="floor",
            ghosts=range(0, 89, 15))
    if os.environ.get("INSTANTHMR_DOCS_IMAGES"):
        from PIL import Image

        Image.open(shot).convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(
            REPO / "docs" / "img" / "ground_blender_video.png", optimize=True)
