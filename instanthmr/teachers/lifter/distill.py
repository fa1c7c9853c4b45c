"""Distilling the lifter's 133-joint output into the fast network's ``joints_3d_wholebody`` head (torch).

The lifter's targets live in its normalised space (mid-hip root, max-abs scale = 1; see
``protocol.normalize_3d``); the head predicts body-centred metres. The loss puts the prediction through the
same normalisation, differentiably, so it is invariant to the head's translation and scale and only the
shape is distilled.
"""

from __future__ import annotations

import torch

from instanthmr.teachers.lifter.protocol import ROOT_JOINTS


def normalize_3d_torch(kp3d: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Torch twin of ``protocol.normalize_3d`` (normalised joints only), differentiable: ``(..., 133, 3)``."""
    root = kp3d[..., list(ROOT_JOINTS), :].mean(dim=-2, keepdim=True)
    centred = kp3d - root
    scale = centred.abs().amax(dim=(-1, -2), keepdim=True).clamp_min(eps)
    return centred / scale


def wholebody_loss(pred: torch.Tensor, target_normalised: torch.Tensor, mask: torch.Tensor,
                   weight: float = 1.0) -> torch.Tensor:
    """Masked L1 between the normalised prediction and the lifter's normalised joints, times ``weight``.

    ``pred (N, 133, 3)`` any unit/frame (normalised here over all 133 predicted joints, as the lifter's
    training data was); ``target_normalised (N, 133, 3)``; ``mask (N, 133)`` True/1 where the lifter gave the
    joint. The mean runs over valid joints and the 3 axes; with no valid joint the loss is 0 (still
    differentiable, so a batch without lifter labels does not break the step).
    """
    if pred.shape != target_normalised.shape or pred.shape[:-1] != mask.shape or pred.shape[-1] != 3:
        raise ValueError(f"wholebody_loss: shapes pred {tuple(pred.shape)}, target "
                         f"{tuple(target_normalised.shape)}, mask {tuple(mask.shape)} do not match (N, J, 3)/(N, J)")
    m = mask.to(pred.dtype).unsqueeze(-1)
    target = torch.nan_to_num(target_normalised.to(pred.dtype))  # masked-out joints may hold NaN
    err = (normalize_3d_torch(pred) - target).abs() * m
    return weight * err.sum() / (3.0 * m.sum()).clamp_min(1.0)
