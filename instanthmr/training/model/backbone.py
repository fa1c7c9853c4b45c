"""The image backbone: a timm RepViT (or any timm CNN) by name, last feature stage only.

Two forms: timm's ``features_only`` wrapper (the ``query9`` network; weights named ``stages_3...``) and the plain
classification model with ``num_classes=0`` read through ``forward_features`` (the ``notebook`` network, whose
checkpoints name the weights as timm's model does: ``stages.3...``).

Built with ``pretrained=False`` so nothing is downloaded by default; ImageNet weights are loaded only when
asked, from a local file or (``"hub"``) through timm's downloader.
"""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from instanthmr.core.errors import first_line


class PretrainedWeightsError(RuntimeError):
    """Backbone weights were asked for but could not be read or downloaded."""


_HUB_HOST = "huggingface.co"


def _hub_reachable(timeout: float = 3.0) -> bool:
    import socket

    try:
        socket.create_connection((_HUB_HOST, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def create_backbone(name: str, pretrained: str | os.PathLike | None = None, features_only: bool = True,
                    **kwargs) -> nn.Module:
    """A timm ``features_only`` model returning ``[feature (N, C, H/32, W/32)]``, or with ``features_only=False``
    the classification model without classifier (``num_classes=0``; features from ``forward_features``).

    ``pretrained``: ``None`` (random init), a path to a timm classification state dict (``.pth``/``.bin``/
    ``.safetensors``, as timm saves it), or ``"hub"`` to let timm download the ImageNet weights (needs network
    access). Failures raise :class:`PretrainedWeightsError` with a one-line reason.
    """
    import timm

    form = {"features_only": True, "out_indices": (-1,)} if features_only else {"num_classes": 0}
    if pretrained is None:
        return timm.create_model(name, pretrained=False, **form, **kwargs)
    if str(pretrained) == "hub":
        source, overlay = "the model hub", {}
        if not _hub_reachable():  # fail in seconds instead of a minute of download retries
            raise PretrainedWeightsError(f"could not download {name} backbone weights: {_HUB_HOST} is unreachable "
                                         "(offline?); pass a local weights file instead")
    else:
        path = Path(pretrained)
        if not path.is_file():
            raise PretrainedWeightsError(f"backbone weights file not found: {path}")
        source, overlay = str(path), {"file": str(path)}
    try:  # timm builds the classification model, loads the weights, then keeps the feature stages
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay, **form, **kwargs)
    except Exception as e:  # hub/network errors and state-dict mismatches come in many types
        hint = "; pass a local weights file instead" if not overlay else ""
        raise PretrainedWeightsError(f"could not load {name} backbone weights from {source} "
                                     f"({first_line(e, 160)}){hint}") from None


def feature_channels(backbone: nn.Module) -> int:
    """Channels of the last feature map (either form of :func:`create_backbone`)."""
    if hasattr(backbone, "feature_info") and callable(getattr(backbone.feature_info, "channels", None)):
        return int(backbone.feature_info.channels()[-1])
    return int(backbone.num_features)
