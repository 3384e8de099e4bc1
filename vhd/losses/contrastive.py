"""Alignment losses between video, text and moment queries (VideoLights' "alignment loss").

The release's alignment loss is Moment-DETR's query-text NCE plus a clip-sentence cosine
alignment; the paper's symmetric CLIP-style loss (section 3.2, L_sym) is offered as a variant.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from vhd.losses.saliency import cosine_loss, normalized_rows


def query_text_nce(
    proj_queries: Tensor,
    proj_text: Tensor,
    indices: list[tuple[Tensor, Tensor]],
    temperature: float,
) -> Tensor:
    """Matched moment queries should agree with the query text (Moment-DETR).

    logit[b, q] = sum over all text tokens (padding included, as released) of the cosine of the
    normalised projections / temperature; per sample -mean(matched logits) + logsumexp over
    queries; mean over the batch.
    """
    logits = torch.einsum("bqd,btd->bqt", proj_queries, proj_text).sum(2) / temperature
    positive = torch.zeros_like(logits, dtype=torch.bool)
    for row, (source, _) in enumerate(indices):
        positive[row, source.to(logits.device)] = True
    positive_term = logits.masked_fill(~positive, 0).sum(1)
    return (-positive_term / positive.sum(1) + logits.logsumexp(1)).mean()


def clip_sentence_alignment(text: Tensor, video: Tensor, labels: Tensor) -> Tensor:
    """Clip-sentence alignment of the refined video with the projected text (release).

    The sentence is the mean of all text tokens (padding included); its cosine with each clip
    is compared with the saliency labels as Uni-JFM compares scores (batch-min shift, row
    normalisation, sum over the batch of 1 - cos).
    """
    sentence = text.mean(dim=1, keepdim=True)
    similarity = F.cosine_similarity(sentence, video, dim=-1)
    return cosine_loss(*normalized_rows(similarity, labels))


def symmetric_alignment_loss(
    video: Tensor, video_mask: Tensor, text: Tensor, text_mask: Tensor, temperature: float
) -> Tensor:
    """The paper's L_sym: CLIP's symmetric cross-entropy over the batch's video-text pairs.

    Video and text embeddings are masked means of the (normalised) projections; logits are their
    cosines / temperature; the matching pair of each row and column is the target.
    """

    def pooled(x: Tensor, mask: Tensor) -> Tensor:
        weights = mask.to(x.dtype)[..., None]
        return F.normalize((x * weights).sum(1) / weights.sum(1).clamp(min=1), dim=-1)

    logits = pooled(video, video_mask) @ pooled(text, text_mask).T / temperature
    targets = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
