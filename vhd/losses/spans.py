"""1-D span geometry and the DETR span losses (L1 on (center, width), generalised IoU).

Spans are normalised to the video: ``cxw`` = (center, width), ``xx`` = (start, end).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def span_cxw_to_xx(spans: Tensor) -> Tensor:
    """(..., 2) (center, width) -> (start, end)."""
    center, width = spans.unbind(-1)
    return torch.stack([center - 0.5 * width, center + 0.5 * width], dim=-1)


def span_xx_to_cxw(spans: Tensor) -> Tensor:
    """(..., 2) (start, end) -> (center, width)."""
    start, end = spans.unbind(-1)
    return torch.stack([(start + end) * 0.5, end - start], dim=-1)


def temporal_iou(spans1: Tensor, spans2: Tensor) -> tuple[Tensor, Tensor]:
    """(N, 2), (M, 2) (start, end) -> IoU (N, M) and union (N, M)."""
    lengths1 = spans1[:, 1] - spans1[:, 0]
    lengths2 = spans2[:, 1] - spans2[:, 0]
    left = torch.max(spans1[:, None, 0], spans2[None, :, 0])
    right = torch.min(spans1[:, None, 1], spans2[None, :, 1])
    inter = (right - left).clamp(min=0)
    union = lengths1[:, None] + lengths2[None, :] - inter
    return inter / union, union


def generalized_temporal_iou(spans1: Tensor, spans2: Tensor) -> Tensor:
    """(N, M) gIoU = IoU - (E - U) / E, E the length of the smallest enclosing span."""
    iou, union = temporal_iou(spans1, spans2)
    left = torch.min(spans1[:, None, 0], spans2[None, :, 0])
    right = torch.max(spans1[:, None, 1], spans2[None, :, 1])
    enclosing = (right - left).clamp(min=0)
    return iou - (enclosing - union) / enclosing


def matched_pairs(
    pred_spans: Tensor, windows: list[Tensor], indices: list[tuple[Tensor, Tensor]]
) -> tuple[Tensor, Tensor]:
    """Matched (prediction, target) (center, width) rows, concatenated over the batch."""
    batch = torch.cat([torch.full_like(src, b) for b, (src, _) in enumerate(indices)])
    source = torch.cat([src for src, _ in indices])
    predicted = pred_spans[batch.to(pred_spans.device), source.to(pred_spans.device)]
    target = torch.cat([w[tgt.to(w.device)] for w, (_, tgt) in zip(windows, indices, strict=True)])
    return predicted, target.to(predicted)


def span_losses(
    pred_spans: Tensor, windows: list[Tensor], indices: list[tuple[Tensor, Tensor]]
) -> tuple[Tensor, Tensor]:
    """Mean L1 over every matched coordinate and mean (1 - gIoU) over matched spans (eq. 3)."""
    predicted, target = matched_pairs(pred_spans, windows, indices)
    l1 = F.l1_loss(predicted, target)
    giou = generalized_temporal_iou(span_cxw_to_xx(predicted), span_cxw_to_xx(target))
    return l1, (1 - torch.diag(giou)).mean()
