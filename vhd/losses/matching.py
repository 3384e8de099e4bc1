"""Hungarian matching of predicted spans to ground-truth windows (DETR's matcher, 1-D).

The cost of assigning a query to a window is ``cost_span * L1(cxw) - cost_giou * gIoU(xx)
- cost_class * p(foreground)``; each sample is matched on its own with scipy.
"""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from vhd.losses.spans import generalized_temporal_iou, span_cxw_to_xx

Indices = list[tuple[Tensor, Tensor]]  # per sample: (query indices, window indices)


class HungarianMatcher:
    """One-to-one assignment of queries to windows minimising the matching cost."""

    def __init__(self, cost_span: float = 10.0, cost_giou: float = 1.0, cost_class: float = 4.0):
        if cost_span == cost_giou == cost_class == 0:
            raise ValueError("at least one matching cost must be non-zero")
        self.cost_span = cost_span
        self.cost_giou = cost_giou
        self.cost_class = cost_class

    def cost(self, logits: Tensor, spans: Tensor, windows: Tensor) -> Tensor:
        """(Q, 2) logits and (center, width) spans vs (n, 2) windows -> (Q, n) cost."""
        foreground = logits.float().softmax(-1)[:, 0]
        spans, windows = spans.float(), windows.float().to(spans.device)
        span_cost = torch.cdist(spans, windows, p=1)
        giou = generalized_temporal_iou(span_cxw_to_xx(spans), span_cxw_to_xx(windows))
        return (
            self.cost_span * span_cost
            - self.cost_giou * giou
            - self.cost_class * foreground[:, None]
        )

    @torch.no_grad()
    def __call__(self, logits: Tensor, spans: Tensor, windows: list[Tensor]) -> Indices:
        """(B, Q, 2) logits and spans, per-sample (n_b, 2) windows -> per-sample index pairs."""
        indices = []
        for row, targets in enumerate(windows):
            cost = self.cost(logits[row], spans[row], targets).cpu()
            queries, matched = linear_sum_assignment(cost.numpy())
            indices.append(
                (
                    torch.as_tensor(queries, dtype=torch.long),
                    torch.as_tensor(matched, dtype=torch.long),
                )
            )
        return indices
