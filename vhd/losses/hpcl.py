"""The losses of HPCL (Li et al., "Probing Visual-Audio Representation for Video Highlight
Detection via Hard-Pairs Guided Contrastive Learning", section 3.5).

- ``segment_cross_entropy``: the per-segment cross-entropy of one score head (eq. 10).
- ``segment_contrastive_loss``: the dense, supervised, intra-video segment-to-segment contrastive
  loss (eq. 8) over the aggregated representations of eq. 7.
- ``hard_pair_indices`` + ``hard_pair_ranking_loss``: the hard-pairs sampling around every
  positive/negative watershed (section 3.5.3) and the margin ranking loss on their Euclidean
  distance (eq. 9).

All functions take padded ``(B, T, ...)`` tensors with a ``(B, T)`` bool mask (``True`` = valid,
padding at the end, as ``collate_items`` pads) and compute in float32 outside autocast, so they
behave the same under ``bf16-mixed``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# Finite "minus infinity" for float32 logits: exp() of it is 0, and its gradients are never NaN.
_MASKED_LOGIT = -1e9


def segment_cross_entropy(logits: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """Binary cross-entropy of per-segment highlight logits, averaged over valid segments."""
    weight = mask.float()
    loss = F.binary_cross_entropy_with_logits(
        logits.float(), labels.float(), weight=weight, reduction="sum"
    )
    return loss / weight.sum().clamp_min(1.0)


def segment_contrastive_loss(
    embeddings: Tensor, labels: Tensor, mask: Tensor, tau: float, normalize: bool = True
) -> Tensor:
    """Eq. 8: every valid segment of a video is a query; the other segments with its label are its
    positive keys, the segments of the other label its negative keys. For each (query, positive)
    the denominator holds that positive and all negatives (not the other positives, as eq. 8
    writes it); the term is averaged over the query's positives, then over the queries of a video
    that have a positive (the term is undefined for the others), then over the videos of the batch
    that have such a query. Keys are taken from the same video only (intra-video, section 3.5.2).

    Eq. 8 prints the positive's term in the denominator without ``/tau``; that is read as a typo
    (InfoNCE, eq. 6, divides every logit by tau). The paper gives no value for ``tau``; ``HPCL``
    defaults to 0.1 (SimCLR's [8]). ``normalize`` L2-normalises the embeddings first (cosine
    similarity, as in the contrastive methods the paper builds on [8, 9, 18]).
    """
    with torch.autocast(embeddings.device.type, enabled=False):
        z = embeddings.float()
        if normalize:
            z = F.normalize(z, dim=-1)
        logits = z @ z.transpose(1, 2) / tau  # (B, T, T): query x key
        is_positive_label = labels > 0.5
        same_label = is_positive_label.unsqueeze(2) == is_positive_label.unsqueeze(1)
        both_valid = mask.unsqueeze(2) & mask.unsqueeze(1)
        not_self = ~torch.eye(mask.shape[1], dtype=torch.bool, device=mask.device)
        positives = same_label & both_valid & not_self
        negatives = ~same_label & both_valid
        negative_lse = logits.masked_fill(~negatives, _MASKED_LOGIT).logsumexp(-1, keepdim=True)
        per_pair = (
            torch.logaddexp(logits, negative_lse) - logits
        )  # -log(e^pos / (e^pos + sum e^neg))
        positive_count = positives.sum(-1)  # (B, T)
        per_query = (per_pair * positives).sum(-1) / positive_count.clamp_min(1)
        has_positive = positive_count > 0
        query_count = has_positive.sum(-1)  # (B,)
        per_video = (per_query * has_positive).sum(-1) / query_count.clamp_min(1)
        video_used = query_count > 0
        return (per_video * video_used).sum() / video_used.sum().clamp_min(1)


def hard_pair_indices(
    labels: Tensor, mask: Tensor, region: int = 3, mixed_only: bool = True
) -> tuple[Tensor, Tensor, Tensor]:
    """Section 3.5.3: the hard pairs ``(c_j - k, c_j + k)``, ``k = 1..L``, around every watershed.

    A watershed ``c_j`` is the index of the last segment before a label change (``y[c] !=
    y[c + 1]``, both valid). With that reading the paper's rule "replace ``c_j - k`` by ``c_j``
    when it is below 0" keeps every pair straddling the watershed: ``c_j`` and ``c_j - k`` lie
    before it, ``c_j + k`` after it. The paper states no rule for the other end of the video; the
    mirror rule is used: ``c_j + k`` past the last valid segment is replaced by ``c_j + 1``, the
    first segment after the watershed.

    Near other watersheds (runs shorter than ``L``) a pair can hold two segments of one label.
    The paper calls hard pairs the "marginal highlight segments and negative samples closest to
    them", so such pairs are dropped (``mixed_only=True``); ``mixed_only=False`` keeps every pair
    the index rule yields.

    Returns ``(video, first, second)`` index tensors of equal length, one entry per pair, ordered by
    video, watershed, then ``k``. A video with no watershed yields no pair.
    """
    is_positive_label = labels > 0.5
    both_valid = mask[:, 1:] & mask[:, :-1]
    watershed = (is_positive_label[:, 1:] != is_positive_label[:, :-1]) & both_valid
    video, before = watershed.nonzero(as_tuple=True)  # (W,), (W,)
    offsets = torch.arange(1, region + 1, device=labels.device)
    before = before.unsqueeze(1)
    first = before - offsets  # (W, L)
    first = torch.where(first < 0, before.expand_as(first), first)
    last_valid = (mask.sum(1)[video] - 1).unsqueeze(1)
    second = before + offsets
    second = torch.where(second > last_valid, (before + 1).expand_as(second), second)
    video = video.unsqueeze(1).expand_as(first)
    video, first, second = video.reshape(-1), first.reshape(-1), second.reshape(-1)
    if mixed_only:
        keep = is_positive_label[video, first] != is_positive_label[video, second]
        video, first, second = video[keep], first[keep], second[keep]
    return video, first, second


def hard_pair_ranking_loss(
    embeddings: Tensor,
    labels: Tensor,
    mask: Tensor,
    region: int = 3,
    margin: float = 0.7,
    normalize: bool = True,
    mixed_only: bool = True,
) -> Tensor:
    """Eq. 9: ``sum_p max(margin - d(p), 0)`` over a video's hard pairs, ``d`` the Euclidean
    distance of the pair's embeddings; averaged over the videos of the batch.

    ``normalize`` measures the distance between L2-normalised embeddings (those the contrastive
    loss compares), where ``margin = 0.7`` is a meaningful distance (the sphere's diameter is 2).
    """
    video, first, second = hard_pair_indices(labels, mask, region, mixed_only)
    with torch.autocast(embeddings.device.type, enabled=False):
        z = embeddings.float()
        if normalize:
            z = F.normalize(z, dim=-1)
        difference = z[video, first] - z[video, second]
        distance = (difference.pow(2).sum(-1) + 1e-12).sqrt()  # eps: finite gradient at d = 0
        return F.relu(margin - distance).sum() / embeddings.shape[0]
