"""``InstantHMRNet`` (architecture ``query9``): RepViT backbone -> 9-query cross-attention decoder -> heads.

This project's own design (the one the public InstantHMR model card describes: "RepViT-M1.5 + 9-token decoder").
The network the public training notebook builds is a different one: :mod:`instanthmr.training.model.notebook`.

::

    image (N,3,224,224) -> RepViT last stage (N,C,7,7) -> 49 tokens (+ 2D sin-cos position) --+
    cliff_cond (N,3) -> linear embedding, added to all 9 queries --> 2 pre-LN decoder layers <-+
      query 0 camera    + cliff_cond -> (s, tx, ty) -> CLIFF -> cam_trans (N,3) m
      query 1 pose       -> mhr_params[:, :136]     query 2 bone scales -> mhr_params[:, 136:]
      query 3 shape      -> shape_params (N,45)
      queries 4-8 torso/head, left arm+hand, right arm+hand, left leg+foot, right leg+foot
                         -> joints_3d (N,70,3) m, joints_2d (N,70,2) crop [-1,1]
                         [-> joints_3d_wholebody (N,133,3) m, optional]
"""

from __future__ import annotations

import torch
from torch import nn

from instanthmr.body.mhr import NUM_POSE_PARAMS, NUM_SCALE_PARAMS
from instanthmr.training.model.backbone import create_backbone, feature_channels
from instanthmr.training.model.config import ModelConfig, register_arch, register_config
from instanthmr.training.model.decoder import QueryDecoder, sincos_pos_embed_2d
from instanthmr.training.model.heads import (
    NUM_SHAPE_PARAMS,
    QUERY_NAMES,
    BodyPartJointHeads,
    CameraHead,
    WholebodyHead,
    _small_linear,
    cliff_cam_to_full,
)

OUTPUT_NAMES: tuple[str, ...] = ("mhr_params", "shape_params", "cam_trans", "joints_2d", "joints_3d")
WHOLEBODY_OUTPUT = "joints_3d_wholebody"
INPUT_NAMES: tuple[str, ...] = ("image", "cliff_cond")
# Returned by forward() for training only (never exported): the weak-perspective crop camera (s, tx, ty).
PRED_CAM = "pred_cam"


class HMRNetBase(nn.Module):
    """What every architecture shares: ``config``, ``output_names``, ``image_features``, RepViT fusion for
    export, ``export_metadata`` (architecture-specific ONNX metadata) and ``num_queries``."""

    arch = "?"  # set by register_arch
    config: ModelConfig
    fused = False

    @staticmethod
    def query_count(config: ModelConfig) -> int:
        """Learned query tokens of the network ``config`` builds."""
        raise NotImplementedError

    @staticmethod
    def output_names_for(config: ModelConfig) -> tuple[str, ...]:
        """Exported outputs, in order, of the network ``config`` builds."""
        return OUTPUT_NAMES + ((WHOLEBODY_OUTPUT,) if config.wholebody_head else ())

    @property
    def output_names(self) -> tuple[str, ...]:
        return self.output_names_for(self.config)

    @property
    def num_queries(self) -> int:
        return self.query_count(self.config)

    def image_features(self, image: torch.Tensor) -> torch.Tensor:
        """The backbone's last feature map ``(N, C, S/32, S/32)``."""
        raise NotImplementedError

    def export_metadata(self) -> dict[str, str]:
        """Architecture-specific ONNX metadata (added to :func:`instanthmr.training.export.model_metadata`)."""
        return {"num_queries": str(self.num_queries)}

    @torch.no_grad()
    def fuse(self):
        """Reparameterise the RepViT blocks (fold BatchNorms and parallel branches into single convs) in place,
        for inference and export. Irreversible: a fused model must not be trained or checkpointed."""
        if not self.fused:
            from timm.models import reparameterize_model

            self.eval()
            self.backbone = reparameterize_model(self.backbone, inplace=True)
            self.fused = True
        return self

    def train(self, mode: bool = True):
        if mode and self.fused:
            raise RuntimeError(f"a fused (reparameterised) {type(self).__name__} cannot be trained; rebuild it")
        return super().train(mode)


@register_arch("query9")
class InstantHMRNet(HMRNetBase):
    """The fast network. ``forward(image, cliff_cond)`` returns a dict of tensors:

    * ``mhr_params`` (N, 204): MHR model parameters (0:136 pose, 136:204 bone scales).
    * ``shape_params`` (N, 45): MHR identity shape.
    * ``cam_trans`` (N, 3): full-frame camera translation of the body centre, metres, camera axes
      (x right, y down, z forward); float32 even in a half model.
    * ``joints_2d`` (N, 70, 2): MHR70 joints in normalised crop coordinates (``[-1, 1]`` spans the crop;
      joints outside the crop fall outside it).
    * ``joints_3d`` (N, 70, 3): MHR70 joints, metres, body-centred, camera axes (Y down).
    * ``joints_3d_wholebody`` (N, 133, 3): COCO-WholeBody joints, same frame (only with ``wholebody_head``).
    * ``pred_cam`` (N, 3): the weak-perspective crop camera ``(s, tx, ty)`` behind ``cam_trans``.

    ``image`` is (N, 3, S, S) ImageNet-normalised RGB, ``cliff_cond`` (N, 3) in ``config.cliff_form``.
    """

    def __init__(self, config: ModelConfig, pretrained_backbone: str | None = None):
        super().__init__()
        self.config = config
        d = config.d_model
        self.backbone = create_backbone(config.backbone, pretrained_backbone, **config.backbone_kwargs)
        grid = config.input_size // 32
        self.token_proj = nn.Linear(feature_channels(self.backbone), d)
        self.register_buffer("pos_embed", sincos_pos_embed_2d(grid, grid, d), persistent=False)
        self.cliff_embed = nn.Linear(3, d)
        self.decoder = QueryDecoder(len(QUERY_NAMES), d, config.num_heads, config.num_layers, config.mlp_ratio,
                                    config.dropout)
        self.camera_head = CameraHead(d)
        self.pose_head = _small_linear(d, NUM_POSE_PARAMS)
        self.scale_head = _small_linear(d, NUM_SCALE_PARAMS)
        self.shape_head = _small_linear(d, NUM_SHAPE_PARAMS)
        self.joint_heads = BodyPartJointHeads(d)
        self.wholebody_head = WholebodyHead(d, len(QUERY_NAMES) - 4) if config.wholebody_head else None
        self.fused = False

    @staticmethod
    def query_count(config: ModelConfig) -> int:
        return len(QUERY_NAMES)

    def image_features(self, image: torch.Tensor) -> torch.Tensor:
        return self.backbone(image)[-1]

    def export_metadata(self) -> dict[str, str]:
        return {**super().export_metadata(), "pixel_aspect": repr(float(self.config.pixel_aspect)),
                "cam_head": "cliff_weak_perspective"}

    def forward(self, image: torch.Tensor, cliff_cond: torch.Tensor) -> dict[str, torch.Tensor]:
        feat = self.image_features(image)  # (N, C, g, g)
        tokens = self.token_proj(feat.flatten(2).transpose(1, 2)) + self.pos_embed.to(feat.dtype)
        q = self.decoder(tokens, self.cliff_embed(cliff_cond.to(feat.dtype)))
        pred_cam = self.camera_head(q[:, 0], cliff_cond)
        joints_3d, joints_2d = self.joint_heads(q[:, 4:])
        out = {
            "mhr_params": torch.cat([self.pose_head(q[:, 1]), self.scale_head(q[:, 2])], dim=1),
            "shape_params": self.shape_head(q[:, 3]),
            "cam_trans": cliff_cam_to_full(pred_cam, cliff_cond, self.config.cliff_form, self.config.pixel_aspect),
            "joints_2d": joints_2d,
            "joints_3d": joints_3d,
        }
        if self.wholebody_head is not None:
            out[WHOLEBODY_OUTPUT] = self.wholebody_head(q[:, 4:])
        out[PRED_CAM] = pred_cam
        return out


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# -- named configs of this architecture ----------------------------------------------------------------------


@register_config
def instanthmr_repvit_m1_5() -> ModelConfig:
    """This project's training default: RepViT-M1.5 (512 x 7 x 7 last stage), 256-wide 2-layer 9-query decoder
    (the design the anchor's model card describes)."""
    return ModelConfig(backbone="repvit_m1_5")


@register_config
def instanthmr_repvit_m1_1() -> ModelConfig:
    return ModelConfig(backbone="repvit_m1_1")


@register_config
def instanthmr_repvit_m0_9() -> ModelConfig:
    return ModelConfig(backbone="repvit_m0_9")


@register_config
def instanthmr_repvit_m2_3() -> ModelConfig:
    """The 9-query design on a RepViT-M2.3 backbone (not the notebook network: see instanthmr_notebook_m2_3)."""
    return ModelConfig(backbone="repvit_m2_3")


@register_config
def instanthmr_tiny_test() -> ModelConfig:
    """A few-hundred-thousand-parameter model for tests and CI: same graph structure, tiny widths."""
    return ModelConfig(backbone="repvit_m0_9",
                       backbone_kwargs={"embed_dim": [16, 32, 48, 64], "depth": [1, 1, 1, 1]},
                       d_model=64, num_heads=2, num_layers=1, mlp_ratio=2.0)
