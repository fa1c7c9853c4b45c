"""Checkpoints, in two formats, and strict loading with one-line errors.

* Ours (written by :func:`save_checkpoint`): ``{"model": state_dict, "config": dict, "step": int,
  "version": str, **extra}``; the config rebuilds the network.
* The public InstantHMR notebook's (``instanthmr.pth``): ``{"epoch", "model_state_dict",
  "optimizer_state_dict", "val_pa_mpjpe"}`` (or a bare state dict), no config. :func:`load_checkpoint` finds
  the registered ``notebook`` config whose names and shapes equal the file's (:func:`notebook_config_for`) and
  loads it strictly; the ``_orig_mod.`` (``torch.compile``) and ``module.`` (DDP) prefixes are dropped first.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch

from instanthmr.core.errors import first_line
from instanthmr.training.model.config import ModelConfig, create_network, get_config, list_configs

ANCHOR_STATE_KEY = "model_state_dict"
_PREFIXES = ("_orig_mod.", "module.")
_SHOWN = 3  # key names shown per kind of mismatch in an error line


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, or not an InstantHMR checkpoint."""


def save_checkpoint(path: str | os.PathLike, model, step: int, **extra: Any) -> Path:
    """Write ``model`` (an unfused network) with its config and training ``step``.

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


def _numpy_globals() -> list:
    """numpy scalar types a training script may have stored (e.g. ``val_pa_mpjpe`` as ``np.float64``), allowed
    for ``weights_only`` loading (no arbitrary code runs)."""
    import numpy as np

    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar
    return [scalar, np.dtype] + [type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool")]


def _torch_load(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            try:  # memory-mapped: the anchor's file carries ~320 MB of optimiser moments nobody reads here
                return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as e:
                if "mmap" not in str(e):
                    raise
                return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({first_line(e, 160)})") from None


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in state.items():
        for p in _PREFIXES:
            k = k.removeprefix(p)
        out[k] = v
    return out


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Our raw checkpoint dict, validated; raises :class:`CheckpointError` naming the file (also for the
    notebook's format, which only :func:`load_checkpoint` reads: it has no config and no resumable state)."""
    path = Path(path)
    ckpt = _torch_load(path)
    if isinstance(ckpt, dict) and {"model", "config"} <= set(ckpt):
        return ckpt
    if isinstance(ckpt, dict) and (ANCHOR_STATE_KEY in ckpt or _is_state_dict(ckpt)):
        raise CheckpointError(f"{path}: a notebook-format checkpoint (weights only, no config): load it with "
                              "load_checkpoint, or fine-tune from it with model.init_checkpoint")
    keys = sorted(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
    raise CheckpointError(f"{path}: not an InstantHMR checkpoint (needs 'model' and 'config', or "
                          f"'{ANCHOR_STATE_KEY}', has {keys})")


def _shape(t) -> tuple[int, ...]:
    return tuple(int(s) for s in t.shape)


def _names(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOWN])
    return shown + (f", +{len(keys) - _SHOWN} more" if len(keys) > _SHOWN else "")


def state_dict_mismatch(expected: dict[str, Any], got: dict[str, Any]) -> str:
    """One-line description of how ``got`` (a state dict, or names -> shapes) differs from ``expected``
    (missing keys, unexpected keys, shape mismatches), ``""`` when names and shapes are equal."""
    def shapes(d):
        return {k: (v if isinstance(v, tuple) else _shape(v)) for k, v in d.items()}

    want, have = shapes(expected), shapes(got)
    missing = [k for k in want if k not in have]
    unexpected = [k for k in have if k not in want]
    wrong = [k for k in want if k in have and want[k] != have[k]]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key{'s' * (len(missing) > 1)} ({_names(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key{'s' * (len(unexpected) > 1)} ({_names(unexpected)})")
    if wrong:
        shown = "; ".join(f"{k}: file {have[k]}, model {want[k]}" for k in wrong[:_SHOWN])
        parts.append(f"{len(wrong)} shape mismatch{'es' * (len(wrong) > 1)} ({shown}"
                     f"{f', +{len(wrong) - _SHOWN} more' if len(wrong) > _SHOWN else ''})")
    return "; ".join(parts)


def load_state_dict_strict(model, state: dict[str, torch.Tensor], source: str, strict: bool = True) -> None:
    """``model.load_state_dict(state)``, with a one-line :class:`CheckpointError` naming the missing,
    unexpected and wrongly shaped keys (``strict=False`` tolerates missing/unexpected keys, not shapes)."""
    diff = state_dict_mismatch(model.state_dict(), state)
    if strict and diff:
        raise CheckpointError(f"{source}: weights do not match config {model.config.name!r}: {diff}")
    try:
        model.load_state_dict(state, strict=strict)
    except RuntimeError as e:
        raise CheckpointError(f"{source}: weights do not match config {model.config.name!r}: "
                              f"{diff or first_line(e, 200)}") from None


def _meta_state_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Names and shapes of ``config``'s state dict, from a network built on the meta device (no memory)."""
    with torch.device("meta"):
        net = create_network(config)
    return {k: _shape(v) for k, v in net.state_dict().items()}


def _notebook_variant(state: dict[str, torch.Tensor], source: str) -> dict[str, Any]:
    """The config fields a notebook-architecture state dict shows in its names and shapes."""
    for k in ("query_embed", "mem_pos_embed", "head_global.weight", "feat_proj.weight"):
        if k not in state:
            raise CheckpointError(f"{source}: not a notebook-architecture state dict (no {k!r})")
    if any(k.startswith(("cont_head.", "head_cam.")) for k in state):
        raise CheckpointError(f"{source}: a --cont-head checkpoint (cont_head.*): that head is not implemented "
                              "here; only the notebook's head_global is")
    grid = math.isqrt(int(state["mem_pos_embed"].shape[1]))
    variant: dict[str, Any] = {"input_size": grid * 32, "bound_scales": "scale_lo" in state,
                               "joints_3d_head": any(k.startswith("head_3d.") for k in state),
                               "head_2d": "simcc" if "head_2d_logits.weight" in state else "xy"}
    if variant["head_2d"] == "simcc":
        variant["simcc_bins"] = int(state["head_2d_logits.weight"].shape[0]) // 2
        if "kp2d_bin_centers" in state:
            variant["simcc_range"] = round(float(state["kp2d_bin_centers"][-1]), 6)
    return variant


def notebook_config_for(state: dict[str, torch.Tensor], source: str = "state dict") -> ModelConfig:
    """The registered ``notebook`` config (with the variant fields the file shows: 2D head, 3D head, bounded
    scales, input size) whose state-dict names and shapes equal ``state``'s; :class:`CheckpointError` naming the
    differences from the closest one when none does."""
    variant = _notebook_variant(state, source)
    got = {k: _shape(v) for k, v in state.items()}
    tried: dict[str, tuple[int, str, str]] = {}  # config dict (sans name) -> (fields changed, name, mismatch)
    for name in list_configs("notebook"):
        base = get_config(name)
        try:
            cfg = base.replace(**variant)
        except ValueError:
            continue
        key = repr(sorted((k, repr(v)) for k, v in cfg.to_dict().items() if k != "name"))
        changed = sum(getattr(base, k) != v for k, v in variant.items())
        if key in tried and tried[key][0] <= changed:
            continue
        diff = tried[key][2] if key in tried else state_dict_mismatch(_meta_state_shapes(cfg), got)
        tried[key] = (changed, name, diff)
    matches = sorted((c, n) for c, n, d in tried.values() if not d)
    if matches:
        return get_config(matches[0][1]).replace(**variant)
    if not tried:
        raise CheckpointError(f"{source}: no notebook config can take variant {variant}")
    _, name, diff = min(tried.values(), key=lambda t: (t[2].count(",") + t[2].count(";"), t[0]))
    raise CheckpointError(f"{source}: matches no registered notebook config; closest {name!r}: {diff}")


def _resolve_config(config: str | ModelConfig | None) -> ModelConfig | None:
    if config is None or isinstance(config, ModelConfig):
        return config
    try:
        return get_config(config)
    except KeyError as e:
        raise CheckpointError(first_line(e)) from None


def load_checkpoint(path: str | os.PathLike, strict: bool = True, config: str | ModelConfig | None = None):
    """Rebuild the network stored in ``path`` (on CPU, eval mode), from either format.

    ``config`` (a name or :class:`ModelConfig`) is used for a notebook-format file instead of finding its
    config; our own files carry theirs. The returned model carries ``model.step`` (training step; 0 for a
    notebook file) and ``model.checkpoint_extra`` (the file's other keys, without optimiser state).
    """
    path = Path(path)
    ckpt = _torch_load(path)
    if isinstance(ckpt, dict) and {"model", "config"} <= set(ckpt):
        try:
            cfg = ModelConfig.from_dict(dict(ckpt["config"]))
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{path}: bad model config ({e})") from None
        state, step = ckpt["model"], int(ckpt.get("step", 0))
        extra = {k: v for k, v in ckpt.items() if k not in ("model", "config", "step")}
    elif isinstance(ckpt, dict) and (ANCHOR_STATE_KEY in ckpt or _is_state_dict(ckpt)):
        state = _strip_prefixes(dict(ckpt.get(ANCHOR_STATE_KEY, ckpt)))
        cfg = _resolve_config(config) or notebook_config_for(state, str(path))
        step = 0
        extra = {"format": "notebook"}
        if ANCHOR_STATE_KEY in ckpt:
            extra.update({k: v for k, v in ckpt.items() if k not in (ANCHOR_STATE_KEY, "optimizer_state_dict")})
    else:
        keys = sorted(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path}: not an InstantHMR checkpoint (needs 'model' and 'config', or "
                              f"'{ANCHOR_STATE_KEY}', has {keys})")
    model = create_network(cfg)
    load_state_dict_strict(model, state, str(path), strict=strict)
    model.step = step
    model.checkpoint_extra = extra
    return model.eval()
