"""Torch dataset over shard sets, and a shard-local, rank-aware sampler."""

from __future__ import annotations

import sys

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from instanthmr.training.data.augment import AugmentConfig, make_crop_sample
from instanthmr.training.data.shards import ShardReader, load_source_image

TENSOR_FIELDS = ("cliff_cond", "joints_2d", "joints_3d", "cam_trans", "mhr_params", "shape_params",
                 "joints_3d_wholebody", "crop_box", "focal", "principal_point")
MASK_FIELDS = ("joints_2d_valid", "joints_3d_valid", "cam_trans_valid", "mhr_params_valid",
               "shape_params_valid", "joints_3d_wholebody_valid")


class ShardDataset(Dataset):
    """Instances of one or more shard sets as network inputs + targets.

    Items are dicts: ``image`` uint8 ``(3, S, S)`` RGB (normalised on the device, which is cheaper than
    shipping floats between processes), the float32 targets of :func:`make_crop_sample` and boolean masks.
    Augmentation randomness is a pure function of ``(seed, epoch, index)``, so runs are reproducible for
    any number of loader workers. An instance whose pixels cannot be read is replaced by the next one
    and counted (``skipped`` here, and ``item["skipped"]`` = 1 for an item that replaced an unreadable one),
    with one warning line per bad file (per loader process).
    """

    def __init__(self, roots, augment: AugmentConfig | None = None, cliff_form: str = "pixel",
                 image_root: str | None = None, seed: int = 0, input_size: int = 224):
        self.reader = ShardReader(roots)
        if len(self.reader) == 0:
            raise ValueError(f"no instances in shard set(s) {roots}")
        self.augment = augment or AugmentConfig.off()
        self.cliff_form = cliff_form
        self.image_root = image_root
        self.seed = int(seed)
        self.epoch = 0
        self.input_size = int(input_size)
        self.skipped = 0
        self._warned: set[str] = set()

    def __len__(self) -> int:
        return len(self.reader)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def sample(self, index: int) -> dict:
        inst = self.reader[index]
        src, m = load_source_image(inst, self.image_root)
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        return make_crop_sample(inst, src, m, self.augment, rng, self.cliff_form, self.input_size)

    def __getitem__(self, index: int) -> dict:
        skipped = 0
        for k in range(len(self)):
            j = (int(index) + k) % len(self)
            try:
                s = self.sample(j)
                break
            except (OSError, ValueError) as e:  # FileNotFoundError, ShardFormatError, cv2 decode failures
                skipped += 1
                if str(e) not in self._warned:  # the message names the file: one line per bad file
                    self._warned.add(str(e))
                    print(f"warning: skipping unreadable instances: {e}", file=sys.stderr)
        else:
            raise RuntimeError("no readable instance in the dataset")
        replaced = int(skipped > 0)
        self.skipped += replaced
        item = {"image": torch.from_numpy(np.ascontiguousarray(s["image"].transpose(2, 0, 1))),
                "skipped": torch.tensor(replaced)}  # summed by the trainer (the count survives loader workers)
        for f in TENSOR_FIELDS:
            item[f] = torch.as_tensor(np.asarray(s[f], np.float32))
        for f in MASK_FIELDS:
            item[f] = torch.as_tensor(np.asarray(s[f], bool))
        return item


class ShardBlockSampler(Sampler[int]):
    """Shuffled indices that stay inside one shard for ``block_size`` draws, split evenly over ranks.

    Shards are visited in a shuffled order, instances are shuffled within each shard, and the resulting
    sequence is cut into blocks dealt round-robin to the ranks, so each process reads few shards at a time
    and every rank gets the same number of indices (DDP needs equal step counts). ``set_epoch`` reshuffles;
    ``start`` skips the first indices of an epoch (mid-epoch resume).
    """

    def __init__(self, shard_ranges: list[range], rank: int = 0, world_size: int = 1, seed: int = 0,
                 block_size: int = 256, shuffle: bool = True):
        self.ranges = [r for r in shard_ranges if len(r)]
        self.rank, self.world = int(rank), int(world_size)
        self.seed, self.block, self.shuffle = int(seed), max(1, int(block_size)), shuffle
        self.epoch, self.start = 0, 0
        total = sum(len(r) for r in self.ranges)
        nblocks = -(-total // self.block)
        self.per_rank_blocks = -(-nblocks // self.world)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = int(epoch), int(start)

    def _indices(self) -> list[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.ranges)) if self.shuffle else np.arange(len(self.ranges))
        seq = []
        for s in order:
            idx = np.array(self.ranges[s])
            seq.append(rng.permutation(idx) if self.shuffle else idx)
        flat = np.concatenate(seq) if seq else np.zeros(0, int)
        blocks = [flat[i:i + self.block] for i in range(0, len(flat), self.block)]
        need = self.per_rank_blocks * self.world
        blocks += blocks[: need - len(blocks)]  # pad by repeating so every rank gets as many blocks
        per_rank = [np.concatenate(blocks[r::self.world]) if blocks[r::self.world] else np.zeros(0, int)
                    for r in range(self.world)]
        n = min(len(p) for p in per_rank)  # a short last block must not give one rank an extra step
        return per_rank[self.rank][:n].tolist()[self.start:]

    def __iter__(self):
        return iter(self._indices())

    def __len__(self) -> int:
        return max(0, len(self._indices()))
