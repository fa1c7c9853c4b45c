"""Training checkpoints: ``{"model": state_dict, "config": dict, "step": int, "version": str, **extra}``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from instanthmr.core.errors import first_line
from instanthmr.training.model.config import ModelConfig


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, or not an InstantHMR checkpoint."""


def save_checkpoint(path: str | os.PathLike, model, step: int, **extra: Any) -> Path:
    """Write ``model`` (an unfused :class:`InstantHMRNet`) with its config and training ``step``.

    ``extra`` (optimizer state, metrics, ...) is stored alongside; keep it to tensors and plain Python values
    so the file loads with ``torch.load(weights_only=True)``. The write is atomic (temp file + rename), so an
    interrupted save never destroys the previous checkpoint.
    """
    from instanthmr import __version__

    if getattr(model, "fused", False):
        raise CheckpointError("refusing to checkpoint a fused model: its weights no longer match its config")
    reserved = {"model", "config", "step", "version"} & set(extra)
    if reserved:
        raise ValueError(f"extra checkpoint keys {sorted(reserved)} are reserved")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"model": model.state_dict(), "config": model.config.to_dict(), "step": int(step),
               "version": __version__, **extra}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The raw checkpoint dict, validated; raises :class:`CheckpointError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({first_line(e, 160)})") from None
    if not isinstance(ckpt, dict) or not {"model", "config"} <= set(ckpt):
        keys = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path}: not an InstantHMR checkpoint (needs 'model' and 'config', has {keys})")
    return ckpt


def load_checkpoint(path: str | os.PathLike, strict: bool = True):
    """Rebuild the :class:`InstantHMRNet` stored in ``path`` (on CPU, eval mode).

    The returned model carries ``model.step`` (training step) and ``model.checkpoint_extra`` (the other keys).
    """
    from instanthmr.training.model.network import InstantHMRNet

    ckpt = read_checkpoint(path)
    try:
        config = ModelConfig.from_dict(dict(ckpt["config"]))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: bad model config ({e})") from None
    model = InstantHMRNet(config)
    try:
        model.load_state_dict(ckpt["model"], strict=strict)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not match config {config.name!r} "
                              f"({first_line(e, 160)})") from None
    model.step = int(ckpt.get("step", 0))
    model.checkpoint_extra = {k: v for k, v in ckpt.items() if k not in ("model", "config", "step")}
    return model.eval()
