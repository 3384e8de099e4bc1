"""Samplers that make a run independent of how it is split over processes or interrupted.

The training order is a function of (seed, epoch) alone, so a run resumed from ``last.ckpt`` sees
the batches an uninterrupted run sees. Evaluation visits every item exactly once over all
processes (no padding repeats), so ``vhd validate`` / ``test`` / ``predict`` under DDP score and
write what one process does. Both are ``DistributedSampler``s, which Lightning leaves in place.
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


class EveryItemOnce(DistributedSampler):
    """Items ``rank, rank + world, ...``: each exactly once over all processes, in file order.

    Unlike ``DistributedSampler`` it does not repeat items to even out the shares, and unlike
    Lightning's ``UnrepeatedDistributedSampler`` it allows an empty share (a split smaller than
    the number of processes); evaluation steps hold no collective operations, so uneven shares
    are safe.
    """

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)
        self.total_size = len(dataset)  # type: ignore[arg-type]
        self.num_samples = len(range(rank, self.total_size, num_replicas))

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.total_size, self.num_replicas))


def evaluation_sampler(dataset: Dataset, trainer: L.Trainer | None) -> DistributedSampler | None:
    """``EveryItemOnce`` under DDP; None (in order) for one process."""
    world, rank = _replicas(trainer)
    return EveryItemOnce(dataset, world, rank) if world > 1 else None
