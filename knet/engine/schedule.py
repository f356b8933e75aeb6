"""Learning-rate schedule and the data order, both functions of the iteration number only.

lr(it) = base_lr * warmup(it) * gamma ** #(steps <= it), with mmcv's linear warm-up
warmup(it) = 1 - (1 - it / warmup_iters) * (1 - warmup_ratio) for it < warmup_iters.

Data order: epoch e is a permutation of the dataset drawn from (seed, e); it is cut into global
micro-batches of batch_size * world_size (the remainder is dropped) and process r takes slice r of
each. So one process with batch 2b sees exactly the images that two processes with batch b see,
and a resumed run continues at the same place of the same permutation.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler


def lr_factor(it: int, *, warmup_iters: int, warmup_ratio: float, steps: Sequence[int], gamma: float) -> float:
    factor = gamma ** bisect.bisect_right(sorted(steps), it)
    if warmup_iters > 0 and it < warmup_iters:
        factor *= 1 - (1 - it / warmup_iters) * (1 - warmup_ratio)
    return factor


class EpochBatchSampler(Sampler[list[int]]):
    """This process's micro-batches of epoch `epoch`, starting at micro-batch `start`."""

    def __init__(self, n: int, *, batch_size: int, rank: int, world_size: int, seed: int, epoch: int, start: int = 0) -> None:
        self.n, self.batch_size, self.rank, self.world_size = n, batch_size, rank, world_size
        self.seed, self.epoch, self.start = seed, epoch, start

    @staticmethod
    def batches_per_epoch(n: int, batch_size: int, world_size: int) -> int:
        return n // (batch_size * world_size)

    def __len__(self) -> int:
        return max(0, self.batches_per_epoch(self.n, self.batch_size, self.world_size) - self.start)

    def __iter__(self) -> Iterator[list[int]]:
        g = torch.Generator()
        g.manual_seed(int(self.seed) * 100003 + int(self.epoch))
        perm = torch.randperm(self.n, generator=g).tolist()
        global_batch = self.batch_size * self.world_size
        for k in range(self.start, self.batches_per_epoch(self.n, self.batch_size, self.world_size)):
            lo = k * global_batch + self.rank * self.batch_size
            yield perm[lo : lo + self.batch_size]
