"""The distillation training loop: one code path from a laptop CPU to multi-node ``torchrun``.

* Distributed: when ``torchrun`` sets ``WORLD_SIZE > 1`` the model is wrapped in
  DistributedDataParallel (NCCL on CUDA, Gloo on CPU) and each rank reads its own shard blocks; otherwise no
  process group is created.
* AdamW (no weight decay on norms/biases), linear warm-up + cosine decay computed from the step (so resuming
  needs no scheduler state), bf16/fp16 autocast on CUDA (fp16 with a gradient scaler), global-norm
  gradient clipping, optional EMA weights.
* ``out_dir/last.pt`` holds everything needed to resume (model, optimiser, scaler, EMA, step, config) and is
  written atomically; ``out_dir/final.pt`` is the model to export (EMA weights when enabled).
* Logs: a progress bar with loss and throughput, ``out_dir/metrics.csv`` and TensorBoard ``out_dir/tb``. A run
  that starts at step S (resumed, or fresh at 0) first cuts ``metrics.csv`` / ``val.csv`` back to the rows
  up to S and purges TensorBoard events after S, so the logs never hold two histories of the same steps.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from instanthmr.core.errors import first_line
from instanthmr.core.faults import atomic_write, write_text_atomic
from instanthmr.training.config import TrainConfig
from instanthmr.training.data.augment import IMAGENET_MEAN, IMAGENET_STD, AugmentConfig
from instanthmr.training.dataset import ShardBlockSampler, ShardDataset
from instanthmr.training.losses import distillation_loss, root_relative

REFERENCE_BATCH = 64  # optim.lr is the learning rate for this global batch


class TrainingError(RuntimeError):
    """A training run cannot start or continue (bad data, bad checkpoint, bad config)."""


# ------------------------------------------------------------------------------------------------
# Distributed / device / precision
# ------------------------------------------------------------------------------------------------


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    distributed: bool = False  # a process group is up and the model is wrapped in DDP

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> DistInfo:
    """Read ``torchrun``'s environment (``MASTER_ADDR``, ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) and start
    a process group under it, even for one process; a plain ``python`` run has no group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if use_cuda and not torch.cuda.is_available():
        raise TrainingError("run.device=cuda but CUDA is not available")
    dev = torch.device(f"cuda:{local}") if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    launched = "MASTER_ADDR" in os.environ and "WORLD_SIZE" in os.environ
    if launched:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if use_cuda else "gloo")
    return DistInfo(rank, world, local, dev, launched)


def resolve_precision(precision: str, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """``(autocast dtype or None, use GradScaler)``. Autocast is used on CUDA only: CPU bf16 autocast is
    slow on most CPUs and the CPU path exists for tests and smoke runs."""
    precision = precision.lower()
    if precision not in ("auto", "bf16", "fp16", "fp32"):
        raise TrainingError(f"run.precision must be auto|bf16|fp16|fp32, got {precision!r}")
    if device.type != "cuda" or precision == "fp32":
        return None, False
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return (torch.bfloat16, False) if precision == "bf16" else (torch.float16, True)


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warm-up from 0 to 1 over ``warmup`` steps, then cosine from 1 to ``min_ratio`` at ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


class ModelEMA:
    """Exponential moving average of the weights (buffers copied), with the usual early-step warm-up."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = float(decay)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        src = model.state_dict()
        for k, v in self.module.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(src[k].detach().to(v.dtype), alpha=1.0 - d)
            else:
                v.copy_(src[k])


def normalize_on_device(images_uint8: torch.Tensor) -> torch.Tensor:
    mean = torch.as_tensor(IMAGENET_MEAN, device=images_uint8.device).view(1, 3, 1, 1)
    std = torch.as_tensor(IMAGENET_STD, device=images_uint8.device).view(1, 3, 1, 1)
    return (images_uint8.float() / 255.0 - mean) / std


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _truncate_log(path: Path, step: int) -> None:
    """Keep the rows of a step-indexed CSV log up to ``step`` (the run continues from there; rows after it
    belong to steps that will be trained again). Rewritten atomically; removed when no row is left."""
    if not path.is_file():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or "step" not in rows[0]:
        return
    col = rows[0].index("step")

    def keep(row):
        try:
            return float(row[col]) <= step
        except (IndexError, ValueError):  # a row cut by a kill mid-write
            return False

    kept = [r for r in rows[1:] if keep(r)]
    if len(kept) == len(rows) - 1:
        return
    if not kept:
        path.unlink()
        return
    with atomic_write(path, "w", newline="") as f:
        csv.writer(f).writerows([rows[0]] + kept)


# ------------------------------------------------------------------------------------------------
# Trainer
# ------------------------------------------------------------------------------------------------


class Trainer:
    """``Trainer(cfg, resume=None).fit()``; ``resume`` is a checkpoint path or ``"auto"`` (``out_dir/last.pt``
    when it exists)."""

    def __init__(self, cfg: TrainConfig, resume: str | None = None):
        from instanthmr.training.model import build_model, load_checkpoint

        self.cfg = cfg
        self.dist = init_distributed(cfg.run.device)
        self.out = Path(cfg.run.out_dir)
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(cfg.run.seed + self.dist.rank)
        if not cfg.data.train:
            raise TrainingError("data.train is empty: give at least one shard folder (--set data.train=[dir])")

        if cfg.model.init_checkpoint:
            model = load_checkpoint(cfg.model.init_checkpoint)
        else:
            model = build_model(cfg.model.name, pretrained_backbone=cfg.model.pretrained_backbone,
                                **cfg.model.overrides)
        self.model = model.to(self.dist.device).train()
        self.mhr_layer = self._load_mhr_layer(cfg)
        self.cliff_form = self.model.config.cliff_form
        size = self.model.config.input_size

        self.train_set = ShardDataset(cfg.data.train, cfg.data.augment, self.cliff_form, cfg.data.image_root,
                                      cfg.run.seed, size)
        self.sampler = ShardBlockSampler(self.train_set.reader.shard_ranges(), self.dist.rank,
                                         self.dist.world_size, cfg.run.seed, cfg.data.block_size)
        self.steps_per_epoch = len(self.sampler) // cfg.data.batch_size
        if self.steps_per_epoch == 0:
            raise TrainingError(f"{len(self.train_set)} training instances are fewer than one batch per process "
                                f"(data.batch_size={cfg.data.batch_size}, {self.dist.world_size} processes)")
        self.val_set = (ShardDataset(cfg.data.val, AugmentConfig.off(), self.cliff_form, cfg.data.image_root,
                                     cfg.run.seed, size) if cfg.data.val else None)

        global_batch = cfg.data.batch_size * self.dist.world_size
        self.base_lr = cfg.optim.lr * (global_batch / REFERENCE_BATCH if cfg.optim.scale_lr_with_batch else 1.0)
        self.optimizer = torch.optim.AdamW(_param_groups(self.model, cfg.optim.weight_decay), lr=self.base_lr,
                                           betas=tuple(cfg.optim.betas))
        self.amp_dtype, use_scaler = resolve_precision(cfg.run.precision, self.dist.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
        self.ema = ModelEMA(self.model, cfg.optim.ema_decay) if cfg.optim.ema_decay > 0 else None
        self.step = 0
        self.skipped = 0  # training samples replaced because their shard or image could not be read
        if resume:
            self._load_resume(resume)
        elif self.dist.is_main and (self.out / "last.pt").is_file():
            print(f"note: starting fresh at step 0 without --resume; the checkpoint and logs of the earlier run "
                  f"in {self.out} will be overwritten (--resume auto continues it)", file=sys.stderr)
        if self.dist.is_main:
            for name in ("metrics.csv", "val.csv"):
                _truncate_log(self.out / name, self.step)
        self.ddp = self.model
        if self.dist.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.dist.device.index] if self.dist.device.type == "cuda" else None
            self.ddp = DistributedDataParallel(self.model, device_ids=ids)
        self.history: list[dict] = []

    # -- checkpoints ---------------------------------------------------------------------------------
    def _load_resume(self, resume: str) -> None:
        from instanthmr.training.model import CheckpointError, read_checkpoint

        path = self.out / "last.pt" if resume == "auto" else Path(resume)
        if resume == "auto" and not path.is_file():
            if self.dist.is_main:
                print(f"resume: no checkpoint at {path}; starting fresh at step 0", file=sys.stderr)
            return
        try:
            ckpt = read_checkpoint(path)
            self.model.load_state_dict(ckpt["model"])
        except (CheckpointError, RuntimeError) as e:
            raise TrainingError(f"cannot resume from {path}: {first_line(e)}") from None
        if "optimizer" in ckpt:
            self.optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(ckpt["scaler"])
        if self.ema is not None and ckpt.get("ema"):
            self.ema.module.load_state_dict(ckpt["ema"])
            self.ema.updates = int(ckpt.get("ema_updates", 0))
        self.step = int(ckpt.get("step", 0))
        if self.dist.is_main:
            done = " (already at optim.steps: nothing left to train)" if self.step >= self.cfg.optim.steps else ""
            print(f"resume: continuing from {path} at step {self.step} of {self.cfg.optim.steps}{done}",
                  file=sys.stderr)

    def save(self, name: str = "last.pt") -> Path | None:
        from instanthmr.training.model import save_checkpoint

        if not self.dist.is_main:
            return None
        extra = {"optimizer": self.optimizer.state_dict(), "train_config": self.cfg.to_dict()}
        if self.scaler.is_enabled():
            extra["scaler"] = self.scaler.state_dict()
        if self.ema is not None:
            extra["ema"] = self.ema.module.state_dict()
            extra["ema_updates"] = self.ema.updates
        return save_checkpoint(self.out / name, self.model, self.step, **extra)

    def save_final(self) -> Path | None:
        """The weights to export: EMA when enabled, else the raw model (no optimiser state)."""
        from instanthmr.training.model import save_checkpoint

        if not self.dist.is_main:
            return None
        m = self.ema.module if self.ema is not None else self.model
        return save_checkpoint(self.out / "final.pt", m, self.step, train_config=self.cfg.to_dict(),
                               ema=self.ema is not None)

    # -- steps ---------------------------------------------------------------------------------------
    def _to_device(self, batch: dict) -> dict:
        nb = self.dist.device.type == "cuda"
        return {k: v.to(self.dist.device, non_blocking=nb) for k, v in batch.items()}

    def _load_mhr_layer(self, cfg: TrainConfig):
        """The MHR layer for ``loss.mhr_consistency`` (frozen buffers, on the training device), or None."""
        if cfg.loss.mhr_consistency <= 0:
            return None
        if not cfg.model.mhr_model:
            raise TrainingError("loss.mhr_consistency > 0 needs model.mhr_model: a converted MHR .npz with a "
                                "keypoint regressor (tools/convert_mhr.py --regressor)")
        from instanthmr.body.mhr import MHRAssetError
        from instanthmr.body.mhr_torch import MHRModel

        try:
            layer = MHRModel.from_npz(cfg.model.mhr_model)
        except (MHRAssetError, OSError) as e:
            raise TrainingError(f"model.mhr_model: {e}") from None
        if not layer.has_keypoints:
            raise TrainingError(f"model.mhr_model {cfg.model.mhr_model} has no 70-keypoint regressor "
                                "(convert it with tools/convert_mhr.py --regressor)")
        return layer.to(self.dist.device).eval().requires_grad_(False)

    def train_step(self, batch: dict) -> dict[str, float]:
        cfg = self.cfg
        lr = self.base_lr * lr_factor(self.step, cfg.optim.warmup_steps, cfg.optim.steps, cfg.optim.min_lr_ratio)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        batch = self._to_device(batch)
        images = normalize_on_device(batch["image"])
        with torch.autocast(self.dist.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            pred = self.ddp(images, batch["cliff_cond"])
        loss, terms = distillation_loss(pred, batch, cfg.loss, self.mhr_layer)  # losses in float32
        if not torch.isfinite(loss):
            raise TrainingError(f"non-finite loss at step {self.step}: {terms}")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        grad_norm = float("nan")
        if cfg.optim.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.model)
        self.step += 1
        return {"loss": float(loss.detach()), "lr": lr, "grad_norm": grad_norm, **terms}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Loss terms and MPJPE / PA-MPJPE (mm, pelvis-aligned, vs the teacher) on ``data.val``."""
        from instanthmr.core.metrics import pa_mpjpe

        if self.val_set is None:
            return {}
        model = self.ema.module if self.ema is not None else self.model
        was_training = model.training
        model.eval()
        loader = torch.utils.data.DataLoader(self.val_set, batch_size=self.cfg.data.batch_size, shuffle=False,
                                             num_workers=0)
        sums: dict[str, float] = {}
        n_batches, errs, pa = 0, [], []
        for i, batch in enumerate(loader):
            if i >= self.cfg.run.val_batches:
                break
            batch.pop("skipped", None)
            batch = self._to_device(batch)
            pred = model(normalize_on_device(batch["image"]), batch["cliff_cond"])
            _, terms = distillation_loss(pred, batch, self.cfg.loss, self.mhr_layer)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v
            n_batches += 1
            p = root_relative(pred["joints_3d"].float()).cpu().numpy()
            t = root_relative(batch["joints_3d"]).cpu().numpy()
            m = batch["joints_3d_valid"].cpu().numpy()
            errs.append(np.linalg.norm(p - t, axis=-1)[m])
            pa.append(pa_mpjpe(p, t, m))
        model.train(was_training)
        out = {f"val_{k}": v / max(1, n_batches) for k, v in sums.items()}
        if errs:
            out["val_mpjpe_mm"] = float(np.concatenate(errs).mean() * 1000)
            out["val_pa_mpjpe_mm"] = float(np.nanmean(np.concatenate(pa)) * 1000)
        return out

    # -- loop ----------------------------------------------------------------------------------------
    def fit(self) -> list[dict]:
        cfg = self.cfg
        loader_kw = dict(batch_size=cfg.data.batch_size, sampler=self.sampler, num_workers=cfg.data.num_workers,
                         drop_last=True, pin_memory=self.dist.device.type == "cuda")
        tb = self._tensorboard() if self.dist.is_main else None
        csv_path = self.out / "metrics.csv"
        bar = None
        if self.dist.is_main and cfg.run.progress:
            from tqdm import tqdm

            bar = tqdm(total=cfg.optim.steps, initial=self.step, unit="step", dynamic_ncols=True)
        global_batch = cfg.data.batch_size * self.dist.world_size
        t0, last_t, last_step = time.time(), time.time(), self.step
        while self.step < cfg.optim.steps:
            epoch, within = divmod(self.step, self.steps_per_epoch)
            self.sampler.set_epoch(epoch, start=within * cfg.data.batch_size)
            self.train_set.set_epoch(epoch)
            for batch in torch.utils.data.DataLoader(self.train_set, **loader_kw):
                self.skipped += int(batch.pop("skipped").sum())
                rec = self.train_step(batch)
                now = time.time()
                rec.update(step=self.step, epoch=epoch, elapsed_s=now - t0)
                if self.step % cfg.run.log_every == 0 or self.step == cfg.optim.steps:
                    rec["samples_per_s"] = (self.step - last_step) * global_batch / max(now - last_t, 1e-9)
                    last_t, last_step = now, self.step
                    if self.dist.is_main:
                        self._log(csv_path, tb, rec)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{rec['loss']:.4f}", lr=f"{rec['lr']:.2e}",
                                    **({"img/s": f"{rec['samples_per_s']:.0f}"} if "samples_per_s" in rec else {}))
                self.history.append(rec)
                if cfg.run.val_every and self.step % cfg.run.val_every == 0 and self.val_set is not None:
                    val = self.validate()
                    if self.dist.is_main:
                        self._log(self.out / "val.csv", tb, {"step": self.step, **val})
                if cfg.run.ckpt_every and self.step % cfg.run.ckpt_every == 0:
                    self.save()
                if self.step >= cfg.optim.steps:
                    break
        if bar is not None:
            bar.close()
        self.save()
        self.save_final()
        if self.val_set is not None and self.dist.is_main:
            val = self.validate()
            self._log(self.out / "val.csv", tb, {"step": self.step, **val})
            write_text_atomic(self.out / "val_final.json", json.dumps(val, indent=2))
        if tb is not None:
            tb.close()
        if self.skipped and self.dist.is_main:
            print(f"warning: {self.skipped} training samples were replaced by others because their shard or image "
                  "could not be read (the warnings above name each file)", file=sys.stderr)
        if self.dist.distributed:
            import torch.distributed as dist

            dist.barrier()
        return self.history

    def _tensorboard(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional: the CSV has the same numbers
            print("warning: tensorboard not installed; logging to CSV only", file=sys.stderr)
            return None
        return SummaryWriter(str(self.out / "tb"), purge_step=self.step)  # drop events after a resumed step

    @staticmethod
    def _log(path: Path, tb, rec: dict) -> None:
        new = not path.exists()
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rec), extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(rec)
        if tb is not None:
            for k, v in rec.items():
                if k not in ("step", "epoch") and isinstance(v, float) and math.isfinite(v):
                    tb.add_scalar(k, v, rec["step"])
