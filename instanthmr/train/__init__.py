"""Distillation training (torch): config, dataset, losses, the training loop.

>>> from instanthmr.train import load_config, Trainer
>>> Trainer(load_config("configs/train_default.yaml", ["data.train=[labels/]"])).fit()
"""

from instanthmr.train.config import ConfigError, TrainConfig, load_config  # noqa: F401
from instanthmr.train.trainer import Trainer, TrainingError  # noqa: F401
