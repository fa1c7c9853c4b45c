"""The rig solver: MHR70 keypoints -> a skeleton's rotations, the one solver behind every motion file and
stream (the BVH writer :mod:`instanthmr.outputs.bvh`, glTF :mod:`instanthmr.outputs.gltf`, VMC
:mod:`instanthmr.outputs.vmc`).

The skeleton (:func:`bvh_skeleton`), its presentations (:data:`RIGS`: joint names and rest pose), the solve of
one track's keypoints into bone offsets, local rotations and a root path (:func:`solve_bvh`,
:class:`BVHSolution`) and the same on a tracked result's regular frame grid (:func:`track_motion`). Axes
of a solution: Y up, Z towards the camera (right-handed), metres. Rotation math: :mod:`instanthmr.core.rotations`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from instanthmr.core.rotations import euler_zxy_from_matrix, frame_from, kabsch, swing, unit
from instanthmr.core.skeleton import MHR70_INDEX
from instanthmr.outputs.files import tracks_from_frames
from instanthmr.video.ground import FOOT_POINTS, gaussian_lowpass

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
    """The joint list written to BVH and glTF: ``(name, parent, source, targets)`` (see the comment above)."""
    joints = list(_BODY_BVH)
    if hands:
        for side in ("left", "right"):
            wrist = next(i for i, j in enumerate(joints) if j[0] == f"{side}_wrist")
            joints[wrist + 1:wrist + 1] = _hand_bvh(side)
    return joints


# A canonical T-pose for rigs that expect one (Mixamo, Unity humanoids / VMC): the direction of each joint's
# offset from its parent, person facing +Z, left = +X, Y up. Left side listed; the right side mirrors X.
# Helpers (zero offset) and the root have none. Proportions are typical adult ones; only directions are used
# (lengths are the track's median bone lengths).
_TPOSE_LEFT: dict[str, tuple[float, float, float]] = {
    "hip": (1.0, 0.0, 0.0), "knee": (0.0, -1.0, 0.0), "ankle": (0.0, -1.0, 0.0),
    "heel": (0.0, -0.75, -0.65), "big_toe_tip": (-0.15, -0.38, 0.91), "small_toe_tip": (0.28, -0.45, 0.85),
    "eye": (0.62, 0.68, -0.39), "ear": (0.59, 0.16, -0.79),
    "shoulder": (0.99, -0.12, 0.0), "elbow": (1.0, 0.0, 0.0), "wrist": (1.0, 0.0, 0.0),
    # knuckles from the wrist, palm down (the thumb points forward), then each finger straight on
    "thumb_third_joint": (0.6, -0.3, 0.74), "thumb_second_joint": (0.6, -0.1, 0.8),
    "thumb_first_joint": (0.7, -0.05, 0.7), "thumb_tip": (0.75, 0.0, 0.66),
    "index_third_joint": (0.96, 0.0, 0.27), "middle_third_joint": (1.0, 0.0, 0.05),
    "ring_third_joint": (0.98, 0.0, -0.17), "pinky_third_joint": (0.9, 0.0, -0.42),
}
_TPOSE_CENTRE = {"neck": (0.0, 1.0, 0.0), "nose": (0.0, 0.93, 0.37)}


def tpose_direction(name: str) -> np.ndarray | None:
    """Unit direction of joint ``name``'s offset in the canonical T-pose, or None (helpers, root)."""
    if name in _TPOSE_CENTRE:
        return unit(np.array(_TPOSE_CENTRE[name]))
    side, _, rest = name.partition("_")
    if side not in ("left", "right"):
        return None
    d = _TPOSE_LEFT.get(rest)
    if d is None and rest.split("_")[0] in _FINGERS and not rest.endswith("metacarpal"):
        d = (1.0, 0.0, 0.0)  # a finger's phalanges: straight on along the arm
    if d is None:
        return None
    return unit(np.array(d) * ([1.0, 1.0, 1.0] if side == "left" else [-1.0, 1.0, 1.0]))


@functools.lru_cache(maxsize=16)
def _tpose_directions(names: tuple[str, ...]) -> np.ndarray:
    """``(K, 3)`` T-pose offset directions of these joints (zero for helpers and the root)."""
    dirs = [tpose_direction(n) for n in names]
    out = np.array([np.zeros(3) if d is None else d for d in dirs])
    out.setflags(write=False)
    return out


def _side_names(template: dict[str, str]) -> dict[str, str]:
    """Expand ``{"{s}_knee": "{S}Leg"}`` for left/right."""
    out = {}
    for s, big in (("left", "Left"), ("right", "Right")):
        out.update({k.replace("{s}", s): v.replace("{S}", big) for k, v in template.items()})
    return out


def _finger_names(segments: tuple[str, ...], fingers: tuple[str, ...], pattern: str) -> dict[str, str]:
    """Names for each ``{s}_<finger>_<segment>`` joint: ``pattern`` with {S}, {F} (finger), {N} (segment)."""
    out = {}
    for ours, theirs in zip(_FINGERS, fingers):
        for seg, n in zip(("metacarpal",) + _FINGER_CHAIN, segments):
            if n:
                out[f"{{s}}_{ours}_{seg}"] = pattern.replace("{F}", theirs).replace("{N}", n)
    return out


# Mixamo's rig names (mixamorig:Hips, ...). The joints Mixamo has no bone for keep descriptive names in the same
# style (Nose, LeftEar, LeftHeel, LeftSmallToe_End, the zero-length finger helpers LeftHandIndex0).
_MIXAMO = {"pelvis": "Hips", "spine": "Spine", "neck": "Neck", "head": "Head", "nose": "Nose", **_side_names({
    "{s}_eye": "{S}Eye", "{s}_ear": "{S}Ear", "{s}_clavicle": "{S}Shoulder", "{s}_shoulder": "{S}Arm",
    "{s}_elbow": "{S}ForeArm", "{s}_wrist": "{S}Hand", "{s}_hip": "{S}UpLeg", "{s}_knee": "{S}Leg",
    "{s}_ankle": "{S}Foot", "{s}_heel": "{S}Heel", "{s}_big_toe_tip": "{S}Toe_End",
    "{s}_small_toe_tip": "{S}SmallToe_End",
    **_finger_names(("0", "1", "2", "3", "4"), ("Thumb", "Index", "Middle", "Ring", "Pinky"), "{S}Hand{F}{N}"),
})}
# Unity's HumanBodyBones (what VMC receivers read). Only joints with a humanoid bone are named; the others
# (face points, toe tips, heels, finger tips, helpers) keep their MHR70-style names and are not streamed.
UNITY_HUMAN_BONES = {"pelvis": "Hips", "spine": "Spine", "neck": "Neck", "head": "Head", **_side_names({
    "{s}_clavicle": "{S}Shoulder", "{s}_shoulder": "{S}UpperArm", "{s}_elbow": "{S}LowerArm",
    "{s}_wrist": "{S}Hand", "{s}_hip": "{S}UpperLeg", "{s}_knee": "{S}LowerLeg", "{s}_ankle": "{S}Foot",
    **_finger_names(("", "Proximal", "Intermediate", "Distal", ""), ("Thumb", "Index", "Middle", "Ring", "Little"),
                    "{S}{F}{N}"),
})}


@dataclass(frozen=True)
class Rig:
    """How a solved skeleton is presented: joint names (``bone_names``: ours -> theirs, with ``prefix``;
    unlisted joints keep ours) and the rest pose (``rest``: ``"track"`` = the track's most typical frame,
    turned to face +Z upright; ``"tpose"`` = the canonical T-pose of :func:`tpose_direction`, which is what
    Mixamo and Unity humanoid rigs are built in, so rotations transfer onto them)."""

    name: str
    rest: str
    bone_names: dict[str, str]
    prefix: str = ""

    def rename(self, names: list[str]) -> list[str]:
        return [self.prefix + self.bone_names[n] if n in self.bone_names else n for n in names]


#: Export naming/rest presets: ``mhr70`` (our names, the track's own rest pose; the default), ``mixamo``
#: (``mixamorig:Hips`` ..., T-pose rest: drops onto Mixamo-named rigs), ``unity`` (HumanBodyBones, T-pose;
#: the VMC stream).
RIGS: dict[str, Rig] = {
    "mhr70": Rig("mhr70", "track", {}),
    "mixamo": Rig("mixamo", "tpose", _MIXAMO, "mixamorig:"),
    "unity": Rig("unity", "tpose", UNITY_HUMAN_BONES),
}


def get_rig(rig: str | Rig) -> Rig:
    """A :class:`Rig` by name (:data:`RIGS`); ValueError naming the known ones."""
    if isinstance(rig, Rig):
        return rig
    try:
        return RIGS[rig]
    except KeyError:
        raise ValueError(f"unknown rig {rig!r}; known: {', '.join(RIGS)}") from None


def _track_skeleton(hands: bool, has: np.ndarray, drop_unseen: bool):
    """:func:`bvh_skeleton` for a track whose model predicts the MHR70 joints ``has (70,)``: orientation
    targets it never has are left out of every joint's list, and with ``drop_unseen`` so are the end joints
    made from them (repeatedly: a finger without any point goes as a whole, its helper too)."""
    skel = bvh_skeleton(hands)

    def known(source: str) -> bool:
        if source == "pelvis":
            return bool(has[MHR70_INDEX["left_hip"]] and has[MHR70_INDEX["right_hip"]])
        return not source or bool(has[MHR70_INDEX[source]])

    gone = {name for name, _, source, _ in skel if not known(source)}
    while drop_unseen:
        parents = {p for _, p, _, _ in skel if p is not None}
        # an end joint goes when its point is missing, or when it is a helper whose targets are all missing
        leaves = {n for n, _, src, tg in skel
                  if n not in parents and (n in gone or (not src and all(t in gone for t in tg)))}
        if not leaves:
            break
        skel = [j for j in skel if j[0] not in leaves]
        gone |= leaves
    return [(n, p, src, tuple(t for t in tg if t not in gone)) for n, p, src, tg in skel]



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
    """A skeleton motion, what both writers (BVH :mod:`instanthmr.outputs.bvh`, glTF :mod:`instanthmr.outputs.gltf`)
    and the VMC stream read. Axes: Y up, Z towards the camera (right-handed), metres.

    ``names`` joint names (the rig's), ``source_names`` the same joints in :func:`bvh_skeleton`'s naming,
    ``parents`` (-1 root), rest ``offsets (K, 3)`` from the parent (the rest pose has no rotations), root
    ``translation (T, 3)``, local rotations as matrices ``rotations (T, K, 3, 3)`` (parent frame <- joint
    frame, relative to the rest pose) and as ZXY Euler ``angles (T, K, 3)`` in degrees (``z, x, y`` per joint,
    matching ``CHANNELS ... Zrotation Xrotation Yrotation``). ``observed (T, K)``: the joint's rotation was
    solved from that frame's keypoints; False = held from the nearest observed frame (or the rest pose when
    never observed). ``leaf_tips (K, 3)``: End Site offsets (zero for non-leaves)."""

    names: list[str]
    parents: list[int]
    offsets: np.ndarray
    translation: np.ndarray
    angles: np.ndarray
    leaf_tips: np.ndarray
    rotations: np.ndarray | None = None
    observed: np.ndarray | None = None
    source_names: list[str] = field(default_factory=list)

    def global_rotations(self) -> np.ndarray:
        """``(T, K, 3, 3)`` world rotation of each joint (relative to the rest pose)."""
        glob = np.empty_like(self.rotations)
        for i, p in enumerate(self.parents):
            glob[:, i] = self.rotations[:, i] if p < 0 else glob[:, p] @ self.rotations[:, i]
        return glob

    def joint_positions(self) -> np.ndarray:
        """``(T, K, 3)`` world joint positions by forward kinematics (what an importer shows as bone heads)."""
        glob = self.global_rotations()
        pos = np.empty(self.rotations.shape[:2] + (3,))
        for i, p in enumerate(self.parents):
            pos[:, i] = self.translation if p < 0 else pos[:, p] + glob[:, p] @ self.offsets[i]
        return pos


def _hold(values: np.ndarray, ok: np.ndarray, default) -> np.ndarray:
    """``values (T, ...)`` with the rows where ``ok (T,)`` is False replaced by the last ok row before them
    (the first ok row before the first one; ``default`` when no row is ok)."""
    if ok.all():
        return values
    out = np.empty_like(values)
    if not ok.any():
        out[:] = default
        return out
    idx = np.where(ok, np.arange(len(ok)), -1)
    idx = np.maximum.accumulate(idx)
    idx[idx < 0] = int(np.argmax(ok))
    return values[idx]


def _median_or_zero(x: np.ndarray) -> np.ndarray:
    """Per-column median of the finite values of ``x (T, K)``; 0 for columns with none."""
    s = np.sort(np.where(np.isfinite(x), x, np.inf), axis=0)  # the missing values sort last
    n = np.isfinite(x).sum(axis=0)
    lo = np.take_along_axis(s, np.maximum((n - 1) // 2, 0)[None], 0)[0]
    hi = np.take_along_axis(s, np.maximum(n // 2, 0)[None], 0)[0]
    return np.where(n > 0, 0.5 * (lo + hi), 0.0)


def solve_bvh(joints_mhr70, hands: bool = True, root_motion=None, valid=None, rig: str | Rig = "mhr70",
              rebase: bool = True, drop_unseen: bool = True) -> BVHSolution:
    """Fit a fixed-bone-length skeleton to a track's 3D joints: the one solver behind BVH, glTF and VMC.

    ``joints_mhr70 (T, 70, 3)``: metres, camera axes (x right, y down, z forward), body-centred or camera
    frame. Converted to BVH axes (Y up, Z towards the camera) by a half turn about X. Bone lengths are the
    per-bone medians over the track (bones are rigid). The rest pose is the rig's (see :class:`Rig`):
    the track's most typical frame turned to face +Z upright, or a canonical T-pose. ``root_motion (T, 3)``:
    pelvis path in the same camera axes (e.g. from ``joints_3d_cam``); default: the pelvis of
    ``joints_mhr70``. With ``rebase`` the path is re-based so frame 0 starts above the origin with the lowest
    foot joint on the floor (y = 0); without, it is the path itself in BVH axes.

    ``valid (T, 70)`` bool: the joints the model predicted in each frame (``HMRPrediction.joints_valid``);
    the others are ignored (they may be NaN) and every joint rotation that needs one of them is held from
    the nearest frame that had it, never invented (the rest pose when no frame had it). Joints no frame has:
    end points (eyes, ears, heels, toe and finger tips, whole fingers) leave the skeleton with
    ``drop_unseen`` (else they stay, length 0, at rest) and rigid groups are fitted to the points there are;
    a model without a neck point (the MediaPipe path) gets its neck joint at the shoulders' midpoint.
    Without ``valid`` every value must be finite.
    """
    rig = get_rig(rig)
    flip = np.array([1.0, -1.0, -1.0])
    j = np.asarray(joints_mhr70, dtype=np.float64).reshape(-1, 70, 3)
    if valid is None:
        if not np.isfinite(j).all():
            raise ValueError("BVH export needs finite 3D joints in every frame (or a valid mask)")
        valid = np.ones(j.shape[:2], bool)
    valid = np.array(valid, bool).reshape(j.shape[:2])
    if not np.isfinite(j[valid]).all():
        raise ValueError("BVH export: joints marked valid must be finite")
    j = np.where(valid[..., None], j, np.nan)
    neck, ls, rs = MHR70_INDEX["neck"], MHR70_INDEX["left_shoulder"], MHR70_INDEX["right_shoulder"]
    if not valid[:, neck].any():  # the skeleton hangs head and arms on the neck: the shoulders' midpoint
        j[:, neck] = 0.5 * (j[:, ls] + j[:, rs])
        valid[:, neck] = valid[:, ls] & valid[:, rs]
    j = j * flip
    skel = _track_skeleton(hands, valid.any(axis=0), drop_unseen)
    names = [s[0] for s in skel]
    parents = [-1 if s[1] is None else names.index(s[1]) for s in skel]
    pos = _bvh_positions(j, skel)  # (T, K, 3), NaN where not predicted
    seen = np.isfinite(pos).all(-1)  # (T, K)
    safe = np.where(seen[..., None], pos, 0.0)  # NaN-free copy: results at unseen frames are discarded
    t, k = pos.shape[:2]

    # Rest pose: median bone lengths; directions from the frame whose bone lengths are most typical (or from
    # the nearest typical frame where a bone was seen), or the canonical T-pose.
    vec = pos - pos[:, [max(p, 0) for p in parents]]
    vec[:, 0] = 0.0
    lengths = np.linalg.norm(vec, axis=-1)  # (T, K), NaN where unseen
    med = _median_or_zero(lengths)
    if rig.rest == "tpose":
        rest_dir = _tpose_directions(tuple(names))
    else:
        rest_dir = _track_rest_directions(vec, lengths, med, safe, seen, names)
    offsets = rest_dir * med[:, None]
    rest_pos = np.zeros((k, 3))
    for i in range(1, k):
        rest_pos[i] = rest_pos[parents[i]] + offsets[i]

    glob = np.zeros((t, k, 3, 3))
    local = np.zeros((t, k, 3, 3))
    observed = np.zeros((t, k), bool)
    eye = np.broadcast_to(np.eye(3), (t, 3, 3))
    aims = {n: tg for n, _, _, tg in bvh_skeleton(hands)}
    for i, (name, _, _, targets) in enumerate(skel):
        tid = [names.index(n) for n in targets]
        par = glob[:, parents[i]] if parents[i] >= 0 else eye
        # observed: the joint and its targets are there (a joint whose targets are all missing is not)
        ok = seen[:, i] & seen[:, tid].all(axis=1) & (bool(tid) or not aims[name])
        if not tid:
            g = par
        elif len(tid) == 1:
            a = np.einsum("tij,j->ti", par, rest_pos[tid[0]] - rest_pos[i])
            g = swing(a, safe[:, tid[0]] - safe[:, i]) @ par
        elif len(tid) == 2:
            rest_f = frame_from(rest_pos[tid[0]] - rest_pos[i], rest_pos[tid[1]] - rest_pos[i])
            cur_f = frame_from(safe[:, tid[0]] - safe[:, i], safe[:, tid[1]] - safe[:, i])
            g = cur_f @ np.swapaxes(rest_f, -1, -2)
        else:
            g = kabsch(rest_pos[tid] - rest_pos[i], safe[:, tid] - safe[:, i:i + 1])
        loc = _hold(np.swapaxes(par, -1, -2) @ g, ok, np.eye(3))
        observed[:, i] = ok
        local[:, i] = loc
        glob[:, i] = par @ loc

    angles = np.unwrap(euler_zxy_from_matrix(local), axis=0)  # continuous curves for animation software
    if root_motion is None:
        path = pos[:, 0]
    else:
        path = np.asarray(root_motion, dtype=np.float64).reshape(t, 3) * flip
    path_ok = np.isfinite(path).all(-1)
    path = _hold(np.where(path_ok[:, None], path, 0.0), path_ok, np.zeros(3))
    if rebase:
        foot = [names.index(n) for n in names if n.endswith(("heel", "toe_tip", "ankle"))]
        rel = pos[:, foot, 1] - pos[:, :1, 1]
        first = int(np.argmax(np.isfinite(rel).any(axis=1))) if np.isfinite(rel).any() else 0
        floor = float(np.nanmin(rel[first])) if np.isfinite(rel[first]).any() else 0.0
        translation = path - path[0] + np.array([0.0, -floor, 0.0])
    else:
        translation = path
    tips = np.zeros((k, 3))
    for i in range(k):
        if i not in parents:  # leaf: a short stub along its own bone so the last bone has a length
            tips[i] = 0.25 * offsets[i] if np.linalg.norm(offsets[i]) > 1e-6 else [0.0, 0.02, 0.0]
    return BVHSolution(rig.rename(names), parents, offsets, translation, np.degrees(angles), tips,
                       rotations=local, observed=observed, source_names=names)


def _track_rest_directions(vec, lengths, med, safe, seen, names) -> np.ndarray:
    """Unit rest directions ``(K, 3)`` in the body frame: each bone from the most typical frame that saw it
    (typical = bone lengths closest to the medians), turned to face +Z upright; zero for bones never seen."""
    dev = np.where(np.isfinite(lengths), np.abs(lengths - med), 1.0).sum(axis=1)
    root_ok = seen[:, [names.index(n) for n in ("left_hip", "right_hip", "neck")]].all(axis=1)
    root_r = _root_rotation(safe, names)
    if not root_ok.any():  # no frame shows the hips and neck: keep the camera's facing
        root_r[:] = np.eye(3)
        root_ok[:] = True
    dirs = np.einsum("tkj,tji->tki", vec, root_r)  # v @ R = R^T v: each bone in its frame's body axes
    usable = np.isfinite(dirs).all(-1) & root_ok[:, None] & (lengths > 1e-9)
    order = np.argsort(dev, kind="stable")
    out = np.zeros((vec.shape[1], 3))
    for b in range(vec.shape[1]):
        frames = order[usable[order, b]]
        if frames.size:
            out[b] = unit(dirs[frames[0], b])
    return out


def _root_rotation(pos, names) -> np.ndarray:
    """Body frames ``(T, 3, 3)``: x from right to left hip, y up the spine (orthogonalised), z forward."""
    lh, rh, nk = (pos[:, names.index(n)] for n in ("left_hip", "right_hip", "neck"))
    return frame_from(lh - rh, nk - 0.5 * (lh + rh))


@dataclass
class TrackMotion:
    """One track's solved motion on a regular frame grid, what the glTF writer animates.

    ``frame_index (T,)`` source frame of each solved frame (a grid from the track's first complete frame to
    its last, step ``frame_step``; frames where the track was not seen hold its last pose), ``solution`` the
    :class:`BVHSolution`, ``hands`` whether the finger bones are in it, ``fields`` the track's per-person
    arrays on the same grid (``cam_trans``, ``mhr_params``, ``shape_params``, ... when every frame had them),
    ``focal_length`` the median focal length in pixels (None when not known). ``grounded``: the solution is
    in the world frame of the grounded-motion stage (Y up, the floor at y = 0, metres), else in the camera
    frame turned half a turn about X. ``to_world (3, 3)`` and ``world_offset (T, 3)``: where a camera-frame
    point ``x`` (m) of frame t lands in the solution's frame, ``to_world @ x + world_offset[t]`` (the root
    path's frame, in place or not; what places the MHR mesh and the video camera); None without
    camera-frame joints."""

    track_id: int
    frame_index: np.ndarray
    solution: BVHSolution
    fps: float
    rig: str
    hands: bool
    fields: dict
    focal_length: float | None = None
    grounded: bool = False
    to_world: np.ndarray | None = None
    world_offset: np.ndarray | None = None


#: Camera axes (x right, y down, z forward) -> the solver's (Y up, Z towards the camera): a half turn about X.
CAM_TO_UP = np.diag([1.0, -1.0, -1.0])
_HIPS = [MHR70_INDEX["left_hip"], MHR70_INDEX["right_hip"]]


@dataclass(frozen=True)
class WorldFit:
    """The camera frame -> the grounded world frame of one track, as a rigid fit: ``world = rotation @ cam +
    offset[t]`` (metres). ``rotation (3, 3)`` one for the track; ``offset (T, 3)`` per frame (it carries what
    the grounded-motion stage adds per frame: root drift taken out by the contacting feet, the depth slide),
    held from the nearest frame with world joints where there are none (before the floor is known)."""

    rotation: np.ndarray
    offset: np.ndarray

    def apply(self, cam: np.ndarray) -> np.ndarray:
        """``cam (T, J, 3)`` camera frame -> ``(T, J, 3)`` world frame."""
        return cam @ self.rotation.T + self.offset[:, None]


def fit_world(world: np.ndarray, cam: np.ndarray) -> WorldFit | None:
    """:class:`WorldFit` from a track's ``world (T, J, 3)`` joints (NaN rows where the floor was not known)
    and its camera-frame joints ``cam (T, J, 3)`` (NaN where missing): one rotation (Kabsch over every frame
    with both, each frame centred), per-frame offsets (mean residual); a frame without world joints holds the
    last offset before it (the first one's before the first). None when no frame has both."""
    both = np.isfinite(world).all(-1) & np.isfinite(cam).all(-1)  # (T, J)
    known = both.sum(axis=1) >= 3
    if not known.any():
        return None
    src, dst = [], []
    for t in np.flatnonzero(known):
        c, w = cam[t, both[t]], world[t, both[t]]
        src.append(c - c.mean(0))
        dst.append(w - w.mean(0))
    rot = kabsch(np.concatenate(src), np.concatenate(dst))
    off = np.full((len(world), 3), np.nan)
    for t in np.flatnonzero(known):
        off[t] = (world[t, both[t]] - cam[t, both[t]] @ rot.T).mean(0)
    return WorldFit(rot, _hold(np.nan_to_num(off), known, np.zeros(3)))


#: Time constant (s) of the centred smoothing of :func:`plant_feet`'s root correction (contact sets change
#: abruptly: a heel lands, a toe lifts).
PLANT_SIGMA_S = 0.07


def plant_feet(sol: BVHSolution, target: np.ndarray, contact: np.ndarray, fps: float) -> np.ndarray:
    """The root path ``(T, 3)`` of ``sol`` moved so that its contacting foot points land where ``target (T, 70,
    3)`` (the world joints, same axes) has them: per frame the mean offset (target - forward kinematics) of
    the points in contact (``contact (T, 6)`` in :data:`~instanthmr.video.ground.CONTACT_NAMES` order),
    interpolated across frames without contact, smoothed over :data:`PLANT_SIGMA_S` (``fps``: solved frames
    per second). Why: the file's bones are rigid (median lengths), the estimator's are not (the MediaPipe
    path's shin ranges over 9 cm), so the skeleton's feet miss the floor where its legs are shorter or longer
    than that frame's."""
    fk = sol.joint_positions()
    delta = np.full((len(fk), 3), np.nan)
    pairs = [(k, sol.source_names.index(j), MHR70_INDEX[j]) for k, j in enumerate(FOOT_POINTS.values())
             if j in sol.source_names]
    if not pairs:
        return sol.translation
    d = np.stack([target[:, m] - fk[:, i] for _, i, m in pairs], 1)  # (T, P, 3)
    c = np.asarray(contact, bool)[:, [k for k, _, _ in pairs]] & np.isfinite(d).all(-1)
    has = c.any(1)
    if not has.any():
        return sol.translation
    delta[has] = np.nansum(np.where(c[..., None], d, 0.0), 1)[has] / c.sum(1)[has, None]
    t = np.arange(len(fk), dtype=np.float64)
    delta = np.stack([np.interp(t, t[has], delta[has, a]) for a in range(3)], -1)
    return sol.translation + gaussian_lowpass(delta, t / fps, PLANT_SIGMA_S)


def remove_root_motion(translation: np.ndarray) -> np.ndarray:
    """In place for game engines: the root path ``(T, 3)`` (Y up) with its horizontal x, z set to 0 in every
    frame (the root stays above the origin), its height kept."""
    out = np.array(translation, np.float64)
    out[:, [0, 2]] = 0.0
    return out


def track_motion(series, fps: float, hands: bool = True, rig: str | Rig = "mhr70", rebase: bool = True,
                 min_frames: int = 2, frame_step: int = 1, world: bool = True, in_place: bool = False,
                 fallback_world: WorldFit | None = None) -> TrackMotion | None:
    """Solve one :class:`~instanthmr.outputs.files.TrackSeries`: a joint the model did not have in a frame
    holds its last valid position, a frame without the track holds its last pose; the motion starts at the
    first frame with every body joint the model predicts (a model may lack some: see :func:`solve_bvh`), the
    fingers only when the hands are there then. None when fewer than ``min_frames`` frames are left or the
    track has no 3D joints.

    With ``world`` and the track's ``joints_3d_world`` (the grounded-motion stage): solved in the world frame
    (Y up, the floor at y = 0, root motion; ``rebase`` does not apply). Frames before the floor was known
    (no world joints) are the camera-frame joints put into the world by the rigid fit of the first frames
    that have them (:func:`fit_world`): the motion before the floor is what the camera saw, placed where the
    world motion starts, without a jump. ``fallback_world``: the fit for a track that never had world joints
    (another track's, so that every track of a file is in one frame). ``in_place``: the root's horizontal
    motion removed (:func:`remove_root_motion`)."""
    if "joints_3d_local" not in series.fields:
        return None
    span = series.frame_index - series.frame_index[0]
    grid = np.arange(0, span[-1] + 1, max(int(frame_step), 1))
    fill = np.searchsorted(span, grid, side="right") - 1  # last seen frame
    joints = series.fields["joints_3d_local"][fill].astype(np.float64)
    valid = np.isfinite(joints).all(axis=-1)
    if "joints_valid" in series.fields:
        valid &= np.asarray(series.fields["joints_valid"], bool)[fill]
    has = valid.any(axis=0)  # what this model predicts at all
    body = [i for i in bvh_source_joints(hands=False) if has[i]]  # no neck point: solve_bvh makes one
    fingers = sorted(set(bvh_source_joints(hands=True)) - set(bvh_source_joints(hands=False)))
    complete = np.flatnonzero(valid[:, body].all(axis=1))
    if len(complete) == 0 or len(joints) - complete[0] < min_frames:
        return None
    start = int(complete[0])
    with_hands = bool(hands and valid[start, fingers].all())
    joints = hold_last_valid(joints[start:], valid[start:])
    held_ok = np.isfinite(joints).all(axis=-1)
    cam = None
    if "joints_3d_cam" in series.fields:
        cam = series.fields["joints_3d_cam"][fill][start:].astype(np.float64)
        cam = hold_last_valid(cam, valid[start:] & np.isfinite(cam).all(axis=-1))
    root = None
    if cam is not None:
        root = cam[:, _HIPS].mean(axis=1)
        if not np.isfinite(root).all():
            root = None  # the camera-frame hips are missing where the local ones are not: body path
    fit = None
    if world and cam is not None:
        w = series.fields.get("joints_3d_world")
        fit = fit_world(w[fill][start:].astype(np.float64), cam) if w is not None else None
        if fit is None and fallback_world is not None:  # another track's fit: its first world frame's placement
            fit = WorldFit(fallback_world.rotation, np.repeat(fallback_world.offset[:1], len(cam), axis=0))
    if fit is not None:
        w = series.fields.get("joints_3d_world")
        placed = fit.apply(cam)
        if w is not None:
            w = hold_last_valid(w[fill][start:].astype(np.float64), valid[start:])
            known = np.isfinite(w).all(-1)
            placed = np.where(known[..., None], w, placed)  # the stage's own joints wherever it gave them
        ok = held_ok & np.isfinite(placed).all(-1)
        up_cam = placed @ CAM_TO_UP  # the solver reads camera axes; it turns them back to Y up
        sol = solve_bvh(np.where(ok[..., None], up_cam, np.nan), hands=with_hands, valid=ok, rig=rig,
                        root_motion=placed[:, _HIPS].mean(axis=1) @ CAM_TO_UP, rebase=False)
        contact = series.fields.get("contacts")
        if contact is not None and w is not None:  # the stage's contacts: plant the rigid skeleton's feet
            held = np.asarray(contact, bool)[fill][start:] & known.any(-1)[:, None]
            sol.translation = plant_feet(sol, np.where(ok[..., None], placed, np.nan), held,
                                         fps / max(int(frame_step), 1))  # the grid's rate
    else:
        sol = solve_bvh(joints, hands=with_hands, root_motion=root, valid=held_ok, rig=rig, rebase=rebase)
    if in_place:
        sol.translation = remove_root_motion(sol.translation)
    to_world = offset = None
    if root is not None:
        to_world = fit.rotation if fit is not None else CAM_TO_UP
        offset = sol.translation - root @ to_world.T  # the root path's frame, in place or not
    fields = {k: v[fill][start:] for k, v in series.fields.items() if k != "joints_valid"}
    focal = series.fields.get("focal_length")
    return TrackMotion(series.track_id, series.frame_index[0] + grid[start:], sol, float(fps), get_rig(rig).name,
                       with_hands, fields, float(np.median(focal)) if focal is not None else None,
                       grounded=fit is not None, to_world=to_world, world_offset=offset)


def first_world_fit(series: dict) -> WorldFit | None:
    """The camera -> world fit (:func:`fit_world`) of the first track (by ID) with world joints, for the
    tracks that have none (they take its first world frame's placement, ``offset[0]``)."""
    for s in series.values():
        w, c = s.fields.get("joints_3d_world"), s.fields.get("joints_3d_cam")
        fit = None if w is None or c is None else fit_world(w.astype(np.float64), c.astype(np.float64))
        if fit is not None:
            return fit
    return None


def track_motions(frames: Iterable, fps: float, hands: bool = True, rig: str | Rig = "mhr70",
                  rebase: bool = True, min_frames: int = 2, world: bool = True, in_place: bool = False,
                  frame_step: int | None = None) -> list[TrackMotion]:
    """:func:`track_motion` for every track in ``frames``; the grid step is ``frame_step`` or (None) the
    smallest gap between processed frames (``--frame-skip``), so skipped frames are not filled with held
    poses (BVH, which has no gaps, asks for 1). With ``world`` and world joints in any track, every track is
    in that world frame (a track without them placed by the first grounded track's fit)."""
    series = tracks_from_frames(frames, fps)
    gaps = np.concatenate([np.diff(s.frame_index) for s in series.values()] or [np.array([], np.int64)])
    step = int(np.gcd.reduce(gaps[gaps > 0])) if np.any(gaps > 0) else 1
    step = step if frame_step is None else int(frame_step)
    fallback = first_world_fit(series) if world else None
    out = [track_motion(s, fps, hands, rig, rebase, min_frames, step, world, in_place, fallback)
           for s in series.values()]
    return [m for m in out if m is not None]


def bvh_source_joints(hands: bool = True) -> list[int]:
    """The MHR70 joints the BVH skeleton is solved from (the pelvis is the mid-hip)."""
    idx: set[int] = set()
    for _, _, source, _ in bvh_skeleton(hands):
        if source == "pelvis":
            idx |= {MHR70_INDEX["left_hip"], MHR70_INDEX["right_hip"]}
        elif source:
            idx.add(MHR70_INDEX[source])
    return sorted(idx)


def hold_last_valid(values, valid) -> np.ndarray:
    """``values (T, J, D)`` with every row where ``valid (T, J)`` is False replaced by that joint's last valid
    row; rows before a joint's first valid frame are NaN (nothing to hold, nothing invented)."""
    values = np.asarray(values, dtype=np.float64)
    valid = np.asarray(valid, bool)
    last = np.maximum.accumulate(np.where(valid, np.arange(len(values))[:, None], -1), axis=0)  # (T, J)
    out = values[np.maximum(last, 0), np.arange(values.shape[1])[None, :]]
    out[last < 0] = np.nan
    return out
