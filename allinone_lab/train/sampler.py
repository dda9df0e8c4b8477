"""A resumable, process-sharded sampler: the data order is a function of (seed, epoch) alone."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class ResumableSampler(Sampler[int]):
    """Shuffled indices for one process, restartable at any position of any epoch.

    Every process draws the same permutation of ``range(num_items)`` from ``(seed, epoch)``, drops the
    tail that does not fill ``world_size * batch_size``, and takes its own interleaved share. ``start``
    skips the samples this process already consumed in the epoch (exact resume).
    """

    def __init__(self, num_items: int, batch_size: int, seed: int = 0, shuffle: bool = True,
                 rank: int = 0, world_size: int = 1) -> None:
        per_step = batch_size * world_size
        if num_items < per_step:
            raise ValueError(f"dataset of {num_items} items is smaller than one global batch ({per_step})")
        self.num_items, self.batch_size, self.seed, self.shuffle = num_items, batch_size, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.batches_per_epoch = num_items // per_step
        self.epoch, self.start = 0, 0

    def set_position(self, epoch: int, batches_done: int) -> None:
        self.epoch, self.start = epoch, batches_done * self.batch_size

    def __len__(self) -> int:
        return self.batches_per_epoch * self.batch_size - self.start

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            order = torch.randperm(self.num_items, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        else:
            order = torch.arange(self.num_items)
        used = order[: self.batches_per_epoch * self.batch_size * self.world_size]
        mine = used.view(-1, self.world_size)[:, self.rank]
        return iter(mine[self.start :].tolist())
