"""Model configurations and the two registries behind :func:`~instanthmr.training.model.build_model` (timm style).

* **Architectures** (``ModelConfig.arch``): a network class registered with :func:`register_arch`, e.g.
  ``"query9"`` (:class:`~instanthmr.training.model.network.InstantHMRNet`, this project's 9-query design) and
  ``"notebook"`` (:class:`~instanthmr.training.model.notebook.NotebookHMRNet`, the 141-query network the public
  InstantHMR training notebook builds).
* **Named configs**: zero-argument functions registered with :func:`register_config`, each defined next to the
  class it configures (``network.py``, ``notebook.py``).

A :class:`ModelConfig` is plain data: it is stored in every checkpoint and stamped into every exported ONNX file,
so a model can always be rebuilt from its file alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from instanthmr.core.geometry import CLIFF_FORMS, CROP_SIZE

HEAD_2D_KINDS = ("xy", "simcc")


@dataclass
class ModelConfig:
    """Everything needed to rebuild a network of architecture ``arch``.

    ``cliff_form`` says which of the two CLIFF condition forms the network is trained with (see
    :func:`instanthmr.core.geometry.cliff_condition`). ``pixel_aspect`` (``query9`` only) is the image aspect
    ratio W/H its camera head assumes for the ``pixel`` form, which does not carry the aspect ratio (see
    :mod:`instanthmr.training.model.heads`). The fields after ``arch`` apply to the ``notebook`` architecture
    only (see :mod:`instanthmr.training.model.notebook`).
    """

    name: str = "custom"
    backbone: str = "repvit_m1_5"
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)  # extra timm.create_model kwargs
    input_size: int = CROP_SIZE
    d_model: int = 256
    num_heads: int = 4
    num_layers: int = 2
    mlp_ratio: float = 4.0  # decoder feed-forward width / d_model
    dropout: float = 0.0
    cliff_form: str = "pixel"
    pixel_aspect: float = 16.0 / 9.0
    wholebody_head: bool = False
    arch: str = "query9"
    cond_hidden: int = 128  # CLIFF conditioning MLP 3 -> cond_hidden -> d_model
    head_hidden: int = 256  # hidden width of the per-joint 2D and 3D heads
    head_2d: str = "xy"  # "xy": Linear -> (x, y); "simcc": soft-argmax over simcc_bins bins per axis
    simcc_bins: int = 96
    simcc_range: float = 1.5  # bin centres span [-simcc_range, simcc_range] (crop coordinates)
    joints_3d_head: bool = True  # False: no 3D queries and no joints_3d output (the anchor's "mhr_only")
    bound_scales: bool = False  # tanh-bound mhr_params[0:3] and [130:204] between buffers scale_lo/scale_hi

    def __post_init__(self):
        if self.cliff_form not in CLIFF_FORMS:
            raise ValueError(f"cliff_form must be one of {CLIFF_FORMS}, got {self.cliff_form!r}")
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})")
        if self.input_size % 32:
            raise ValueError(f"input_size must be a multiple of 32 (backbone stride), got {self.input_size}")
        if self.pixel_aspect <= 0:
            raise ValueError(f"pixel_aspect must be positive, got {self.pixel_aspect}")
        if self.head_2d not in HEAD_2D_KINDS:
            raise ValueError(f"head_2d must be one of {HEAD_2D_KINDS}, got {self.head_2d!r}")
        if self.arch == "notebook":
            if self.wholebody_head:
                raise ValueError("the notebook architecture has no joints_3d_wholebody head; use a query9 config")
            if not self.joints_3d_head and self.head_2d != "simcc":
                raise ValueError("joints_3d_head=False (the anchor's mhr_only) goes with head_2d='simcc'")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown model config keys {unknown}; known keys: {sorted(known)}")
        return cls(**d)

    def replace(self, **overrides) -> ModelConfig:
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"unknown model config keys {unknown}")
        return dataclasses.replace(self, **overrides)


_REGISTRY: dict[str, Callable[[], ModelConfig]] = {}
_ARCHS: dict[str, type] = {}
# This project's own training default (the 9-query RepViT-M1.5 design). Which network the released
# instanthmr.onnx holds is not known; its size fits instanthmr_notebook_m2_3 (docs/architecture.md).
DEFAULT_CONFIG = "instanthmr_repvit_m1_5"


def register_config(fn: Callable[[], ModelConfig]) -> Callable[[], ModelConfig]:
    """Decorator: register a zero-argument function returning a :class:`ModelConfig` under its name."""
    _REGISTRY[fn.__name__] = fn
    return fn


def register_arch(name: str):
    """Class decorator: the network class built for configs with ``arch == name``; it is called as
    ``cls(config, pretrained_backbone=...)``."""
    def wrap(cls):
        _ARCHS[name] = cls
        cls.arch = name
        return cls
    return wrap


def list_configs(arch: str | None = None) -> list[str]:
    """Registered config names (only those of architecture ``arch`` when given)."""
    return sorted(n for n in _REGISTRY if arch is None or _REGISTRY[n]().arch == arch)


def list_archs() -> list[str]:
    return sorted(_ARCHS)


def get_config(name: str) -> ModelConfig:
    if name not in _REGISTRY:
        raise KeyError(f"unknown model config {name!r}; available: {', '.join(list_configs())}")
    cfg = _REGISTRY[name]()
    return cfg.replace(name=name)


def create_network(config: ModelConfig, pretrained_backbone: str | None = None):
    """The network of ``config.arch`` built from ``config`` (random init unless ``pretrained_backbone``)."""
    return _arch_class(config)(config, pretrained_backbone=pretrained_backbone)


def _arch_class(config: ModelConfig) -> type:
    if config.arch not in _ARCHS:
        raise ValueError(f"unknown architecture {config.arch!r}; available: {', '.join(list_archs())}")
    return _ARCHS[config.arch]


def query_count(config: ModelConfig) -> int:
    """Number of learned query tokens of ``config``'s network (without building it)."""
    return _arch_class(config).query_count(config)


def output_names_for(config: ModelConfig) -> tuple[str, ...]:
    """The exported outputs of ``config``'s network, in order (without building it)."""
    return _arch_class(config).output_names_for(config)
