"""Dropout with a faster CPU path (the same function as ``nn.Dropout``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)``.

    On the CPU ``F.dropout`` draws its mask with ``bernoulli_``, which is slow; here the mask is
    ``uniform >= p`` from ``rand_like`` (the same distribution, about twice as fast forward and
    backward on large inputs). Other devices use ``F.dropout``.
    """
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0:
        return F.dropout(x, p, training)
    keep = torch.rand_like(x, dtype=torch.float32).ge_(p).mul_(1.0 / (1.0 - p))
    return x * keep.to(x.dtype)


class Dropout(nn.Dropout):
    """``nn.Dropout`` (same parameters and state) computed by ``dropout``."""

    def forward(self, x: Tensor) -> Tensor:
        if self.inplace:
            return super().forward(x)
        return dropout(x, self.p, self.training)
