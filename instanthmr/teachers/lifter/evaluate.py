"""Scoring the lifter against real 3D, and making 2D/3D evaluation pairs from mocap with a virtual camera.

Errors are in the lifter's normalised space (mid-hip root, max-abs scale 1: unitless, roughly "fractions
of the body's half-extent"). Real ground truth rarely has all 133 joints (mocap and Human3.6M have body
joints only), so both the prediction and the ground truth are re-normalised over the joints that *both*
have before comparing: with complete ground truth this is exactly ``protocol.normalize_3d``.
numpy only.
"""

from __future__ import annotations

import numpy as np

from instanthmr.core import metrics
from instanthmr.core.geometry import default_focal, project_points
from instanthmr.core.rotations import axis_rotation
from instanthmr.core.skeleton import COCO_WHOLEBODY_INDEX as CI
from instanthmr.core.skeleton import COCO_WHOLEBODY_PARTS
from instanthmr.teachers.lifter.protocol import DEFAULT_MIN_FRACTION, NUM_JOINTS, ROOT_JOINTS

# ------------------------------------------------------------------------------------------------
# Virtual camera
# ------------------------------------------------------------------------------------------------


def world_to_camera(joints_world, up_axis: int = 1, azimuth_deg: float = 0.0, elevation_deg: float = 10.0,
                    distance: float = 4.0) -> np.ndarray:
    """View ``(T, J, 3)`` world joints (metres, +``up_axis`` up) from a virtual camera that follows the
    person: each frame is centred on its mid-hip, turned by ``azimuth`` about the vertical, seen from
    ``elevation`` degrees above, and placed ``distance`` metres ahead. Output: camera frame, metres,
    X right, Y down, Z forward (the project's camera axes)."""
    w = np.asarray(joints_world, dtype=np.float64)
    if up_axis == 2:  # Z-up -> Y-up, right-handed
        w = np.stack([w[..., 0], w[..., 2], -w[..., 1]], axis=-1)
    elif up_axis != 1:
        raise ValueError(f"up_axis must be 1 (Y) or 2 (Z), got {up_axis}")
    root = w[..., list(ROOT_JOINTS), :].mean(axis=-2, keepdims=True) if w.shape[-2] == NUM_JOINTS \
        else w.mean(axis=-2, keepdims=True)
    y_up = (w - root) @ axis_rotation(1, np.radians(azimuth_deg)).T
    # Y-up, camera on +Z looking at -Z -> camera axes (x right, y down, z forward): a 180 deg turn about X.
    cam = y_up * np.array([1.0, -1.0, -1.0])
    cam = cam @ axis_rotation(0, np.radians(elevation_deg)).T  # seen from above: the upper body comes closer to the camera
    return cam + np.array([0.0, 0.0, distance])


def project_to_image(joints_cam, image_wh=(1000, 1000), focal: float | None = None) -> np.ndarray:
    """Pixels ``(..., J, 2)`` of camera-frame joints on a virtual ``image_wh`` image (principal point at
    the centre, focal = the image diagonal unless given)."""
    wh = np.asarray(image_wh, dtype=np.float64)
    f = default_focal(wh) if focal is None else float(focal)
    return project_points(joints_cam, f, wh / 2.0)


# Where a joint the ground truth lacks is put in the lifter's 2D input: at its nearest existing anchor.
_ANCHORS = {
    **{i: "nose" for i in COCO_WHOLEBODY_PARTS["face"]},
    **{CI[n]: "nose" for n in ("left_eye", "right_eye", "left_ear", "right_ear")},
    **{i: "left_wrist" for i in COCO_WHOLEBODY_PARTS["left_hand"]},
    **{i: "right_wrist" for i in COCO_WHOLEBODY_PARTS["right_hand"]},
    **{CI[f"{s}_{p}"]: f"{s}_ankle" for s in ("left", "right") for p in ("big_toe", "small_toe", "heel")},
}


def fill_missing_2d(kp2d, valid) -> np.ndarray:
    """Complete ``(..., 133, 2)`` 2D keypoints where ``valid (..., 133)`` is False, for the lifter's input.

    The lifter always reads 133 joints; ground truth from mocap has ~14. A missing joint goes to its
    anchor (face/eyes/ears -> nose, hand -> wrist, toes/heel -> ankle), a missing nose to 0.35 of the
    shoulder-to-hip distance above the shoulder mid-point, anything else to the valid joints' centroid.
    This is a crude input (the lifter never saw collapsed hands or faces), so errors on ground truth made
    this way are pessimistic; the filled joints themselves are never scored.
    """
    k = np.array(kp2d, dtype=np.float64)
    v = np.broadcast_to(np.asarray(valid, bool), k.shape[:-1])
    flat_k, flat_v = k.reshape(-1, NUM_JOINTS, 2), v.reshape(-1, NUM_JOINTS)
    for p, ok in zip(flat_k, flat_v):
        if not ok.any():
            raise ValueError("fill_missing_2d: a sample has no valid 2D joint")
        centroid = p[ok].mean(axis=0)
        nose = p[CI["nose"]]
        if not ok[CI["nose"]]:
            sh, hp = [CI["left_shoulder"], CI["right_shoulder"]], [CI["left_hip"], CI["right_hip"]]
            if ok[sh].all() and ok[hp].all():
                mid_sh, mid_hp = p[sh].mean(0), p[hp].mean(0)
                nose = mid_sh + 0.35 * (mid_sh - mid_hp)
            else:
                nose = centroid
        for j in np.flatnonzero(~ok):
            anchor = _ANCHORS.get(j)
            if anchor == "nose" or j == CI["nose"]:
                p[j] = nose
            elif anchor is not None and ok[CI[anchor]]:
                p[j] = p[CI[anchor]]
            else:
                p[j] = centroid
    return flat_k.reshape(k.shape)


# ------------------------------------------------------------------------------------------------
# Scoring
# ------------------------------------------------------------------------------------------------


def _renormalise(kp: np.ndarray, use: np.ndarray) -> np.ndarray:
    """Root-centre on the mid-hip and divide by the max |coordinate| over the ``use`` joints only."""
    root = kp[list(ROOT_JOINTS)].mean(axis=0)
    c = kp - root
    scale = np.abs(c[use]).max()
    return c / (scale if scale > 0 else 1.0)


def evaluate_lifter(pred, pred_mask, gt, gt_valid=None, min_fraction: float = DEFAULT_MIN_FRACTION) -> dict:
    """Score lifter outputs against ground truth.

    ``pred (N, 133, 3)`` normalised lifter joints with ``pred_mask (N, 133)`` (parsed joints); ``gt
    (N, 133, 3)`` in any unit (metres, or already normalised) with ``gt_valid (N, 133)`` or ``(133,)``
    (joints the ground truth has; default all). A sample counts as parsed when at least ``min_fraction``
    of its joints parsed; only parsed samples with both hips are scored, on the joints that both sides
    have, after re-normalising both over those joints.

    Returns ``samples, parsed, parse_rate, mean_joints_parsed, scored, joints_scored`` (mean per scored
    sample), ``mpjpe, pa_mpjpe`` (normalised units, mean over scored samples) and ``per_part`` (MPJPE per
    COCO-WholeBody part, NaN where the ground truth has none of that part; ``pa_per_part`` likewise).
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    n = pred.shape[0]
    pmask = np.asarray(pred_mask, bool)
    gvalid = np.ones((n, NUM_JOINTS), bool) if gt_valid is None else np.broadcast_to(np.asarray(gt_valid, bool), (n, NUM_JOINTS))
    frac = pmask.mean(axis=1) if n else np.zeros(0)
    parsed = frac >= min_fraction
    both = pmask & gvalid
    scored = parsed & both[:, list(ROOT_JOINTS)].all(axis=1) & (both.sum(axis=1) >= 3)
    out = {"samples": int(n), "parsed": int(parsed.sum()), "parse_rate": float(parsed.mean()) if n else 0.0,
           "mean_joints_parsed": float(pmask.sum(axis=1).mean()) if n else 0.0, "scored": int(scored.sum())}
    nan_parts = {k: float("nan") for k in list(COCO_WHOLEBODY_PARTS) + ["all"]}
    if not scored.any():
        return {**out, "joints_scored": 0.0, "mpjpe": float("nan"), "pa_mpjpe": float("nan"),
                "per_part": dict(nan_parts), "pa_per_part": dict(nan_parts)}
    idx = np.flatnonzero(scored)
    p = np.stack([_renormalise(pred[i], both[i]) for i in idx])
    g = np.stack([_renormalise(gt[i], both[i]) for i in idx])
    m = both[idx]
    return {
        **out,
        "joints_scored": float(m.sum(axis=1).mean()),
        "mpjpe": float(np.nanmean(metrics.mpjpe(p, g, m))),
        "pa_mpjpe": float(np.nanmean(metrics.pa_mpjpe(p, g, m))),
        "per_part": metrics.per_part_mpjpe(p, g, COCO_WHOLEBODY_PARTS, m),
        "pa_per_part": metrics.per_part_mpjpe(p, g, COCO_WHOLEBODY_PARTS, m, align="procrustes"),
    }


def head_errors(pred, lifter, lifter_mask, gt=None, gt_valid=None) -> dict:
    """Errors of the network's whole-body head ``pred (N, 133, 3)`` (any unit) for the trainer's eval:
    ``{"vs_lifter": ..., "vs_gt": ...}``, each an :func:`evaluate_lifter` dict (normalised units), the
    second only when ground truth ``gt`` (with ``gt_valid``) is given."""
    p = np.asarray(pred, dtype=np.float64)
    full = np.ones(p.shape[:2], bool)
    # Score the head against the lifter on the lifter's parsed joints (the lifter plays ground truth).
    out = {"vs_lifter": evaluate_lifter(p, full, lifter, lifter_mask, min_fraction=0.0)}
    if gt is not None:
        out["vs_gt"] = evaluate_lifter(p, full, gt, gt_valid, min_fraction=0.0)
    return out
