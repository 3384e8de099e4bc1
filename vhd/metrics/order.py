"""Row order of the list-state metrics, so that a DDP run averages exactly as one process does.

DDP gathers each rank's rows one rank after another, while one process stores them in split
order; a mean over the same numbers in another order can differ in the last digit. Each row
therefore carries its position in the split (``meta["index"]``), and ``compute`` sorts by it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torchmetrics.utilities import dim_zero_cat


def row_positions(
    order: Sequence[int] | None, stored: list[Tensor] | Tensor, count: int, device: torch.device
) -> Tensor:
    """Positions of ``count`` new rows: ``order`` as given, else after the rows already stored."""
    if order is None:
        start = sum(len(part) for part in stored) if isinstance(stored, list) else len(stored)
        return torch.arange(start, start + count, device=device)
    if len(order) != count:
        raise ValueError(f"order lists {len(order)} positions for {count} rows")
    return torch.as_tensor(list(order), dtype=torch.long, device=device)


def in_split_order(
    order: list[Tensor] | Tensor, *states: list[Tensor] | Tensor
) -> list[np.ndarray]:
    """Each state's rows (a list before DDP sync, one tensor after) as NumPy, sorted by position."""
    arrays = [dim_zero_cat(state).cpu().numpy() for state in states]
    permutation = np.argsort(dim_zero_cat(order).cpu().numpy(), kind="stable")
    return [array[permutation] for array in arrays]
