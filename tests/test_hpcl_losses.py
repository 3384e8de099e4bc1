"""HPCL losses (section 3.5): hard-pair selection on hand-made labels, the dense contrastive loss
against a slow loop over eq. 8, and the hard-pairs ranking loss of eq. 9."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vhd.losses.hpcl import (
    hard_pair_indices,
    hard_pair_ranking_loss,
    segment_contrastive_loss,
    segment_cross_entropy,
)


def pairs_of(
    labels: list[int], valid: int | None = None, **kwargs: object
) -> list[tuple[int, int]]:
    """Hard pairs of one video as (first, second) tuples; ``valid`` clips, the rest padding."""
    mask = torch.zeros(1, len(labels), dtype=torch.bool)
    mask[0, : len(labels) if valid is None else valid] = True
    video, first, second = hard_pair_indices(
        torch.tensor([labels], dtype=torch.float), mask, **kwargs
    )
    assert video.tolist() == [0] * len(first)
    return list(zip(first.tolist(), second.tolist(), strict=True))


def test_hard_pairs_straddle_a_single_watershed() -> None:
    # watershed c = 3 (last segment before the change): pairs (c - k, c + k), k = 1..3
    assert pairs_of([0, 0, 0, 0, 1, 1, 1, 1, 1]) == [(2, 4), (1, 5), (0, 6)]


def test_hard_pairs_at_the_start_replace_negative_indices_by_the_watershed() -> None:
    # c = 1: c - 2 and c - 3 fall before the video and become c (paper, section 3.5.3)
    assert pairs_of([1, 1, 0, 0, 0, 0, 0, 0]) == [(0, 2), (1, 3), (1, 4)]
    # c = 0: every left index is replaced by c
    assert pairs_of([1, 0, 0, 0, 0]) == [(0, 1), (0, 2), (0, 3)]


def test_hard_pairs_at_the_end_replace_overflowing_indices_by_the_first_after() -> None:
    # c = 4, last valid index 6: c + 3 = 7 becomes c + 1 = 5
    assert pairs_of([0, 0, 0, 0, 0, 1, 1]) == [(3, 5), (2, 6), (1, 5)]
    # c = 5, a single segment after the watershed
    assert pairs_of([1, 1, 1, 1, 1, 1, 0]) == [(4, 6), (3, 6), (2, 6)]


def test_hard_pairs_around_several_watersheds() -> None:
    labels = [0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0]  # watersheds c = 3 and c = 7
    assert pairs_of(labels) == [(2, 4), (1, 5), (0, 6), (6, 8), (5, 9), (4, 10)]


def test_hard_pairs_of_one_label_are_dropped_unless_asked_for() -> None:
    labels = [0, 0, 0, 1, 0, 0, 0, 0]  # a one-segment highlight: watersheds c = 2 and c = 3
    assert pairs_of(labels) == [(1, 3)]
    every_pair = [(1, 3), (0, 4), (2, 5), (2, 4), (1, 5), (0, 6)]
    assert pairs_of(labels, mixed_only=False) == every_pair


def test_videos_without_watershed_have_no_hard_pairs() -> None:
    assert pairs_of([0, 0, 0, 0, 0]) == []
    assert pairs_of([1, 1, 1]) == []
    assert pairs_of([1]) == []


def test_hard_pairs_ignore_padding_and_index_the_right_video() -> None:
    # the change into padding (label 0 after index 3) is no watershed; the right end is index 3
    assert pairs_of([0, 0, 1, 1, 0, 0], valid=4) == [(0, 2), (1, 3), (1, 2)]
    labels = torch.tensor([[1, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 1]], dtype=torch.float)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    video, first, second = hard_pair_indices(labels, mask)
    assert list(zip(video.tolist(), first.tolist(), second.tolist(), strict=True)) == [
        (1, 3, 5),
        (1, 2, 5),
        (1, 1, 5),
    ]


def test_region_size_sets_the_pairs_per_watershed() -> None:
    assert pairs_of([0, 0, 0, 0, 1, 1, 1, 1, 1], region=1) == [(2, 4)]
    assert len(pairs_of([0] * 6 + [1] * 6, region=5)) == 5


def slow_contrastive(
    embeddings: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, tau: float
):
    """Eq. 8 written as loops: per video, mean over queries with a positive of the mean over their
    positives of -log(e^{q.k+/tau} / (e^{q.k+/tau} + sum_{k-} e^{q.k-/tau}))."""
    per_video = []
    for z, y, valid in zip(embeddings, labels, mask, strict=True):
        z = F.normalize(z[valid].double(), dim=-1)
        y = y[valid].tolist()
        per_query = []
        for i, query in enumerate(z):
            positives = [j for j in range(len(y)) if j != i and y[j] == y[i]]
            negatives = [j for j in range(len(y)) if y[j] != y[i]]
            if not positives:
                continue
            terms = []
            for j in positives:
                numerator = math.exp(float(query @ z[j]) / tau)
                denominator = numerator + sum(
                    math.exp(float(query @ z[n]) / tau) for n in negatives
                )
                terms.append(-math.log(numerator / denominator))
            per_query.append(sum(terms) / len(terms))
        if per_query:
            per_video.append(sum(per_query) / len(per_query))
    return sum(per_video) / len(per_video)


def test_contrastive_loss_matches_a_slow_reference_on_a_padded_batch() -> None:
    generator = torch.Generator().manual_seed(0)
    embeddings = torch.randn(4, 7, 5, generator=generator)
    labels = torch.tensor(
        [
            [1, 0, 0, 1, 1, 0, 0],
            [0, 0, 1, 0, 0, 0, 0],  # one positive: it has no positive key and is skipped
            [1, 1, 0, 0, 1, 9, 9],  # padding (label 9 must be ignored)
            [0, 0, 0, 0, 0, 0, 0],  # one class: every term is -log(1) = 0
        ],
        dtype=torch.float,
    )
    mask = torch.ones(4, 7, dtype=torch.bool)
    mask[2, 5:] = False
    for tau in (0.1, 0.5):
        expected = slow_contrastive(embeddings, labels.clamp(max=1), mask, tau)
        actual = segment_contrastive_loss(embeddings, labels.clamp(max=1), mask, tau)
        assert actual.item() == pytest.approx(expected, rel=1e-5)


def test_contrastive_loss_is_low_for_separated_classes_and_ignores_padding() -> None:
    labels = torch.tensor([[1.0, 1.0, 0.0, 0.0, 0.0, 1.0]])
    mask = torch.tensor([[True] * 5 + [False]])
    separated = torch.stack([labels[0] * 2 - 1, torch.zeros(6)], dim=-1).unsqueeze(0)  # +-e1
    mixed = torch.tensor([[[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [1, 0]]])
    assert segment_contrastive_loss(separated, labels, mask, 0.1) < 1e-6
    assert segment_contrastive_loss(mixed, labels, mask, 0.1) > 1.0
    moved = separated.clone()
    moved[0, 5] = torch.tensor([-1.0, 0.0])  # the padded segment, now on the wrong side
    assert segment_contrastive_loss(moved, labels, mask, 0.1) < 1e-6


def test_ranking_loss_sums_margin_violations_of_hard_pairs_per_video() -> None:
    embeddings = torch.zeros(2, 5, 2)
    embeddings[0, :, 0] = 1.0  # video 0: all segments identical
    embeddings[0, 3:, 0], embeddings[0, 3:, 1] = 0.8, 0.6  # positives at distance ~0.632
    embeddings[1, :, 0] = 1.0
    labels = torch.tensor([[0, 0, 0, 1, 1], [0, 0, 0, 0, 0]], dtype=torch.float)
    mask = torch.ones(2, 5, dtype=torch.bool)
    distance = math.dist([1.0, 0.0], [0.8, 0.6])
    # video 0: watershed c = 2, pairs (1, 3), (0, 4), (2, 3); video 1: none; mean over 2 videos
    expected = 3 * (0.7 - distance) / 2
    actual = hard_pair_ranking_loss(embeddings, labels, mask, region=3, margin=0.7)
    assert actual.item() == pytest.approx(expected, rel=1e-5)
    assert hard_pair_ranking_loss(embeddings, labels, mask, margin=0.5).item() == 0.0


def test_ranking_loss_has_finite_gradients_for_identical_pairs() -> None:
    embeddings = torch.ones(1, 4, 3, requires_grad=True)
    labels = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    loss = hard_pair_ranking_loss(embeddings, labels, torch.ones(1, 4, dtype=torch.bool))
    loss.backward()
    assert loss.item() == pytest.approx(3 * 0.7 - 3e-6, abs=1e-4)
    assert torch.isfinite(embeddings.grad).all()


def test_cross_entropy_averages_over_valid_segments_only() -> None:
    logits = torch.tensor([[2.0, -1.0, 100.0]])
    labels = torch.tensor([[1.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, False]])
    expected = (F.softplus(torch.tensor(-2.0)) + F.softplus(torch.tensor(-1.0))) / 2
    assert segment_cross_entropy(logits, labels, mask).item() == pytest.approx(expected.item())
