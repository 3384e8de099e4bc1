"""RASL's losses on hand-made tensors: top-k / bottom-k selection, eq. 8, the CLIP-style SCL."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vhd.losses.rasl import (
    k_point_contrastive_loss,
    reconstruction_l1,
    symmetric_contrastive_loss,
    top_bottom_indices,
)


def identity(x: torch.Tensor) -> torch.Tensor:
    return x


def test_top_and_bottom_k_sorted_ascending_and_skip_padding() -> None:
    s = torch.tensor([[0.5, 9.0, -3.0, 4.0, 7.0, -1.0, 100.0], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]])
    valid = torch.tensor([[True] * 6 + [False], [True] * 7])
    top, bottom = top_bottom_indices(s, 2, valid)
    # eq. 6-7 order both sets by ascending activation; the padded 100.0 is never chosen
    assert top.tolist() == [[4, 1], [5, 6]]
    assert bottom.tolist() == [[2, 5], [0, 1]]
    s_padded_low = torch.tensor([[5.0, 6.0, -50.0]])
    _, bottom = top_bottom_indices(s_padded_low, 1, torch.tensor([[True, True, False]]))
    assert bottom.tolist() == [[0]]


def test_k_point_contrastive_loss_matches_eq_8() -> None:
    s = torch.tensor([[3.0, -1.0, 2.0, 0.0]], requires_grad=True)
    z = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]])
    valid = torch.ones(1, 4, dtype=torch.bool)
    loss = k_point_contrastive_loss(s, z, valid, 2, identity, identity)
    # top (ascending): steps 2 (s=2), 0 (s=3); bottom (ascending): steps 1 (s=-1), 3 (s=0)
    # pairs: z2.z1 -> cos 0; z0.z3 -> cos 0  => eta = (2 * 1 + 3 * 1) / 2
    assert loss.item() == pytest.approx(math.log1p(math.exp(-2.5)))
    loss.backward()
    assert s.grad[0, 0] < 0 and s.grad[0, 2] < 0  # minimising pushes the top activations up
    assert s.grad[0, 1] == 0 and s.grad[0, 3] == 0  # bottom activations only select z-check


def test_similar_top_and_bottom_representations_are_down_weighted() -> None:
    s = torch.tensor([[3.0, -1.0, 2.0, 0.0]])
    valid = torch.ones(1, 4, dtype=torch.bool)
    alike = torch.ones(1, 4, 2)  # every z the same: cos = 1, eta = 0
    loss = k_point_contrastive_loss(s, alike, valid, 2, identity, identity)
    assert loss.item() == pytest.approx(math.log(2.0))
    # the ablation of Fig. 6 ignores z: eta = mean of the top-k activations
    plain = k_point_contrastive_loss(s, alike, valid, 2, identity, identity, contrast=False)
    assert plain.item() == pytest.approx(math.log1p(math.exp(-2.5)))


def test_reconstruction_l1_ignores_padding() -> None:
    target = torch.zeros(1, 3, 2)
    reconstruction = torch.tensor([[[1.0, 3.0], [0.0, 0.0], [50.0, 50.0]]])
    valid = torch.tensor([[True, True, False]])
    assert reconstruction_l1(reconstruction, target, valid).item() == pytest.approx(1.0)


def test_symmetric_contrastive_loss_prefers_aligned_pairs() -> None:
    torch.manual_seed(0)
    visual = F.normalize(torch.randn(2, 6, 8), dim=-1)
    valid = torch.ones(2, 6, dtype=torch.bool)
    scale = torch.tensor(math.exp(3.1))
    aligned = symmetric_contrastive_loss(visual, visual, valid, scale)
    shuffled = symmetric_contrastive_loss(visual, visual[:, torch.randperm(6)], valid, scale)
    assert aligned < 0.1 < shuffled
    # symmetric: swapping the modalities gives the same loss
    audio = torch.randn(2, 6, 8)
    forward = symmetric_contrastive_loss(visual, audio, valid, scale, negatives="batch")
    backward = symmetric_contrastive_loss(audio, visual, valid, scale, negatives="batch")
    assert forward.item() == pytest.approx(backward.item(), rel=1e-5)


def test_symmetric_contrastive_loss_candidates() -> None:
    """One window of 2 steps: the InfoNCE of a 2 x 2 logit matrix, with repeats excluded."""
    visual = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    audio = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    valid = torch.ones(1, 2, dtype=torch.bool)
    scale = torch.tensor(1.0)
    logits = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    expected = F.cross_entropy(logits, torch.arange(2)) + F.cross_entropy(logits.T, torch.arange(2))
    loss = symmetric_contrastive_loss(visual, audio, valid, scale)
    assert loss.item() == pytest.approx(expected.item() / 2)
    # steps 0 and 1 hold the same input (a 1-step video repeated): no negatives remain
    same = torch.ones(1, 2, 2, dtype=torch.bool)
    assert symmetric_contrastive_loss(visual, audio, valid, scale, same_content=same) == 0
    # "batch" adds the other window's steps as candidates
    two = symmetric_contrastive_loss(
        visual.expand(2, -1, -1), audio.expand(2, -1, -1), valid.expand(2, -1), scale, "batch"
    )
    assert two > loss
