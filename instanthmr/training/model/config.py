"""Named network configurations (timm style: a registry of configs next to the constructor).

A :class:`ModelConfig` is plain data: it is stored in every checkpoint and stamped into every exported
ONNX file, so a model can always be rebuilt from its file alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

from instanthmr.core.geometry import CLIFF_FORMS, CROP_SIZE


@dataclass
class ModelConfig:
    """Everything needed to rebuild an :class:`~instanthmr.training.model.network.InstantHMRNet`.

    ``cliff_form`` says which of the two CLIFF condition forms the network is trained with (see
    :func:`instanthmr.core.geometry.cliff_condition`). ``pixel_aspect`` is the image aspect ratio W/H the
    camera head assumes for the ``pixel`` form, which does not carry the aspect ratio (see
    :mod:`instanthmr.training.model.heads`).
    """

    name: str = "custom"
    backbone: str = "repvit_m1_5"
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)  # extra timm.create_model kwargs
    input_size: int = CROP_SIZE
    d_model: int = 256
    num_heads: int = 4
    num_layers: int = 2
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    cliff_form: str = "pixel"
    pixel_aspect: float = 16.0 / 9.0
    wholebody_head: bool = False

    def __post_init__(self):
        if self.cliff_form not in CLIFF_FORMS:
            raise ValueError(f"cliff_form must be one of {CLIFF_FORMS}, got {self.cliff_form!r}")
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})")
        if self.input_size % 32:
            raise ValueError(f"input_size must be a multiple of 32 (backbone stride), got {self.input_size}")
        if self.pixel_aspect <= 0:
            raise ValueError(f"pixel_aspect must be positive, got {self.pixel_aspect}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown model config keys {unknown}; known keys: {sorted(known)}")
        return cls(**d)

    def replace(self, **overrides) -> "ModelConfig":
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"unknown model config keys {unknown}")
        return dataclasses.replace(self, **overrides)


_REGISTRY: dict[str, Callable[[], ModelConfig]] = {}
DEFAULT_CONFIG = "instanthmr_repvit_m1_5"


def register_config(fn: Callable[[], ModelConfig]) -> Callable[[], ModelConfig]:
    """Decorator: register a zero-argument function returning a :class:`ModelConfig` under its name."""
    _REGISTRY[fn.__name__] = fn
    return fn


def list_configs() -> list[str]:
    return sorted(_REGISTRY)


def get_config(name: str) -> ModelConfig:
    if name not in _REGISTRY:
        raise KeyError(f"unknown model config {name!r}; available: {', '.join(list_configs())}")
    cfg = _REGISTRY[name]()
    return cfg.replace(name=name)


@register_config
def instanthmr_repvit_m1_5() -> ModelConfig:
    """The default: RepViT-M1.5 (512 x 7 x 7 last stage), 256-wide 2-layer decoder."""
    return ModelConfig(backbone="repvit_m1_5")


@register_config
def instanthmr_repvit_m1_1() -> ModelConfig:
    return ModelConfig(backbone="repvit_m1_1")


@register_config
def instanthmr_repvit_m0_9() -> ModelConfig:
    return ModelConfig(backbone="repvit_m0_9")


@register_config
def instanthmr_repvit_m2_3() -> ModelConfig:
    return ModelConfig(backbone="repvit_m2_3")


@register_config
def instanthmr_tiny_test() -> ModelConfig:
    """A few-hundred-thousand-parameter model for tests and CI: same graph structure, tiny widths."""
    return ModelConfig(backbone="repvit_m0_9",
                       backbone_kwargs={"embed_dim": [16, 32, 48, 64], "depth": [1, 1, 1, 1]},
                       d_model=64, num_heads=2, num_layers=1, mlp_ratio=2.0)
