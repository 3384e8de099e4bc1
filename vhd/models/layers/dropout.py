"""Dropout with a faster CPU path (the same function as ``nn.Dropout``).

On the CPU, drawing the random mask is most of a dropout's cost: ``F.dropout`` runs
``bernoulli_`` (one draw per element, slow), ``rand_like`` one 32-bit draw per element. Here one
64-bit draw gives four 16-bit uniform numbers, a quarter of the draws; an element is dropped when
its number falls below ``p`` on a grid of 1/65536. ``p`` is thereby rounded to a multiple of
1/65536 (0.1 becomes 0.100006; 0.5 stays exact): the distribution of ``nn.Dropout`` to within
1e-5. Other devices use ``F.dropout``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

GRID = 1 << 16  # uniform numbers per draw of 16 bits


def keep_mask(
    shape: torch.Size | tuple[int, ...],
    p: float,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """The scaled dropout mask of ``shape``: ``1 / (1 - p)`` with probability ``1 - p`` (``p``
    rounded to a multiple of 1/65536), else 0. A quarter as many 64-bit draws as elements; the
    comparison writes the 0/1 floats directly (no boolean mask to convert)."""
    numel = math.prod(shape)
    draws = torch.empty((numel + 3) // 4, dtype=torch.int64, device=device)
    draws.random_(-(2**63), 2**63 - 1)  # all 64 bits random (plain random_() leaves the top 0)
    uniform = draws.view(torch.int16)[:numel].view(shape)  # each in [-32768, 32767]
    mask = torch.empty(shape, dtype=dtype, device=device)
    torch.ge(uniform, round(p * GRID) - GRID // 2, out=mask)
    return mask.mul_(1.0 / (1.0 - p))


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)``."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0:
        return F.dropout(x, p, training)
    return x * keep_mask(x.shape, p, x.device, x.dtype)  # a float mask: one-multiply backward


class Dropout(nn.Dropout):
    """``nn.Dropout`` (same parameters and state) computed by ``dropout``."""

    def forward(self, x: Tensor) -> Tensor:
        if self.inplace:
            return super().forward(x)
        return dropout(x, self.p, self.training)
