"""Writing BVH: each track's motion, solved from its MHR70 keypoints by the rig solver
(:mod:`instanthmr.outputs.rig`), as one ``.bvh`` file per track (:func:`write_bvh`). Axes: Y up, Z towards the
camera, metres x ``scale``; rotations as ``Zrotation Xrotation Yrotation`` Euler angles in degrees. With the
grounded-motion stage's ``joints_3d_world`` the root path is the world frame's (the floor at y = 0, root
motion); without, the camera frame's, frame 0's pelvis above the origin and its lowest foot on y = 0.

Reading motion capture is :mod:`instanthmr.core.mocap`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from instanthmr.outputs.atomic import ResultsWriteError, atomic_write
from instanthmr.outputs.rig import BVHSolution, Rig, track_motions


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
              min_frames: int = 2, rig: str | Rig = "mhr70", world: bool = True, in_place: bool = False) -> list[Path]:
    """One BVH file per track (``<stem>_track<id>.bvh``), metres x ``scale``, at the source frame rate, each
    written to a temporary name and renamed into place. Returns the paths written.

    BVH has no gaps, so frames where a track was not seen repeat its last pose, and a joint the model did
    not have in a frame (``joints_valid`` False) holds its last valid position (:func:`track_motion`). A
    track's file starts at its first frame with every joint the skeleton needs (before it there is nothing
    to hold); the finger bones are left out when the hands are missing there. Tracks with fewer than
    ``min_frames`` such frames are skipped. ``rig``: joint names and rest pose (:data:`RIGS`; ``mixamo``
    for Mixamo-named T-pose rigs). ``world``: in the grounded world frame where the frames have
    ``joints_3d_world`` (every track in one frame: :func:`~instanthmr.outputs.rig.track_motions`);
    ``in_place``: the root's horizontal motion removed (game engines), its height kept."""
    if not fps or fps <= 0:
        raise ResultsWriteError(f"{path}: BVH needs a positive frame rate, got {fps}")
    written = []
    for motion in track_motions(frames, fps, hands=hands, rig=rig, min_frames=min_frames, world=world,
                                in_place=in_place, frame_step=1):
        out = bvh_track_path(path, motion.track_id)
        with atomic_write(out, "w", what="BVH") as fh:
            fh.write(format_bvh(motion.solution, fps, scale))
        written.append(out)
    return written
