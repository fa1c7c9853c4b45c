"""Keypoint sets as data: names, drawing edges, body-part groups and index maps.

Two skeletons are used in InstantHMR:

* **MHR70**: the first 70 keypoints of Meta's Momentum Human Rig as output by SAM 3D Body
  (`sam_3d_body/metadata/mhr70.py`). This is what the fast network predicts.
* **COCO-WholeBody (133)**: body 17 + feet 6 + face 68 + two hands of 21. This is the joint set of the
  LLM 2D-to-3D lifter and of most 2D whole-body detectors.

Everything here is plain Python data (tuples of names and index pairs) so it can be used by the runtime,
the trainer and the visualiser alike without importing anything heavy.
"""

from __future__ import annotations

# --------------------------------------------------------------------------------------------------
# MHR70
# --------------------------------------------------------------------------------------------------

_FINGERS = ("thumb", "index", "middle", "ring", "pinky")
# SAM 3D Body lists each finger tip-first: tip, first_joint (DIP/IP), second_joint (PIP/MCP of the thumb),
# third_joint (the knuckle, MCP; CMC for the thumb).
_FINGER_SEGMENTS = ("tip", "first_joint", "second_joint", "third_joint")


def _hand_names(side: str) -> list[str]:
    return [f"{side}_{finger}_{seg}" for finger in _FINGERS for seg in _FINGER_SEGMENTS]


MHR70_NAMES: tuple[str, ...] = tuple(
    [
        "nose", "left_eye", "right_eye", "left_ear", "right_ear",
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
        "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
        "left_big_toe_tip", "left_small_toe_tip", "left_heel",
        "right_big_toe_tip", "right_small_toe_tip", "right_heel",
    ]
    + _hand_names("right") + ["right_wrist"]
    + _hand_names("left") + ["left_wrist"]
    + [
        "left_olecranon", "right_olecranon", "left_cubital_fossa", "right_cubital_fossa",
        "left_acromion", "right_acromion", "neck",
    ]
)
NUM_MHR70 = len(MHR70_NAMES)
assert NUM_MHR70 == 70
MHR70_INDEX: dict[str, int] = {n: i for i, n in enumerate(MHR70_NAMES)}


def _edges(index: dict[str, int], pairs) -> tuple[tuple[int, int], ...]:
    return tuple((index[a], index[b]) for a, b in pairs)


def _chain(*names: str) -> list[tuple[str, str]]:
    return list(zip(names[:-1], names[1:]))


def _mhr_hand_chains(side: str) -> list[tuple[str, str]]:
    pairs = []
    for finger in _FINGERS:
        # wrist -> knuckle -> ... -> fingertip
        pairs += _chain(f"{side}_wrist", *(f"{side}_{finger}_{seg}" for seg in reversed(_FINGER_SEGMENTS)))
    return pairs


def _mhr_side_pairs(side: str) -> dict[str, list[tuple[str, str]]]:
    s = side
    return {
        "arm": _chain(f"{s}_shoulder", f"{s}_elbow", f"{s}_wrist"),
        "leg": _chain(f"{s}_hip", f"{s}_knee", f"{s}_ankle"),
        "foot": _chain(f"{s}_ankle", f"{s}_heel", f"{s}_big_toe_tip", f"{s}_small_toe_tip", f"{s}_ankle"),
        "face": _chain("nose", f"{s}_eye", f"{s}_ear"),
        "extra": [
            (f"{s}_acromion", f"{s}_shoulder"),
            (f"{s}_elbow", f"{s}_olecranon"),
            (f"{s}_elbow", f"{s}_cubital_fossa"),
        ],
    }


_L, _R = _mhr_side_pairs("left"), _mhr_side_pairs("right")
_MHR70_EDGE_PAIRS: dict[str, list[tuple[str, str]]] = {
    "torso": [
        ("neck", "nose"), ("neck", "left_shoulder"), ("neck", "right_shoulder"),
        # drawn directly too: a model without a neck point (the MediaPipe path) still shows the shoulder line
        ("left_shoulder", "right_shoulder"),
        ("left_shoulder", "left_hip"), ("right_shoulder", "right_hip"), ("left_hip", "right_hip"),
    ],
    "face": _L["face"] + _R["face"],
    "left_arm": _L["arm"], "right_arm": _R["arm"],
    "left_leg": _L["leg"], "right_leg": _R["leg"],
    "left_foot": _L["foot"], "right_foot": _R["foot"],
    "left_hand": _mhr_hand_chains("left"), "right_hand": _mhr_hand_chains("right"),
    "extra": _L["extra"] + _R["extra"],
}

#: Drawing edges grouped by limb, as index pairs into MHR70_NAMES.
MHR70_EDGE_GROUPS: dict[str, tuple[tuple[int, int], ...]] = {
    k: _edges(MHR70_INDEX, v) for k, v in _MHR70_EDGE_PAIRS.items()
}
#: All drawing edges of MHR70 (full anatomical chains, fingers included).
MHR70_EDGES: tuple[tuple[int, int], ...] = tuple(e for g in MHR70_EDGE_GROUPS.values() for e in g)

#: Body-part groups of MHR70 for per-part metrics and colours (each joint in exactly one group).
MHR70_PARTS: dict[str, tuple[int, ...]] = {
    "body": tuple(range(0, 15)),
    "feet": tuple(range(15, 21)),
    "right_hand": tuple(range(21, 42)),  # 20 finger joints + right wrist
    "left_hand": tuple(range(42, 63)),  # 20 finger joints + left wrist
    "extra": tuple(range(63, 70)),  # olecranon, cubital fossa, acromion, neck
}

# --------------------------------------------------------------------------------------------------
# COCO-WholeBody 133
# --------------------------------------------------------------------------------------------------

COCO17_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)
_COCO_FEET = ("left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel")

COCO_WHOLEBODY_NAMES: tuple[str, ...] = (
    COCO17_NAMES
    + _COCO_FEET
    + tuple(f"face_{i}" for i in range(68))
    + tuple(f"left_hand_{i}" for i in range(21))
    + tuple(f"right_hand_{i}" for i in range(21))
)
assert len(COCO_WHOLEBODY_NAMES) == 133
COCO_WHOLEBODY_INDEX: dict[str, int] = {n: i for i, n in enumerate(COCO_WHOLEBODY_NAMES)}

COCO_WHOLEBODY_PARTS: dict[str, tuple[int, ...]] = {
    "body": tuple(range(0, 17)),
    "feet": tuple(range(17, 23)),
    "face": tuple(range(23, 91)),
    "left_hand": tuple(range(91, 112)),
    "right_hand": tuple(range(112, 133)),
}

COCO17_EDGES: tuple[tuple[int, int], ...] = (
    (0, 1), (0, 2), (1, 3), (2, 4), (5, 6), (5, 7), (7, 9), (6, 8), (8, 10),
    (5, 11), (6, 12), (11, 12), (11, 13), (13, 15), (12, 14), (14, 16),
)


def _coco_hand_edges(side: str) -> list[tuple[str, str]]:
    # Hand index 0 is the wrist (hand root); each finger runs base -> tip over 4 points.
    pairs = []
    for f in range(5):
        idx = [0] + [1 + 4 * f + k for k in range(4)]
        pairs += _chain(*(f"{side}_hand_{i}" for i in idx))
    return pairs


def _coco_face_edges() -> list[tuple[str, str]]:
    # 68-point iBUG layout: jaw 0-16, brows 17-21 / 22-26, nose bridge 27-30, nostrils 31-35,
    # eyes 36-41 / 42-47 (closed loops), outer lips 48-59 and inner lips 60-67 (closed loops).
    def run(a, b, closed=False):
        names = [f"face_{i}" for i in range(a, b + 1)]
        return _chain(*names, *(names[:1] if closed else []))

    return (run(0, 16) + run(17, 21) + run(22, 26) + run(27, 30) + run(31, 35)
            + run(36, 41, True) + run(42, 47, True) + run(48, 59, True) + run(60, 67, True))


_COCO_WB_EDGE_PAIRS: dict[str, list[tuple[str, str]]] = {
    "body": [(COCO17_NAMES[a], COCO17_NAMES[b]) for a, b in COCO17_EDGES],
    "feet": [
        ("left_ankle", "left_heel"), ("left_heel", "left_big_toe"), ("left_big_toe", "left_small_toe"),
        ("left_small_toe", "left_ankle"),
        ("right_ankle", "right_heel"), ("right_heel", "right_big_toe"), ("right_big_toe", "right_small_toe"),
        ("right_small_toe", "right_ankle"),
    ],
    "face": _coco_face_edges(),
    "left_hand": [("left_wrist", "left_hand_0")] + _coco_hand_edges("left"),
    "right_hand": [("right_wrist", "right_hand_0")] + _coco_hand_edges("right"),
}
COCO_WHOLEBODY_EDGE_GROUPS: dict[str, tuple[tuple[int, int], ...]] = {
    k: _edges(COCO_WHOLEBODY_INDEX, v) for k, v in _COCO_WB_EDGE_PAIRS.items()
}
COCO_WHOLEBODY_EDGES: tuple[tuple[int, int], ...] = tuple(
    e for g in COCO_WHOLEBODY_EDGE_GROUPS.values() for e in g
)

# --------------------------------------------------------------------------------------------------
# Index maps between the two skeletons, built by name
# --------------------------------------------------------------------------------------------------


def _coco_wb_to_mhr_name(name: str) -> str | None:
    """The MHR70 name for a COCO-WholeBody joint, or None where MHR70 has no such point."""
    if name in MHR70_INDEX:
        return name
    if name in _COCO_FEET:
        return name + "_tip" if "toe" in name else name
    for side in ("left", "right"):
        prefix = f"{side}_hand_"
        if name.startswith(prefix):
            i = int(name[len(prefix):])
            if i == 0:
                return f"{side}_wrist"  # the hand root is the wrist
            finger, k = divmod(i - 1, 4)  # k: 0 = base (knuckle) ... 3 = tip
            return f"{side}_{_FINGERS[finger]}_{_FINGER_SEGMENTS[3 - k]}"
    return None  # face landmarks


#: For each COCO-WholeBody index, the MHR70 index of the same anatomical point (65 of 133 exist;
#: both the body wrist and the hand root map to the MHR70 wrist).
COCO_WHOLEBODY_TO_MHR70: dict[int, int] = {
    i: MHR70_INDEX[m]
    for i, n in enumerate(COCO_WHOLEBODY_NAMES)
    if (m := _coco_wb_to_mhr_name(n)) is not None
}
#: For each MHR70 index that COCO-WholeBody has, its COCO-WholeBody index (63 of 70; wrists map to the
#: body wrists 9/10; olecranon, cubital fossa, acromion and neck have no counterpart).
MHR70_TO_COCO_WHOLEBODY: dict[int, int] = {}
for _c, _m in sorted(COCO_WHOLEBODY_TO_MHR70.items(), reverse=True):
    MHR70_TO_COCO_WHOLEBODY[_m] = _c  # reverse order: the lowest COCO index wins (body wrist over hand root)
MHR70_TO_COCO_WHOLEBODY = dict(sorted(MHR70_TO_COCO_WHOLEBODY.items()))

#: COCO-17 keypoints taken from MHR70: ``mhr70[..., MHR70_TO_COCO17, :]`` is in COCO-17 order.
MHR70_TO_COCO17: tuple[int, ...] = tuple(MHR70_INDEX[n] for n in COCO17_NAMES)

#: MHR70 indices that are mirror images of each other, for left/right flip augmentation.
MHR70_FLIP_PERM: tuple[int, ...] = tuple(
    MHR70_INDEX[n.replace("left_", "\0").replace("right_", "left_").replace("\0", "right_")]
    for n in MHR70_NAMES
)


def _ibug68_flip() -> list[int]:
    """Mirror permutation of the 68 iBUG face landmarks (left/right swap of a frontal face)."""
    perm = list(range(68))

    def mirror(a, b):  # reverse a contiguous run
        perm[a:b + 1] = list(range(b, a - 1, -1))

    mirror(0, 16)  # jaw
    perm[17:27] = list(range(26, 16, -1))  # brows swap
    mirror(31, 35)  # nostrils
    perm[36:48] = [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]  # eyes swap
    mirror(48, 54), mirror(55, 59), mirror(60, 64), mirror(65, 67)  # lips
    return perm


_FACE_FLIP = _ibug68_flip()
COCO_WHOLEBODY_FLIP_PERM: tuple[int, ...] = tuple(
    23 + _FACE_FLIP[i - 23] if n.startswith("face_")
    else COCO_WHOLEBODY_INDEX[n.replace("left_", "\0").replace("right_", "left_").replace("\0", "right_")]
    for i, n in enumerate(COCO_WHOLEBODY_NAMES)
)
