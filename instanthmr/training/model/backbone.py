"""The image backbone: a timm RepViT (or any timm CNN) by name, last feature stage only.

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


def create_backbone(name: str, pretrained: str | os.PathLike | None = None, **kwargs) -> nn.Module:
    """A timm ``features_only`` model returning ``[feature (N, C, H/32, W/32)]``.

    ``pretrained``: ``None`` (random init), a path to a timm classification state dict (``.pth``/``.bin``/
    ``.safetensors``, as timm saves it), or ``"hub"`` to let timm download the ImageNet weights (needs network
    access). Failures raise :class:`PretrainedWeightsError` with a one-line reason.
    """
    import timm

    if pretrained is None:
        return timm.create_model(name, pretrained=False, features_only=True, out_indices=(-1,), **kwargs)
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
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay, features_only=True,
                                 out_indices=(-1,), **kwargs)
    except Exception as e:  # hub/network errors and state-dict mismatches come in many types
        hint = "; pass a local weights file instead" if not overlay else ""
        raise PretrainedWeightsError(f"could not load {name} backbone weights from {source} "
                                     f"({first_line(e, 160)}){hint}") from None


def feature_channels(backbone: nn.Module) -> int:
    return int(backbone.feature_info.channels()[-1])
