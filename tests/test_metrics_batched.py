"""The batched kernels give, bit for bit, what the definitions give query by query: padding,
grouping and summation order never change a number."""

from __future__ import annotations

import numpy as np
import pytest

from vhd.metrics import batched
from vhd.metrics import functional as F


def random_moment_pairs(seed: int, count: int = 120) -> list[tuple[dict, dict]]:
    """Queries with 1 to 20 ground-truth windows, 0 to 14 predictions on a coarse grid (tied
    scores and IoUs), some windows of zero length."""
    rng = np.random.default_rng(seed)
    pairs = []
    for qid in range(count):
        starts = rng.integers(0, 30, size=int(rng.choice([1, 1, 2, 3, 20]))) * 2.0
        gt = [[s, s + 2.0 * rng.integers(1, 40)] for s in starts]
        preds = [
            [float(s), float(s + 2 * rng.integers(0, 30)), float(rng.integers(0, 4)) / 4]
            for s in rng.integers(0, 60, size=int(rng.integers(0, 15))) * 2
        ]
        pairs.append(
            ({"qid": qid, "pred_relevant_windows": preds}, {"qid": qid, "relevant_windows": gt})
        )
    return pairs


def reference_detection_ap(gt: list, preds: list, thresholds: tuple[float, ...]) -> np.ndarray:
    """The detection AP as its definition reads, one query, plain loops; the area is NumPy's sum
    of the terms where recall grows."""
    ranked = sorted(preds, key=lambda window: -window[2])
    ap = np.zeros(len(thresholds))
    if not ranked:
        return ap
    for t, threshold in enumerate(thresholds):
        taken, hits = set(), []
        for start, end, _ in ranked:
            ious = F.temporal_iou([[start, end]], gt)[0]
            order = np.argsort(ious, kind="stable")[::-1]
            free = [g for g in order if g not in taken]
            hit = bool(free) and ious[free[0]] >= threshold
            if hit:
                taken.add(free[0])
            hits.append(hit)
        found = np.cumsum(hits)
        precision = np.r_[0, found / np.arange(1, len(found) + 1), 0]
        recall = np.r_[0, found / len(gt), 1]
        for i in range(len(precision) - 2, -1, -1):
            precision[i] = max(precision[i], precision[i + 1])
        steps = np.flatnonzero(recall[1:] != recall[:-1]) + 1
        ap[t] = np.sum((recall[steps] - recall[steps - 1]) * precision[steps])
    return ap


@pytest.mark.parametrize("count", [0, 1, 5, 7, 8, 9, 15, 16, 17, 64, 127, 128, 129, 300])
def test_numpy_sum_adds_in_numpys_order(count: int) -> None:
    values = np.random.default_rng(count).random((6, max(count, 1)))
    expected = [row[:count].sum() for row in values]
    assert batched.numpy_sum(values, np.full(6, count)).tolist() == expected


def test_detection_ap_is_bit_exact_with_its_definition() -> None:
    pairs = random_moment_pairs(0)
    preds = [np.asarray(p["pred_relevant_windows"]).reshape(-1, 3) for p, _ in pairs]
    gts = [np.asarray(g["relevant_windows"]) for _, g in pairs]
    _, ap, _ = F.moment_batch(preds, gts, F.GROUNDING_BUCKETS, F.MAP_THRESHOLDS)
    for row, (prediction, record) in enumerate(pairs):
        expected = reference_detection_ap(
            record["relevant_windows"], prediction["pred_relevant_windows"][:10], F.MAP_THRESHOLDS
        )
        assert ap[row, 0].tolist() == expected.tolist(), record["qid"]


@pytest.mark.parametrize("seed", [1, 2])
def test_moment_rows_equal_query_by_query(seed: int) -> None:
    pairs = random_moment_pairs(seed)
    together = F.moment_rows(pairs)
    alone = [
        F.moment_query(F.as_pred_windows(p["pred_relevant_windows"]), F.as_gt_windows(g))
        for p, g in pairs
    ]
    for column, rows in zip(together, zip(*alone, strict=True), strict=True):
        assert column.tolist() == np.stack(rows).tolist()


def test_saliency_rows_equal_query_by_query() -> None:
    rng = np.random.default_rng(3)
    pairs = []
    for qid in range(80):
        clips = int(rng.integers(3, 40))
        ids = sorted(rng.choice(clips, size=int(rng.integers(1, clips)), replace=False).tolist())
        record = {
            "qid": qid,
            "duration": 2 * clips,
            "relevant_clip_ids": ids,
            "saliency_scores": rng.integers(0, 5, size=(len(ids), 3)).tolist(),
        }
        length = int(rng.integers(1, clips + 6))  # shorter or longer than the video
        scores = (rng.integers(0, 6, size=length) / 5).tolist()  # many ties
        pairs.append(({"qid": qid, "pred_saliency_scores": scores}, record))
    ap, hit = F.saliency_rows(pairs)
    for row, (prediction, record) in enumerate(pairs):
        ap_alone, hit_alone = F.saliency_query(prediction["pred_saliency_scores"], record)
        assert ap[row].tolist() == ap_alone.tolist()
        assert hit[row].tolist() == hit_alone.tolist()


def test_a_malformed_prediction_in_a_batch_is_named() -> None:
    pairs = random_moment_pairs(4, count=5)
    pairs[3][0]["pred_relevant_windows"] = [[0.0, 4.0]]  # no score
    with pytest.raises(ValueError, match="qid 3: pred_relevant_windows must be rows"):
        F.moment_rows(pairs)


def test_a_bad_rating_row_in_a_batch_is_named() -> None:
    record = {
        "qid": 7,
        "duration": 10,
        "relevant_clip_ids": [1, 9],
        "saliency_scores": [[1, 2, 3]] * 2,
    }
    good = {"qid": 6, "duration": 10, "relevant_clip_ids": [0], "saliency_scores": [[1, 2, 3]]}
    pairs = [
        ({"qid": 6, "pred_saliency_scores": [1.0]}, good),
        ({"qid": 7, "pred_saliency_scores": [1.0]}, record),
    ]
    with pytest.raises(ValueError, match=r"qid 7: relevant clip ids 1\.\.9 outside the 5 clips"):
        F.saliency_rows(pairs)
