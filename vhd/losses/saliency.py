"""Clip saliency losses of the QD-DETR / VideoLights family, in the release's exact form.

Notation: ``scores`` (B, L) predicted saliency, ``labels`` (B, L) ground-truth saliency (summed
annotator ratings, 0 on padding), ``mask`` (B, L) True = valid clip.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

RANK_LEVELS = 12  # thresholds 1..11 of the 0..12 rating sum; the sum is divided by 12 (release)


def margin_ranking_loss(
    scores: Tensor, positive: Tensor, negative: Tensor, margin: float = 0.2
) -> Tensor:
    """Hinge on (positive, negative) clip pairs (B, P): 2/(B P) sum max(0, Δ + s_neg - s_pos)."""
    gap = margin + scores.gather(1, negative) - scores.gather(1, positive)
    return gap.clamp(min=0).sum() / positive.numel() * 2


def rank_contrastive_loss(
    scores: Tensor,
    negative_scores: Tensor | None,
    labels: Tensor,
    mask: Tensor,
    tau: float = 0.5,
) -> Tensor:
    """QD-DETR's rank-aware contrastive loss over the clips of the pair and its negative pair.

    The clips of the mismatched (negative) query join as label-0 candidates (none when
    ``negative_scores`` is None: the pair's own clips only). For every rating threshold
    t = 1..11 present in the batch, clips rated >= t are positives of an InfoNCE over all clips
    (temperature ``tau``); rows without positives add 0. The sum is divided by 12.
    """
    if negative_scores is None:
        valid = mask.float()
        joint = scores * valid + (1.0 - valid) * -1e3
        joint_labels = labels
    else:
        valid = mask.float().repeat(1, 2)
        joint = torch.cat([scores, negative_scores], dim=1) * valid + (1.0 - valid) * -1e3
        joint_labels = torch.cat([labels, torch.zeros_like(labels)], dim=1)
    logits = joint / tau
    logits = logits - logits.max(dim=1, keepdim=True).values
    log_prob = logits - torch.log(logits.exp().sum(dim=1, keepdim=True) + 1e-6)
    total = scores.new_zeros(())
    for threshold in range(1, RANK_LEVELS):
        positives = (joint_labels >= threshold).float()
        if positives.sum() == 0:
            continue
        has_positive = positives.sum(dim=1) > 0
        mean_log_prob = (positives * log_prob * valid).sum(1) / (positives.sum(1) + 1e-6)
        total = total + (-mean_log_prob * has_positive).mean()
    return total / RANK_LEVELS


def negative_pair_loss(negative_scores: Tensor, mask: Tensor) -> Tensor:
    """Clips of a mismatched query should all score low: mean over B of sum -log(1 - σ(s)).

    ``softplus(s)`` is that term written stably (the release's form overflows for s > ~17).
    """
    return (F.softplus(negative_scores) * mask.float()).sum(dim=1).mean()


def normalized_rows(scores: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """The release's comparison of a score map with the labels: (u, v), each row unit length.

    Scores are shifted by their minimum over the whole batch (padding included) and divided by
    the label range (a positive scalar, which the row normalisation cancels; kept for parity).
    """
    shifted = (scores - scores.min()) / (labels.max() - labels.min()).clamp(min=1e-12)
    return F.normalize(shifted, dim=1), F.normalize(labels, dim=1)


def cosine_loss(u: Tensor, v: Tensor) -> Tensor:
    """Sum over the batch of 1 - cos(u_b, v_b) (Uni-JFM's L_ts and L_tc, summed as released)."""
    return (1 - F.cosine_similarity(v, u, dim=1)).sum()


def hard_losses(u: Tensor, v: Tensor, positive: Tensor, weight: float) -> tuple[Tensor, Tensor]:
    """Adaptive hard negative and hard positive losses (section 3.4), release form.

    Mean squared error between the normalised labels and predictions restricted to the
    non-relevant (hard negative) and relevant (hard positive) clips, each a mean over all
    B x L entries, times the epoch-dependent weight W_j.
    """
    positive = positive.to(u.dtype)
    negative = 1.0 - positive
    hard_negative = F.mse_loss(v * negative, u * negative) * weight
    hard_positive = F.mse_loss(v * positive, u * positive) * weight
    return hard_negative, hard_positive


def hard_losses_paper(
    u: Tensor, v: Tensor, positive: Tensor, mask: Tensor, weight: float
) -> tuple[Tensor, Tensor]:
    """The paper's form (section 3.4) on the same normalised rows: W_j sum |u_i| over valid
    non-relevant clips (L1, the target there is 0) and W_j sum (u_i - v_i)^2 over relevant clips,
    each summed over clips and averaged over the batch."""
    positive = positive.to(u.dtype)
    negative = (1.0 - positive) * mask.to(u.dtype)
    hard_negative = (u.abs() * negative).sum(dim=1).mean() * weight
    hard_positive = ((u - v) ** 2 * positive).sum(dim=1).mean() * weight
    return hard_negative, hard_positive
