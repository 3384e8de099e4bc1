"""Foreground / background classification of DETR queries with a down-weighted background."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

FOREGROUND, BACKGROUND = 0, 1  # class indices of the release (index 0 = foreground)


def query_targets(logits: Tensor, indices: list[tuple[Tensor, Tensor]]) -> Tensor:
    """(B, Q) class targets: foreground for matched queries, background for the rest."""
    targets = torch.full(logits.shape[:2], BACKGROUND, dtype=torch.long, device=logits.device)
    for row, (source, _) in enumerate(indices):
        targets[row, source.to(logits.device)] = FOREGROUND
    return targets


def label_loss(logits: Tensor, indices: list[tuple[Tensor, Tensor]], eos_coef: float) -> Tensor:
    """Cross-entropy with class weights [1, eos_coef], then a plain mean over all B x Q queries.

    The release (like Moment-DETR) averages the weighted per-query losses over the query count,
    not over the sum of weights as DETR's weighted mean does.
    """
    weight = torch.tensor([1.0, eos_coef], device=logits.device)
    losses = F.cross_entropy(
        logits.float().transpose(1, 2), query_targets(logits, indices), weight, reduction="none"
    )
    return losses.mean()


def class_error(logits: Tensor, indices: list[tuple[Tensor, Tensor]]) -> Tensor:
    """Percent of matched queries not classified foreground (logged, not optimised)."""
    matched = torch.cat(
        [logits[row, source.to(logits.device)] for row, (source, _) in enumerate(indices)]
    )
    if len(matched) == 0:
        return logits.new_zeros(())
    return 100 - 100 * (matched.argmax(-1) == FOREGROUND).float().mean()
