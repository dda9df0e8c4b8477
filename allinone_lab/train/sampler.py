"""A resumable, process-sharded sampler: the data order is a function of (seed, epoch) alone, and the items
of every micro-batch are the same whether a global batch is spread over processes or accumulated in one."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class ResumableSampler(Sampler[int]):
    """Shuffled indices for one process, restartable at any position of any epoch.

    Every process draws the same permutation of ``range(num_items)`` from ``(seed, epoch)`` and drops the
    tail that does not fill a global batch of ``batch_size * world_size * accumulation`` items. Optimizer
    step ``s`` of the epoch takes the next global batch ``g = order[s*G : (s+1)*G]`` and splits it into
    ``M = world_size * accumulation`` micro-batches: micro-batch ``j`` is ``g[j::M]`` (its ``i``-th item is
    ``g[j + i*M]``), and process ``rank`` runs micro-batches ``j = rank * accumulation + k`` for
    ``k = 0 .. accumulation-1`` (:func:`micro_batch_index`). So one process accumulating ``M`` micro-batches
    and ``M`` processes taking one each see the same micro-batches, item for item and in the same order.

    ``set_position(epoch, batches_done)`` skips the ``batches_done`` micro-batches this process already
    consumed in the epoch (exact resume).
    """

    def __init__(self, num_items: int, batch_size: int, seed: int = 0, shuffle: bool = True,
                 rank: int = 0, world_size: int = 1, accumulation: int = 1) -> None:
        if accumulation < 1:
            raise ValueError(f"accumulation={accumulation}: expected an integer >= 1")
        global_batch = batch_size * world_size * accumulation
        if num_items < global_batch:
            raise ValueError(
                f"dataset of {num_items} items is smaller than one global batch ({global_batch})")
        self.num_items, self.batch_size, self.seed, self.shuffle = num_items, batch_size, seed, shuffle
        self.rank, self.world_size, self.accumulation = rank, world_size, accumulation
        self.steps_per_epoch = num_items // global_batch
        self.batches_per_epoch = self.steps_per_epoch * accumulation  # micro-batches of this process
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
        micro = self.world_size * self.accumulation
        # (step, item within the micro-batch, micro-batch) -> (step, micro-batch, item)
        used = order[: self.steps_per_epoch * self.batch_size * micro]
        batches = used.view(self.steps_per_epoch, self.batch_size, micro).transpose(1, 2)
        first = micro_batch_index(self.rank, 0, self.accumulation)
        mine = batches[:, first : first + self.accumulation].reshape(-1)
        return iter(mine[self.start :].tolist())


def micro_batch_index(rank: int, micro: int, accumulation: int) -> int:
    """Index, within its optimizer step, of the ``micro``-th micro-batch that process ``rank`` runs: in
    ``0 .. world_size * accumulation - 1``, the same for a micro-batch wherever it runs."""
    return rank * accumulation + micro
