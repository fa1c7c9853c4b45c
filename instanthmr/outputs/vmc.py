"""Live motion over the VMC protocol: OSC bundles over UDP, what VSeeFace-style receivers, Blender's and
Unity's VMC plug-ins read (https://protocol.vmc.info).

One bundle per frame for one person (the lowest track ID in view; kept while it stays in view):

- ``/VMC/Ext/OK`` ``1 3 0 tracking`` (avatar loaded, calibrated, normal mode; tracking 1 when a person is in
  view, 0 when not: then nothing else is sent);
- ``/VMC/Ext/T`` the frame's time in seconds (the video's clock);
- ``/VMC/Ext/Root/Pos "root" px py pz qx qy qz qw``: where the person stands on the floor (x, z): with the
  grounded-motion stage's ``joints_3d_world``, the pelvis in its world frame (the floor at y = 0, origin on the
  floor under the first track's first position); without, relative to the first frame streamed; no rotation;
  (0, 0, 0) with ``in_place``;
- ``/VMC/Ext/Bone/Pos name px py pz qx qy qz qw`` per humanoid bone (Unity ``HumanBodyBones`` names: Hips,
  Spine, Neck, Head, LeftShoulder, LeftUpperArm, ..., LeftUpperLeg, ..., finger bones when the hands are
  predicted). Rotations are local (relative to the parent bone in Unity's humanoid hierarchy) and relative to
  a T-pose, as a normalised humanoid rig expects; positions are the T-pose bone offsets, the Hips' is its
  height above the floor (the world's y = 0 with the grounded-motion stage; without, the lowest foot point of
  the first frame streamed). Live, the world joints exist once the floor is known (the first seconds): the
  frames before stream as without it, then the root moves once to its world position.

Axes: Unity's (left-handed, Y up, Z forward, metres): the solver's right-handed world with X negated. The
rotations come from the one skeleton solver (:func:`~instanthmr.outputs.rig.solve_bvh`, rig ``unity``),
solved per frame; a bone the model did not predict in a frame keeps its last rotation.

The pipeline never waits for the network: frames go through a bounded queue to a sender thread (which
solves, encodes and sends on a non-blocking socket); when the queue is full the frame is dropped and
counted. With ``realtime`` the sender paces bundles to the frames' timestamps (a video file processed faster
than real time still streams at its frame rate; frames that arrive faster than that are dropped).
"""

from __future__ import annotations

import queue
import socket
import struct
import threading
import time
from dataclasses import dataclass

import numpy as np

from instanthmr.core.rotations import quaternion_from_matrix
from instanthmr.core.skeleton import MHR70_INDEX
from instanthmr.outputs.rig import UNITY_HUMAN_BONES, bvh_skeleton, solve_bvh

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 39539

# Unity's humanoid hierarchy: each bone's parent (the optional bones Chest/UpperChest are skipped over when not
# sent; a receiver leaves them at rest, so rotations relative to the nearest sent ancestor compose correctly).
_UNITY_PARENT = {"Spine": "Hips", "Chest": "Spine", "UpperChest": "Chest", "Neck": "UpperChest", "Head": "Neck"}
for _S in ("Left", "Right"):
    _UNITY_PARENT.update({
        f"{_S}UpperLeg": "Hips", f"{_S}LowerLeg": f"{_S}UpperLeg", f"{_S}Foot": f"{_S}LowerLeg",
        f"{_S}Shoulder": "UpperChest", f"{_S}UpperArm": f"{_S}Shoulder", f"{_S}LowerArm": f"{_S}UpperArm",
        f"{_S}Hand": f"{_S}LowerArm"})
    for _F in ("Thumb", "Index", "Middle", "Ring", "Little"):
        _UNITY_PARENT.update({f"{_S}{_F}Proximal": f"{_S}Hand", f"{_S}{_F}Intermediate": f"{_S}{_F}Proximal",
                              f"{_S}{_F}Distal": f"{_S}{_F}Intermediate"})
_TO_UNITY = np.array([-1.0, 1.0, 1.0])  # right-handed (x right) -> Unity's left-handed axes: negate X
_CAM_TO_UP = np.array([1.0, -1.0, -1.0])  # Y up <-> camera axes (the solver reads camera axes)


# ------------------------------------------------------------------------------------------------ OSC
def _osc_string(s: str) -> bytes:
    b = s.encode() + b"\0"
    return b + b"\0" * (-len(b) % 4)


def osc_message(address: str, *args) -> bytes:
    """One OSC message; ``args`` are str (s), int (i, 32 bit) or float (f, 32 bit), big-endian."""
    tags, payload = ",", b""
    for a in args:
        if isinstance(a, str):
            tags, payload = tags + "s", payload + _osc_string(a)
        elif isinstance(a, (int, np.integer)) and not isinstance(a, bool):
            tags, payload = tags + "i", payload + struct.pack(">i", int(a))
        else:
            tags, payload = tags + "f", payload + struct.pack(">f", float(a))
    return _osc_string(address) + _osc_string(tags) + payload


def osc_bundle(messages: list[bytes], timetag: int = 1) -> bytes:
    """An OSC bundle (time tag 1 = "immediately") of size-prefixed messages."""
    return b"#bundle\0" + struct.pack(">Q", timetag) + b"".join(struct.pack(">i", len(m)) + m for m in messages)


def parse_target(spec: str) -> tuple[str, int]:
    """``vmc``, ``vmc:PORT`` or ``vmc:HOST:PORT`` -> (host, port); ValueError naming the expected form."""
    parts = spec.split(":")
    if parts[0].lower() != "vmc" or len(parts) > 3:
        raise ValueError(f"--stream {spec!r}: expected vmc, vmc:PORT or vmc:HOST:PORT")
    host = parts[1] if len(parts) == 3 else DEFAULT_HOST
    port = parts[-1] if len(parts) >= 2 else str(DEFAULT_PORT)
    if not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise ValueError(f"--stream {spec!r}: expected vmc, vmc:PORT or vmc:HOST:PORT with a port in 1..65535")
    return host, int(port)


# ------------------------------------------------------------------------------------------------ encoding
class VMCEncoder:
    """Per-frame joints -> one VMC bundle. Keeps what a stream needs between frames: the last rotation of
    each bone (held when a joint is missing), the floor height and the origin of the first frame."""

    def __init__(self, hands: bool = True):
        self.hands = hands
        skel = bvh_skeleton(hands)
        self.names = [s[0] for s in skel]
        self.parents = [-1 if s[1] is None else self.names.index(s[1]) for s in skel]
        self.bones = [(i, UNITY_HUMAN_BONES[n]) for i, n in enumerate(self.names) if n in UNITY_HUMAN_BONES]
        sent = {u for _, u in self.bones}
        index = {u: i for i, u in self.bones}

        def sent_parent(u: str) -> int:
            p = _UNITY_PARENT.get(u)
            while p is not None and p not in sent:
                p = _UNITY_PARENT.get(p)
            return -1 if p is None else index[p]

        self.unity_parent = {i: sent_parent(u) for i, u in self.bones}
        self.reset()

    def reset(self) -> None:
        """Forget the held rotations and the floor/origin (a new stream)."""
        self.last_local = np.tile(np.eye(3), (len(self.names), 1, 1))
        self.origin = None
        self.floor = 0.0
        self.grounded = False  # the last frame came in the grounded world

    def empty(self, time_s: float) -> bytes:
        """The bundle of a frame without anybody: tracking 0 and the time."""
        return osc_bundle([osc_message("/VMC/Ext/OK", 1, 3, 0, 0), osc_message("/VMC/Ext/T", float(time_s))])

    def encode(self, time_s: float, joints_local, pelvis_cam=None, valid=None, world=None,
               in_place: bool = False) -> bytes:
        """``joints_local (70, 3)`` metres, camera axes (body-centred); ``pelvis_cam (3,)`` the pelvis in the
        camera frame (None: the body stays at the origin); ``valid (70,)`` the joints the model has; ``world
        (70, 3)``: the grounded world joints (metres, Y up, the floor at y = 0) when known: then the bones and
        the root come from them, the root in the world frame; ``in_place``: Root/Pos stays at (0, 0, 0)."""
        if world is not None and np.isfinite(np.asarray(world, np.float64)[_PELVIS]).all():
            w = np.asarray(world, np.float64).reshape(70, 3)
            return self._encode(time_s, w * _CAM_TO_UP, w[_PELVIS].mean(0) * _CAM_TO_UP, valid, True, in_place)
        return self._encode(time_s, joints_local, pelvis_cam, valid, False, in_place)

    def _encode(self, time_s, joints_local, pelvis_cam, valid, grounded: bool, in_place: bool) -> bytes:
        joints = np.asarray(joints_local, np.float64).reshape(1, 70, 3)
        valid = np.isfinite(joints[0]).all(-1) if valid is None else np.asarray(valid, bool) & np.isfinite(joints[0]).all(-1)
        sol = solve_bvh(joints, hands=self.hands, valid=valid[None], rig="unity", rebase=False, drop_unseen=False,
                        root_motion=None if pelvis_cam is None else np.asarray(pelvis_cam, np.float64)[None])
        local = np.where(sol.observed[0, :, None, None], sol.rotations[0], self.last_local)
        self.last_local = local
        glob = np.empty_like(local)
        for i, p in enumerate(self.parents):
            glob[i] = local[i] if p < 0 else glob[p] @ local[i]
        rest = np.zeros((len(self.names), 3))
        for i, p in enumerate(self.parents):
            rest[i] = 0.0 if p < 0 else rest[p] + sol.offsets[i]

        pelvis = sol.translation[0]  # Y-up world (camera frame turned about X, or the grounded world), metres
        if grounded:  # the world's floor and origin
            self.floor, self.origin = 0.0, np.zeros(3)
        elif self.origin is None or self.grounded:  # the first frame (off the world) sets the floor and origin
            feet = (joints[0, _FEET] - joints[0, _PELVIS].mean(0)) * [1.0, -1.0, -1.0] + pelvis
            feet = feet[valid[_FEET]]
            self.floor = float(feet[:, 1].min()) if len(feet) else float(pelvis[1])
            self.origin = pelvis.copy()
        self.grounded = grounded
        msgs = [osc_message("/VMC/Ext/OK", 1, 3, 0, 1), osc_message("/VMC/Ext/T", float(time_s))]
        root = np.array([pelvis[0] - self.origin[0], 0.0, pelvis[2] - self.origin[2]]) * _TO_UNITY
        if in_place:
            root[:] = 0.0
        msgs.append(osc_message("/VMC/Ext/Root/Pos", "root", *root, 0.0, 0.0, 0.0, 1.0))
        idx = [i for i, _ in self.bones]
        par = [self.unity_parent[i] for i in idx]
        rel = np.where(np.array(par)[:, None, None] < 0, glob[idx],
                       np.swapaxes(glob[par], -1, -2) @ glob[idx])  # local to the Unity parent
        quats = quaternion_from_matrix(rel) * [1.0, -1.0, -1.0, 1.0]  # mirrored X: (x, -y, -z, w)
        for (i, unity), p, q in zip(self.bones, par, quats):
            pos = np.array([0.0, pelvis[1] - self.floor, 0.0]) if p < 0 else (rest[i] - rest[p]) * _TO_UNITY
            msgs.append(osc_message("/VMC/Ext/Bone/Pos", unity, *pos, *q))
        return osc_bundle(msgs)


_PELVIS = [MHR70_INDEX["left_hip"], MHR70_INDEX["right_hip"]]
_FEET = [MHR70_INDEX[f"{s}_{n}"] for s in ("left", "right") for n in ("ankle", "heel", "big_toe_tip", "small_toe_tip")]


# ------------------------------------------------------------------------------------------------ streaming
@dataclass
class _Item:
    time_s: float
    track_id: int | None
    joints: np.ndarray | None = None
    pelvis_cam: np.ndarray | None = None
    valid: np.ndarray | None = None
    world: np.ndarray | None = None


class VMCStreamer:
    """A sink (``write(frame, result)`` / ``close()``) that streams one person over VMC to ``host:port``.

    Never blocks the caller: :meth:`write` copies the person's joints into a queue of ``queue_size`` frames
    (dropped and counted in ``dropped`` when full); a daemon thread solves, encodes and sends them on a
    non-blocking UDP socket (a send that would block is dropped too); ``in_place``: no root motion. ``sent``:
    bundles handed to the network
    (UDP: delivery is not confirmed). ``errors``: sends the OS refused (``last_error`` says why)."""

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, hands: bool = True,
                 queue_size: int = 2, realtime: bool = True, in_place: bool = False):
        self.address = (host, int(port))
        try:
            info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        except OSError as e:
            raise ValueError(f"--stream: cannot resolve {host!r} ({e.strerror or e})") from None
        self.sock = socket.socket(info[0], socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self._target = info[4]
        self.encoder = VMCEncoder(hands)
        self.realtime = realtime
        self.in_place = bool(in_place)
        self.queue: queue.Queue = queue.Queue(maxsize=max(1, int(queue_size)))
        self.sent = self.dropped = self.errors = 0
        self.last_error = ""
        self.track_id: int | None = None
        self._clock: tuple[float, float] | None = None  # (wall time, media time) of the first bundle
        self._thread = threading.Thread(target=self._run, name="vmc-sender", daemon=True)
        self._thread.start()

    # -- caller side
    def write(self, frame, result, meshes=None) -> None:
        persons = [p for p in result.persons if getattr(p, "joints_3d_local", None) is not None]
        ids = {getattr(p, "track_id", None): p for p in persons}
        if self.track_id not in ids:
            self.track_id = min((t for t in ids if t is not None), default=None)
            if self.track_id is None and persons:
                ids = {None: persons[0]}
        p = ids.get(self.track_id)
        t = float(frame.time_s)
        if p is None:
            item = _Item(t, None)
        else:
            cam = getattr(p, "joints_3d_cam", None)
            pelvis = None if cam is None else np.asarray(cam, np.float64)[_PELVIS].mean(0)
            valid = getattr(p, "joints_valid", None)
            world = getattr(p, "joints_3d_world", None)
            item = _Item(t, self.track_id, np.array(p.joints_3d_local, np.float64), pelvis,
                         None if valid is None else np.array(valid, bool),
                         None if world is None else np.array(world, np.float64))
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1

    def close(self, summary: dict | None = None) -> None:
        if self._thread.is_alive():
            try:
                self.queue.put(None, timeout=2.0)
            except queue.Full:
                pass
            self._thread.join(timeout=5.0)
        self.sock.close()

    def summary_line(self) -> str:
        host, port = self.address
        err = f", {self.errors} refused ({self.last_error})" if self.errors else ""
        return f"vmc: {self.sent} bundle(s) sent to {host}:{port}, {self.dropped} frame(s) dropped{err}"

    # -- sender thread
    def _run(self) -> None:
        last_track = None
        while True:
            item = self.queue.get()
            if item is None:
                return
            try:
                if item.track_id != last_track and item.joints is not None:
                    self.encoder.last_local[:] = np.eye(3)  # another person: nothing of the last one is held
                    last_track = item.track_id
                data = (self.encoder.empty(item.time_s) if item.joints is None else
                        self.encoder.encode(item.time_s, item.joints, item.pelvis_cam, item.valid, item.world,
                                            self.in_place))
            except (ValueError, np.linalg.LinAlgError) as e:  # a frame the solver cannot use: skip it
                self.errors += 1
                self.last_error = str(e)
                continue
            self._pace(item.time_s)
            try:
                self.sock.sendto(data, self._target)
                self.sent += 1
            except BlockingIOError:
                self.dropped += 1
            except OSError as e:
                self.errors += 1
                self.last_error = e.strerror or str(e)

    def _pace(self, time_s: float) -> None:
        if not self.realtime:
            return
        now = time.monotonic()
        if self._clock is None:
            self._clock = (now, time_s)
        wait = self._clock[0] + (time_s - self._clock[1]) - now
        if wait > 0:
            time.sleep(min(wait, 1.0))
