"""Animated glTF 2.0 (binary ``.glb``) of every track: what Blender, Unity, three.js and most 3D tools open.

One file holds all tracks of a run. Per track:

- a joint hierarchy (the skeleton of :func:`~instanthmr.outputs.rig.bvh_skeleton`, named by the chosen
  :class:`~instanthmr.outputs.rig.Rig`), rest pose from the track's median bone lengths, and a skin over it
  with a small bone-shaped mesh (so viewers that draw no skeletons still show the person);
- one animation named ``track<id>``: per-frame joint rotations solved from the 3D keypoints by
  :func:`~instanthmr.outputs.rig.solve_bvh` (the rig solver, as for BVH) and the root translation from the
  camera-frame pelvis (``joints_3d_cam`` = body + ``cam_trans``), key times ``frame_index / fps`` (the
  source video's clock);
- with an MHR body model (:class:`~instanthmr.body.mhr.MHRNumpy`) and predicted ``mhr_params``: the MHR mesh
  skinned to MHR's own 127-joint skeleton, animated by the predicted parameters (animation
  ``track<id>_mhr``).

World axes and units (glTF's): metres, right-handed, Y up. With the grounded-motion stage's
``joints_3d_world`` in the frames, the world is its world frame (the floor at y = 0, origin on the floor under
the first track's first position, +Z towards the camera, root motion; every track in it, see
:func:`~instanthmr.outputs.rig.track_motions`), and the camera node sits where the stage put the camera.
Without, the world is the camera frame turned half a turn about X (x right, y up, z towards the camera) and
lifted so that the median lowest foot joint is at y = 0; the camera itself is a node at (0, h, 0). Either
way the camera has the video's field of view and looks down its -Z. ``in_place``: each track's root
keeps its height but not its horizontal motion (no camera node then: it would not line up). Frames where
a track was not seen hold its last pose; joints a model did not predict hold their last position (as in
the BVH writer); nothing is invented.

Written with numpy + json + struct only.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from instanthmr.body.mesh import vertex_normals
from instanthmr.core.rotations import euler_xyz_to_matrix, quaternion_from_matrix, quaternion_to_matrix
from instanthmr.core.skeleton import MHR70_INDEX
from instanthmr.outputs.atomic import ResultsWriteError, atomic_write
from instanthmr.outputs.rig import BVHSolution, TrackMotion, get_rig, track_motions

_FLOAT, _UBYTE, _USHORT, _UINT = 5126, 5121, 5123, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_NUM_COMPONENTS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}
_SIDE_COLORS = {"left": (0.25, 0.5, 0.95), "right": (0.95, 0.35, 0.25), "": (0.85, 0.85, 0.85)}


class GLBBuilder:
    """A glTF document and its binary buffer, built up accessor by accessor; :meth:`to_bytes` packs the
    ``.glb`` (12-byte header, JSON chunk, BIN chunk, each 4-byte aligned)."""

    def __init__(self, generator: str = "InstantHMR"):
        self.doc: dict = {"asset": {"version": "2.0", "generator": generator}, "scene": 0,
                          "scenes": [{"nodes": []}], "nodes": [], "buffers": [], "bufferViews": [],
                          "accessors": []}
        self.bin = bytearray()

    def add(self, kind: str, item: dict) -> int:
        self.doc.setdefault(kind, []).append(item)
        return len(self.doc[kind]) - 1

    def accessor(self, data, type_: str, component: int = _FLOAT, target: int | None = None,
                 minmax: bool = False) -> int:
        """Append ``data`` as one buffer view + accessor; returns the accessor index. ``minmax`` stores the
        exact per-component bounds (required for POSITION and animation inputs)."""
        dtype = {_FLOAT: np.float32, _UBYTE: np.uint8, _USHORT: np.uint16, _UINT: np.uint32}[component]
        arr = np.ascontiguousarray(np.asarray(data), dtype=dtype)
        n = _NUM_COMPONENTS[type_]
        count = arr.size // n
        while len(self.bin) % 4:
            self.bin.append(0)
        view = {"buffer": 0, "byteOffset": len(self.bin), "byteLength": arr.nbytes}
        if target is not None:
            view["target"] = target
        self.bin += arr.tobytes()
        acc = {"bufferView": self.add("bufferViews", view), "componentType": component, "count": count,
               "type": type_}
        if minmax:
            flat = arr.reshape(count, n)
            cast = float if component == _FLOAT else int
            acc["min"] = [cast(v) for v in flat.min(axis=0)]
            acc["max"] = [cast(v) for v in flat.max(axis=0)]
        return self.add("accessors", acc)

    def to_bytes(self) -> bytes:
        while len(self.bin) % 4:
            self.bin.append(0)
        self.doc["buffers"] = [{"byteLength": len(self.bin)}]
        js = json.dumps(self.doc, separators=(",", ":")).encode()
        js += b" " * (-len(js) % 4)
        total = 12 + 8 + len(js) + 8 + len(self.bin)
        return (struct.pack("<III", 0x46546C67, 2, total) + struct.pack("<II", len(js), 0x4E4F534A) + js
                + struct.pack("<II", len(self.bin), 0x004E4942) + bytes(self.bin))


def _continuous(q: np.ndarray) -> np.ndarray:
    """Quaternions ``(T, 4)`` with signs chosen so consecutive keys are in the same hemisphere (q and -q are
    the same rotation; interpolating between opposite signs would spin the long way round)."""
    q = q.copy()
    for t in range(1, len(q)):
        if np.dot(q[t], q[t - 1]) < 0:
            q[t] = -q[t]
    return q


def _bone_mesh(rest_pos: np.ndarray, parents: list[int], source_names: list[str]):
    """A bone-shaped double pyramid from each joint to each child (six vertices, eight triangles), skinned
    rigidly to the parent joint: ``(positions, colors, joints, indices)``."""
    pos, col, jnt, idx = [], [], [], []
    for i, p in enumerate(parents):
        if p < 0:
            continue
        a, b = rest_pos[p], rest_pos[i]
        d = b - a
        length = float(np.linalg.norm(d))
        if length < 1e-4:
            continue
        u = d / length
        ref = np.array([1.0, 0.0, 0.0]) if abs(u[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        e1 = np.cross(u, ref)
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(u, e1)
        r = min(0.1 * length, 0.03)
        mid = a + 0.2 * d
        ring = [mid + r * (np.cos(k * np.pi / 2) * e1 + np.sin(k * np.pi / 2) * e2) for k in range(4)]
        base = len(pos)
        pos += [a, *ring, b]
        side = source_names[i].split("_")[0] if source_names[i].startswith(("left_", "right_")) else ""
        col += [_SIDE_COLORS[side]] * 6
        jnt += [p] * 6
        for k in range(4):  # counter-clockwise seen from outside
            k2 = (k + 1) % 4
            idx += [base, base + 1 + k2, base + 1 + k, base + 1 + k, base + 1 + k2, base + 5]
    return (np.array(pos, np.float32).reshape(-1, 3), np.array(col, np.float32).reshape(-1, 3),
            np.array(jnt, np.int64), np.array(idx, np.uint32))


def _mat4_translation(t: np.ndarray) -> np.ndarray:
    """``(K, 3)`` -> ``(K, 16)`` column-major 4x4 translation matrices."""
    m = np.tile(np.eye(4).reshape(1, 16), (len(t), 1))
    m[:, 12:15] = t
    return m


def _rest_positions(sol: BVHSolution, root: np.ndarray) -> np.ndarray:
    """World joint positions of the rest pose (no rotations), root at ``root``."""
    rest = np.zeros((len(sol.names), 3))
    for i, p in enumerate(sol.parents):
        rest[i] = root if p < 0 else rest[p] + sol.offsets[i]
    return rest


@dataclass
class GLTFTrack:
    """What was exported for one track: ``track_id``, ``frames`` keyframes, ``first_frame`` (source frame
    index of the first key), ``joints`` count, ``mhr_mesh`` whether the MHR body was added."""

    track_id: int
    frames: int
    first_frame: int
    joints: int
    mhr_mesh: bool = False


class _Animation:
    """One glTF animation being built: linear channels sharing one time accessor (written when made)."""

    def __init__(self, b: GLBBuilder, times: np.ndarray):
        self.b = b
        self.t_in = b.accessor(times, "SCALAR", minmax=True)
        self.samplers: list[dict] = []
        self.channels: list[dict] = []

    def channel(self, node: int, path: str, values: np.ndarray, type_: str) -> None:
        self.samplers.append({"input": self.t_in, "output": self.b.accessor(values, type_), "interpolation": "LINEAR"})
        self.channels.append({"sampler": len(self.samplers) - 1, "target": {"node": node, "path": path}})

    def finish(self, name: str, extras: dict) -> None:
        self.b.add("animations", {"name": name, "samplers": self.samplers, "channels": self.channels,
                                  "extras": extras})


def add_skeleton_track(b: GLBBuilder, motion: TrackMotion, times: np.ndarray, lift: float,
                       material: int) -> None:
    """Joint nodes, skin, bone mesh and animation of one solved track (world lifted by ``lift`` metres)."""
    sol = motion.solution
    tid = motion.track_id
    translation = sol.translation + np.array([0.0, lift, 0.0])
    node0 = len(b.doc["nodes"])
    for i, name in enumerate(sol.names):
        node = {"name": name, "translation": [float(v) for v in (translation[0] if sol.parents[i] < 0
                                                                  else sol.offsets[i])]}
        children = [node0 + c for c, p in enumerate(sol.parents) if p == i]
        if children:
            node["children"] = children
        if sol.parents[i] < 0:
            node["extras"] = {"track_id": tid, "rig": motion.rig, "source_joints": sol.source_names}
        b.add("nodes", node)
    roots = [node0 + i for i, p in enumerate(sol.parents) if p < 0]
    # One untransformed parent per track: importers (Blender) make one armature per such group.
    b.doc["scenes"][0]["nodes"].append(b.add("nodes", {"name": f"track{tid}", "children": roots}))

    rest = _rest_positions(sol, translation[0])
    ibm = b.accessor(_mat4_translation(-rest), "MAT4")
    skin = b.add("skins", {"name": f"track{tid}", "joints": list(range(node0, node0 + len(sol.names))),
                           "skeleton": roots[0], "inverseBindMatrices": ibm})
    verts, colors, joints, indices = _bone_mesh(rest, sol.parents, sol.source_names)
    if len(indices):
        weights = np.zeros((len(verts), 4), np.float32)
        weights[:, 0] = 1.0
        jidx = np.zeros((len(verts), 4), np.uint16 if len(sol.names) > 255 else np.uint8)
        jidx[:, 0] = joints
        prim = {"attributes": {
            "POSITION": b.accessor(verts, "VEC3", target=_ARRAY_BUFFER, minmax=True),
            "COLOR_0": b.accessor(colors, "VEC3", target=_ARRAY_BUFFER),
            "JOINTS_0": b.accessor(jidx, "VEC4", _USHORT if jidx.dtype == np.uint16 else _UBYTE, _ARRAY_BUFFER),
            "WEIGHTS_0": b.accessor(weights, "VEC4", target=_ARRAY_BUFFER)},
            "indices": b.accessor(indices, "SCALAR", _UINT, _ELEMENT_ARRAY_BUFFER), "material": material}
        mesh = b.add("meshes", {"name": f"track{tid}_bones", "primitives": [prim]})
        b.doc["scenes"][0]["nodes"].append(b.add("nodes", {"name": f"track{tid}_bones", "mesh": mesh, "skin": skin}))

    anim = _Animation(b, times)
    channel = anim.channel

    channel(roots[0], "translation", translation, "VEC3")
    quats = quaternion_from_matrix(sol.rotations)  # (T, K, 4) x y z w
    for i in range(len(sol.names)):
        q = quats[:, i]
        if np.abs(q - [0.0, 0.0, 0.0, 1.0]).max() < 1e-7:
            continue  # never turns (end points): the rest pose says it all
        channel(node0 + i, "rotation", _continuous(q), "VEC4")
    anim.finish(f"track{tid}", {"track_id": tid, "fps": motion.fps, "first_frame": int(motion.frame_index[0])})


def add_mhr_track(b: GLBBuilder, model, motion: TrackMotion, times: np.ndarray, lift: float) -> bool:
    """The MHR mesh of one track, skinned to MHR's 127 joints and animated by the predicted parameters.

    MHR's linear blend skinning is glTF's: per joint a local translation ``offset + t``, rotation
    ``prerotation . Rz Ry Rx`` and uniform scale ``2**s`` composed down the tree, times the inverse bind
    pose. The track gets one body shape (the median of its ``shape_params``; no expressions, no pose
    correctives), the joints are in MHR's units (cm, Y up), under a node that scales them to metres and
    moves them by ``cam_trans`` (turned into the Y-up world). Returns False (nothing added) when the track
    has no finite ``mhr_params`` / ``shape_params``."""
    f = motion.fields
    if not all(k in f and np.isfinite(f[k]).all() for k in ("mhr_params", "shape_params", "cam_trans")):
        return False
    a = model.assets
    tid = motion.track_id
    params = f["mhr_params"].astype(np.float64).copy()
    params[:, :3] = 0.0  # root translation: cam_trans places the body (as the mesh renderer does)
    shape = np.median(f["shape_params"].astype(np.float64), axis=0)
    rest = a.rest_vertices.astype(np.float64) + np.tensordot(shape, a.identity_blendshapes, axes=1)
    jp = (params @ a.parameter_transform.T.astype(np.float64)).reshape(len(params), -1, 7)
    loc_t = jp[..., :3] + a.joint_offsets
    prerot = a.joint_prerotations.astype(np.float64)
    prerot = prerot / np.linalg.norm(prerot, axis=-1, keepdims=True)
    loc_r = quaternion_to_matrix(prerot)[None] @ euler_xyz_to_matrix(jp[..., 3:6])
    loc_s = np.exp(np.log(2.0) * jp[..., 6])

    names = list(a.joint_names) if len(a.joint_names) == len(a.joint_parents) else [f"mhr_{i}" for i in
                                                                                   range(len(a.joint_parents))]
    node0 = len(b.doc["nodes"]) + 1  # after the track's MHR root node
    place = b.add("nodes", {"name": f"track{tid}_mhr", "scale": [0.01, 0.01, 0.01], "translation": [0.0, 0.0, 0.0],
                            "children": [node0 + i for i, p in enumerate(a.joint_parents) if p < 0]})
    rest_q = quaternion_from_matrix(quaternion_to_matrix(prerot))
    for i, name in enumerate(names):
        node = {"name": f"track{tid}_{name}", "translation": [float(v) for v in a.joint_offsets[i]],
                "rotation": [float(v) for v in rest_q[i]]}
        children = [node0 + c for c, p in enumerate(a.joint_parents) if p == i]
        if children:
            node["children"] = children
        b.add("nodes", node)
    b.doc["scenes"][0]["nodes"].append(place)
    joints = list(range(node0, node0 + len(names)))
    skin = b.add("skins", {"name": f"track{tid}_mhr", "joints": joints, "skeleton": place,
                           "inverseBindMatrices": b.accessor(
                               np.swapaxes(a.inverse_bind_pose.astype(np.float64), -1, -2).reshape(-1, 16), "MAT4")})

    # Skin weights in sets of four, each vertex's weights summing to 1; unused slots point at joint 0.
    w = a.skin_weights.astype(np.float64)
    idx = np.where(w > 0, a.skin_indices, 0)
    k = -(-w.shape[1] // 4) * 4
    w = np.pad(w, ((0, 0), (0, k - w.shape[1])))
    idx = np.pad(idx, ((0, 0), (0, k - idx.shape[1])))
    w = w / w.sum(axis=1, keepdims=True)
    w32 = w.astype(np.float32)
    top = np.argmax(w32, axis=1)
    w32[np.arange(len(w32)), top] += (1.0 - w32.astype(np.float64).sum(axis=1)).astype(np.float32)
    jtype = _UBYTE if len(names) < 256 else _USHORT
    attrs = {"POSITION": b.accessor(rest, "VEC3", target=_ARRAY_BUFFER, minmax=True)}
    normals = vertex_normals(rest, a.faces)
    normals[np.linalg.norm(normals, axis=1) < 0.5] = [0.0, 1.0, 0.0]  # isolated vertices
    attrs["NORMAL"] = b.accessor(normals, "VEC3", target=_ARRAY_BUFFER)
    for s in range(k // 4):
        attrs[f"JOINTS_{s}"] = b.accessor(idx[:, 4 * s:4 * s + 4], "VEC4", jtype, _ARRAY_BUFFER)
        attrs[f"WEIGHTS_{s}"] = b.accessor(w32[:, 4 * s:4 * s + 4], "VEC4", target=_ARRAY_BUFFER)
    material = b.add("materials", {"name": "mhr_skin", "pbrMetallicRoughness": {
        "baseColorFactor": [0.82, 0.68, 0.58, 1.0], "metallicFactor": 0.0, "roughnessFactor": 0.6}})
    faces = a.faces.astype(np.uint32 if len(rest) > 65535 else np.uint16)
    prim = {"attributes": attrs, "material": material,
            "indices": b.accessor(faces.reshape(-1), "SCALAR", _UINT if faces.dtype == np.uint32 else _USHORT,
                                  _ELEMENT_ARRAY_BUFFER)}
    mesh = b.add("meshes", {"name": f"track{tid}_mhr", "primitives": [prim]})
    b.doc["scenes"][0]["nodes"].append(b.add("nodes", {"name": f"track{tid}_mhr_mesh", "mesh": mesh, "skin": skin}))

    anim = _Animation(b, times)
    channel = anim.channel

    cam_trans = f["cam_trans"].astype(np.float64)
    if motion.to_world is None:  # no camera-frame joints: the camera frame turned half a turn about X
        world = cam_trans * [1.0, -1.0, -1.0] + [0.0, lift, 0.0]
    else:  # MHR's model axes are the camera's turned about X: the node turns them into the track's world
        world = cam_trans @ motion.to_world.T + motion.world_offset + [0.0, lift, 0.0]
        turn = motion.to_world @ np.diag([1.0, -1.0, -1.0])
        if np.abs(turn - np.eye(3)).max() > 1e-9:
            b.doc["nodes"][place]["rotation"] = [float(v) for v in quaternion_from_matrix(turn)]
    channel(place, "translation", world, "VEC3")
    quats = quaternion_from_matrix(loc_r)
    for i in range(len(names)):
        if np.ptp(quats[:, i], axis=0).max() > 1e-7:
            channel(node0 + i, "rotation", _continuous(quats[:, i]), "VEC4")
        else:
            b.doc["nodes"][node0 + i]["rotation"] = [float(v) for v in quats[0, i]]
        if np.ptp(loc_t[:, i], axis=0).max() > 1e-7:
            channel(node0 + i, "translation", loc_t[:, i], "VEC3")
        else:
            b.doc["nodes"][node0 + i]["translation"] = [float(v) for v in loc_t[0, i]]
        if np.ptp(loc_s[:, i]) > 1e-7:
            channel(node0 + i, "scale", np.repeat(loc_s[:, i, None], 3, axis=1), "VEC3")
        elif abs(loc_s[0, i] - 1.0) > 1e-7:
            b.doc["nodes"][node0 + i]["scale"] = [float(loc_s[0, i])] * 3
    anim.finish(f"track{tid}_mhr", {"track_id": tid, "fps": motion.fps, "shape_params": "median of the track"})
    return True


def add_camera(b: GLBBuilder, focal_px: float, image_size: tuple[int, int], height: float,
               pose: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """The video camera: at (0, height, 0) looking down -Z (glTF's camera convention = our world's), or with
    ``pose`` = ``(to_world (3, 3), position (3,))`` (camera frame -> world, metres) where that puts it."""
    w, h = image_size
    cam = b.add("cameras", {"name": "video", "type": "perspective", "perspective": {
        "yfov": float(2.0 * np.arctan(0.5 * h / focal_px)), "aspectRatio": float(w / h), "znear": 0.05}})
    node = {"name": "video_camera", "camera": cam, "translation": [0.0, float(height), 0.0]}
    if pose is not None:  # glTF's camera axes are ours turned half a turn about X (y up, looking down -Z)
        node["translation"] = [float(v) for v in pose[1]]
        node["rotation"] = [float(v) for v in quaternion_from_matrix(pose[0] @ np.diag([1.0, -1.0, -1.0]))]
    b.doc["scenes"][0]["nodes"].append(b.add("nodes", node))


_FEET = [MHR70_INDEX[f"{s}_{n}"] for s in ("left", "right") for n in ("ankle", "heel", "big_toe_tip", "small_toe_tip")]


def _world_lift(motions: list[TrackMotion]) -> float:
    """Metres to add to y so that the median lowest foot keypoint over all tracks and frames is at 0 (from
    the camera-frame keypoints, so every rig gets the same world; from the solved skeleton without them)."""
    lows = []
    for m in motions:
        cam = m.fields.get("joints_3d_cam")
        if cam is not None:
            y = -cam[:, _FEET, 1].astype(np.float64)  # y down -> y up
            y = np.where(np.isfinite(y), y, np.inf).min(axis=1)
            lows.append(y[np.isfinite(y)])
        else:
            foot = [i for i, n in enumerate(m.solution.source_names) if n.endswith(("heel", "toe_tip", "ankle"))]
            lows.append(m.solution.joint_positions()[:, foot, 1].min(axis=1))
    lows = np.concatenate(lows) if lows else np.zeros(0)
    return -float(np.median(lows)) if lows.size else 0.0


def build_glb(frames: Iterable, fps: float, hands: bool = True, rig: str = "mhr70", min_frames: int = 2,
              image_size: tuple[int, int] | None = None, mhr_model=None, world: bool = True,
              in_place: bool = False) -> tuple[bytes, list[GLTFTrack]]:
    """The ``.glb`` bytes for all tracks in ``frames`` and what went in (see the module docstring).
    ``world``: the grounded world frame where the frames have ``joints_3d_world``; ``in_place``: no
    horizontal root motion."""
    if not fps or fps <= 0:
        raise ValueError(f"glTF export needs a positive frame rate, got {fps}")
    frames = list(frames)
    motions = track_motions(frames, fps, hands=hands, rig=rig, rebase=False, min_frames=min_frames, world=world,
                            in_place=in_place)
    if not motions:
        return b"", []
    b = GLBBuilder()
    material = b.add("materials", {"name": "bones", "pbrMetallicRoughness": {
        "baseColorFactor": [1.0, 1.0, 1.0, 1.0], "metallicFactor": 0.0, "roughnessFactor": 0.8}})
    grounded = any(m.grounded for m in motions)
    lift = 0.0 if grounded else _world_lift(motions)  # the grounded world has its floor at y = 0 already
    report = []
    for m in motions:
        times = m.frame_index.astype(np.float64) / fps
        add_skeleton_track(b, m, times, lift, material)
        has_mesh = mhr_model is not None and add_mhr_track(b, mhr_model, m, times, lift)
        report.append(GLTFTrack(m.track_id, len(times), int(m.frame_index[0]), len(m.solution.names), has_mesh))
    focal = [m.focal_length for m in motions if m.focal_length]
    placed = [m for m in motions if m.to_world is not None]
    if image_size and focal and all(image_size) and not in_place:
        # grounded: where the first track's first frame puts the camera centre (camera frame origin)
        pose = (placed[0].to_world, placed[0].world_offset[0]) if grounded and placed else None
        add_camera(b, float(np.median(focal)), image_size, lift, pose)
    axes = ("Y up, the floor at y=0, +Z towards the camera, root motion (the grounded world frame)" if grounded
            else "Y up, camera looks down -Z, x right (camera frame turned half a turn about X, lifted so the "
                 "feet are at y=0)")
    b.doc["asset"]["extras"] = {"fps": fps, "rig": get_rig(rig).name, "units": "metres", "axes": axes,
                                "frame": "world" if grounded else "camera", "in_place": bool(in_place)}
    return b.to_bytes(), report


def write_gltf(path, frames: Iterable, fps: float, hands: bool = True, rig: str = "mhr70", min_frames: int = 2,
               image_size: tuple[int, int] | None = None, mhr_model=None, world: bool = True,
               in_place: bool = False) -> list[GLTFTrack]:
    """Write :func:`build_glb`'s file to ``path`` (temporary name, then renamed into place). Returns what was
    exported per track; nothing is written (and ``[]`` returned) when no track has ``min_frames`` frames."""
    try:
        data, report = build_glb(frames, fps, hands, rig, min_frames, image_size, mhr_model, world, in_place)
    except ValueError as e:
        raise ResultsWriteError(f"{path}: {e}") from None
    if report:
        with atomic_write(Path(path), "wb", what="glTF") as fh:
            fh.write(data)
    return report


def read_glb(path) -> tuple[dict, bytes]:
    """``(json document, binary chunk)`` of a ``.glb`` (for tests and tools; no validation)."""
    data = Path(path).read_bytes()
    magic, version, total = struct.unpack_from("<III", data, 0)
    if magic != 0x46546C67 or version != 2 or total != len(data):
        raise ValueError(f"{path}: not a glTF 2.0 binary file")
    n, _ = struct.unpack_from("<II", data, 12)
    doc = json.loads(data[20:20 + n])
    off = 20 + n
    binary = b""
    if off < len(data):
        m, _ = struct.unpack_from("<II", data, off)
        binary = data[off + 8: off + 8 + m]
    return doc, binary


def accessor_array(doc: dict, binary: bytes, index: int) -> np.ndarray:
    """An accessor's data as ``(count, components)`` numpy array (tightly packed views only)."""
    acc = doc["accessors"][index]
    view = doc["bufferViews"][acc["bufferView"]]
    dtype = {_FLOAT: np.float32, _UBYTE: np.uint8, _USHORT: np.uint16, _UINT: np.uint32}[acc["componentType"]]
    n = _NUM_COMPONENTS[acc["type"]]
    start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
    return np.frombuffer(binary, dtype=dtype, count=acc["count"] * n, offset=start).reshape(acc["count"], n)

