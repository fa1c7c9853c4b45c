"""The InstantHMR networks (torch; training and export only; the runtime never imports this package).

Two architectures (``ModelConfig.arch``), each with named configs registered next to its class:

* ``query9`` (:mod:`~instanthmr.training.model.network`): this project's 9-query design; default
  ``instanthmr_repvit_m1_5``.
* ``notebook`` (:mod:`~instanthmr.training.model.notebook`): the network the public InstantHMR training notebook
  builds (``instanthmr_notebook_m2_3``: RepViT-M2.3, 141 queries, ~40 M parameters); loads the anchor's
  ``instanthmr.pth`` strictly (:func:`load_checkpoint`).

>>> from instanthmr.training.model import build_model
>>> net = build_model("instanthmr_repvit_m1_5")            # default config, random init, no download
>>> net = build_model("instanthmr_tiny_test", wholebody_head=True)   # overrides of config fields
>>> net = build_model("instanthmr_notebook_m2_3")
"""

from __future__ import annotations

from typing import Any

from instanthmr.training.model.backbone import PretrainedWeightsError
from instanthmr.training.model.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_state_dict_strict,
    notebook_config_for,
    read_checkpoint,
    save_checkpoint,
)
from instanthmr.training.model.config import (
    DEFAULT_CONFIG,
    ModelConfig,
    create_network,
    get_config,
    list_archs,
    list_configs,
    output_names_for,
    query_count,
    register_arch,
    register_config,
)
from instanthmr.training.model.heads import BODY_PART_GROUPS, QUERY_NAMES, cliff_cam_to_full, pixel_form_image_wh
from instanthmr.training.model.network import (
    INPUT_NAMES,
    OUTPUT_NAMES,
    PRED_CAM,
    WHOLEBODY_OUTPUT,
    HMRNetBase,
    InstantHMRNet,
    count_parameters,
)
from instanthmr.training.model.notebook import NotebookHMRNet, anchor_arch_name

__all__ = [
    "BODY_PART_GROUPS",
    "DEFAULT_CONFIG",
    "INPUT_NAMES",
    "OUTPUT_NAMES",
    "PRED_CAM",
    "QUERY_NAMES",
    "WHOLEBODY_OUTPUT",
    "CheckpointError",
    "HMRNetBase",
    "InstantHMRNet",
    "ModelConfig",
    "NotebookHMRNet",
    "PretrainedWeightsError",
    "anchor_arch_name",
    "build_model",
    "cliff_cam_to_full",
    "count_parameters",
    "create_network",
    "get_config",
    "list_archs",
    "list_configs",
    "load_checkpoint",
    "load_state_dict_strict",
    "notebook_config_for",
    "output_names_for",
    "pixel_form_image_wh",
    "query_count",
    "read_checkpoint",
    "register_arch",
    "register_config",
    "save_checkpoint",
]


def build_model(name_or_config: str | ModelConfig | dict[str, Any] = DEFAULT_CONFIG,
                pretrained_backbone: str | None = None, **overrides) -> HMRNetBase:
    """Build the network of a registered config name, a :class:`ModelConfig` or a dict.

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
    return create_network(config, pretrained_backbone=pretrained_backbone)
