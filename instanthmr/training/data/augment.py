"""Training crops from shard instances, with label-consistent augmentation (numpy + OpenCV only).

Every geometric augmentation is a real camera/scene transform, so all labels stay exact:

* **flip**: mirror the whole image about the principal point's vertical line. Pixels ``x -> 2 px - x``,
  camera-space ``X -> -X`` (joints and ``cam_trans``), left/right joints swapped with the skeleton's flip
  permutation, the box mirrored. MHR pose/shape parameters have no known mirror rule: marked invalid.
* **rotation**: roll the camera about its optical axis by ``theta``: pixels rotate about the principal
  point, camera-space points rotate about z by the same angle, the box centre moves with them (size kept).
  The global rotation inside ``mhr_params`` changes: marked invalid; ``shape_params`` stay valid.
* **box jitter** (scale and shift of the detection box): what the runtime's stride reuse produces, where
  the detector runs every N-th frame and the person moves inside a box that is up to N-1 frames old.
  Only the crop and the CLIFF condition change; every label is recomputed from the full-image labels.
* **truncation** (upper-body framing): keep only the top ``f`` of the box height, as a detector does for a
  head-and-shoulders portrait or a person cut by the image border. Labels are unchanged (joints below the
  crop stay supervised: the network must still place them), only the crop and the CLIFF condition change.
* **colour** (brightness, contrast, saturation, hue, grey) and **occlusion** patches touch pixels only.

The whole geometric chain (source pixels -> image -> augmented image -> crop) is one ``cv2.warpAffine``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from instanthmr.core import geometry
from instanthmr.core.geometry import IMAGENET_MEAN as _MEAN
from instanthmr.core.geometry import IMAGENET_STD as _STD
from instanthmr.core.rotations import axis_rotation
from instanthmr.core.skeleton import COCO_WHOLEBODY_FLIP_PERM, MHR70_FLIP_PERM

# the network's input normalisation (core.geometry), as float32 arrays so normalised crops stay float32
IMAGENET_MEAN = np.asarray(_MEAN, np.float32)
IMAGENET_STD = np.asarray(_STD, np.float32)


@dataclass
class AugmentConfig:
    """Probabilities and ranges; ``AugmentConfig.off()`` gives the plain evaluation crop."""

    scale_jitter: float = 0.15  # box side x U(1 - s, 1 + s)
    shift_jitter: float = 0.10  # box centre + U(-s, s) x box size, per axis
    rot_prob: float = 0.3
    rot_max_deg: float = 30.0
    flip_prob: float = 0.5
    color_prob: float = 0.8
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3
    hue_deg: float = 8.0
    gray_prob: float = 0.05
    occlusion_prob: float = 0.3
    occlusion_max: float = 0.4  # largest patch side, as a fraction of the crop
    occlusion_max_patches: int = 2
    truncate_prob: float = 0.0  # chance of an upper-body box (top part of the box only)
    truncate_min: float = 0.25  # kept fraction of the box height ~ U(truncate_min, truncate_max)
    truncate_max: float = 0.7

    @classmethod
    def off(cls) -> "AugmentConfig":
        return cls(scale_jitter=0, shift_jitter=0, rot_prob=0, flip_prob=0, color_prob=0, gray_prob=0,
                   occlusion_prob=0, truncate_prob=0)


def _h(m23: np.ndarray) -> np.ndarray:
    out = np.eye(3)
    out[:2] = m23
    return out


def _apply(m33: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m33[:2, :2].T + m33[:2, 2]


def normalize_crops(crops_rgb_uint8: np.ndarray) -> np.ndarray:
    """``(N, H, W, 3)`` uint8 RGB crops -> ``(N, 3, H, W)`` float32, ImageNet-normalised (network input)."""
    x = np.asarray(crops_rgb_uint8, np.float32) / 255.0
    x = (x - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(np.moveaxis(x, -1, -3))


def _color(crop: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    import cv2

    x = crop.astype(np.float32)
    if rng.random() < cfg.color_prob:
        x *= 1.0 + rng.uniform(-cfg.brightness, cfg.brightness)
        mean = x.mean()
        x = (x - mean) * (1.0 + rng.uniform(-cfg.contrast, cfg.contrast)) + mean
        gray = x.mean(axis=-1, keepdims=True)
        x = gray + (x - gray) * (1.0 + rng.uniform(-cfg.saturation, cfg.saturation))
        if cfg.hue_deg > 0:
            hsv = cv2.cvtColor(np.clip(x, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV)
            shift = int(round(rng.uniform(-cfg.hue_deg, cfg.hue_deg) / 2.0))  # OpenCV hue unit = 2 deg
            hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + shift) % 180).astype(np.uint8)
            x = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).astype(np.float32)
    if rng.random() < cfg.gray_prob:
        x = np.repeat(x.mean(axis=-1, keepdims=True), 3, axis=-1)
    return np.clip(x, 0, 255).astype(np.uint8)


def _occlude(crop: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    if rng.random() >= cfg.occlusion_prob:
        return crop
    crop = crop.copy()
    size = crop.shape[0]
    for _ in range(rng.integers(1, cfg.occlusion_max_patches + 1)):
        w, h = (rng.uniform(0.1, cfg.occlusion_max, 2) * size).astype(int)
        x0, y0 = rng.integers(0, size - w + 1), rng.integers(0, size - h + 1)
        if rng.random() < 0.5:
            crop[y0:y0 + h, x0:x0 + w] = rng.integers(0, 256, 3, dtype=np.uint8)
        else:
            crop[y0:y0 + h, x0:x0 + w] = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return crop


def make_crop_sample(inst: dict, source_rgb: np.ndarray, src_to_image: np.ndarray,
                     cfg: AugmentConfig | None = None, rng: np.random.Generator | None = None,
                     cliff_form: str = "pixel", out_size: int = geometry.CROP_SIZE) -> dict:
    """One network input + targets from a shard instance (labels in full-image frames).

    Returns ``image`` (out_size, out_size, 3) uint8 RGB; ``cliff_cond`` (3,); ``joints_2d`` (70, 2) in
    normalised crop coordinates; ``joints_3d`` (70, 3) body-centred metres and ``cam_trans`` (3,), both in
    the (augmented) camera axes; ``mhr_params``, ``shape_params``, ``joints_3d_wholebody``; a
    ``<field>_valid`` mask for each; and for the reprojection loss ``crop_box = [cx, cy, side]`` (pixels of
    the augmented image), ``focal`` and ``principal_point`` (pixels).
    """
    import cv2

    cfg = cfg or AugmentConfig.off()
    rng = rng or np.random.default_rng()
    w, h = (float(v) for v in inst["image_size"])
    k = np.asarray(inst["intrinsics"], np.float64)
    if k[0, 0] > 0:
        focal, pp = float(k[0, 0]), k[:2, 2].astype(np.float64)
    else:  # a teacher without intrinsics: the runtime's default camera
        focal, pp = geometry.default_focal((w, h)), np.array([w / 2.0, h / 2.0])

    j2d = np.asarray(inst["joints_2d"], np.float64)
    j3d = np.asarray(inst["joints_3d"], np.float64)
    cam = np.asarray(inst["cam_trans"], np.float64)
    wb3 = np.asarray(inst["joints_3d_wholebody"], np.float64)
    valid = {f: np.asarray(inst[f + "_valid"], bool).copy() for f in
             ("joints_2d", "joints_3d", "cam_trans", "mhr_params", "shape_params", "joints_3d_wholebody")}
    box = np.asarray(inst["box"], np.float64)
    aug = np.eye(3)  # image -> augmented image

    if rng.random() < cfg.flip_prob:
        aug = np.array([[-1.0, 0.0, 2.0 * pp[0]], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) @ aug
        perm, wperm = list(MHR70_FLIP_PERM), list(COCO_WHOLEBODY_FLIP_PERM)
        j2d, j3d, wb3 = j2d[perm], j3d[perm] * [-1, 1, 1], wb3[wperm] * [-1, 1, 1]
        cam = cam * [-1, 1, 1]
        for f, p in (("joints_2d", perm), ("joints_3d", perm), ("joints_3d_wholebody", wperm)):
            valid[f] = valid[f][p]
        valid["mhr_params"] = np.zeros_like(valid["mhr_params"])
        valid["shape_params"] = np.zeros_like(valid["shape_params"])
    if rng.random() < cfg.rot_prob and cfg.rot_max_deg > 0:
        theta = np.deg2rad(np.clip(rng.normal(0, cfg.rot_max_deg / 2), -cfg.rot_max_deg, cfg.rot_max_deg))
        rot3 = axis_rotation(2, theta)  # about the optical axis: the image turns about the principal point
        rot2 = rot3[:2, :2]
        rot = np.eye(3)
        rot[:2, :2] = rot2
        rot[:2, 2] = pp - rot2 @ pp
        aug = rot @ aug
        j3d, wb3, cam = j3d @ rot3.T, wb3 @ rot3.T, rot3 @ cam
        valid["mhr_params"] = np.zeros_like(valid["mhr_params"])

    # box in the augmented image: transformed centre, same size (square crops use max(w, h) anyway)
    cx, cy, size = geometry.box_center_size(box)
    bw, bh = box[2] - box[0], box[3] - box[1]
    centre = _apply(aug, np.array([cx, cy]))
    if np.allclose(aug[:2, :2], [[-1, 0], [0, 1]]) or np.allclose(aug[:2, :2], np.eye(2)):
        half = np.array([bw, bh]) / 2.0
    else:  # rotated: keep a square box so the crop side does not depend on the angle
        half = np.array([size, size]) / 2.0
    if cfg.truncate_prob > 0 and rng.random() < cfg.truncate_prob:
        # upper-body framing: same top edge (head) and width, bottom edge moved up
        keep = rng.uniform(cfg.truncate_min, cfg.truncate_max)
        top = centre[1] - half[1]
        half = np.array([half[0], half[1] * keep])
        centre = np.array([centre[0], top + half[1]])
    if cfg.scale_jitter > 0:
        half = half * rng.uniform(1 - cfg.scale_jitter, 1 + cfg.scale_jitter)
    if cfg.shift_jitter > 0:
        centre = centre + rng.uniform(-cfg.shift_jitter, cfg.shift_jitter, 2) * size
    new_box = np.concatenate([centre - half, centre + half])

    to_crop = _h(geometry.crop_affine(new_box, out_size))
    m = to_crop @ aug @ _h(src_to_image)
    crop = cv2.warpAffine(source_rgb, m[:2], (out_size, out_size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    crop = _occlude(_color(crop, cfg, rng), cfg, rng)

    j2d_aug = _apply(aug, j2d)
    sample = {
        "image": crop,
        "cliff_cond": geometry.cliff_condition(new_box, (w, h), focal, form=cliff_form),
        "joints_2d": geometry.image_to_crop(j2d_aug, new_box, out_size).astype(np.float32),
        "joints_3d": j3d.astype(np.float32), "cam_trans": cam.astype(np.float32),
        "mhr_params": np.asarray(inst["mhr_params"], np.float32),
        "shape_params": np.asarray(inst["shape_params"], np.float32),
        "joints_3d_wholebody": wb3.astype(np.float32),
        "crop_box": geometry.square_crop_box(new_box).astype(np.float32),
        "focal": np.float32(focal), "principal_point": pp.astype(np.float32),
    }
    for f, v in valid.items():
        sample[f + "_valid"] = v
    return sample
