"""The InstantHMR network (torch; training and export only; the runtime never imports this package).

>>> from instanthmr.training.model import build_model
>>> net = build_model("instanthmr_repvit_m1_5")            # default config, random init, no download
>>> net = build_model("instanthmr_tiny_test", wholebody_head=True)   # overrides of config fields
"""

from __future__ import annotations

from typing import Any

from instanthmr.training.model.backbone import PretrainedWeightsError
from instanthmr.training.model.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from instanthmr.training.model.config import DEFAULT_CONFIG, ModelConfig, get_config, list_configs, register_config
from instanthmr.training.model.heads import BODY_PART_GROUPS, QUERY_NAMES, cliff_cam_to_full, pixel_form_image_wh
from instanthmr.training.model.network import (
    INPUT_NAMES,
    OUTPUT_NAMES,
    PRED_CAM,
    WHOLEBODY_OUTPUT,
    InstantHMRNet,
    count_parameters,
)

__all__ = [
    "BODY_PART_GROUPS", "CheckpointError", "DEFAULT_CONFIG", "INPUT_NAMES", "InstantHMRNet", "ModelConfig",
    "OUTPUT_NAMES", "PRED_CAM", "PretrainedWeightsError", "QUERY_NAMES", "WHOLEBODY_OUTPUT", "build_model",
    "cliff_cam_to_full", "count_parameters", "get_config", "list_configs", "load_checkpoint",
    "pixel_form_image_wh", "read_checkpoint", "register_config", "save_checkpoint",
]


def build_model(name_or_config: str | ModelConfig | dict[str, Any] = DEFAULT_CONFIG,
                pretrained_backbone: str | None = None, **overrides) -> InstantHMRNet:
    """Build an :class:`InstantHMRNet` from a registered config name, a :class:`ModelConfig` or a dict.

    ``overrides`` replace config fields (e.g. ``cliff_form="focal"``, ``wholebody_head=True``).
    ``pretrained_backbone``: ``None`` (random init, nothing downloaded), a local timm weights file, or
    ``"hub"`` to download ImageNet weights.
    """
    if isinstance(name_or_config, str):
        config = get_config(name_or_config)
    elif isinstance(name_or_config, dict):
        config = ModelConfig.from_dict(name_or_config)
    elif isinstance(name_or_config, ModelConfig):
        config = name_or_config
    else:
        raise TypeError(f"expected a config name, ModelConfig or dict, got {type(name_or_config).__name__}")
    if overrides:
        config = config.replace(**overrides)
    return InstantHMRNet(config, pretrained_backbone=pretrained_backbone)
