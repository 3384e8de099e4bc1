"""Samplers that make a run independent of how it is split over processes or interrupted.

The training order is a function of (seed, epoch) alone, so a run resumed from ``last.ckpt`` sees
the batches an uninterrupted run sees. Evaluation visits every item exactly once over all
processes, in the batches one process forms, so ``vhd validate`` / ``test`` / ``predict`` under
DDP score and write what one process does. Both are ``DistributedSampler``s, which Lightning
leaves in place.
"""

from __future__ import annotations

from collections.abc import Iterator

import lightning as L
from torch.utils.data import Dataset, DistributedSampler

from vhd.seeding import run_seed


def _replicas(trainer: L.Trainer | None) -> tuple[int, int]:
    return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)


def training_sampler(dataset: Dataset, trainer: L.Trainer | None) -> DistributedSampler:
    """This process's share of a permutation drawn from ``seed + epoch`` (Lightning calls
    ``set_epoch`` before every epoch)."""
    world, rank = _replicas(trainer)
    return DistributedSampler(
        dataset,
        num_replicas=world,
        rank=rank,
        shuffle=True,
        seed=run_seed(),
    )


class WholeBatches(DistributedSampler):
    """The batches one process would form, dealt out whole: batch ``b`` of the split goes to
    process ``b mod world``. Each item is scored in a batch of the same items, hence with the
    same padding, as with one process, so the numbers agree to the last digit (a model's output
    for an item can depend in its last bits on what it is batched with).

    Shares may differ by one batch. Lightning needs a batch on every process, so a process left
    without one (fewer batches than processes) repeats batch ``rank mod batches``; the metrics
    and the submission writer keep one row per split position (``meta["index"]``).
    """

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, batch_size: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)
        size = self.total_size = len(dataset)  # type: ignore[arg-type]
        batches = [
            range(start, min(start + batch_size, size)) for start in range(0, size, batch_size)
        ]
        mine = batches[rank::num_replicas]
        if not mine and batches:
            mine = [batches[rank % len(batches)]]
        self.indices = [index for batch in mine for index in batch]
        self.num_samples = len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)


def evaluation_sampler(
    dataset: Dataset, trainer: L.Trainer | None, batch_size: int
) -> DistributedSampler | None:
    """``WholeBatches`` under DDP; None (in order) for one process."""
    world, rank = _replicas(trainer)
    return WholeBatches(dataset, world, rank, batch_size) if world > 1 else None
