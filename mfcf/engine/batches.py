"""Device-resident batches: the whole split is one tensor, batches are index slices."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor


class DeviceBatches:
    """Batches of a tensor that already lives on the training device.

    The order of epoch ``e`` is a permutation drawn from a generator seeded with
    ``(seed, e)``, so it depends on nothing else: a run resumed at (epoch, step) sees exactly the
    batches an uninterrupted run would, with no loader state to checkpoint. No per-item Python
    work: one ``index_select`` per batch.

    Example::

        batches = DeviceBatches(train.images.to("cuda"), 512, shuffle=True, seed=0)
        for step, x in enumerate(batches.epoch(3)):
            ...
    """

    def __init__(self, data: Tensor, batch_size: int, *, shuffle: bool, seed: int = 0):
        self.data = data
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed

    def __len__(self) -> int:
        return math.ceil(len(self.data) / self.batch_size)

    def order(self, epoch: int) -> Tensor | None:
        """The permutation of epoch ``epoch`` (None when not shuffling)."""
        if not self.shuffle:
            return None
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(len(self.data), generator=generator).to(self.data.device)

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[Tensor]:
        """Yield the batches of ``epoch`` from step ``start_step`` on (drop_last = False)."""
        perm = self.order(epoch)
        size = self.batch_size
        for step in range(start_step, len(self)):
            if perm is None:
                yield self.data[step * size:(step + 1) * size]
            else:
                yield self.data.index_select(0, perm[step * size:(step + 1) * size])
