"""Distillation losses (torch). Every term is an L1 masked by label validity and averaged over valid items.

A term whose mask is empty in a batch contributes an exact zero that is still connected to the network
output, so DistributedDataParallel sees the same graph on every rank.
"""

from __future__ import annotations

import warnings

import torch

from instanthmr.core.skeleton import MHR70_INDEX

PELVIS = (MHR70_INDEX["left_hip"], MHR70_INDEX["right_hip"])


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the items where ``mask`` is True.

    ``pred``/``target`` are ``(*M, D)`` and ``mask`` is ``(*M)`` (one flag per joint or per sample): the
    error is averaged over the ``D`` components of the valid items.
    """
    m = mask.to(pred.dtype).unsqueeze(-1)
    err = (pred.float() - target.float()).abs() * m
    return err.sum() / (m.sum() * pred.shape[-1]).clamp_min(1.0)


def root_relative(joints: torch.Tensor) -> torch.Tensor:
    """Subtract the pelvis (mid-point of the hips) from ``(N, 70, 3)`` joints."""
    return joints - joints[:, list(PELVIS)].mean(dim=1, keepdim=True)


def weak_to_full(pred_cam: torch.Tensor, crop_box: torch.Tensor, focal: torch.Tensor,
                 principal_point: torch.Tensor) -> torch.Tensor:
    """Weak-perspective crop camera ``(s, tx, ty)`` -> full-frame translation with the sample's TRUE camera.

    This is the CLIFF formula of :func:`instanthmr.core.geometry.crop_cam_to_full` with the crop side already
    including the crop scale. The network's own ``cam_trans`` assumes a default image (see
    ``instanthmr.training.model.heads``); supervising through the weak-perspective camera with each sample's real
    focal length and box makes the camera head right for every image shape and lens.
    """
    s = pred_cam[:, 0].float().clamp_min(1e-4)
    side = crop_box[:, 2].float()
    d = crop_box[:, :2].float() - principal_point.float()
    bs = side * s
    return torch.stack([pred_cam[:, 1].float() + 2.0 * d[:, 0] / bs, pred_cam[:, 2].float() + 2.0 * d[:, 1] / bs,
                        2.0 * focal.float() / bs], dim=1)


def project_to_crop(points_cam: torch.Tensor, focal: torch.Tensor, principal_point: torch.Tensor,
                    crop_box: torch.Tensor) -> torch.Tensor:
    """Camera-space ``(N, J, 3)`` metres -> normalised crop coordinates ``(N, J, 2)``."""
    z = points_cam[..., 2:3].clamp_min(1e-2)
    px = points_cam[..., :2] / z * focal.view(-1, 1, 1) + principal_point.view(-1, 1, 2)
    return (px - crop_box[:, None, :2]) / (crop_box[:, None, 2:3] / 2.0)


_WHOLEBODY_LOSS = None
_WARNED = False


def _wholebody_loss_fn():
    """The lifter's normalisation-aware loss, imported lazily (absent in a checkout without the lifter)."""
    global _WHOLEBODY_LOSS, _WARNED
    if _WHOLEBODY_LOSS is None:
        try:
            from instanthmr.teachers.lifter.distill import wholebody_loss
        except ImportError as e:
            if not _WARNED:
                warnings.warn(f"wholebody labels present but instanthmr.teachers.lifter.distill is unavailable ({e}); "
                              "the wholebody term is skipped", stacklevel=2)
                _WARNED = True
            return None
        _WHOLEBODY_LOSS = wholebody_loss
    return _WHOLEBODY_LOSS


def distillation_loss(pred: dict[str, torch.Tensor], batch: dict[str, torch.Tensor],
                      weights, mhr_layer=None) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of the terms of :class:`~instanthmr.training.config.LossSection` and the unweighted terms.

    ``pred`` is the network output dict (``pred_cam`` used when present), ``batch`` the collated
    :func:`instanthmr.training.data.augment.make_crop_sample` fields as tensors on the same device. ``mhr_layer`` (an
    :class:`instanthmr.body.mhr_torch.MHRModel` with keypoints) enables the ``mhr_consistency`` term.
    """
    terms: dict[str, torch.Tensor] = {}
    v3 = batch["joints_3d_valid"] & batch["joints_3d_valid"][:, list(PELVIS)].all(dim=1, keepdim=True)
    terms["joints_3d"] = masked_l1(root_relative(pred["joints_3d"].float()), root_relative(batch["joints_3d"]), v3)
    terms["joints_2d"] = masked_l1(pred["joints_2d"], batch["joints_2d"], batch["joints_2d_valid"])

    if "pred_cam" in pred:
        cam = weak_to_full(pred["pred_cam"], batch["crop_box"], batch["focal"], batch["principal_point"])
    else:
        cam = pred["cam_trans"].float()
    reproj = project_to_crop(batch["joints_3d"] + cam[:, None, :], batch["focal"], batch["principal_point"],
                             batch["crop_box"])
    mask_rp = batch["joints_2d_valid"] & batch["joints_3d_valid"]
    # a wildly wrong early camera must not produce huge gradients: clamp the per-coordinate error
    terms["reprojection"] = masked_l1(reproj.clamp(-4, 4), batch["joints_2d"].clamp(-4, 4), mask_rp)
    # depth errors scale with distance: compare translations relative to the teacher's depth
    depth = batch["cam_trans"][:, 2:3].abs().clamp_min(0.5)
    terms["cam_trans"] = masked_l1(cam / depth, batch["cam_trans"] / depth, batch["cam_trans_valid"])
    terms["mhr_params"] = masked_l1(pred["mhr_params"], batch["mhr_params"], batch["mhr_params_valid"])
    terms["shape_params"] = masked_l1(pred["shape_params"], batch["shape_params"], batch["shape_params_valid"])

    wb_pred = pred.get("joints_3d_wholebody")
    if wb_pred is not None:
        fn = _wholebody_loss_fn() if bool(batch["joints_3d_wholebody_valid"].any()) else None
        if fn is not None:
            terms["wholebody"] = fn(wb_pred.float(), batch["joints_3d_wholebody"], batch["joints_3d_wholebody_valid"])
        else:
            terms["wholebody"] = wb_pred.float().sum() * 0.0  # keeps the head in the graph for DDP

    if mhr_layer is not None:
        from instanthmr.training.mhr_losses import mhr_consistency_loss

        terms["mhr_consistency"] = mhr_consistency_loss(mhr_layer, pred["mhr_params"], pred["shape_params"],
                                                        pred["joints_3d"], align="pelvis")

    total = sum(getattr(weights, k) * v for k, v in terms.items())
    return total, {k: float(v.detach()) for k, v in terms.items()}
