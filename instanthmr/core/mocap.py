"""Reading motion capture: BVH files (hierarchy + motion, forward kinematics to world joint positions) and
the known skeletons' units, up axes and COCO-WholeBody joints. The ground truth the evaluation tools
(``tools/eval_temporal.py``, ``tools/eval_lifter.py``) score against, beside :mod:`instanthmr.core.metrics`.
Writing BVH (motion solved from MHR70 keypoints) is :mod:`instanthmr.outputs.bvh`.

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

import numpy as np

from instanthmr.core.rotations import axis_rotation
from instanthmr.core.skeleton import COCO_WHOLEBODY_INDEX

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
                    local_r = local_r @ axis_rotation(_ROT.index(c), np.radians(values[:, i]))
            p = self.parents[k]
            if p < 0:
                rot[:, k], pos[:, k] = local_r, local_t
            else:
                rot[:, k] = rot[:, p] @ local_r
                pos[:, k] = pos[:, p] + np.einsum("tij,tj->ti", rot[:, p], local_t)
        return pos * scale


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
