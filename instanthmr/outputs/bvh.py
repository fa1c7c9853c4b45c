"""BVH in both directions: reading motion capture (hierarchy + motion, forward kinematics to world joint
positions) and writing each track's motion solved from its MHR70 keypoints (:func:`solve_bvh`, :func:`write_bvh`).

Reading.
Conventions (the de-facto BVH ones, as in the CMU cgspeed and Bandai-Namco files):

- Rotation channels are Euler angles in degrees, applied in the order listed: for ``Zrotation Xrotation
  Yrotation`` the local rotation is ``Rz @ Rx @ Ry`` acting on column vectors.
- A joint with position channels is translated by those values *instead of* its OFFSET (files that
  animate every joint's position repeat the offset there; root offsets are usually zero).
- ``End Site`` blocks become joints named ``<parent>_End`` with no channels (head top, toe and finger tips).

Positions come out in the file's unit and world axes; :data:`BVH_PROFILES` knows the unit and up axis of
the skeletons we use and maps their joints to COCO-WholeBody.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from instanthmr.core.skeleton import COCO_WHOLEBODY_INDEX, MHR70_INDEX
from instanthmr.outputs.files import ResultsWriteError, _open_for_write, tracks_from_frames

_POS = ("Xposition", "Yposition", "Zposition")
_ROT = ("Xrotation", "Yrotation", "Zrotation")


class BVHError(ValueError):
    """A BVH file that cannot be read (missing, truncated, malformed)."""


@dataclass
class BVHMotion:
    """A BVH take.

    ``names (J,)`` joint names (end sites as ``<parent>_End``); ``parents (J,)`` parent index, -1 for the
    root, parents always before children; ``offsets (J, 3)`` rest offsets from the parent, file units;
    ``channels`` per joint, the channel names in file order (empty for end sites); ``frames (T, C)`` the raw
    motion values, C = total channel count in joint order; ``frame_time`` seconds per frame.
    """

    names: list[str]
    parents: np.ndarray
    offsets: np.ndarray
    channels: list[tuple[str, ...]]
    frames: np.ndarray
    frame_time: float
    source: str = field(default="", repr=False)

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time if self.frame_time > 0 else 0.0

    @property
    def is_end_site(self) -> np.ndarray:
        """``(J,)`` True for the ``End Site`` pseudo-joints."""
        return np.array([len(c) == 0 and n.endswith("_End") for n, c in zip(self.names, self.channels)])

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"joint {name!r} not in {self.source or 'this BVH'}") from None

    def joint_positions(self, scale: float = 1.0) -> np.ndarray:
        """World position of every joint (end sites included) per frame, ``(T, J, 3)``, file units x scale."""
        t, j = self.num_frames, len(self.names)
        rot = np.empty((t, j, 3, 3))
        pos = np.empty((t, j, 3))
        col = 0
        for k in range(j):
            local_r = np.broadcast_to(np.eye(3), (t, 3, 3)).copy()
            local_t = np.broadcast_to(self.offsets[k], (t, 3)).copy()
            chans = self.channels[k]
            values = self.frames[:, col: col + len(chans)]
            col += len(chans)
            if any(c in _POS for c in chans):
                local_t[:] = 0.0
            for i, c in enumerate(chans):
                if c in _POS:
                    local_t[:, _POS.index(c)] = values[:, i]
                else:
                    local_r = local_r @ _axis_rotation(_ROT.index(c), np.radians(values[:, i]))
            p = self.parents[k]
            if p < 0:
                rot[:, k], pos[:, k] = local_r, local_t
            else:
                rot[:, k] = rot[:, p] @ local_r
                pos[:, k] = pos[:, p] + np.einsum("tij,tj->ti", rot[:, p], local_t)
        return pos * scale


def _axis_rotation(axis: int, angle: np.ndarray) -> np.ndarray:
    """``(T, 3, 3)`` rotation matrices about X (0), Y (1) or Z (2) by ``angle (T,)`` radians."""
    c, s = np.cos(angle), np.sin(angle)
    r = np.zeros(angle.shape + (3, 3))
    a, b = [(1, 2), (2, 0), (0, 1)][axis]
    r[..., axis, axis] = 1.0
    r[..., a, a], r[..., a, b], r[..., b, a], r[..., b, b] = c, -s, s, c
    return r


def load_bvh(path) -> BVHMotion:
    """Parse a BVH file. Raises :class:`BVHError` with the file name on anything malformed."""
    path = Path(path)
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        raise BVHError(f"{path}: cannot read BVH ({e.strerror or e})") from None
    try:
        return _parse(text, str(path))
    except BVHError:
        raise
    except (ValueError, IndexError) as e:
        raise BVHError(f"{path}: malformed BVH ({e})") from None


def _parse(text: str, source: str) -> BVHMotion:
    head, sep, motion = text.partition("MOTION")
    if not sep or "HIERARCHY" not in head:
        raise BVHError(f"{source}: not a BVH file (no HIERARCHY/MOTION sections)")
    tokens = head.split()
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[tuple[str, ...]] = []
    stack: list[int] = []
    i = tokens.index("HIERARCHY") + 1
    while i < len(tokens):
        tok = tokens[i]
        if tok in ("ROOT", "JOINT"):
            names.append(tokens[i + 1])
            i += 2
        elif tok == "End":  # "End Site"
            names.append(f"{names[stack[-1]]}_End")
            i += 2
        elif tok == "{":
            if len(names) == len(stack):
                raise BVHError(f"{source}: '{{' without a joint")
            parents.append(stack[-1] if stack else -1)
            offsets.append([0.0, 0.0, 0.0])
            channels.append(())
            stack.append(len(names) - 1)
            i += 1
        elif tok == "}":
            if not stack:
                raise BVHError(f"{source}: unbalanced '}}' in HIERARCHY")
            stack.pop()
            i += 1
        elif tok == "OFFSET":
            offsets[stack[-1]] = [float(v) for v in tokens[i + 1: i + 4]]
            i += 4
        elif tok == "CHANNELS":
            n = int(tokens[i + 1])
            chans = tuple(tokens[i + 2: i + 2 + n])
            bad = [c for c in chans if c not in _POS + _ROT]
            if bad or len(chans) != n:
                raise BVHError(f"{source}: bad CHANNELS for joint {names[stack[-1]]!r}: {chans}")
            channels[stack[-1]] = chans
            i += 2 + n
        else:
            raise BVHError(f"{source}: unexpected token {tok!r} in HIERARCHY")
    if stack or not names:
        raise BVHError(f"{source}: unbalanced braces or empty HIERARCHY")

    lines = motion.strip().splitlines()
    if len(lines) < 2 or not lines[0].startswith("Frames:") or not lines[1].startswith("Frame Time:"):
        raise BVHError(f"{source}: MOTION section lacks 'Frames:' / 'Frame Time:'")
    n_frames = int(lines[0].split(":")[1])
    frame_time = float(lines[1].split(":")[1])
    n_chan = sum(len(c) for c in channels)
    rows = [ln.split() for ln in lines[2:] if ln.strip()]
    if len(rows) < n_frames:
        raise BVHError(f"{source}: header says {n_frames} frames, file has {len(rows)} (truncated?)")
    frames = np.array([[float(v) for v in r] for r in rows[:n_frames]], dtype=np.float64).reshape(n_frames, -1)
    if frames.shape[1] != n_chan:
        raise BVHError(f"{source}: frames have {frames.shape[1]} values, hierarchy declares {n_chan} channels")
    return BVHMotion(names, np.array(parents), np.array(offsets, dtype=np.float64), channels, frames,
                     frame_time, source)


# ------------------------------------------------------------------------------------------------
# Known skeletons: unit, up axis, and the joints that correspond to COCO-WholeBody
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BVHProfile:
    """How to read one family of BVH skeletons: ``to_metres`` file unit -> metres, ``up`` world up axis
    (0 X, 1 Y, 2 Z, positive), ``to_coco`` BVH joint name -> COCO-WholeBody joint name."""

    name: str
    to_metres: float
    up: int
    to_coco: dict[str, str]


def _sides(template: dict[str, str], left: tuple[str, str], right: tuple[str, str]) -> dict[str, str]:
    """Expand ``{"{S}Leg": "{s}_knee"}`` for both sides; ``left``/``right`` = (BVH token, COCO side)."""
    out = {}
    for tok, side in (left, right):
        out.update({k.replace("{S}", tok): v.replace("{s}", side) for k, v in template.items()})
    return out


# CMU (cgspeed conversion): LeftUpLeg is the hip joint, LeftFoot the ankle, the toe end site the toe tip.
_CMU = _sides({
    "{S}UpLeg": "{s}_hip", "{S}Leg": "{s}_knee", "{S}Foot": "{s}_ankle", "{S}ToeBase_End": "{s}_big_toe",
    "{S}Arm": "{s}_shoulder", "{S}ForeArm": "{s}_elbow", "{S}Hand": "{s}_wrist",
}, ("Left", "left"), ("Right", "right"))
# The same CMU takes exported with another naming (e.g. bvh11's 131_01): here LeftShoulder is the
# shoulder joint (LeftCollar is the clavicle), unlike cgspeed where LeftShoulder is the clavicle.
_CMU_ALT = _sides({
    "{S}Hip": "{s}_hip", "{S}Knee": "{s}_knee", "{S}Ankle": "{s}_ankle", "{S}Toe_End": "{s}_big_toe",
    "{S}Shoulder": "{s}_shoulder", "{S}Elbow": "{s}_elbow", "{S}Wrist": "{s}_wrist",
}, ("Left", "left"), ("Right", "right"))

_BANDAI = _sides({
    "UpperLeg_{S}": "{s}_hip", "LowerLeg_{S}": "{s}_knee", "Foot_{S}": "{s}_ankle", "Toes_{S}_End": "{s}_big_toe",
    "UpperArm_{S}": "{s}_shoulder", "LowerArm_{S}": "{s}_elbow", "Hand_{S}": "{s}_wrist",
}, ("L", "left"), ("R", "right"))

BVH_PROFILES: dict[str, BVHProfile] = {
    "cmu": BVHProfile("cmu", 0.056444, 1, _CMU),  # cgspeed units: 1/0.056444 per metre, Y up
    "cmu_alt": BVHProfile("cmu_alt", 0.056444, 1, _CMU_ALT),
    "bandai": BVHProfile("bandai", 0.01, 1, _BANDAI),  # centimetres, Y up
}


def detect_profile(motion: BVHMotion) -> BVHProfile:
    """The profile whose joint names the take uses; raises :class:`BVHError` for an unknown skeleton."""
    names = set(motion.names)
    best = max(BVH_PROFILES.values(), key=lambda p: len(names & p.to_coco.keys()))
    if len(names & best.to_coco.keys()) < 8:
        raise BVHError(f"{motion.source or 'BVH'}: unknown skeleton (joint names match no profile in BVH_PROFILES)")
    return best


def coco_wholebody_joints(motion: BVHMotion, profile: BVHProfile | None = None) -> tuple[np.ndarray, np.ndarray]:
    """World COCO-WholeBody joints of a take in metres: ``(joints (T, 133, 3), valid (133,))``.

    Joints the skeleton lacks (face, usually hands and heels) are 0 with ``valid`` False.
    """
    profile = profile or detect_profile(motion)
    pos = motion.joint_positions(profile.to_metres)
    out = np.zeros((motion.num_frames, len(COCO_WHOLEBODY_INDEX), 3))
    valid = np.zeros(len(COCO_WHOLEBODY_INDEX), bool)
    for bvh_name, coco_name in profile.to_coco.items():
        if bvh_name in motion.names:
            c = COCO_WHOLEBODY_INDEX[coco_name]
            out[:, c] = pos[:, motion.index(bvh_name)]
            valid[c] = True
    return out, valid


# --------------------------------------------------------------------------------------------------
# Writing: Y up, Z towards the camera, metres by default (see :func:`write_bvh`)
# --------------------------------------------------------------------------------------------------


# The BVH skeleton built from MHR70 keypoints. Each entry: (name, parent, source, orientation targets).
# ``source`` is an MHR70 joint name, "pelvis" (mid-hip), or "" for a helper joint placed at its parent
# (zero offset) so that each of its parent's branches gets its own rotation. Targets are the joints whose
# directions define this joint's rotation: one target = exact swing of that bone; two = first exact,
# second fixes the roll; three or more = least-squares fit (a rigid cluster such as the foot or head).
_BODY_BVH: tuple[tuple[str, str | None, str, tuple[str, ...]], ...] = (
    ("pelvis", None, "pelvis", ("left_hip", "neck")),
    ("left_hip", "pelvis", "left_hip", ("left_knee",)),
    ("left_knee", "left_hip", "left_knee", ("left_ankle",)),
    ("left_ankle", "left_knee", "left_ankle", ("left_heel", "left_big_toe_tip", "left_small_toe_tip")),
    ("left_heel", "left_ankle", "left_heel", ()),
    ("left_big_toe_tip", "left_ankle", "left_big_toe_tip", ()),
    ("left_small_toe_tip", "left_ankle", "left_small_toe_tip", ()),
    ("right_hip", "pelvis", "right_hip", ("right_knee",)),
    ("right_knee", "right_hip", "right_knee", ("right_ankle",)),
    ("right_ankle", "right_knee", "right_ankle", ("right_heel", "right_big_toe_tip", "right_small_toe_tip")),
    ("right_heel", "right_ankle", "right_heel", ()),
    ("right_big_toe_tip", "right_ankle", "right_big_toe_tip", ()),
    ("right_small_toe_tip", "right_ankle", "right_small_toe_tip", ()),
    ("spine", "pelvis", "", ("neck",)),
    ("neck", "spine", "neck", ("left_shoulder", "nose")),
    ("head", "neck", "", ("nose",)),
    ("nose", "head", "nose", ("left_eye", "right_eye", "left_ear", "right_ear")),
    ("left_eye", "nose", "left_eye", ()),
    ("right_eye", "nose", "right_eye", ()),
    ("left_ear", "nose", "left_ear", ()),
    ("right_ear", "nose", "right_ear", ()),
    ("left_clavicle", "neck", "", ("left_shoulder",)),
    ("left_shoulder", "left_clavicle", "left_shoulder", ("left_elbow",)),
    ("left_elbow", "left_shoulder", "left_elbow", ("left_wrist",)),
    ("left_wrist", "left_elbow", "left_wrist", ()),
    ("right_clavicle", "neck", "", ("right_shoulder",)),
    ("right_shoulder", "right_clavicle", "right_shoulder", ("right_elbow",)),
    ("right_elbow", "right_shoulder", "right_elbow", ("right_wrist",)),
    ("right_wrist", "right_elbow", "right_wrist", ()),
)

_FINGERS = ("thumb", "index", "middle", "ring", "pinky")
_FINGER_CHAIN = ("third_joint", "second_joint", "first_joint", "tip")  # knuckle -> tip


def _hand_bvh(side: str) -> list[tuple[str, str | None, str, tuple[str, ...]]]:
    out = []
    for finger in _FINGERS:
        names = [f"{side}_{finger}_{seg}" for seg in _FINGER_CHAIN]
        # A helper at the wrist per finger (like the clavicles): each finger's palm bone gets its own swing.
        helper = f"{side}_{finger}_metacarpal"
        out.append((helper, f"{side}_wrist", "", (names[0],)))
        parent = helper
        for i, n in enumerate(names):
            out.append((n, parent, n, (names[i + 1],) if i + 1 < len(names) else ()))
            parent = n
    return out


def bvh_skeleton(hands: bool = True) -> list[tuple[str, str | None, str, tuple[str, ...]]]:
    """The joint list written to BVH: ``(name, parent, source, targets)`` (see the comment above)."""
    joints = list(_BODY_BVH)
    if hands:
        for side in ("left", "right"):
            wrist = next(i for i, j in enumerate(joints) if j[0] == f"{side}_wrist")
            joints[wrist + 1:wrist + 1] = _hand_bvh(side)
    return joints


def _unit(v, eps=1e-9):
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, eps)


def _swing(a, b) -> np.ndarray:
    """Smallest rotations ``(T, 3, 3)`` turning directions ``a (T, 3)`` onto ``b (T, 3)`` (Rodrigues)."""
    a, b = _unit(a), _unit(b)
    v = np.cross(a, b)
    c = (a * b).sum(-1)
    k = np.zeros(a.shape[:-1] + (3, 3))
    k[..., 0, 1], k[..., 0, 2], k[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
    k = k - np.swapaxes(k, -1, -2)
    coef = 1.0 / np.maximum(1.0 + c, 1e-9)
    r = np.eye(3) + k + k @ k * coef[..., None, None]
    # Opposite directions: rotate by pi about any axis perpendicular to a.
    flip = c < -1.0 + 1e-9
    if np.any(flip):
        axis = _unit(np.cross(a[flip], np.where(np.abs(a[flip, :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]])))
        r[flip] = 2.0 * axis[:, :, None] * axis[:, None, :] - np.eye(3)
    return r


def _frame_from(a, b) -> np.ndarray:
    """Orthonormal frames ``(T, 3, 3)`` (columns) with first axis along ``a`` and ``b`` in the 1-2 plane."""
    e1 = _unit(a)
    e2 = _unit(b - (b * e1).sum(-1, keepdims=True) * e1)
    return np.stack([e1, e2, np.cross(e1, e2)], axis=-1)


def _kabsch(rest, cur) -> np.ndarray:
    """Rotations ``(T, 3, 3)`` best mapping rest vectors ``(K, 3)`` onto current ``(T, K, 3)``."""
    h = np.einsum("ki,tkj->tij", rest, cur)  # sum rest^T cur
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(np.swapaxes(vt, -1, -2) @ np.swapaxes(u, -1, -2)))
    fix = np.ones((len(d), 3))
    fix[:, -1] = np.where(d == 0, 1.0, d)
    return np.swapaxes(vt, -1, -2) @ (fix[:, :, None] * np.swapaxes(u, -1, -2))


def _euler_zxy(m) -> np.ndarray:
    """``(T, 3, 3)`` -> angles ``(T, 3)`` radians ``(z, x, y)`` with ``m = Rz(z) @ Rx(x) @ Ry(y)``."""
    x = np.arcsin(np.clip(m[..., 2, 1], -1.0, 1.0))
    y = np.arctan2(-m[..., 2, 0], m[..., 2, 2])
    z = np.arctan2(-m[..., 0, 1], m[..., 1, 1])
    return np.stack([z, x, y], axis=-1)


def _bvh_positions(joints_mhr70: np.ndarray, skeleton) -> np.ndarray:
    """BVH joint positions ``(T, K, 3)`` from MHR70 joints ``(T, 70, 3)`` (helpers sit at their parent)."""
    names = [j[0] for j in skeleton]
    out = np.zeros((joints_mhr70.shape[0], len(skeleton), 3))
    for k, (name, parent, source, _) in enumerate(skeleton):
        if source == "pelvis":
            out[:, k] = 0.5 * (joints_mhr70[:, MHR70_INDEX["left_hip"]] + joints_mhr70[:, MHR70_INDEX["right_hip"]])
        elif source:
            out[:, k] = joints_mhr70[:, MHR70_INDEX[source]]
        else:
            out[:, k] = out[:, names.index(parent)]
    return out


@dataclass
class BVHSolution:
    """A skeleton motion ready to write: joint ``names``, ``parents`` (-1 root), rest ``offsets (K, 3)``,
    root ``translation (T, 3)`` and local rotations as ZXY Euler ``angles (T, K, 3)`` in degrees
    (``z, x, y`` per joint, matching ``CHANNELS ... Zrotation Xrotation Yrotation``)."""

    names: list[str]
    parents: list[int]
    offsets: np.ndarray
    translation: np.ndarray
    angles: np.ndarray
    leaf_tips: np.ndarray  # (K, 3) End Site offsets (zero for non-leaves)


def solve_bvh(joints_mhr70, hands: bool = True, root_motion=None) -> BVHSolution:
    """Fit a fixed-bone-length skeleton to a track's 3D joints.

    ``joints_mhr70 (T, 70, 3)``: metres, camera axes (x right, y down, z forward), body-centred or camera
    frame. Converted to BVH axes (Y up, Z towards the camera) by a half turn about X. Bone lengths are the
    per-bone medians over the track (BVH bones are rigid). The rest pose is the track's most typical frame,
    turned to face +Z upright. ``root_motion (T, 3)``: pelvis path in the same camera axes (e.g. from
    ``joints_3d_cam``); default: the pelvis of ``joints_mhr70``. The path is re-based so frame 0 starts
    above the origin with the lowest foot joint on the floor (y = 0).
    """
    flip = np.array([1.0, -1.0, -1.0])
    j = np.asarray(joints_mhr70, dtype=np.float64).reshape(-1, 70, 3) * flip
    if not np.isfinite(j).all():
        raise ValueError("BVH export needs finite 3D joints in every frame")
    skel = bvh_skeleton(hands)
    names = [s[0] for s in skel]
    parents = [-1 if s[1] is None else names.index(s[1]) for s in skel]
    pos = _bvh_positions(j, skel)  # (T, K, 3)
    t, k = pos.shape[:2]

    # Rest pose: median bone lengths, directions of the frame whose bone lengths are most typical.
    vec = pos - pos[:, [max(p, 0) for p in parents]]
    vec[:, 0] = 0.0
    lengths = np.linalg.norm(vec, axis=-1)  # (T, K)
    med = np.median(lengths, axis=0)
    ref = int(np.argmin(np.abs(lengths - med).sum(axis=1)))
    root_r = _root_rotation(pos[ref:ref + 1], names)[0]  # undo the reference frame's facing
    rest_dir = _unit(vec[ref] @ root_r)  # (K, 3), root frame
    offsets = rest_dir * med[:, None]
    rest_pos = np.zeros((k, 3))
    for i in range(1, k):
        rest_pos[i] = rest_pos[parents[i]] + offsets[i]

    glob = np.zeros((t, k, 3, 3))
    local = np.zeros((t, k, 3, 3))
    for i, (_, _, _, targets) in enumerate(skel):
        tid = [names.index(n) for n in targets]
        par = glob[:, parents[i]] if parents[i] >= 0 else np.broadcast_to(np.eye(3), (t, 3, 3))
        if not tid:
            g = par
        elif len(tid) == 1:
            a = np.einsum("tij,j->ti", par, rest_pos[tid[0]] - rest_pos[i])
            g = _swing(a, pos[:, tid[0]] - pos[:, i]) @ par
        elif len(tid) == 2:
            rest_f = _frame_from(rest_pos[tid[0]] - rest_pos[i], rest_pos[tid[1]] - rest_pos[i])
            cur_f = _frame_from(pos[:, tid[0]] - pos[:, i], pos[:, tid[1]] - pos[:, i])
            g = cur_f @ np.swapaxes(rest_f, -1, -2)
        else:
            g = _kabsch(rest_pos[tid] - rest_pos[i], pos[:, tid] - pos[:, i:i + 1])
        glob[:, i] = g
        local[:, i] = np.swapaxes(par, -1, -2) @ g

    angles = np.unwrap(_euler_zxy(local), axis=0)  # continuous curves for animation software
    path = pos[:, 0] if root_motion is None else np.asarray(root_motion, dtype=np.float64).reshape(t, 3) * flip
    foot = [names.index(n) for n in names if n.endswith(("heel", "toe_tip", "ankle"))]
    floor = float((pos[0, foot, 1] - pos[0, 0, 1]).min())
    translation = path - path[0] + np.array([0.0, -floor, 0.0])
    tips = np.zeros((k, 3))
    for i in range(k):
        if i not in parents:  # leaf: a short stub along its own bone so the last bone has a length
            tips[i] = 0.25 * offsets[i] if np.linalg.norm(offsets[i]) > 1e-6 else [0.0, 0.02, 0.0]
    return BVHSolution(names, parents, offsets, translation, np.degrees(angles), tips)


def _root_rotation(pos, names) -> np.ndarray:
    """Body frames ``(T, 3, 3)``: x from right to left hip, y up the spine (orthogonalised), z forward."""
    lh, rh, nk = (pos[:, names.index(n)] for n in ("left_hip", "right_hip", "neck"))
    return _frame_from(lh - rh, nk - 0.5 * (lh + rh))


def format_bvh(sol: BVHSolution, fps: float, scale: float = 1.0) -> str:
    """BVH text: root ``Xposition Yposition Zposition Zrotation Xrotation Yrotation``, other joints
    ``Zrotation Xrotation Yrotation``; leaves end in an ``End Site``. Lengths multiplied by ``scale``."""
    lines = ["HIERARCHY"]
    children = {i: [c for c, p in enumerate(sol.parents) if p == i] for i in range(len(sol.names))}

    def emit(i: int, depth: int) -> None:
        ind = "\t" * depth
        kw = "ROOT" if sol.parents[i] < 0 else "JOINT"
        off = np.zeros(3) if sol.parents[i] < 0 else sol.offsets[i] * scale
        lines.append(f"{ind}{kw} {sol.names[i]}")
        lines.append(f"{ind}{{")
        lines.append(f"{ind}\tOFFSET {off[0]:.6f} {off[1]:.6f} {off[2]:.6f}")
        chans = "6 Xposition Yposition Zposition" if sol.parents[i] < 0 else "3"
        lines.append(f"{ind}\tCHANNELS {chans} Zrotation Xrotation Yrotation")
        for c in children[i]:
            emit(c, depth + 1)
        if not children[i]:
            tip = sol.leaf_tips[i] * scale
            lines.extend([f"{ind}\tEnd Site", f"{ind}\t{{",
                          f"{ind}\t\tOFFSET {tip[0]:.6f} {tip[1]:.6f} {tip[2]:.6f}", f"{ind}\t}}"])
        lines.append(f"{ind}}}")

    emit(0, 0)
    order: list[int] = []

    def walk(i: int) -> None:  # channel order in MOTION = depth-first order of the hierarchy
        order.append(i)
        for c in children[i]:
            walk(c)

    walk(0)
    t = sol.angles.shape[0]
    lines += ["MOTION", f"Frames: {t}", f"Frame Time: {1.0 / fps:.8f}"]
    for f in range(t):
        vals = list(sol.translation[f] * scale)
        for i in order:
            vals += list(sol.angles[f, i])
        lines.append(" ".join(f"{v:.5f}" for v in vals))
    return "\n".join(lines) + "\n"


def bvh_track_path(path, track_id: int) -> Path:
    """Where :func:`write_bvh` puts one track: ``<stem>_track<id>.bvh`` beside ``path``."""
    p = Path(path)
    return p.with_name(f"{p.stem}_track{track_id}.bvh")


def write_bvh(path, frames: Iterable, fps: float, hands: bool = True, scale: float = 1.0,
              min_frames: int = 2) -> list[Path]:
    """One BVH file per track (``<stem>_track<id>.bvh``), metres x ``scale``. Tracks seen in fewer than
    ``min_frames`` frames are skipped. Frames where a track was not seen are filled by repeating its last
    pose (BVH has no gaps), so the file's frame ``i`` is the track's ``i``-th frame from its first sighting.
    Returns the paths written."""
    if not fps or fps <= 0:
        raise ResultsWriteError(f"{path}: BVH needs a positive frame rate, got {fps}")
    written = []
    for tid, s in tracks_from_frames(frames, fps).items():
        if len(s.frame_index) < min_frames or "joints_3d_local" not in s.fields:
            continue
        span = s.frame_index - s.frame_index[0]
        fill = np.searchsorted(span, np.arange(span[-1] + 1), side="right") - 1  # last seen frame
        joints = s.fields["joints_3d_local"][fill]
        root = None
        if "joints_3d_cam" in s.fields:
            cam = s.fields["joints_3d_cam"][fill]
            root = 0.5 * (cam[:, MHR70_INDEX["left_hip"]] + cam[:, MHR70_INDEX["right_hip"]])
        sol = solve_bvh(joints, hands=hands, root_motion=root)
        out = _open_for_write(bvh_track_path(path, tid))
        try:
            out.write_text(format_bvh(sol, fps, scale))
        except OSError as e:
            raise ResultsWriteError(f"{out}: cannot write BVH ({e.strerror or e})") from None
        written.append(out)
    return written
