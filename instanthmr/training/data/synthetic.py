"""Synthetic people with exactly known labels, for tests and trainer smoke runs (no teacher, no data).

A procedural MHR70 stick figure (metres, camera axes, body-centred at the floor between the feet like SAM
3D Body's outputs) is posed (yaw, arm raise, scale), placed in front of a pinhole camera, projected and
drawn with left/right-coloured limbs. Every label (``joints_3d``, ``joints_2d``, ``cam_trans``, and
``mhr_params`` / ``shape_params`` that encode the generator's pose and scale parameters) is exact, so a
network trained on them must drive every loss down.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from instanthmr.body.mhr import NUM_MODEL_PARAMS, NUM_SHAPE
from instanthmr.core import geometry
from instanthmr.core.rotations import axis_rotation
from instanthmr.core.skeleton import MHR70_EDGE_GROUPS, MHR70_INDEX

_FINGERS = ("thumb", "index", "middle", "ring", "pinky")
_SEGS_FROM_WRIST = ("third_joint", "second_joint", "first_joint", "tip")


def canonical_mhr70() -> np.ndarray:
    """A standing MHR70 figure facing the camera (person's left on +x, front toward -z), arms in an A."""
    j = {}
    for side, sx in (("left", 1.0), ("right", -1.0)):
        j[f"{side}_hip"] = (0.10 * sx, -0.92, 0.0)
        j[f"{side}_knee"] = (0.11 * sx, -0.50, -0.02)
        j[f"{side}_ankle"] = (0.11 * sx, -0.08, 0.0)
        j[f"{side}_heel"] = (0.11 * sx, -0.02, 0.05)
        j[f"{side}_big_toe_tip"] = (0.09 * sx, -0.01, -0.16)
        j[f"{side}_small_toe_tip"] = (0.15 * sx, -0.01, -0.13)
        j[f"{side}_shoulder"] = (0.18 * sx, -1.42, 0.0)
        j[f"{side}_acromion"] = (0.20 * sx, -1.44, 0.0)
        j[f"{side}_elbow"] = (0.32 * sx, -1.18, 0.0)
        j[f"{side}_olecranon"] = (0.32 * sx, -1.18, 0.03)
        j[f"{side}_cubital_fossa"] = (0.32 * sx, -1.18, -0.03)
        j[f"{side}_wrist"] = (0.45 * sx, -0.95, -0.02)
        j[f"{side}_eye"] = (0.03 * sx, -1.66, -0.08)
        j[f"{side}_ear"] = (0.075 * sx, -1.64, 0.0)
    j["nose"] = (0.0, -1.62, -0.10)
    j["neck"] = (0.0, -1.48, 0.0)
    out = np.zeros((70, 3))
    for n, p in j.items():
        out[MHR70_INDEX[n]] = p
    for side in ("left", "right"):
        out = _place_hand(out, side)
    return out


def _place_hand(joints: np.ndarray, side: str) -> np.ndarray:
    """Fan five fingers out from the wrist along the forearm direction."""
    wrist, elbow = joints[MHR70_INDEX[f"{side}_wrist"]], joints[MHR70_INDEX[f"{side}_elbow"]]
    d = (wrist - elbow) / (np.linalg.norm(wrist - elbow) + 1e-9)
    perp = np.cross(d, [0.0, 0.0, 1.0])
    perp /= np.linalg.norm(perp) + 1e-9
    for fi, finger in enumerate(_FINGERS):
        spread = (fi - 2) * 0.018
        for si, seg in enumerate(_SEGS_FROM_WRIST):
            joints[MHR70_INDEX[f"{side}_{finger}_{seg}"]] = wrist + d * (0.04 + 0.025 * si) + perp * spread * (1 + si * 0.3)
    return joints


def posed_mhr70(yaw: float, left_arm: float, right_arm: float, scale: float) -> np.ndarray:
    """The canonical figure with arms raised by the given angles (radians) about the shoulders, turned by
    ``yaw`` about the vertical axis and uniformly scaled."""
    j = canonical_mhr70()
    for side, ang, sgn in (("left", left_arm, -1.0), ("right", right_arm, 1.0)):
        idx = [i for n, i in MHR70_INDEX.items() if n.startswith(side) and any(
            k in n for k in ("elbow", "wrist", "olecranon", "cubital", *_FINGERS))]
        sh = j[MHR70_INDEX[f"{side}_shoulder"]]
        j[idx] = (j[idx] - sh) @ axis_rotation(2, sgn * ang).T + sh
    return (j @ axis_rotation(1, yaw).T) * scale


_PART_COLOURS = {"left": (255, 80, 40), "right": (40, 120, 255), "mid": (240, 240, 60)}


def render_person(image: np.ndarray, joints_2d: np.ndarray) -> np.ndarray:
    """Draw the figure (thick limbs coloured by side) onto ``image`` (H, W, 3) uint8 RGB, in place."""
    import cv2

    for group, edges in MHR70_EDGE_GROUPS.items():
        colour = _PART_COLOURS["left" if group.startswith("left") else "right" if group.startswith("right")
                               else "mid"]
        thick = 2 if "hand" in group else 5
        for a, b in edges:
            pa, pb = joints_2d[a], joints_2d[b]
            cv2.line(image, (int(round(pa[0])), int(round(pa[1]))), (int(round(pb[0])), int(round(pb[1]))),
                     colour, thick, cv2.LINE_AA)
    nose = joints_2d[MHR70_INDEX["nose"]]
    cv2.circle(image, (int(round(nose[0])), int(round(nose[1]))), 6, (255, 255, 255), -1, cv2.LINE_AA)
    return image


def synthetic_person(rng: np.random.Generator, image_wh=(320, 240)) -> tuple[np.ndarray, dict]:
    """One image with one drawn person and its exact labels as a shard instance (no pixels attached)."""
    w, h = image_wh
    yaw = rng.uniform(-np.pi / 2, np.pi / 2)
    la, ra = rng.uniform(-0.3, 1.6, 2)
    scale = rng.uniform(0.85, 1.1)
    j3d = posed_mhr70(yaw, la, ra, scale)
    f = geometry.default_focal((w, h))
    pp = np.array([w / 2.0, h / 2.0])
    z = rng.uniform(4.0, 6.0)
    # aim the mid-body at a random point near the image centre
    target = pp + rng.uniform(-0.15, 0.15, 2) * [w, h]
    mid = j3d[[MHR70_INDEX["left_hip"], MHR70_INDEX["right_hip"]]].mean(0)
    cam = np.array([(target[0] - pp[0]) * z / f - mid[0], (target[1] - pp[1]) * z / f - mid[1], z - mid[2]])
    j2d = geometry.project_points(j3d + cam, f, pp)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = rng.integers(0, 90, 3, dtype=np.uint8)
    img = np.clip(img.astype(np.int16) + rng.integers(-12, 13, (h, w, 1)), 0, 255).astype(np.uint8)
    render_person(img, j2d)
    lo, hi = j2d.min(0), j2d.max(0)
    pad = (hi - lo) * 0.08
    mhr = np.zeros(NUM_MODEL_PARAMS)
    mhr[3:6] = (0.0, yaw, 0.0)
    mhr[6:8] = (la, ra)
    shape = np.zeros(NUM_SHAPE)
    shape[0] = scale - 1.0
    inst = {
        "box": np.concatenate([lo - pad, hi + pad]), "image_size": (w, h),
        "intrinsics": geometry.intrinsics((w, h), f), "joints_3d": j3d, "joints_2d": j2d, "cam_trans": cam,
        "mhr_params": mhr, "shape_params": shape,
    }
    return img, inst


def write_synthetic_shards(out_dir: str | Path, n: int, seed: int = 0, shard_size: int = 16,
                           image_wh=(320, 240)) -> Path:
    """``n`` synthetic people as an embedded-crop shard set (teacher ``synthetic``) in ``out_dir``."""
    from instanthmr.training.data.shards import ShardWriter, encode_context_crop

    rng = np.random.default_rng(seed)
    with ShardWriter(out_dir, teacher="synthetic", teacher_version=f"seed{seed}", shard_size=shard_size) as w:
        for i in range(n):
            key = f"synthetic/{seed}/{i:06d}"
            img, inst = synthetic_person(rng, image_wh)
            if w.is_done(key):
                continue
            jpeg, ctx = encode_context_crop(img, inst["box"])
            w.add({**inst, "source": key, "image_jpeg": jpeg, "context_box": ctx})
            w.mark_done(key)
    return Path(out_dir)
