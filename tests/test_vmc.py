"""VMC streaming: the OSC bytes, a receiver on 127.0.0.1 getting one well-formed bundle per frame on the frame
clock, rotations that rebuild the pose in Unity's axes, held bones, and a sender that never blocks."""

from __future__ import annotations

import re
import socket
import struct
import threading

import numpy as np
import pytest
from test_gltf import FLIP, FPS, Frame, motion_frames

from instanthmr.core.skeleton import MHR70_INDEX, MHR70_NAMES
from instanthmr.outputs.vmc import VMCStreamer, osc_bundle, osc_message, parse_target

BODY_BONES = {"Hips", "Spine", "Neck", "Head"} | {
    f"{s}{b}" for s in ("Left", "Right")
    for b in ("Shoulder", "UpperArm", "LowerArm", "Hand", "UpperLeg", "LowerLeg", "Foot")}
FINGER_BONES = {f"{s}{f}{n}" for s in ("Left", "Right") for f in ("Thumb", "Index", "Middle", "Ring", "Little")
                for n in ("Proximal", "Intermediate", "Distal")}
# Unity's humanoid parents of the bones streamed (Chest/UpperChest are not sent: shoulders and neck hang off
# the spine then)
PARENT = {"Spine": "Hips", "Neck": "Spine", "Head": "Neck"}
for _s in ("Left", "Right"):
    PARENT.update({f"{_s}UpperLeg": "Hips", f"{_s}LowerLeg": f"{_s}UpperLeg", f"{_s}Foot": f"{_s}LowerLeg",
                   f"{_s}Shoulder": "Spine", f"{_s}UpperArm": f"{_s}Shoulder", f"{_s}LowerArm": f"{_s}UpperArm",
                   f"{_s}Hand": f"{_s}LowerArm"})


# ------------------------------------------------------------------------------- an OSC reader written from the spec
def _string(data: bytes, i: int) -> tuple[str, int]:
    end = data.index(b"\0", i)
    return data[i:end].decode(), (end + 4) & ~3


def decode_message(data: bytes) -> tuple[str, list]:
    address, i = _string(data, 0)
    tags, i = _string(data, i)
    assert tags.startswith(",")
    args = []
    for t in tags[1:]:
        if t == "s":
            s, i = _string(data, i)
            args.append(s)
        elif t in "if":
            args.append(struct.unpack(">i" if t == "i" else ">f", data[i:i + 4])[0])
            i += 4
        else:
            raise AssertionError(f"unexpected OSC type {t!r}")
    assert i == len(data), "trailing bytes in an OSC message"
    return address, args


def decode_bundle(data: bytes) -> list[tuple[str, list]]:
    assert data[:8] == b"#bundle\0" and len(data) % 4 == 0
    i, out = 16, []
    while i < len(data):
        (n,) = struct.unpack(">i", data[i:i + 4])
        assert n % 4 == 0
        out.append(decode_message(data[i + 4:i + 4 + n]))
        i += 4 + n
    return out


def receiver() -> socket.socket:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(10.0)
    return rx


def stream(frames, **kw) -> tuple[list[list], VMCStreamer]:
    rx = receiver()
    s = VMCStreamer("127.0.0.1", rx.getsockname()[1], realtime=False, queue_size=len(frames) + 1, **kw)
    for f in frames:
        s.write(f, f)
    s.close()
    bundles = [decode_bundle(rx.recv(65536)) for _ in range(s.sent)]
    rx.close()
    return bundles, s


def _quat_matrix(q) -> np.ndarray:
    x, y, z, w = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def unity_globals(bundle) -> dict[str, np.ndarray]:
    """World rotation of every streamed bone, composed along Unity's humanoid hierarchy."""
    local = {a[0]: _quat_matrix(a[4:8]) for addr, a in bundle if addr == "/VMC/Ext/Bone/Pos"}
    out: dict[str, np.ndarray] = {}

    def glob(b):
        if b not in out:
            out[b] = local[b] if b not in PARENT else glob(PARENT[b]) @ local[b]
        return out[b]

    for b in local:
        glob(b)
    return out


# ------------------------------------------------------------------------------- tests
def test_osc_bytes_match_the_spec():
    assert osc_message("/a", 1, 2.0, "xy") == (b"/a\0\0" + b",ifs\0\0\0\0" + b"\0\0\0\x01" + b"@\0\0\0" + b"xy\0\0")
    b = osc_bundle([osc_message("/b")])
    assert b == b"#bundle\0" + b"\0" * 7 + b"\x01" + b"\0\0\0\x08" + b"/b\0\0,\0\0\0"


@pytest.mark.parametrize("spec, want", [("vmc", ("127.0.0.1", 39539)), ("vmc:9000", ("127.0.0.1", 9000)),
                                        ("vmc:192.168.1.5:39540", ("192.168.1.5", 39540))])
def test_stream_targets(spec, want):
    assert parse_target(spec) == want


@pytest.mark.parametrize("spec", ["osc", "vmc:host:port", "vmc:0", "vmc:a:b:1"])
def test_bad_stream_targets_say_the_form(spec):
    with pytest.raises(ValueError, match="vmc:HOST:PORT"):
        parse_target(spec)


def test_receiver_gets_one_well_formed_bundle_per_frame_on_the_frame_clock():
    frames = motion_frames(24)
    bundles, s = stream(frames)
    assert s.sent == 24 and s.dropped == 0 and s.errors == 0
    times = []
    for b in bundles:
        addrs = [a for a, _ in b]
        assert addrs[:3] == ["/VMC/Ext/OK", "/VMC/Ext/T", "/VMC/Ext/Root/Pos"]
        assert b[0][1] == [1, 3, 0, 1]  # loaded, calibrated, normal mode, tracking
        times.append(b[1][1][0])
        bones = {a[0]: a for addr, a in b if addr == "/VMC/Ext/Bone/Pos"}
        assert set(bones) == BODY_BONES | FINGER_BONES
        for a in bones.values():
            assert len(a) == 8 and isinstance(a[0], str)
            assert np.linalg.norm(a[4:8]) == pytest.approx(1.0, abs=1e-5)
        assert bones["Hips"][1:4][1] > 0.7  # hip height above the floor, metres
    np.testing.assert_allclose(np.diff(times), 1.0 / FPS, atol=1e-5)  # the frame rate, on the video clock


def test_rotations_rebuild_the_pose_in_unity_axes():
    frames = motion_frames(10)
    bundles, _ = stream(frames)
    t_pose = {"LeftUpperArm": [-1, 0, 0], "LeftLowerArm": [-1, 0, 0], "RightLowerArm": [1, 0, 0],
              "LeftLowerLeg": [0, -1, 0], "RightUpperLeg": [0, -1, 0], "Spine": [0, 1, 0]}  # Unity: left is -X
    child = {"LeftUpperArm": ("left_shoulder", "left_elbow"), "LeftLowerArm": ("left_elbow", "left_wrist"),
             "RightLowerArm": ("right_elbow", "right_wrist"), "LeftLowerLeg": ("left_knee", "left_ankle"),
             "RightUpperLeg": ("right_hip", "right_knee"), "Spine": (None, "neck")}
    for f, b in zip(frames, bundles):
        g = unity_globals(b)
        kp = f.persons[0].joints_3d_cam * FLIP * [-1, 1, 1]  # camera -> Y up -> Unity (X mirrored)
        hips = 0.5 * (kp[MHR70_INDEX["left_hip"]] + kp[MHR70_INDEX["right_hip"]])
        for bone, (a, c) in child.items():
            want = kp[MHR70_INDEX[c]] - (hips if a is None else kp[MHR70_INDEX[a]])
            got = g[bone] @ np.array(t_pose[bone], float)
            np.testing.assert_allclose(got, want / np.linalg.norm(want), atol=1e-5)


def test_a_joint_the_model_did_not_predict_keeps_its_last_rotation():
    forearm = [MHR70_INDEX["left_wrist"]] + [i for i, n in enumerate(MHR70_NAMES) if n.startswith("left_") and
                                              any(f in n for f in ("thumb", "index", "middle", "ring", "pinky"))]
    frames = motion_frames(6, invalid={1: (range(3, 6), forearm)})
    bundles, _ = stream(frames)
    rot = [{a[0]: np.array(a[4:8]) for addr, a in b if addr == "/VMC/Ext/Bone/Pos"} for b in bundles]
    for t in (3, 4, 5):
        np.testing.assert_allclose(rot[t]["LeftLowerArm"], rot[2]["LeftLowerArm"], atol=1e-7)
        np.testing.assert_allclose(rot[t]["LeftIndexProximal"], rot[2]["LeftIndexProximal"], atol=1e-7)
    assert not np.allclose(rot[3]["RightLowerArm"], rot[2]["RightLowerArm"], atol=1e-4)


def test_a_frame_without_anybody_says_so():
    frames = motion_frames(3)
    frames.insert(1, Frame(99, 1.5, []))
    bundles, _ = stream(frames)
    assert [a for a, _ in bundles[1]] == ["/VMC/Ext/OK", "/VMC/Ext/T"] and bundles[1][0][1] == [1, 3, 0, 0]


def test_a_slow_sender_never_blocks_the_pipeline_and_counts_what_it_drops():
    rx = receiver()
    s = VMCStreamer("127.0.0.1", rx.getsockname()[1], realtime=False, queue_size=2)
    started, release = threading.Event(), threading.Event()
    encode = s.encoder.encode

    def slow(*a, **kw):
        started.set()
        release.wait(30)
        return encode(*a, **kw)

    s.encoder.encode = slow
    frames = motion_frames(11)
    s.write(frames[0], frames[0])
    assert started.wait(10)  # the sender is stuck on frame 0
    for f in frames[1:]:
        s.write(f, f)  # returns at once: 2 frames queue, 8 are dropped
    assert s.dropped == 8
    release.set()
    s.close()
    assert s.sent == 3
    got = [decode_bundle(rx.recv(65536))[1][1][0] for _ in range(3)]
    np.testing.assert_allclose(got, [0.0, 1 / FPS, 2 / FPS], atol=1e-6)
    rx.close()


def test_demo_streams_one_bundle_per_frame(shared_data, tmp_path, capsys):
    from test_gltf import mediapipe_demo

    rx = receiver()
    port = rx.getsockname()[1]
    assert mediapipe_demo(shared_data, tmp_path, "--stream", f"vmc:127.0.0.1:{port}", frames=8) == 0
    # Real-time streaming: a clip processed faster than its 12 fps drops frames rather than send them early,
    # so how many go out depends on this machine's speed; every frame is either sent or counted as dropped.
    m = re.search(rf"vmc: (\d+) bundle\(s\) sent to 127\.0\.0\.1:{port}, (\d+) frame\(s\) dropped",
                  capsys.readouterr().out)
    assert m, "no vmc summary line"
    sent, dropped = int(m.group(1)), int(m.group(2))
    assert sent + dropped == 8 and sent >= 2, (sent, dropped)
    bundles = [decode_bundle(rx.recv(65536)) for _ in range(sent)]
    rx.close()
    steps = np.diff([b[1][1][0] for b in bundles]) * 12.0  # the 12 fps clip's clock, in frames
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-4)
    assert (np.round(steps) >= 1).all() and np.round(steps).sum() <= 7
    bones = {a[0] for addr, a in bundles[-1] if addr == "/VMC/Ext/Bone/Pos"}
    assert BODY_BONES <= bones


def test_the_root_streams_in_the_grounded_world_frame_once_known():
    """Frames with ``joints_3d_world`` (from frame 3; before, the floor is not known): the root is the
    world pelvis (x, z on the floor, the Hips' height above y = 0) and the bones rebuild the world limbs;
    ``in_place`` keeps the root at the origin."""
    from dataclasses import replace

    from instanthmr.core.rotations import axis_rotation

    turn = axis_rotation(1, np.radians(30.0))
    frames = motion_frames(8)
    for f in frames[3:]:
        p = f.persons[0]
        f.persons[0] = replace(p, joints_3d_world=(p.joints_3d_cam * FLIP) @ turn.T + [1.0, 0.2, -2.0])
    hips = [MHR70_INDEX["left_hip"], MHR70_INDEX["right_hip"]]
    for in_place in (False, True):
        bundles, s = stream(frames, in_place=in_place)
        assert s.sent == 8
        for f, b in zip(frames[3:], bundles[3:]):
            w = f.persons[0].joints_3d_world
            pelvis = w[hips].mean(0)
            root = next(a for addr, a in b if addr == "/VMC/Ext/Root/Pos")
            want = [0.0, 0.0, 0.0] if in_place else [-pelvis[0], 0.0, pelvis[2]]  # Unity: X mirrored
            np.testing.assert_allclose(root[1:4], want, atol=1e-5)
            hip_pos = next(a for addr, a in b if addr == "/VMC/Ext/Bone/Pos" and a[0] == "Hips")
            np.testing.assert_allclose(hip_pos[2], pelvis[1], atol=1e-5)  # height above the floor at y = 0
            g = unity_globals(b)
            shin = (w[MHR70_INDEX["left_ankle"]] - w[MHR70_INDEX["left_knee"]]) * [-1, 1, 1]
            np.testing.assert_allclose(g["LeftLowerLeg"] @ [0.0, -1.0, 0.0], shin / np.linalg.norm(shin), atol=1e-5)
