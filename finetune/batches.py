"""Fine-tuning's batches, counted in optimizer steps: every mode of a comparison takes the same number of steps,
whatever its data (a few labels, all of them, or labels and the unlabeled pool).

An epoch is `steps` batches drawn from an endless stream of reshuffled passes over the tensors; the stream goes on
from one epoch to the next, so a small labeled set is cycled and a large one is not restarted at each epoch.
"""
from __future__ import annotations

import torch

from pretrain import BatchLoader


class StepBatches:
    """`steps` batches an epoch of `batch_size` rows (all rows, if there are fewer), sharded by rank under
    torch.distributed: every rank draws the same stream and keeps its own interleaved share of each batch.

    Pass p is shuffled by a generator seeded with (seed, p), so a run repeats exactly.
    """

    def __init__(self, *tensors: torch.Tensor, batch_size: int, steps: int, seed: int = 0):
        if not tensors or any(len(t) != len(tensors[0]) for t in tensors):
            raise ValueError("StepBatches needs tensors of one common length")
        self.tensors, self.steps, self.seed = tensors, int(steps), seed
        self.batch_size = min(int(batch_size), len(tensors[0]))
        self.passes = 0
        self._stream = torch.empty(0, dtype=torch.long)

    def _next_indices(self, count: int) -> torch.Tensor:
        while len(self._stream) < count:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.passes)
            self._stream = torch.cat([self._stream, torch.randperm(len(self.tensors[0]), generator=g)])
            self.passes += 1
        taken, self._stream = self._stream[:count], self._stream[count:]
        return taken

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        rank, world = BatchLoader._rank_and_world()
        for _ in range(self.steps):
            idx = self._next_indices(self.batch_size * world)[rank::world]
            batch = tuple(t[idx] for t in self.tensors)
            yield batch[0] if len(batch) == 1 else batch


class PairedBatches:
    """Labeled batches zipped with unlabeled ones, `steps` pairs an epoch: ((x_l, y_l), x_u)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, unlabeled: torch.Tensor, batch_size: int,
                 unlabeled_batch_size: int, steps: int, seed: int):
        self.labeled = StepBatches(x, y, batch_size=batch_size, steps=steps, seed=seed)
        self.unlabeled = StepBatches(unlabeled, batch_size=unlabeled_batch_size, steps=steps, seed=seed + 7919)

    def __len__(self) -> int:
        return len(self.labeled)

    def __iter__(self):
        yield from zip(self.labeled, self.unlabeled)
