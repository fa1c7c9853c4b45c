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
    """Re-draw BatchNorm statistics and output-layer weights of an (unfused) network in place (either
    architecture)."""
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

    if model.config.arch == "notebook":
        _notebook_heads_(model, normal_, head_)
        return model
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


def _notebook_heads_(model: nn.Module, normal_, head_) -> None:
    """The notebook network's heads. Its decoder has no final norm, so the token scale is measured first (one
    forward of a grey image) and each head is scaled to it."""
    from instanthmr.training.model.notebook import GLOBAL_OUTPUTS

    size = model.config.input_size
    feats = {}
    hook = model.transformer.register_forward_hook(lambda m, i, o: feats.setdefault("x", o))
    was_training = model.training
    model.eval()
    model(torch.zeros(1, 3, size, size), torch.tensor([[0.0, 0.0, 0.5]]))
    hook.remove()
    model.train(was_training)
    token_std = float(feats["x"].std().clamp_min(1e-3))

    lin = model.head_global
    stds = {"mhr_params": 0.5, "shape_params": 1.0, "cam_trans": 0.1}
    start = 0
    for name, n in GLOBAL_OUTPUTS:
        normal_(lin.weight[start:start + n], stds[name] / (token_std * math.sqrt(lin.in_features)))
        normal_(lin.bias[start:start + n], stds[name] * 0.2)
        start += n
    lin.bias[-3:] = torch.tensor([0.0, 0.2, 3.0])  # a person about 3 m in front of the camera
    # the hidden GELU layers keep their default init; only the output layers get a spread like a trained model's
    if model.config.head_2d == "simcc":
        head_(model.head_2d_logits, 3.0)
    else:
        head_(model.head_2d_xy[0], 0.5)
    if model.head_3d is not None:
        head_(model.head_3d[-1], 0.4)
