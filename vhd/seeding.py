"""Randomness that depends on the run's seed and the epoch only, not on what ran before.

Dropout, augmentation and the datasets' random choices (training windows, saliency pairs) draw
from the global generators. Seeding those from (seed, epoch, rank) at the start of every training
epoch makes a run resumed from ``last.ckpt`` repeat the uninterrupted run exactly, whatever the
interrupted process, the sanity check or a validation drew in between. (With ``num_workers > 0``
the loader's workers keep their own generators across epochs, so a resumed run is equivalent but
not identical.)
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def run_seed() -> int:
    """The run's seed as Lightning's ``seed_everything`` recorded it (0 when unseeded)."""
    return int(os.environ.get("PL_GLOBAL_SEED", 0))


def seed_epoch(seed: int, epoch: int, rank: int = 0) -> None:
    """Seed torch (every device), NumPy and ``random`` from (seed, epoch, rank)."""
    torch_seed, numpy_seed = np.random.SeedSequence([seed, epoch, rank]).generate_state(2)
    torch.manual_seed(int(torch_seed))
    np.random.seed(int(numpy_seed))
    random.seed(int(torch_seed))
