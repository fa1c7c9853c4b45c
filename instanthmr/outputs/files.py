"""Writing tracked results for other tools: JSON, CSV, NPZ and BVH.

Input everywhere is a sequence of *frames*; a frame has ``frame_index``, optionally ``time_s``, and
``persons``; a person has ``track_id`` and the :class:`~instanthmr.runtime.hmr.HMRPrediction` fields, either
directly or on a wrapped ``prediction`` (as :class:`~instanthmr.video.tracking.TrackedPerson` does). Missing
optional fields are skipped, never invented.

Coordinate frames written (also stated in each file's metadata):

* ``joints_2d``: full-image pixels, x right, y down.
* ``joints_3d`` (= ``joints_3d_local``): metres, body-centred, camera axes (x right, y down, z forward).
* ``joints_3d_cam``: metres, camera frame (x right, y down, z forward).
* BVH: Y up, Z towards the camera, metres by default (see :func:`write_bvh`).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from instanthmr.core.skeleton import MHR70_INDEX, MHR70_NAMES

#: Per-person array fields written to JSON/NPZ when present (name -> trailing shape, for the NPZ schema).
PERSON_FIELDS: dict[str, tuple[int, ...]] = {
    "box": (4,),
    "joints_2d": (70, 2),
    "joints_3d_local": (70, 3),
    "joints_3d_cam": (70, 3),
    "cam_trans": (3,),
    "mhr_params": (204,),
    "shape_params": (45,),
}
SCALAR_FIELDS = ("score", "focal_length")

CSV_COLUMNS = ("frame_index", "time_s", "track_id", "joint_index", "joint_name", "x_px", "y_px",
               "x_m", "y_m", "z_m", "cam_x_m", "cam_y_m", "cam_z_m")


class ResultsWriteError(RuntimeError):
    """Results could not be written (path not writable, nothing to write)."""


def _get(person, name: str):
    """A field of a person, looked up on the person, then on its wrapped ``prediction``."""
    if hasattr(person, name):
        return getattr(person, name)
    inner = getattr(person, "prediction", None)
    return getattr(inner, name, None) if inner is not None else None


def _frame_time(frame, fps: float | None) -> float:
    t = getattr(frame, "time_s", None)
    if t is not None:
        return float(t)
    return float(frame.frame_index) / fps if fps else float("nan")


def _open_for_write(path) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ResultsWriteError(f"{path}: cannot create folder ({e.strerror or e})") from None
    return path


# --------------------------------------------------------------------------------------------------
# Per-track arrays
# --------------------------------------------------------------------------------------------------

@dataclass
class TrackSeries:
    """One track's results stacked over the frames it was seen in (time order).

    ``frame_index (T,)`` int, ``time_s (T,)`` seconds, ``fields`` name -> ``(T, ...)`` arrays (see
    :data:`PERSON_FIELDS` for units) plus ``score``/``focal_length`` ``(T,)``.
    """

    track_id: int
    frame_index: np.ndarray
    time_s: np.ndarray
    fields: dict[str, np.ndarray]


def tracks_from_frames(frames: Iterable, fps: float | None = None) -> dict[int, TrackSeries]:
    """Group the persons of all frames by ``track_id`` (persons without a track ID are skipped)."""
    rows: dict[int, list] = {}
    for frame in frames:
        t = _frame_time(frame, fps)
        for p in frame.persons:
            tid = _get(p, "track_id")
            if tid is None or int(tid) < 0:
                continue
            rows.setdefault(int(tid), []).append((int(frame.frame_index), t, p))
    out = {}
    for tid, items in sorted(rows.items()):
        items.sort(key=lambda r: r[0])
        fields = {}
        for name in list(PERSON_FIELDS) + list(SCALAR_FIELDS):
            vals = [_get(p, name) for _, _, p in items]
            if all(v is not None for v in vals):
                fields[name] = np.stack([np.asarray(v, dtype=np.float32) for v in vals])
        out[tid] = TrackSeries(tid, np.array([r[0] for r in items], np.int64),
                               np.array([r[1] for r in items], np.float64), fields)
    return out


# --------------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------------

def _round(a, nd: int = 5):
    return np.round(np.asarray(a, dtype=np.float64), nd).tolist()


def person_record(person) -> dict:
    """A JSON-ready dict of one person (``track_id`` first; arrays as nested lists)."""
    rec: dict = {}
    tid = _get(person, "track_id")
    if tid is not None:
        rec["track_id"] = int(tid)
    for name in SCALAR_FIELDS:
        v = _get(person, name)
        if v is not None:
            rec[name] = round(float(v), 5)
    for name in PERSON_FIELDS:
        v = _get(person, name)
        if v is not None:
            rec[name] = _round(v)
    return rec


def write_json(path, frames: Iterable, fps: float | None = None, meta: dict | None = None) -> Path:
    """All frames as one JSON document ``{"meta": ..., "frames": [{frame_index, time_s, persons}]}``."""
    path = _open_for_write(path)
    doc = {
        "meta": {
            "joint_names": list(MHR70_NAMES),
            "units": {"joints_2d": "px (x right, y down)", "joints_3d_local": "m, body-centred, camera axes",
                      "joints_3d_cam": "m, camera frame (x right, y down, z forward)", "cam_trans": "m"},
            "fps": fps,
            **(meta or {}),
        },
        "frames": [
            {"frame_index": int(f.frame_index), "time_s": _frame_time(f, fps),
             "persons": [person_record(p) for p in f.persons]}
            for f in frames
        ],
    }
    try:
        path.write_text(json.dumps(doc, allow_nan=False, default=float).replace("NaN", "null"))
    except (OSError, ValueError) as e:
        raise ResultsWriteError(f"{path}: cannot write JSON ({e})") from None
    return path


# --------------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------------

def write_csv(path, frames: Iterable, fps: float | None = None) -> int:
    """One row per frame x person x joint (columns :data:`CSV_COLUMNS`); returns the number of rows.

    ``x_m, y_m, z_m`` are the body-centred 3D joints, ``cam_*_m`` the camera-frame ones; a column whose
    field a person lacks is left empty.
    """
    path = _open_for_write(path)
    n = 0
    try:
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(CSV_COLUMNS)
            for f in frames:
                t = _frame_time(f, fps)
                for p in f.persons:
                    tid = _get(p, "track_id")
                    j2 = _get(p, "joints_2d")
                    j3 = _get(p, "joints_3d_local")
                    jc = _get(p, "joints_3d_cam")
                    for j, name in enumerate(MHR70_NAMES):
                        row = [int(f.frame_index), f"{t:.6f}", -1 if tid is None else int(tid), j, name]
                        for arr, dims in ((j2, 2), (j3, 3), (jc, 3)):
                            row += [""] * dims if arr is None else [f"{float(v):.6g}" for v in np.asarray(arr)[j]]
                        w.writerow(row)
                        n += 1
    except OSError as e:
        raise ResultsWriteError(f"{path}: cannot write CSV ({e.strerror or e})") from None
    return n


# --------------------------------------------------------------------------------------------------
# NPZ
# --------------------------------------------------------------------------------------------------

def write_npz(path, frames: Iterable, fps: float | None = None) -> Path:
    """Arrays per track, in one compressed ``.npz``.

    Keys: ``track_ids (K,)``, ``joint_names (70,)``, ``fps ()`` and per track ``track_<id>/<field>`` with
    ``frame_index (T,)``, ``time_s (T,)`` and every field present (see :data:`PERSON_FIELDS`) stacked
    ``(T, ...)``. Read back with :func:`read_npz_tracks`.
    """
    path = _open_for_write(path)
    tracks = tracks_from_frames(frames, fps)
    arrays = {"track_ids": np.array(sorted(tracks), np.int64), "joint_names": np.array(MHR70_NAMES),
              "fps": np.array(np.nan if fps is None else fps, np.float64)}
    for tid, s in tracks.items():
        arrays[f"track_{tid}/frame_index"] = s.frame_index
        arrays[f"track_{tid}/time_s"] = s.time_s
        for name, arr in s.fields.items():
            arrays[f"track_{tid}/{name}"] = arr
    try:
        with path.open("wb") as fh:
            np.savez_compressed(fh, **arrays)
    except OSError as e:
        raise ResultsWriteError(f"{path}: cannot write NPZ ({e.strerror or e})") from None
    return path


def read_npz_tracks(path) -> dict[int, dict[str, np.ndarray]]:
    """``{track_id: {field: array}}`` from a file written by :func:`write_npz`."""
    with np.load(path, allow_pickle=False) as z:
        out: dict[int, dict[str, np.ndarray]] = {int(t): {} for t in z["track_ids"]}
        for key in z.files:
            if key.startswith("track_") and "/" in key:
                head, name = key.split("/", 1)
                out[int(head[len("track_"):])][name] = z[key]
    return out


# --------------------------------------------------------------------------------------------------
# BVH
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
