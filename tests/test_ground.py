"""Grounded motion (instanthmr/video/ground.py, ground_stage.py): floor fit, contacts, foot lock, world frame,
and the fields the files carry. Synthetic data only (a walking stick figure on a known floor)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from instanthmr.core.geometry import focal_from_fov
from instanthmr.core.skeleton import MHR70_INDEX as I
from instanthmr.outputs.files import GROUND_CSV_COLUMNS, read_npz_tracks, write_csv, write_json, write_npz
from instanthmr.runtime.hmr import HMRPrediction
from instanthmr.runtime.pipeline import FrameResult
from instanthmr.video.ground import (
    CONTACT_NAMES,
    FOOT_JOINTS,
    REST_HEIGHT_M,
    ContactConfig,
    ContactDetector,
    Floor,
    FloorEstimator,
    FootLock,
    WorldFrame,
    angle_deg,
    contacts_offline,
    fit_plane_weighted,
    two_bone_ik,
)
from instanthmr.video.ground_stage import GroundStage

FPS = 30.0
TILT = np.radians(12.0)  # camera pitched down 12 degrees
CAM_HEIGHT = 1.7


def camera_rotation() -> np.ndarray:
    """World (Y up) -> camera (y down, z forward) for a camera pitched down by TILT, looking along world -Z."""
    c, s = np.cos(TILT), np.sin(TILT)
    z = np.array([0.0, -s, -c])  # forward, down a little
    x = np.array([1.0, 0.0, 0.0])
    y = np.cross(z, x)
    return np.stack([x, y, z])


def standing_body(x: float, z: float, feet=((0.0, 0.0), (0.0, 0.0))) -> np.ndarray:
    """MHR70 joints (world, Y up, m) of a person whose hips are at (x, z); ``feet``: per side (left, right)
    the foot's x offset from the hips and its lift above the floor (m)."""
    j = np.full((70, 3), np.nan)
    for (side, dz), (fx, lift) in zip((("left", 0.1), ("right", -0.1)), feet):
        j[I[f"{side}_hip"]] = [x, 0.9, z + dz]
        j[I[f"{side}_knee"]] = [x + fx / 2 + 0.03, 0.5 + lift / 2, z + dz]
        j[I[f"{side}_ankle"]] = [x + fx, 0.08 + lift, z + dz]
        j[I[f"{side}_heel"]] = [x + fx - 0.05, 0.02 + lift, z + dz]
        j[I[f"{side}_big_toe_tip"]] = [x + fx + 0.15, 0.02 + lift, z + dz]
        j[I[f"{side}_small_toe_tip"]] = [x + fx + 0.13, 0.02 + lift, z + dz + 0.03 * np.sign(dz)]
        j[I[f"{side}_shoulder"]] = [x, 1.45, z + dz * 1.8]
    return j


def _foot(t: float, start: float, speed: float) -> tuple[float, float]:
    """World x and lift of a foot that swings 0.3 s from ``start`` every second and stands otherwise, under
    hips moving at ``speed`` m/s (it lands 0.15 m ahead of them)."""
    k = np.floor(t - start)
    u = t - start - k
    land = speed * (k + start + 0.3) + 0.15 * np.sign(speed)
    if u >= 0.3:
        return land, 0.0
    prev = land - speed
    return prev + (land - prev) * u / 0.3, 0.1 * np.sin(np.pi * u / 0.3)


def walk(frames: int = 240, people: int = 2, seed: int = 0) -> tuple[list[FrameResult], np.ndarray]:
    """People walking on the floor at 0.6 m/s (each foot stands 0.7 s, swings 0.3 s), seen by the tilted
    camera at CAM_HEIGHT; 5 mm joint noise. Returns the frames and the true up direction, camera frame."""
    rng = np.random.default_rng(seed)
    rot = camera_rotation()
    cam_pos = np.array([0.0, CAM_HEIGHT, 4.0])
    out = []
    for t in range(frames):
        persons = []
        for k in range(people):
            speed = 0.6 if k == 0 else -0.6
            ts = t / FPS
            x0 = -2.0 if k == 0 else 2.0
            hip_x = speed * ts
            feet = [(fx - hip_x, lift) for fx, lift in (_foot(ts, 0.0, speed), _foot(ts, 0.5, speed))]
            w = standing_body(x0 + hip_x, -1.0 - 1.5 * k, feet)
            cam = (w - cam_pos) @ rot.T + rng.normal(0, 0.005, w.shape)
            valid = np.isfinite(cam).all(1)
            cam = np.where(valid[:, None], cam, 0.0)
            persons.append(HMRPrediction(box=np.zeros(4), score=1.0, joints_3d_local=cam - cam[I["left_hip"]],
                                         joints_3d_cam=cam, joints_2d=np.zeros((70, 2)), cam_trans=cam[I["left_hip"]],
                                         focal_length=1000.0, principal_point=np.zeros(2), mhr_params=None,
                                         shape_params=None, joints_valid=valid, track_id=k + 1))
        out.append(FrameResult(persons=persons, detector_ms=0, hmr_ms=0, total_ms=0, detector_ran=True,
                               frame_index=t, time_s=t / FPS))
    return out, rot @ np.array([0.0, 1.0, 0.0])


def test_weighted_plane_fit_recovers_a_tilted_plane_and_the_prior_fixes_a_line():
    rng = np.random.default_rng(1)
    n_true = np.array([0.0, -np.cos(0.3), np.sin(0.3)])
    basis = np.linalg.svd(n_true[None])[2][1:]
    pts = rng.uniform(-2, 2, (50, 2)) @ basis + 1.5 * n_true * -1
    n, d = fit_plane_weighted(pts + rng.normal(0, 0.005, pts.shape), np.ones(50), n_true)
    assert angle_deg(n, n_true) < 0.5 and abs(d - 1.5) < 0.01
    line = np.outer(np.linspace(-2, 2, 20), basis[0]) - 1.5 * n_true  # points on a line: roll is free
    up = _rotate(n_true, basis[0], np.radians(3))
    n, _ = fit_plane_weighted(line, np.ones(20), up, prior=0.05)
    assert angle_deg(n, up) < 0.5  # the prior decides what the data leave free


def _rotate(v, axis, angle):
    axis = axis / np.linalg.norm(axis)
    return v * np.cos(angle) + np.cross(axis, v) * np.sin(angle) + axis * (axis @ v) * (1 - np.cos(angle))


def test_floor_estimator_recovers_the_floor_from_standing_feet():
    frames, up_cam = walk()
    est = FloorEstimator()
    for f in frames:
        for p in f.persons:
            est.observe(p.track_id, f.time_s, np.where(p.joints_valid[:, None], p.joints_3d_cam, np.nan))
    floor = est.floor
    assert floor is not None and not floor.provisional and est.frozen
    assert angle_deg(floor.normal, up_cam) < 2.0
    assert abs(floor.camera_height - CAM_HEIGHT) < 0.05


def test_floor_estimator_refits_when_the_camera_moves():
    frames, _ = walk()
    est = FloorEstimator()
    for f in frames:
        for p in f.persons:
            est.observe(p.track_id, f.time_s, p.joints_3d_cam)
    assert est.frozen
    shift = np.array([0.0, 0.5, 0.0])  # the camera moved up 0.5 m: every point 0.5 m further down
    for f in frames:
        for p in f.persons:
            est.observe(p.track_id, f.time_s + 10.0, p.joints_3d_cam + shift)
    assert est.refits >= 1
    assert abs(est.floor.camera_height - (CAM_HEIGHT + 0.5 * np.cos(np.radians(12)))) < 0.08


def test_provisional_floor_before_any_fit():
    frames, up_cam = walk(frames=10)
    stage = GroundStage(FPS)
    out = [stage(f) for f in frames]
    assert out[-1].ground is not None and out[-1].ground["provisional"] is True
    assert angle_deg(out[-1].ground["normal_cam"], up_cam) < 10


def test_contacts_hysteresis_and_minimum_duration():
    cfg = ContactConfig(min_frames=3, on_frames=3, off_frames=3)
    det = ContactDetector(cfg, n=1)
    pos = np.zeros((1, 3))
    states = []
    heights = [0.0] * 10 + [0.08] * 10 + [0.2] * 2 + [0.0] * 10  # 0.08: inside the band, 0.2 for 2 frames
    for i, h in enumerate(heights):
        c, conf = det.update(i / FPS, np.array([h]), pos)
        states.append(bool(c[0]))
        assert 0.0 <= conf[0] <= 1.0
    assert not any(states[:2]) and all(states[3:10])  # on after on_frames
    assert all(states[10:20])  # 0.08 m is between on (0.06) and off (0.11): the contact holds
    assert all(states[20:])  # a 2-frame lift is shorter than off_frames
    moving = ContactDetector(cfg, n=1)
    got = [moving.update(i / FPS, np.array([0.0]), np.array([[i * 0.05, 0, 0]]))[0][0] for i in range(10)]
    assert not any(got)  # 1.5 m/s on the floor is no contact
    t = np.arange(30) / FPS
    h = np.where((t > 0.3) & (t < 0.7), 0.0, 0.3)[:, None]
    c, _ = contacts_offline(t, h, np.zeros((30, 1, 3)), cfg)
    assert c[12:21, 0].all() and not c[:8, 0].any() and not c[23:, 0].any()  # two-sided: no delay


def test_two_bone_ik_reaches_and_keeps_bone_lengths():
    hip, knee, ankle = np.array([0, 0.9, 0.0]), np.array([0, 0.5, 0.05]), np.array([0, 0.1, 0.0])
    target = np.array([0.05, 0.15, -0.05])
    k2, a2 = two_bone_ik(hip, knee, ankle, target)
    assert np.allclose(a2, target, atol=1e-3)
    assert abs(np.linalg.norm(k2 - hip) - np.linalg.norm(knee - hip)) < 1e-6
    assert abs(np.linalg.norm(a2 - k2) - np.linalg.norm(ankle - knee)) < 1e-6
    assert (k2 - hip)[2] > 0  # bends the way it bent


def test_foot_lock_keeps_a_contacting_foot_still():
    rng = np.random.default_rng(0)
    lock = FootLock(FPS)
    contact = np.array([True, True, True, False, False, False])  # the left foot stands
    feet = []
    for t in range(60):  # the whole body, standing foot included, sways 5 cm (a network's depth jitter)
        w = standing_body(0.0, 0.0) + [0.05 * np.sin(2 * np.pi * t / 30), 0, 0] + rng.normal(0, 0.004, (70, 3))
        out = lock.update(w, contact)
        feet.append(out[FOOT_JOINTS[[0, 1]]])
    feet = np.array(feet)
    slide = np.linalg.norm(np.diff(feet[10:], axis=0)[..., [0, 2]], axis=-1).mean()
    assert slide < 0.002  # m per frame (the input slides 10 mm per frame)
    assert np.abs(feet[10:, :, 1] - REST_HEIGHT_M[[0, 1]]).max() < 0.01  # on the floor


def test_world_frame_is_y_up_with_feet_on_the_floor():
    frames, up_cam = walk()
    for mode in ("causal", "offline"):
        stage = GroundStage(FPS)
        out = [stage(f) for f in frames] if mode == "causal" else stage.offline(frames)
        last = out[-1]
        wf = WorldFrame.from_floor(Floor(np.array(last.ground["normal_cam"]), last.ground["camera_height_m"]),
                                   stage.anchor)
        assert wf.camera_position[1] == pytest.approx(CAM_HEIGHT, abs=0.06)
        assert np.allclose(wf.rotation @ up_cam, [0, 1, 0], atol=0.04)
        soles = np.array([p.joints_3d_world[FOOT_JOINTS[[0, 1, 3, 4]]] for f in out[-60:] for p in f.persons])
        assert np.nanmin(soles[..., 1]) >= -1e-6  # nothing below the floor
        planted = [p.joints_3d_world[I["right_heel"], 1] for f in out[-60:] for p in f.persons
                   if p.contacts["right_heel"]["contact"]]
        assert abs(np.median(planted) - 0.02) < 0.03
        p0 = out[-1].persons[0]
        assert set(p0.contacts) == set(CONTACT_NAMES) and len(planted) > 40
        hip = np.array([f.persons[0].joints_3d_world[I["left_hip"]] for f in out if f.ground is not None])
        assert abs(hip[-1, 0] - hip[0, 0]) > 2.0  # root motion: the walker crossed the room (0.6 m/s, 8 s)


def test_ground_fields_in_json_csv_npz(tmp_path):
    frames, _ = walk(frames=90)
    stage = GroundStage(FPS, floor=Floor.parse(f"0,{-np.cos(TILT)},{-np.sin(TILT)},{CAM_HEIGHT}"))
    out = [stage(f) for f in frames]
    write_json(tmp_path / "g.json", out, fps=FPS)
    doc = json.loads((tmp_path / "g.json").read_text())
    f0 = doc["frames"][5]
    assert f0["ground"]["provisional"] is False and f0["ground"]["camera_height_m"] == pytest.approx(CAM_HEIGHT)
    p = f0["persons"][0]
    assert np.array(p["joints_3d_world"], dtype=float).shape == (70, 3)
    assert set(p["contacts"]["left_heel"]) == {"contact", "confidence"}
    write_csv(tmp_path / "g.csv", out, fps=FPS)
    header = (tmp_path / "g.csv").read_text().splitlines()[0].split(",")
    assert header[-len(GROUND_CSV_COLUMNS):] == list(GROUND_CSV_COLUMNS)
    write_npz(tmp_path / "g.npz", out, fps=FPS)
    tracks = read_npz_tracks(tmp_path / "g.npz")
    assert tracks[1]["joints_3d_world"].shape == (90, 70, 3) and tracks[1]["contacts"].shape == (90, 6)
    with np.load(tmp_path / "g.npz") as z:
        assert z["ground_normal_cam"].shape == (90, 3)


def test_floor_and_fov_arguments():
    f = Floor.parse("0,-2,0,1.5")
    assert np.allclose(f.normal, [0, -1, 0]) and f.camera_height == 1.5
    for bad in ("1,2,3", "0,0,0,1", "a,b,c,d"):
        with pytest.raises(ValueError, match="--floor"):
            Floor.parse(bad)
    assert focal_from_fov(90.0, (1920, 1080)) == pytest.approx(960.0)
    with pytest.raises(ValueError, match="--fov"):
        focal_from_fov(180.0, (1920, 1080))


def test_rerun_draws_the_floor_and_contacts(tmp_path):
    pytest.importorskip("rerun")
    from instanthmr.outputs.visualizer import RerunVisualizer
    from instanthmr.video.ground import floor_grid

    frames, _ = walk(frames=20)
    stage = GroundStage(FPS, floor=Floor.parse(f"0,{-np.cos(TILT)},{-np.sin(TILT)},{CAM_HEIGHT}"))
    out = [stage(f) for f in frames]
    grid = floor_grid(stage.floor, np.array([0.0, 1.0, 4.0]))
    assert np.abs(stage.floor.height(np.concatenate(grid))).max() < 1e-9  # every grid line lies on the floor
    viz = RerunVisualizer("test", spawn=False, save_path=tmp_path / "g.rrd")
    image = np.zeros((48, 64, 3), np.uint8)
    for f in out[:3] + [frames[3]]:  # the last frame has no floor: the grid is cleared
        viz.log_frame(image, f)
    viz.close()
    assert (tmp_path / "g.rrd").stat().st_size > 0


def test_a_person_at_the_wrong_depth_is_slid_along_the_rays_onto_the_floor():
    frames, _ = walk(frames=120)
    hips = [I["left_hip"], I["right_hip"]]
    for f in frames:  # the second person's depth is 25 % too far (their size misjudged): they sink
        p = f.persons[1]
        p.joints_3d_cam = p.joints_3d_cam + 0.25 * p.joints_3d_cam[hips].mean(0)
    floor = Floor.parse(f"0,{-np.cos(TILT)},{-np.sin(TILT)},{CAM_HEIGHT}")
    assert np.median([floor.height(f.persons[1].joints_3d_cam[I["right_heel"]]) for f in frames]) < -0.15
    for mode in ("causal", "offline"):
        stage = GroundStage(FPS, floor=floor)
        out = [stage(f) for f in frames] if mode == "causal" else stage.offline(frames)
        assert stage.scales[2] == pytest.approx(1 / 1.25, abs=0.03) and stage.scales[1] == pytest.approx(1, abs=0.02)
        heel = [f.persons[1].joints_3d_world[I["right_heel"], 1] for f in out[60:]]
        assert abs(np.median(heel) - 0.02) < 0.02


@pytest.mark.parametrize("flags, message", [
    (["--floor", "0,-1,0"], "--floor takes"), (["--fov", "200"], "--fov is the horizontal"),
    (["--focal-length", "-3"], "--focal-length is a focal length in pixels"),
])
def test_demo_refuses_bad_camera_and_floor_flags(flags, message, capsys):
    from instanthmr.cli.demo import EXIT_USAGE, main

    assert main(["--video", "missing.mp4", "--no-spawn", *flags]) == EXIT_USAGE
    assert message in capsys.readouterr().err


def test_demo_focal_comes_from_the_flags():
    from types import SimpleNamespace

    from instanthmr.runner.config import RunConfig
    from instanthmr.runner.loop import camera_focal

    hmr = SimpleNamespace(camera_focal=lambda wh, f: 2203.0 if f is None else f)
    config = RunConfig(video="clip.mp4")
    assert camera_focal(config, SimpleNamespace(estimator=hmr), (1920, 1080)) == (None, 2203.0, "default")
    config = RunConfig(video="clip.mp4", fov=90.0)
    given, used, source = camera_focal(config, SimpleNamespace(estimator=hmr), (1920, 1080))
    assert given == pytest.approx(960.0) and used == pytest.approx(960.0) and source == "given"


def test_depth_stretch_of_a_wrong_focal_is_measured_from_feet_spread_in_depth():
    from instanthmr.video.ground import depth_stretch

    rng = np.random.default_rng(3)
    up = np.array([0.0, -np.cos(TILT), -np.sin(TILT)])
    basis = np.linalg.svd(up[None])[2][1:]
    pts = rng.uniform(-3, 3, (30, 2)) @ basis - CAM_HEIGHT * up + [0, 0, 6.0]  # floor points 3-9 m away
    k = 1 / 0.76  # the true focal is 0.76 of the one assumed: every depth 1.32x too far
    seen = pts * [1, 1, k] + rng.normal(0, 0.01, pts.shape)
    assert depth_stretch(seen, np.ones(30), up) == pytest.approx(k, rel=0.03)
    side_on = seen.copy()
    side_on[:, 2] = 6.0 * k  # every foot at one depth: nothing to measure
    assert depth_stretch(side_on, np.ones(30), up) is None
