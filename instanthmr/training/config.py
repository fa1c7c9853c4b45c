"""Training configuration: nested dataclasses, loaded from YAML, overridden by ``--set a.b=value``.

Every value is plain data, so the whole config is stored in each checkpoint and can be printed, diffed
and re-run. Unknown keys are errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instanthmr.core.errors import first_line
from instanthmr.training.data.augment import AugmentConfig


class ConfigError(ValueError):
    """A config file or override is malformed or names an unknown key."""


@dataclass
class ModelSection:
    name: str = "instanthmr_repvit_m1_5"  # a registered config of instanthmr.training.model
    overrides: dict[str, Any] = field(default_factory=dict)  # ModelConfig fields, e.g. {wholebody_head: true}
    pretrained_backbone: str | None = None  # None, a local timm weights file, or "hub"
    init_checkpoint: str | None = None  # start from these weights (fine-tuning), not a resume
    mhr_model: str | None = None  # converted MHR .npz with a keypoint regressor (tools/convert_mhr.py): loss.mhr_consistency


@dataclass
class DataSection:
    train: list[str] = field(default_factory=list)  # shard folders / files
    val: list[str] = field(default_factory=list)
    image_root: str | None = None  # base for relative image_path entries
    batch_size: int = 64  # per process
    num_workers: int = 4
    block_size: int = 256  # instances read contiguously from one shard (I/O locality)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class LossSection:
    """Weights of the loss terms; 0 switches a term off. Every term is masked by label validity."""

    joints_3d: float = 1.0  # root-relative (pelvis) L1, metres
    joints_2d: float = 1.0  # L1 in normalised crop coordinates
    reprojection: float = 1.0  # teacher 3D + our camera, projected, vs teacher 2D (crop coordinates)
    cam_trans: float = 0.1  # L1 on the full-frame translation, metres
    mhr_params: float = 0.1
    shape_params: float = 0.1
    wholebody: float = 1.0  # needs wholebody labels and a model with the wholebody head
    mhr_consistency: float = 0.0  # keypoints decoded from the predicted mhr/shape params through the MHR layer
    # (model.mhr_model) vs the predicted joints_3d, hip-centred; ties the parameter head to the keypoint head


@dataclass
class OptimSection:
    lr: float = 5e-4  # for a global batch of 64; scaled linearly with the global batch
    scale_lr_with_batch: bool = True
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    steps: int = 100_000
    warmup_steps: int = 1000
    min_lr_ratio: float = 0.01  # cosine floor, as a fraction of the peak
    grad_clip: float = 1.0  # max global grad norm; 0 = off
    ema_decay: float = 0.0  # e.g. 0.9998; 0 = no EMA weights


@dataclass
class RunSection:
    out_dir: str = "runs/default"
    device: str = "auto"  # auto | cuda | cpu
    precision: str = "auto"  # auto (bf16 on CUDA if supported, else fp32) | bf16 | fp16 | fp32
    seed: int = 0
    log_every: int = 20
    ckpt_every: int = 1000
    val_every: int = 1000
    val_batches: int = 50
    progress: bool = True


@dataclass
class TrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    loss: LossSection = field(default_factory=LossSection)
    optim: OptimSection = field(default_factory=OptimSection)
    run: RunSection = field(default_factory=RunSection)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _build(cls, data: dict, where: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown config keys {[f'{where}{k}' for k in unknown]}; "
                          f"known under {where or 'top level'}: {sorted(fields)}")
    kwargs = {}
    for name, value in data.items():
        default = getattr(cls(), name)
        if dataclasses.is_dataclass(default):
            kwargs[name] = _build(type(default), value, f"{where}{name}.")
        elif isinstance(default, tuple):
            kwargs[name] = tuple(value)
        elif isinstance(default, (int, float)) and not isinstance(default, bool) and not isinstance(value, bool):
            try:  # YAML reads "1e-3" (no dot) as a string
                kwargs[name] = type(default)(value) if isinstance(value, str) else value
            except ValueError:
                raise ConfigError(f"{where}{name} must be a number, got {value!r}") from None
        else:
            kwargs[name] = value
    return cls(**kwargs)


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_override(text: str) -> dict:
    """``"optim.lr=1e-3"`` -> ``{"optim": {"lr": 0.001}}`` (the value is parsed as YAML)."""
    import yaml

    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({e})") from None
    out: dict = value
    for part in reversed(key.strip().split(".")):
        out = {part: out}
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Defaults <- YAML file (optional; may ``include:`` another file) <- ``overrides``."""
    import yaml

    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({first_line(e, None)})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: top level must be a mapping")
        if "include" in data:
            base = load_config((path.parent / data.pop("include")).resolve()).to_dict()
            data = _merge(base, data)
    for o in overrides:
        data = _merge(data, parse_override(o))
    try:
        return _build(TrainConfig, data, "")
    except TypeError as e:
        raise ConfigError(f"bad config value ({e})") from None


def config_from_dict(d: dict) -> TrainConfig:
    return _build(TrainConfig, d, "")
