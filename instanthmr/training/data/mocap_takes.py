"""Real motion capture seen through a virtual camera: the takes the temporal, body-fit and other synthetic
evaluations score against (truth known exactly).

Each BVH take in ``<shared data>/mocap`` is read with :mod:`instanthmr.core.mocap`, resampled to 30 fps and
placed 5 m in front of a virtual 1280x720 camera (focal = the image diagonal).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from instanthmr.core.geometry import default_focal, project_points
from instanthmr.core.mocap import BVHError, coco_wholebody_joints, load_bvh
from instanthmr.core.paths import shared_data_dir
from instanthmr.core.skeleton import COCO_WHOLEBODY_INDEX

FPS = 30.0
IMAGE_WH = (1280, 720)


@dataclass
class Take:
    name: str
    joints_world: np.ndarray  # (T, J, 3) metres, Y up
    cam: np.ndarray  # (T, J, 3) camera frame metres (x right, y down, z forward)
    uv: np.ndarray  # (T, J, 2) pixels
    hips: tuple[int, int]  # indices of the two hip joints in J
    coco_index: tuple[int, ...] = ()  # the COCO-WholeBody index of each of the J joints


def read_mocap(root: Path | None = None, max_frames: int = 600) -> tuple[list[tuple[str, np.ndarray, np.ndarray]], list[str]]:
    """Every readable BVH take under ``root`` (default ``<shared data>/mocap``) as ``(name, joints (T, 133, 3)
    COCO-WholeBody, metres, Y up, resampled to 30 fps and cut at max_frames, valid (133,) bool)``; and one line
    per skipped file."""
    root = Path(root or shared_data_dir() / "mocap")
    out, skipped = [], []
    for path in sorted(root.glob("*/*.bvh")):
        try:
            motion = load_bvh(path)
            joints, valid = coco_wholebody_joints(motion)
        except BVHError as e:
            skipped.append(f"{path.name}: {e}")
            continue
        step = max(1, int(round(motion.fps / FPS)))
        out.append((f"{path.parent.name}/{path.stem}", joints[::step][:max_frames], valid))
    return out, skipped


def load_takes(root: Path | None = None, max_frames: int = 600) -> tuple[list[Take], list[str]]:
    """All readable BVH takes (body joints only), at 30 fps, seen by the virtual camera. Returns the takes
    and one line per skipped file."""
    takes = []
    read, skipped = read_mocap(root, max_frames)
    for name, joints, valid in read:
        j = joints[:, valid]
        root_path = joints[:, [COCO_WHOLEBODY_INDEX["left_hip"], COCO_WHOLEBODY_INDEX["right_hip"]]].mean(1)
        centre = root_path.mean(0)
        cam = np.stack([j[..., 0] - centre[0], -(j[..., 1] - 1.0), j[..., 2] - centre[2] + 5.0], -1)
        cam[..., 2] = np.maximum(cam[..., 2], 1.5)
        uv = project_points(cam, default_focal(IMAGE_WH), (IMAGE_WH[0] / 2, IMAGE_WH[1] / 2))
        kept = list(np.flatnonzero(valid))
        hips = (kept.index(COCO_WHOLEBODY_INDEX["left_hip"]), kept.index(COCO_WHOLEBODY_INDEX["right_hip"]))
        takes.append(Take(name, j, cam, uv, hips, tuple(kept)))
    return takes, skipped
