"""Row order of the list-state metrics, so that a DDP run averages exactly as one process does.

DDP gathers each rank's rows one rank after another, while one process stores them in split
order; a mean over the same numbers in another order can differ in the last digit. vhd's models
therefore pass each row's position in the split (``meta["index"]``) as ``order``, and
``compute`` sorts by it, keeping one row per position (a process left without a share of a small
split scores a batch again; see ``vhd.datamodules.samplers.WholeBatches``). Without ``order``
rows stay in the order they arrived, as before.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torchmetrics.utilities import dim_zero_cat


def positions(order: Sequence[int] | None, count: int, device: torch.device) -> Tensor | None:
    """``order`` as a tensor (None stays None), checked against the ``count`` rows it orders."""
    if order is None:
        return None
    if len(order) != count:
        raise ValueError(f"order lists {len(order)} positions for {count} rows")
    return torch.as_tensor(list(order), dtype=torch.long, device=device)


def in_split_order(
    order: list[Tensor] | Tensor, *states: list[Tensor] | Tensor
) -> list[np.ndarray]:
    """Each state's rows (a list before DDP sync, one tensor after) as NumPy: by position, one
    row per position, when positions were given; else in arrival order."""
    arrays = [dim_zero_cat(state).cpu().numpy() for state in states]
    if len(order) == 0:
        return arrays
    split_positions = dim_zero_cat(order).cpu().numpy()
    if len(split_positions) != len(arrays[0]):
        raise ValueError("order was given for some updates only; give it for all or none")
    _, first = np.unique(split_positions, return_index=True)
    return [array[first] for array in arrays]
