"""Pose metrics, batched numpy.

Units: every error is returned in the unit of its input (the project feeds metres; multiply by 1000 for
the millimetres that papers quote). Arrays are ``(..., J, 3)``; leading axes are batch axes. Optional
``mask`` arrays are ``(..., J)`` booleans (True = joint counts); a sample with no valid joint gives NaN.
"""

from __future__ import annotations

import numpy as np

from instanthmr.core.rotations import kabsch


def _masked_mean(err: np.ndarray, mask) -> np.ndarray:
    """Mean over the joint axis of ``err (..., J)``, counting only ``mask`` joints."""
    if mask is None:
        return err.mean(axis=-1)
    m = np.broadcast_to(np.asarray(mask, dtype=bool), err.shape)
    n = m.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (err * m).sum(axis=-1) / np.maximum(n, 1), np.nan)


def joint_errors(pred, gt) -> np.ndarray:
    """Euclidean error per joint, ``(..., J)``."""
    return np.linalg.norm(np.asarray(pred, dtype=np.float64) - np.asarray(gt, dtype=np.float64), axis=-1)


def mpjpe(pred, gt, mask=None) -> np.ndarray:
    """Mean per-joint position error ``(...)``: mean Euclidean distance over joints, no alignment.

    Align roots yourself first (e.g. :func:`root_align`) when comparing root-relative poses.
    """
    return _masked_mean(joint_errors(pred, gt), mask)


def root_align(joints, root) -> np.ndarray:
    """Subtract the root joint (an index, or a list of indices whose mean is the root)."""
    j = np.asarray(joints, dtype=np.float64)
    idx = np.atleast_1d(root)
    return j - j[..., idx, :].mean(axis=-2, keepdims=True)


def procrustes_align(pred, gt, mask=None) -> np.ndarray:
    """Similarity-align ``pred`` to ``gt`` (rotation, uniform scale, translation; Umeyama 1991).

    The rotation is constrained to det = +1 (the reflection fix), so a mirrored cloud is *not* aligned
    onto the original. Only ``mask`` joints drive the fit; all joints are transformed.
    """
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    w = np.ones(p.shape[:-1]) if mask is None else np.broadcast_to(np.asarray(mask, float), p.shape[:-1])
    w = w[..., None]
    n = np.maximum(w.sum(axis=-2, keepdims=True), 1e-12)
    mu_p = (p * w).sum(axis=-2, keepdims=True) / n
    mu_g = (g * w).sum(axis=-2, keepdims=True) / n
    p0, g0 = p - mu_p, g - mu_g
    rot = kabsch(p0, g0, w[..., 0])
    turned = p0 @ np.swapaxes(rot, -1, -2)
    var_p = ((p0 ** 2) * w).sum(axis=(-1, -2)) / n[..., 0, 0]
    scale = ((turned * g0) * w).sum(axis=(-1, -2)) / n[..., 0, 0] / np.maximum(var_p, 1e-12)  # trace(R^T cov) / var
    return scale[..., None, None] * turned + mu_g


def pa_mpjpe(pred, gt, mask=None) -> np.ndarray:
    """MPJPE after similarity Procrustes alignment of ``pred`` to ``gt`` (reflections excluded)."""
    return mpjpe(procrustes_align(pred, gt, mask), gt, mask)


def per_part_mpjpe(pred, gt, parts: dict[str, tuple[int, ...]], mask=None, align: str = "none") -> dict[str, float]:
    """MPJPE per body-part group (e.g. ``skeleton.MHR70_PARTS``), averaged over all samples.

    ``align``: ``"none"`` as given, ``"procrustes"`` aligned on all joints first. Returns ``{part: error}``
    plus ``"all"``; parts with no valid joint give NaN.
    """
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    if align == "procrustes":
        p = procrustes_align(p, g, mask)
    elif align != "none":
        raise ValueError(f"align must be 'none' or 'procrustes', got {align!r}")
    err = joint_errors(p, g)
    m = np.ones(err.shape, bool) if mask is None else np.broadcast_to(np.asarray(mask, bool), err.shape)
    out = {}
    for name, idx in list(parts.items()) + [("all", tuple(range(err.shape[-1])))]:
        sel, e = m[..., list(idx)], err[..., list(idx)]
        out[name] = float(e[sel].mean()) if sel.any() else float("nan")
    return out


def pck(pred, gt, threshold: float, mask=None) -> np.ndarray:
    """Percentage of correct keypoints ``(...)``: fraction of joints within ``threshold`` (same unit),
    in ``[0, 1]``. Works for 2D or 3D points."""
    correct = (joint_errors(pred, gt) <= threshold).astype(np.float64)
    return _masked_mean(correct, mask)


def acceleration(seq) -> np.ndarray:
    """Second finite difference over time of ``(T, ..., J, D)``: ``(T-2, ..., J, D)``, per frame^2."""
    s = np.asarray(seq, dtype=np.float64)
    return s[2:] - 2.0 * s[1:-1] + s[:-2]


def acceleration_error(pred_seq, gt_seq, fps: float | None = None) -> float:
    """Mean ``||a_pred - a_gt||`` over frames and joints (HMMR/VIBE "accel error").

    Sequences are ``(T, J, 3)`` (or ``(T, ..., J, 3)``). Without ``fps`` the unit is metres per frame^2;
    with ``fps`` it is metres per second^2.
    """
    err = np.linalg.norm(acceleration(pred_seq) - acceleration(gt_seq), axis=-1).mean()
    return float(err * fps ** 2) if fps else float(err)


def jitter(seq, fps: float | None = None) -> float:
    """Mean acceleration magnitude of one sequence ``(T, J, D)`` (no ground truth needed); same units as
    :func:`acceleration_error`. Ground-truth motion is smooth, so lower is steadier."""
    a = np.linalg.norm(acceleration(seq), axis=-1).mean()
    return float(a * fps ** 2) if fps else float(a)
