"""RASL's pretraining losses (Li et al., "Unsupervised Modality-Transferable Video Highlight
Detection with Representation Activation Sequence Learning", section III).

- ``reconstruction_l1``: L_e (eq. 5) and the auxiliary masked reconstruction L_au (eq. 10).
- ``top_bottom_indices`` + ``k_point_contrastive_loss``: top-k / bottom-k activations (eq. 6-7)
  and the k-point contrastive learning L_r (eq. 8).
- ``symmetric_contrastive_loss``: the SCL module L_s (eq. 9) as the CLIP symmetric InfoNCE it
  cites [30]; eq. 9 as printed takes logs of raw dot products, undefined when they are negative.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def reconstruction_l1(reconstruction: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """Mean absolute error over the valid steps (eq. 5, 10), in float32 for bf16 runs."""
    error = (reconstruction.float() - target.float()).abs().mean(-1)
    weights = valid.float()
    return (error * weights).sum() / weights.sum().clamp_min(1.0)


def top_bottom_indices(activations: Tensor, k: int, valid: Tensor) -> tuple[Tensor, Tensor]:
    """Indices (B, k) of the k largest (Phi^k, eq. 6) and k smallest (Pi^k, eq. 7) valid
    activations, each sorted by ascending activation as the equations order them.

    Padded steps are never selected; the caller keeps ``2 k`` within the valid steps so that the
    two sets do not overlap.
    """
    scores = activations.detach().float()
    top = torch.topk(scores.masked_fill(~valid, float("-inf")), k, dim=-1).indices.flip(-1)
    bottom = torch.topk(-scores.masked_fill(~valid, float("inf")), k, dim=-1).indices
    return top, bottom


def k_point_contrastive_loss(
    activations: Tensor,
    representations: Tensor,
    valid: Tensor,
    k: int,
    project_top: Callable[[Tensor], Tensor],
    project_bottom: Callable[[Tensor], Tensor],
    contrast: bool = True,
) -> Tensor:
    """L_r = -log sigmoid(eta) (eq. 8), averaged over the batch.

    eta = 1/k sum_i s-hat_i [1 - cos(sigma(W-hat z-hat_i), sigma(W-check z-check_i))]: the i-th
    smallest of the top-k activations is weighted by how unlike its representation z is to that
    of the i-th smallest bottom-k activation, so top activations whose z resembles the bottom
    ones (the outliers of a fixed k) are pushed up less. ``project_*`` are W-hat / W-check followed
    by the layer norm sigma. ``contrast=False`` is the ablation of Fig. 6: eta = mean of the top-k.
    """
    top, bottom = top_bottom_indices(activations, k, valid)
    top_activations = activations.float().gather(1, top)
    if contrast:
        width = representations.shape[-1]
        top_z = representations.gather(1, top[..., None].expand(-1, -1, width))
        bottom_z = representations.gather(1, bottom[..., None].expand(-1, -1, width))
        similarity = F.cosine_similarity(
            project_top(top_z).float(), project_bottom(bottom_z).float(), dim=-1
        )
        eta = (top_activations * (1.0 - similarity)).mean(-1)
    else:
        eta = top_activations.mean(-1)
    return F.softplus(-eta).mean()  # -log(1 / (1 + e^-eta))


def symmetric_contrastive_loss(
    visual: Tensor,
    audio: Tensor,
    valid: Tensor,
    logit_scale: Tensor,
    negatives: str = "window",
    same_content: Tensor | None = None,
) -> Tensor:
    """CLIP's symmetric InfoNCE between paired visual and audio representations (eq. 9).

    Step i's visual vector (B, N, D) should pick step i's audio vector among the candidates and
    vice versa; similarities are cosines times ``logit_scale`` (from the learnable temperature
    Gamma). ``negatives="window"`` takes the candidates from the same window (eq. 9 indexes one
    sequence), ``"batch"`` from every window of the batch. ``same_content`` (B, N, N) marks step
    pairs of a window with identical input (a short video repeated to fill it): not negatives.
    """
    if negatives not in ("window", "batch"):
        raise ValueError(f"negatives must be 'window' or 'batch', got {negatives!r}")
    batch, length, _ = visual.shape
    device = visual.device
    window_of = torch.arange(batch, device=device).repeat_interleave(length)
    blocked = torch.zeros(batch * length, batch * length, dtype=torch.bool, device=device)
    if negatives == "window":
        blocked |= window_of[:, None] != window_of[None, :]
    if same_content is not None:
        eye = torch.eye(length, dtype=torch.bool, device=device)
        blocked |= torch.block_diag(*(same_content & ~eye))
    keep = valid.reshape(-1)
    visual = F.normalize(visual.float().reshape(batch * length, -1), dim=-1)[keep]
    audio = F.normalize(audio.float().reshape(batch * length, -1), dim=-1)[keep]
    logits = (logit_scale.float() * visual @ audio.T).masked_fill(
        blocked[keep][:, keep], float("-inf")
    )
    targets = torch.arange(logits.shape[0], device=device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
