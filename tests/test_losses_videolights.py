"""VideoLights losses against the release's test vectors (videolights_reference.md section 7)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from vhd.losses.contrastive import (
    clip_sentence_alignment,
    query_text_nce,
    symmetric_alignment_loss,
)
from vhd.losses.labels import class_error, label_loss
from vhd.losses.matching import HungarianMatcher
from vhd.losses.saliency import (
    cosine_loss,
    hard_losses,
    hard_losses_paper,
    margin_ranking_loss,
    negative_pair_loss,
    normalized_rows,
    rank_contrastive_loss,
)
from vhd.losses.spans import (
    generalized_temporal_iou,
    span_cxw_to_xx,
    span_losses,
    span_xx_to_cxw,
    temporal_iou,
)
from vhd.losses.videolights import VideoLightsCriterion

pytestmark = pytest.mark.usefixtures("one_thread")


def one_match(batch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(torch.tensor([0]), torch.tensor([0])) for _ in range(batch)]


# -- spans -----------------------------------------------------------------------------------------
def test_giou_and_iou_vectors() -> None:
    spans1 = torch.tensor([[0.0, 0.2], [0.5, 1.0]])
    spans2 = torch.tensor([[0.0, 0.3], [0.0, 1.0]])
    giou = generalized_temporal_iou(spans1, spans2)
    assert torch.allclose(giou, torch.tensor([[0.6667, 0.2], [-0.2, 0.5]]), atol=1e-4)
    iou, union = temporal_iou(spans1, spans2)
    assert torch.allclose(iou, torch.tensor([[0.6667, 0.2], [0.0, 0.5]]), atol=1e-4)
    assert torch.allclose(union, torch.tensor([[0.3, 1.0], [0.8, 1.0]]))


def test_span_conversions() -> None:
    cxw = torch.tensor([[0.5, 1.0], [0.3, 0.2]])
    assert torch.allclose(span_cxw_to_xx(cxw), torch.tensor([[0.0, 1.0], [0.2, 0.4]]))
    assert torch.allclose(span_xx_to_cxw(span_cxw_to_xx(cxw)), cxw)


def test_span_losses_are_means_over_matched() -> None:
    pred = torch.tensor([[[0.5, 0.2], [0.1, 0.1]], [[0.3, 0.4], [0.9, 0.1]]])
    windows = [torch.tensor([[0.4, 0.2]]), torch.tensor([[0.9, 0.2], [0.3, 0.4]])]
    indices = [(torch.tensor([0]), torch.tensor([0])), (torch.tensor([0, 1]), torch.tensor([1, 0]))]
    l1, giou = span_losses(pred, windows, indices)
    # matched coordinates: |0.1|, 0, 0, 0, 0, |0.1| -> mean over 6 numbers
    assert l1.item() == pytest.approx(0.2 / 6, abs=1e-6)
    expected = 1 - torch.tensor([1 / 3, 1.0, 0.5]).mean()  # gIoU of each match
    assert giou.item() == pytest.approx(float(expected), abs=1e-5)


# -- labels and matching ---------------------------------------------------------------------------
def test_label_loss_vector() -> None:
    """All-zero logits, one matched query of 10: ln2 (1 + 9 x 0.1) / 10 = 0.131698."""
    logits = torch.zeros(2, 10, 2)
    assert label_loss(logits, one_match(2), eos_coef=0.1).item() == pytest.approx(0.131698, 1e-5)
    assert class_error(logits, one_match(2)).item() == 0.0  # argmax ties go to foreground


def test_matcher_uses_span_giou_and_class_costs() -> None:
    logits = torch.tensor([[[0.0, 0.0], [5.0, -5.0], [0.0, 0.0]]])
    spans = torch.tensor([[[0.2, 0.1], [0.5, 0.2], [0.8, 0.1]]])
    windows = [torch.tensor([[0.79, 0.1], [0.21, 0.1]])]
    [(queries, targets)] = HungarianMatcher()(logits, spans, windows)
    assert dict(zip(queries.tolist(), targets.tolist(), strict=True)) == {0: 1, 2: 0}
    matcher = HungarianMatcher(cost_span=10, cost_giou=1, cost_class=4)
    cost = matcher.cost(logits[0], spans[0], windows[0])
    manual = (
        10 * torch.cdist(spans[0], windows[0], p=1)
        - generalized_temporal_iou(span_cxw_to_xx(spans[0]), span_cxw_to_xx(windows[0]))
        - 4 * logits[0].softmax(-1)[:, :1]
    )
    assert torch.allclose(cost, manual)


# -- saliency --------------------------------------------------------------------------------------
def saliency_output(batch: int, length: int) -> SimpleNamespace:
    zeros = torch.zeros(batch, length)
    return SimpleNamespace(
        saliency=zeros,
        saliency_negative=zeros,
        saliency_mr=zeros,
        video_mask=torch.ones(batch, length, dtype=torch.bool),
    )


def saliency_batch(batch: int = 2, length: int = 75) -> dict[str, torch.Tensor]:
    labels = torch.zeros(batch, length)
    labels[:, 10:20] = torch.arange(3, 13, dtype=torch.float32)  # every row reaches 12
    return {
        "saliency": labels,
        "saliency_pos": torch.tensor([[19, 15]] * batch),
        "saliency_neg": torch.tensor([[10, 40]] * batch),
    }


@pytest.mark.parametrize(
    ("epoch", "extra", "expected"),
    [(0, False, 58.97912), (0, True, 61.11245), (9, True, 62.31245)],
)
def test_saliency_loss_vector(epoch: int, extra: bool, expected: float) -> None:
    """s = s_neg = s_mr = 0, 75 valid clips, B = 2: margin 0.4 + neg-pair 75 ln2 + rank
    (11/12) ln150 + cos 2 (+ tcl 2 + hard 10 (epoch + 1) / 75)."""
    criterion = VideoLightsCriterion(hard_pos_neg_loss=extra, mr_to_hd_loss_coef=float(extra))
    output = saliency_output(2, 75)
    loss = criterion.saliency_loss(output, saliency_batch(), epoch)
    assert loss.item() == pytest.approx(expected, abs=1e-4)
    terms = 0.4 + 75 * math.log(2) + 11 / 12 * math.log(150) + 2
    assert terms == pytest.approx(58.97912, abs=1e-4)


def test_margin_loss_with_equal_scores_is_twice_the_margin() -> None:
    scores = torch.randn(3, 20)
    for pairs in (1, 2, 4):
        index = torch.randint(0, 20, (3, pairs))
        assert margin_ranking_loss(scores, index, index).item() == pytest.approx(0.4)


def test_rank_contrastive_skips_rows_and_levels_without_positives() -> None:
    scores = torch.zeros(2, 5)
    labels = torch.tensor([[0.0, 0, 0, 0, 0], [0, 0, 1, 0, 0]])
    mask = torch.ones(2, 5, dtype=torch.bool)
    # only threshold 1 has positives, only in row 1: -log_prob = ln 10, averaged over 2 rows / 12
    loss = rank_contrastive_loss(scores, scores, labels, mask)
    assert loss.item() == pytest.approx(math.log(10) / 2 / 12, rel=1e-4)


def test_negative_pair_loss_is_stable() -> None:
    scores = torch.tensor([[0.5, -1.0, 50.0]])
    mask = torch.tensor([[True, True, False]])
    expected = -math.log(1 - torch.sigmoid(torch.tensor(0.5)).item()) - math.log(
        1 - torch.sigmoid(torch.tensor(-1.0)).item()
    )
    assert negative_pair_loss(scores, mask).item() == pytest.approx(expected, rel=1e-5)
    assert torch.isfinite(negative_pair_loss(torch.full((1, 3), 100.0), mask))


def test_hard_loss_identity() -> None:
    """hard_neg + hard_pos = 2 W / (B L) x sum_b (1 - cos_b) for unit rows."""
    generator = torch.Generator().manual_seed(0)
    scores, labels = torch.randn(3, 30, generator=generator), torch.rand(3, 30, generator=generator)
    labels[:, ::3] = 0
    u, v = normalized_rows(scores, labels)
    weight = (4 + 1) * 10.0
    negative, positive = hard_losses(u, v, labels > 0, weight)
    expected = 2 * weight / (3 * 30) * cosine_loss(u, v)
    assert (negative + positive).item() == pytest.approx(expected.item(), rel=1e-5)


def test_paper_hard_losses() -> None:
    u = torch.zeros(2, 4)
    v = F.normalize(torch.tensor([[0.0, 1, 1, 0], [1, 0, 0, 0]]), dim=1)
    positive = v > 0
    mask = torch.ones(2, 4, dtype=torch.bool)
    negative, hard_positive = hard_losses_paper(u, v, positive, mask, weight=3.0)
    assert negative.item() == 0.0  # no prediction on non-relevant clips
    assert hard_positive.item() == pytest.approx(3.0)  # each row misses its unit vector


def test_cosine_loss_shift_and_zero_rows() -> None:
    labels = torch.tensor([[0.0, 1, 2], [0, 0, 0]])
    scores = torch.tensor([[5.0, 6, 7], [5, 5, 5]])  # shifted by the batch min 5
    u, v = normalized_rows(scores, labels)
    assert cosine_loss(u, v).item() == pytest.approx(1.0, abs=1e-6)  # row 0 perfect, row 1 zero


# -- alignment -------------------------------------------------------------------------------------
def test_query_text_nce_value() -> None:
    queries = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    text = torch.tensor([[[1.0, 0.0]]])
    loss = query_text_nce(queries, text, one_match(1), temperature=1.0)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-6)


def test_clip_sentence_alignment_is_zero_when_similarity_follows_labels() -> None:
    labels = torch.tensor([[0.0, 3, 6, 12]])
    cosine = labels / 12
    video = torch.stack([cosine, (1 - cosine**2).sqrt()], dim=-1)
    text = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    assert clip_sentence_alignment(text, video, labels).item() == pytest.approx(0.0, abs=1e-6)
    assert clip_sentence_alignment(text, video.flip(1), labels).item() > 0.1


def test_symmetric_alignment_prefers_matching_pairs() -> None:
    video = F.normalize(torch.eye(3)[:, None].repeat(1, 4, 1), dim=-1)
    text = video[:, :2]
    masks = (torch.ones(3, 4, dtype=torch.bool), torch.ones(3, 2, dtype=torch.bool))
    matched = symmetric_alignment_loss(video, masks[0], text, masks[1], 0.07)
    shuffled = symmetric_alignment_loss(video, masks[0], text.roll(1, 0), masks[1], 0.07)
    assert matched.item() < 1e-3 < shuffled.item()
