"""Agreement between MHR parameters and 3D keypoints: a training loss and a teacher-data check.

* :func:`mhr_consistency_loss` (torch): keypoints decoded from the network's own ``mhr_params`` /
  ``shape_params`` through the MHR layer should match its ``joints_3d``; couples the parameter head to the
  keypoint head.
* :func:`check_param_keypoint_agreement` / :func:`check_shards` (numpy): a teacher's parameters decoded
  through the layer should reproduce its keypoints. A shard written with the wrong units or axes fails
  loudly, and the report names the likely mistake (centimetres, Y-up, left/right swapped, ...).
* :func:`rotate_root`: the parameter-side twin of an in-plane rotation augmentation of ``joints_3d``.

Frames: everything here is the product frame (metres, x right, y down, z forward, body-centred with the
MHR ``body_world`` origin) unless a name says otherwise. The root translation ``mhr_params[0:3]`` is zeroed
before decoding, as SAM 3D Body does (placement is ``cam_trans``'s job).

CLI:  python -m instanthmr.training.mhr_losses SHARD_DIR --mhr-model models/mhr_lod3.npz [--threshold-mm 20]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from instanthmr.body.mhr import MHRNumpy
from instanthmr.core.rotations import euler_xyz_from_matrix, euler_xyz_to_matrix
from instanthmr.core.skeleton import MHR70_FLIP_PERM, MHR70_INDEX

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

PELVIS = (MHR70_INDEX["left_hip"], MHR70_INDEX["right_hip"])
ALIGNS = ("pelvis", "none")
_FLIP_YZ = np.diag([1.0, -1.0, -1.0])


def _align(points, align: str):
    if align == "none":
        return points
    if align != "pelvis":
        raise ValueError(f"align must be one of {ALIGNS}, got {align!r}")
    return points - points[:, list(PELVIS)].mean(1, keepdims=True) if isinstance(points, np.ndarray) \
        else points - points[:, list(PELVIS)].mean(1, keepdim=True)


# ------------------------------------------------------------------------------------------------ torch
def keypoints_from_params(layer, mhr_params, shape_params, expr=None, zero_translation: bool = True):
    """(N,204) model parameters + (N,45) shape -> (N,70,3) MHR70 keypoints, product frame (m, Y down),
    differentiable. ``layer`` is an :class:`instanthmr.body.mhr_torch.MHRModel` with a keypoint regressor
    and ``frame="product"``."""
    if not getattr(layer, "has_keypoints", False):
        raise ValueError("the MHR layer has no 70-keypoint regressor (convert it with --regressor)")
    if layer.frame != "product":
        raise ValueError(f"the MHR layer must output the product frame, not {layer.frame!r}")
    if zero_translation:
        mhr_params = torch.cat([torch.zeros_like(mhr_params[:, :3]), mhr_params[:, 3:]], 1)
    return layer(shape_params, mhr_params, expr).keypoints


def mhr_consistency_loss(layer, mhr_params, shape_params, joints_3d, mask=None, align: str = "pelvis",
                         detach_keypoints: bool = False):
    """Mean absolute difference (metres, per coordinate) between keypoints decoded from parameters and
    ``joints_3d`` (N,70,3). ``mask`` (N,70) or (N,) selects valid joints / samples. ``align="pelvis"``
    compares hip-centred poses (robust to the origin convention of a keypoint head); ``"none"`` compares
    absolute body-centred positions. ``detach_keypoints`` makes the keypoints a fixed target, so only the
    parameter head learns from this term. Empty masks give an exact, graph-connected zero."""
    decoded = keypoints_from_params(layer, mhr_params.float(), shape_params.float())
    target = joints_3d.float().detach() if detach_keypoints else joints_3d.float()
    decoded, target = _align(decoded, align), _align(target, align)
    if mask is None:
        mask = torch.ones(decoded.shape[:2], dtype=torch.bool, device=decoded.device)
    elif mask.ndim == 1:
        mask = mask[:, None].expand(-1, decoded.shape[1])
    m = mask.to(decoded.dtype).unsqueeze(-1)
    return ((decoded - target).abs() * m).sum() / (m.sum() * 3).clamp_min(1.0)


# ------------------------------------------------------------------------------------------------ numpy
def rotate_root(mhr_params: np.ndarray, rotation_cam: np.ndarray) -> np.ndarray:
    """Apply a product-frame rotation (3,3) (e.g. an in-plane crop rotation about the camera axis) to the
    body's global orientation ``mhr_params[..., 3:6]``. The body turns about its root joint (pelvis height),
    so hip-centred decoded keypoints equal ``rotation_cam @`` the original hip-centred keypoints."""
    p = np.array(mhr_params, dtype=np.float32, copy=True)
    a_mhr = _FLIP_YZ @ np.asarray(rotation_cam, np.float64) @ _FLIP_YZ    # same rotation in MHR's axes
    p[..., 3:6] = euler_xyz_from_matrix(a_mhr @ euler_xyz_to_matrix(p[..., 3:6].astype(np.float64)))
    return p


#: Mistakes a teacher conversion can make, as the transform they apply to correct keypoints.
DIAGNOSES: dict[str, callable] = {
    "joints_3d in centimetres instead of metres": lambda k: k * 100.0,
    "joints_3d in millimetres instead of metres": lambda k: k * 1000.0,
    "joints_3d in MHR's Y-up frame (y and z not negated)": lambda k: k * np.array([1.0, -1.0, -1.0]),
    "joints_3d in raw MHR units (Y-up centimetres)": lambda k: k * np.array([100.0, -100.0, -100.0]),
    "left/right keypoints swapped": lambda k: k[:, list(MHR70_FLIP_PERM)],
    "joints_3d mirrored in x": lambda k: k * np.array([-1.0, 1.0, 1.0]),
}


@dataclass
class AgreementReport:
    """Per-instance mean per-joint distance (mm) between decoded parameters and stored keypoints."""

    errors_mm: np.ndarray
    sources: list[str]
    threshold_mm: float
    skipped: int = 0
    diagnosis: str | None = None          # the likely mistake when most instances disagree
    diagnosis_mm: float | None = None     # median error once that mistake is undone
    notes: list[str] = field(default_factory=list)

    @property
    def checked(self) -> int:
        return int(len(self.errors_mm))

    @property
    def bad(self) -> list[tuple[str, float]]:
        idx = np.flatnonzero(self.errors_mm > self.threshold_mm)
        return [(self.sources[i], float(self.errors_mm[i])) for i in idx[np.argsort(-self.errors_mm[idx])]]

    @property
    def ok(self) -> bool:
        return self.checked > 0 and not self.bad

    def summary(self) -> str:
        if not self.checked:
            return f"no instance has both MHR parameters and 3D keypoints ({self.skipped} skipped)"
        e = self.errors_mm
        line = (f"{self.checked} checked, {self.skipped} skipped: median {np.median(e):.2f} mm, "
                f"p95 {np.percentile(e, 95):.2f} mm, max {e.max():.2f} mm; {len(self.bad)} above "
                f"{self.threshold_mm:g} mm")
        if self.diagnosis:
            line += f"; likely cause: {self.diagnosis} (median {self.diagnosis_mm:.2f} mm once undone)"
        return line


def _per_instance_mm(decoded, joints, valid, align):
    d, j = _align(decoded, align), _align(joints, align)
    err = np.linalg.norm(d - j, axis=-1) * 1000.0
    w = valid.astype(np.float64)
    return (err * w).sum(1) / np.maximum(w.sum(1), 1.0)


def check_param_keypoint_agreement(model: MHRNumpy, mhr_params, shape_params, joints_3d, valid=None,
                                   sources=None, threshold_mm: float = 20.0, align: str = "none",
                                   batch: int = 64) -> AgreementReport:
    """Decode (N,204)/(N,45) parameters with ``model`` (product frame, with a keypoint regressor) and
    compare with (N,70,3) ``joints_3d`` in metres. ``valid`` (N,70) masks joints."""
    if not model.has_keypoints or model.frame != "product":
        raise ValueError("the check needs an MHR model with a keypoint regressor in the product frame")
    params = np.array(mhr_params, dtype=np.float32, copy=True)
    params[:, :3] = 0.0
    joints = np.asarray(joints_3d, dtype=np.float64)
    valid = np.ones(joints.shape[:2], bool) if valid is None else np.asarray(valid, bool)
    decoded = np.concatenate([model(shape_params[i:i + batch], params[i:i + batch]).keypoints
                              for i in range(0, len(params), batch)], 0).astype(np.float64) \
        if len(params) else np.zeros((0, 70, 3))
    errors = _per_instance_mm(decoded, joints, valid, align)
    sources = list(sources) if sources is not None else [str(i) for i in range(len(errors))]
    report = AgreementReport(errors, sources, threshold_mm)
    if len(errors) and np.median(errors) > threshold_mm:
        best = min(((name, np.median(_per_instance_mm(fn(decoded), joints, valid, align)))
                    for name, fn in DIAGNOSES.items()), key=lambda t: t[1])
        if best[1] < 0.5 * np.median(errors):
            report.diagnosis, report.diagnosis_mm = best[0], float(best[1])
    return report


def check_shards(model: MHRNumpy, roots, threshold_mm: float = 20.0, max_instances: int | None = None,
                 align: str = "none") -> AgreementReport:
    """:func:`check_param_keypoint_agreement` over shard sets (instances carrying valid ``mhr_params``,
    ``shape_params`` and at least one valid ``joints_3d`` joint; the others are counted as skipped)."""
    from instanthmr.training.data.shards import ShardReader

    reader = ShardReader(roots)
    params, shapes, joints, valid, sources, skipped = [], [], [], [], [], 0
    for i in range(len(reader)):
        if max_instances is not None and len(params) >= max_instances:
            break
        inst = reader[i]
        if not (inst["mhr_params_valid"] and inst["shape_params_valid"] and inst["joints_3d_valid"].any()):
            skipped += 1
            continue
        params.append(inst["mhr_params"]), shapes.append(inst["shape_params"])
        joints.append(inst["joints_3d"]), valid.append(inst["joints_3d_valid"])
        sources.append(f"{Path(inst['shard']).name}:{inst['source']}")
    if not params:
        return AgreementReport(np.zeros(0), [], threshold_mm, skipped=skipped)
    report = check_param_keypoint_agreement(model, np.stack(params), np.stack(shapes), np.stack(joints),
                                            np.stack(valid), sources, threshold_mm, align)
    report.skipped = skipped
    return report
