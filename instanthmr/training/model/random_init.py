"""Random weights with realistic output magnitudes, for tests and benchmarks (``--random-init``).

A freshly built network predicts near-zero joints (its output layers start near zero) and has identity
BatchNorm statistics, which makes parity and fusion checks nearly vacuous. :func:`randomize_` gives every
output a spread like a trained model's (joints spanning the crop, depth of a few metres) and non-trivial
BatchNorm statistics, deterministically from a seed.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# Target standard deviation of each head's outputs (head attribute -> std), given unit-variance tokens.
_HEAD_STD = {"pose_head": 0.5, "scale_head": 0.2, "shape_head": 1.0}


@torch.no_grad()
def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Re-draw BatchNorm statistics and output-layer weights of an (unfused) :class:`InstantHMRNet` in place."""
    if getattr(model, "fused", False):
        raise RuntimeError("randomize_ needs an unfused model (fused BatchNorms are folded into convs)")
    g = torch.Generator().manual_seed(seed)

    def normal_(t: torch.Tensor, std: float, mean: float = 0.0):
        t.copy_(torch.randn(t.shape, generator=g) * std + mean)

    def uniform_(t: torch.Tensor, lo: float, hi: float):
        t.copy_(torch.rand(t.shape, generator=g) * (hi - lo) + lo)

    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            normal_(m.running_mean, 0.1)
            uniform_(m.running_var, 0.5, 2.0)
            uniform_(m.weight, 0.5, 1.5)
            normal_(m.bias, 0.1)

    def head_(lin: nn.Linear, std: float):
        normal_(lin.weight, std / math.sqrt(lin.in_features))
        normal_(lin.bias, std * 0.2)

    for name, std in _HEAD_STD.items():
        head_(getattr(model, name), std)
    for lin in model.joint_heads.head_3d:
        head_(lin, 0.4)
    for lin in model.joint_heads.head_2d:
        head_(lin, 0.5)
    cam = model.camera_head.mlp[-1]
    head_(cam, 0.3)
    cam.bias[0] = 0.5413  # keep s ~ 1 so depths stay a few metres
    if model.wholebody_head is not None:
        head_(model.wholebody_head.linear, 0.4)
    return model
