"""Output heads: MHR parameters, shape, the CLIFF camera, and per-body-part joints.

Camera parameterisation
-----------------------
The camera head predicts a weak-perspective crop camera ``(s, tx, ty)`` (``s`` > 0: a body point ``X`` in
metres lands at normalised crop coordinate ``s * (X + t)``) and converts it inside the network to the
full-frame translation with the CLIFF formula (see :func:`instanthmr.core.geometry.crop_cam_to_full`)::

    t = [tx + 2 dx / (b_c s),  ty + 2 dy / (b_c s),  2 f / (b_c s)]

where ``(dx, dy)`` is the box centre minus the principal point, ``b_c = CROP_SCALE * b`` the crop side and
``f`` the focal length, all in one unit. The condition gives these up to a common scale:

* ``focal`` form ``[dx/f, dy/f, b/f]``: exact, with unit ``f = 1``.
* ``pixel`` form ``[2cx/W - 1, 2cy/H - 1, b/max(W, H)]``: the aspect ratio is lost, so the network assumes an
  image of aspect ``pixel_aspect`` (W/H, 16:9 by default) with its longer side as unit and the default focal
  ``f = sqrt(W^2 + H^2)``; then ``dx = c0 W/2``, ``dy = c1 H/2``, ``b = c2``. The runtime
  (:mod:`instanthmr.runtime.hmr`) undoes this assumption for other aspect ratios or focal lengths, since the
  weak-perspective camera ``(s, tx, ty)`` is recoverable from ``cam_trans`` and the condition.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from instanthmr.body.mhr import NUM_SHAPE
from instanthmr.core.geometry import CROP_SCALE
from instanthmr.core.skeleton import COCO_WHOLEBODY_NAMES, MHR70_INDEX, MHR70_NAMES

NUM_SHAPE_PARAMS = NUM_SHAPE
NUM_JOINTS = len(MHR70_NAMES)
NUM_WHOLEBODY_JOINTS = len(COCO_WHOLEBODY_NAMES)
_MIN_BOX = 1e-4  # smallest box/size ratio used in the camera formula (padding rows have zeros)


def _side(prefix: str, names) -> tuple[int, ...]:
    return tuple(MHR70_INDEX[n] for n in MHR70_NAMES if n.startswith(prefix) and n in names)


def _body_part_groups() -> dict[str, tuple[int, ...]]:
    """The 5 body-part queries' joints (each MHR70 joint in exactly one group)."""
    groups: dict[str, tuple[int, ...]] = {}
    for side in ("left", "right"):
        arm = {f"{side}_elbow", f"{side}_olecranon", f"{side}_cubital_fossa", f"{side}_wrist"}
        arm |= {n for n in MHR70_NAMES if n.startswith(f"{side}_") and n.split("_")[1] in
                ("thumb", "index", "middle", "ring", "pinky")}
        groups[f"{side}_arm"] = tuple(MHR70_INDEX[n] for n in MHR70_NAMES if n in arm)
        leg = {f"{side}_knee", f"{side}_ankle", f"{side}_big_toe_tip", f"{side}_small_toe_tip", f"{side}_heel"}
        groups[f"{side}_leg"] = tuple(MHR70_INDEX[n] for n in MHR70_NAMES if n in leg)
    used = {j for g in groups.values() for j in g}
    torso = tuple(j for j in range(NUM_JOINTS) if j not in used)  # face, shoulders, hips, acromia, neck
    return {"torso_head": torso, "left_arm": groups["left_arm"], "right_arm": groups["right_arm"],
            "left_leg": groups["left_leg"], "right_leg": groups["right_leg"]}


BODY_PART_GROUPS: dict[str, tuple[int, ...]] = _body_part_groups()
QUERY_NAMES: tuple[str, ...] = ("camera", "pose", "bone_scales", "shape") + tuple(BODY_PART_GROUPS)
assert sorted(j for g in BODY_PART_GROUPS.values() for j in g) == list(range(NUM_JOINTS))


def pixel_form_image_wh(pixel_aspect: float) -> tuple[float, float]:
    """The image the ``pixel`` CLIFF form assumes: aspect ``W/H = pixel_aspect``, longer side 1."""
    return (1.0, 1.0 / pixel_aspect) if pixel_aspect >= 1.0 else (pixel_aspect, 1.0)


def cliff_cam_to_full(pred_cam: torch.Tensor, cliff_cond: torch.Tensor, cliff_form: str,
                      pixel_aspect: float) -> torch.Tensor:
    """Weak-perspective ``(N, 3)`` ``(s, tx, ty)`` + CLIFF condition -> full-frame translation ``(N, 3)`` m.

    Always computed in float32 (the depth ``2f/(b s)`` is a ratio of small numbers)."""
    cam, c = pred_cam.float(), cliff_cond.float()
    s, tx, ty = cam[:, 0], cam[:, 1], cam[:, 2]
    b = c[:, 2].clamp_min(_MIN_BOX)
    if cliff_form == "pixel":
        w, h = pixel_form_image_wh(pixel_aspect)
        f = math.sqrt(w * w + h * h)
        dx, dy = c[:, 0] * (w / 2.0), c[:, 1] * (h / 2.0)
    else:
        f, dx, dy = 1.0, c[:, 0], c[:, 1]
    bs = CROP_SCALE * b * s
    return torch.stack([tx + 2.0 * dx / bs, ty + 2.0 * dy / bs, 2.0 * f / bs], dim=1)


def _small_linear(i: int, o: int, std: float = 1e-3) -> nn.Linear:
    """Output layer initialised near zero so a fresh model predicts near-constant, finite values."""
    lin = nn.Linear(i, o)
    nn.init.normal_(lin.weight, std=std)
    nn.init.zeros_(lin.bias)
    return lin


class CameraHead(nn.Module):
    """Camera query token + CLIFF condition -> weak-perspective ``(s, tx, ty)``, ``s`` > 0."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim + 3)
        self.mlp = nn.Sequential(nn.Linear(dim + 3, dim), nn.GELU(), _small_linear(dim, 3))
        with torch.no_grad():  # softplus(0.5413) = 1: a full-height person fills the 1.2x crop at s ~ 1
            self.mlp[-1].bias[0] = 0.5413

    def forward(self, token: torch.Tensor, cliff_cond: torch.Tensor) -> torch.Tensor:
        raw = self.mlp(self.norm(torch.cat([token, cliff_cond.to(token.dtype)], dim=1)))
        s = F.softplus(raw[:, :1].float()) + 1e-3
        return torch.cat([s, raw[:, 1:].float()], dim=1)


class BodyPartJointHeads(nn.Module):
    """Each body-part token predicts 3D (m) and 2D (crop [-1, 1]) positions of its own joints; the pieces are
    put back into MHR70 order with one constant gather."""

    def __init__(self, dim: int):
        super().__init__()
        self.groups = tuple(BODY_PART_GROUPS.values())
        self.head_3d = nn.ModuleList(_small_linear(dim, 3 * len(g)) for g in self.groups)
        self.head_2d = nn.ModuleList(_small_linear(dim, 2 * len(g)) for g in self.groups)
        order = [j for g in self.groups for j in g]
        self.register_buffer("inverse_order", torch.tensor([order.index(j) for j in range(NUM_JOINTS)]),
                             persistent=False)

    def forward(self, part_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``part_tokens (N, 5, D)`` -> ``joints_3d (N, 70, 3)``, ``joints_2d (N, 70, 2)``."""
        j3 = torch.cat([h(part_tokens[:, i]).reshape(-1, len(g), 3)
                        for i, (h, g) in enumerate(zip(self.head_3d, self.groups))], dim=1)
        j2 = torch.cat([h(part_tokens[:, i]).reshape(-1, len(g), 2)
                        for i, (h, g) in enumerate(zip(self.head_2d, self.groups))], dim=1)
        return j3[:, self.inverse_order], j2[:, self.inverse_order]


class WholebodyHead(nn.Module):
    """All body-part tokens -> 133 COCO-WholeBody joints (m, body-centred) for the LLM-lifter distillation."""

    def __init__(self, dim: int, num_parts: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim * num_parts)
        self.linear = _small_linear(dim * num_parts, 3 * NUM_WHOLEBODY_JOINTS)

    def forward(self, part_tokens: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm(part_tokens.flatten(1))).reshape(-1, NUM_WHOLEBODY_JOINTS, 3)
