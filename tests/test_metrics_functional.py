"""Hand-computed cases of the functional metrics: every expected number is worked out in the
comment beside it, from the official definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vhd.metrics import functional as F

# 20 s video = 10 clips of 2 s; annotator 3 never rates a clip above 0.
QV = {
    "qid": 1,
    "duration": 20,
    "vid": "v",
    "relevant_windows": [[0, 4], [10, 14]],
    "relevant_clip_ids": [0, 1, 5, 6],
    "saliency_scores": [[4, 2, 0], [3, 2, 0], [1, 4, 0], [0, 1, 0]],
}


def mr(windows: list, record: dict = QV, dataset: str = "qvhighlights") -> dict[str, float]:
    prediction = {"qid": record["qid"], "pred_relevant_windows": windows}
    return F.moment_retrieval([prediction], [record], dataset)


# -- IoU ----------------------------------------------------------------------------------------
def test_temporal_iou() -> None:
    iou = F.temporal_iou([[0, 2]], [[1, 3], [0, 2], [5, 6]])[0]
    assert iou.tolist() == pytest.approx([1 / 3, 1.0, 0.0])
    assert F.temporal_iou([[1, 1]], [[1, 1]])[0, 0] == 0.0  # empty union: 0, not NaN
    assert F.hull_iou([0, 2], [1, 3]) == pytest.approx(1 / 3)
    assert F.hull_iou([0, 1], [2, 3]) == 0.0


# -- detection AP ---------------------------------------------------------------------------------
GT2 = np.array([[0.0, 4.0], [10.0, 14.0]])


def test_detection_ap_interpolates_precision() -> None:
    # hit, miss, hit: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> 1/2 * 1 + 1/2 * 2/3.
    preds = [[0, 4, 0.9], [5, 8, 0.8], [10, 14, 0.7]]
    assert F.detection_ap(GT2, preds, [0.5])[0] == pytest.approx((1 + 2 / 3) / 2)


def test_detection_ap_matches_each_ground_truth_once() -> None:
    # The duplicate finds its GT taken and the other GT below the threshold: a false positive.
    assert F.detection_ap(GT2, [[0, 4, 0.9], [0, 4, 0.8]], [0.5])[0] == pytest.approx(0.5)


def test_detection_ap_takes_the_free_window_of_highest_iou() -> None:
    gt = [[0, 10], [0, 6]]
    # [0, 6] takes GT 2 (IoU 1, not GT 1 at 0.6), leaving GT 1 for [0, 10]: both hit at 0.7.
    assert F.detection_ap(gt, [[0, 6, 0.9], [0, 10, 0.8]], [0.7])[0] == 1.0


def test_detection_ap_ties_keep_listed_order() -> None:
    # Equal scores: a stable sort, as the official list.sort. Miss then hit -> precision 1/2.
    assert F.detection_ap(GT2[:1], [[5, 8, 0.5], [0, 4, 0.5]], [0.5])[0] == pytest.approx(0.5)
    assert F.detection_ap(GT2[:1], [[0, 4, 0.5], [5, 8, 0.5]], [0.5])[0] == 1.0


def test_detection_ap_threshold_is_inclusive() -> None:
    ap = F.detection_ap([[0, 4]], [[0, 2, 1.0]], [0.5, 0.55])  # IoU exactly 0.5
    assert ap.tolist() == [1.0, 0.0]


# -- moment retrieval ----------------------------------------------------------------------------
def test_map_reads_the_first_ten_windows_as_listed() -> None:
    record = {"qid": 1, "relevant_windows": [[20, 30]]}
    distractors = [[0, 2, 0.9]] * 10
    # The right window with the best score, 11th listed: cut before sorting -> AP 0.
    assert mr([*distractors, [20, 30, 1.0]], record)["MR-full-mAP"] == 0.0
    assert mr([*distractors[:9], [20, 30, 1.0]], record)["MR-full-mAP"] == 100.0


def test_r1_takes_the_first_listed_window_and_the_best_ground_truth() -> None:
    record = {"qid": 1, "relevant_windows": [[20, 30]]}
    results = mr([[0, 4, 0.1], [20, 30, 0.9]], record)
    assert results["MR-full-R1@0.5"] == 0.0 and results["MR-full-mAP"] == 100.0
    assert mr([[10, 14, 1.0]])["MR-full-R1@0.95"] == 100.0  # vs the 2nd GT window, IoU 1


def test_length_buckets_score_their_own_windows() -> None:
    record = {"qid": 1, "relevant_windows": [[0, 4], [50, 100]]}  # one short, one long
    results = mr([[50, 100, 1.0], [0, 4, 0.9]], record)
    assert results["MR-full-mAP"] == 100.0
    assert results["MR-long-mAP"] == 100.0
    # Short bucket: GT [0, 4] only, the long window is a miss ranked first -> AP 1/2; R1 compares
    # the first window [50, 100] with [0, 4] -> 0.
    assert results["MR-short-mAP"] == pytest.approx(50.0)
    assert results["MR-short-R1@0.5"] == 0.0
    assert math.isnan(results["MR-middle-mAP"])  # no query in the bucket, as the official NaN


def test_bucket_bounds_are_left_open_right_closed() -> None:
    in_bucket, _, _ = F.moment_query(np.zeros((0, 3)), np.array([[0.0, 10.0], [20.0, 50.0]]))
    assert in_bucket.tolist() == [True, True, False, True]  # 10 s is short, 30 s is middle


def test_query_without_predictions_scores_zero() -> None:
    records = [QV, {**QV, "qid": 2}]
    predictions = [
        {"qid": 1, "pred_relevant_windows": []},
        {"qid": 2, "pred_relevant_windows": [[0, 4, 1.0], [10, 14, 0.9]]},
    ]
    results = F.qvhighlights_mr(predictions, records)
    assert results["MR-full-mAP"] == 50.0 and results["MR-full-R1@0.5"] == 50.0


def test_windows_outside_the_video_are_not_clipped() -> None:
    record = {"qid": 1, "duration": 20, "relevant_windows": [[10, 20]]}
    results = mr([[10, 30, 1.0]], record)  # IoU 10 / 20, as the official (no clipping)
    assert results["MR-full-R1@0.5"] == 100.0 and results["MR-full-R1@0.55"] == 0.0
    assert results["MR-full-mIoU"] == pytest.approx(50.0)
    assert mr([[-10, 0, 1.0]], record)["MR-full-mIoU"] == 0.0


def test_ground_truth_without_windows_is_an_error() -> None:
    with pytest.raises(ValueError, match="qid 7"):
        mr([[0, 1, 1.0]], {"qid": 7, "relevant_windows": []})


def test_grounding_r1_and_miou() -> None:
    record = {"qid": "s1_0", "relevant_windows": [[0, 10]]}
    results = mr([[0, 6, 1.0], [0, 10, 0.5]], record, "charades")  # top-1 IoU 0.6
    assert results["MR-full-R1@0.3"] == results["MR-full-R1@0.5"] == 100.0
    assert results["MR-full-R1@0.7"] == 0.0
    assert results["MR-full-mIoU"] == pytest.approx(60.0)
    assert not any("mAP" in key for key in results)


# -- QVHighlights highlight detection -------------------------------------------------------------
def test_saliency_ap_is_the_mean_precision_at_recall_steps() -> None:
    # Ranked labels 1, 0, 1, 0: precision 1 at recall 1/2, 2/3 at recall 1 -> their mean.
    assert F.saliency_ap([0, 1, 0, 1], [0.1, 0.9, 0.8, 0.2]) == pytest.approx(5 / 6)
    # A tie counts once: {clip 0, clip 1} -> precision 1/2 (recall 1/2), clip 2 -> 2/3 (recall 1);
    # interpolated 2/3 at both steps -> 2/3 (sklearn's average_precision would give 7/12).
    assert F.saliency_ap([1, 0, 1], [1, 1, 0]) == pytest.approx(2 / 3)
    assert F.saliency_ap([0, 0, 0], [3, 2, 1]) == 0.0
    assert F.saliency_ap([1, 1], [0, 1]) == 1.0


def test_qvhighlights_ratings_fill_the_whole_video() -> None:
    ratings = F.qvhighlights_ratings(QV)
    assert ratings.shape == (10, 3) and ratings[5].tolist() == [1, 4, 0] and ratings[9].sum() == 0
    with pytest.raises(ValueError, match="qid 1"):
        F.qvhighlights_ratings({**QV, "relevant_clip_ids": [0, 1, 5, 10]})


def test_hit1_counts_any_annotator() -> None:
    scores = [0.0] * 10
    scores[5] = 1.0  # clip 5 rated [1, 4, 0]: annotator 2 makes it very good
    _, hit = F.saliency_query(scores, QV)
    assert hit.tolist() == [1.0, 1.0, 1.0]
    scores[1] = 2.0  # clip 1 rated [3, 2, 0]: fair and good, not very good
    assert F.saliency_query(scores, QV)[1].tolist() == [1.0, 1.0, 0.0]


def test_saliency_length_is_cut_or_zero_padded() -> None:
    long = [0.5] * 10 + [0.0, 9.0]  # 12 scores for 10 clips, top clip 11 beyond the video
    ap, hit = F.saliency_query(long, QV)
    assert hit.tolist() == [0.0, 0.0, 0.0]
    assert ap.tolist() == F.saliency_query([0.5] * 10, QV)[0].tolist()
    short = [3.0, 2.0, 1.0]
    padded = [3.0, 2.0, 1.0] + [0.0] * 7
    assert F.saliency_query(short, QV)[0].tolist() == F.saliency_query(padded, QV)[0].tolist()
    # Annotator 3 rated nothing: AP 0 at every level, so no mAP can exceed 2/3.
    assert F.saliency_query(padded, QV)[0][:, 2].tolist() == [0.0, 0.0, 0.0]
    assert (
        F.qvhighlights_hl([{"qid": 1, "pred_saliency_scores": padded}], [QV])["HL-min-Fair-mAP"]
        <= 100 * 2 / 3
    )


# -- YouTube Highlights and TVSum -----------------------------------------------------------------
def test_umt_trapezoid_ap() -> None:
    # ranks 1, 0, 1: (1/2)(1+1)/2 + 0 + (1/2)(1/2 + 2/3)/2
    assert F.ranked_ap([1, 0, 1]) == pytest.approx(0.5 + (0.5 + 2 / 3) / 4)
    assert F.ranked_ap([0, 1]) == pytest.approx(0.25)  # recall 0 -> 1 at precision 0 -> 1/2
    assert F.ranked_ap([0, 0, 0]) == 0.0  # a video without positives


def test_youtube_ranks_only_the_scored_clips() -> None:
    record = {"qid": "a", "label": [[0], [0], [1]], "domain": "dog"}
    assert F.youtube_video_ap([0.1, 0.2, 0.9], record) == 1.0
    assert F.youtube_video_ap([0.1, 0.2], record) == 0.0  # UMT: clip 3 was never scored
    assert F.youtube_video_ap([0.1, 0.2, 0.9, 5.0], record) == 1.0  # extra score cut


def test_tvsum_top5_ap_per_annotator() -> None:
    column = np.arange(1, 9, dtype=float)  # median 4.5: clips 4..7 positive
    record = {"qid": "t", "label": np.stack([column, column[::-1]], axis=1).tolist()}
    scores = np.zeros(8)
    scores[[7, 0, 6, 1, 5]] = [5, 4, 3, 2, 1]  # top-5: clips 7, 0, 6, 1, 5
    # Annotator 1: ranked labels 1 0 1 0 1, recall over the 3 positives among the top 5:
    # 1/3 * (1 + 1)/2 + 0 + 1/3 * (1/2 + 2/3)/2 + 0 + 1/3 * (1/2 + 3/5)/2.
    first = 1 / 3 + (0.5 + 2 / 3) / 6 + (0.5 + 0.6) / 6
    # Annotator 2 (reversed ratings: clips 0..3 positive): labels 0 1 0 1 0, 2 positives:
    # 0 + 1/2 * (0 + 1/2)/2 + 0 + 1/2 * (1/3 + 1/2)/2 + 0.
    second = 0.5 * 0.25 + 0.5 * (1 / 3 + 0.5) / 2
    assert F.tvsum_video_ap(scores, record) == pytest.approx((first + second) / 2)
    twelve = {"qid": "t", "label": [[c] for c in range(1, 13)]}  # clips 6..11 positive
    assert F.tvsum_video_ap(-np.arange(12.0), twelve) == 0.0  # top-5 = clips 0..4


def test_domain_summary() -> None:
    summary = F.summarize_domains(np.array([1.0, 0.5, 0.0]), ["dog", "dog", "ski"], "mAP")
    assert summary == {"mAP": 50.0, "mAP-domain-avg": 37.5, "mAP/dog": 75.0, "mAP/ski": 0.0}
    assert F.decode_domain(F.encode_domain("skating")) == "skating"


# -- invariants and pairing ----------------------------------------------------------------------
def perfectible_records() -> list[dict]:
    """Queries whose windows sit in one bucket each and whose annotators agree, so a perfect
    prediction exists for every official figure (the real annotations have neither property)."""
    ratings = [[2, 2, 2], [3, 3, 3], [4, 4, 4], [1, 1, 1]]
    windows = {"short": [[2, 8]], "middle": [[20, 40], [60, 80]], "long": [[10, 100]]}
    return [
        {"qid": i, "duration": 150, "relevant_windows": w, "relevant_clip_ids": [1, 5, 9, 20],
         "saliency_scores": ratings}
        for i, w in enumerate(windows.values())
    ]  # fmt: skip


def test_perfect_predictions_score_100() -> None:
    records = perfectible_records()
    predictions = []
    for record in records:
        saliency = F.qvhighlights_ratings(record).sum(axis=1).tolist()
        windows = [[s, e, 1.0] for s, e in record["relevant_windows"]]
        predictions.append(
            {
                "qid": record["qid"],
                "pred_relevant_windows": windows,
                "pred_saliency_scores": saliency,
            }
        )
    results = {**F.qvhighlights_mr(predictions, records), **F.qvhighlights_hl(predictions, records)}
    assert set(results.values()) == {100.0}
    youtube = {"qid": "y", "label": [[0], [1], [1], [0]], "domain": "dog"}
    assert (
        F.youtube_map([{"qid": "y", "pred_saliency_scores": [0, 2, 1, 0]}], [youtube])["mAP"]
        == 100.0
    )
    ratings = [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 5, 5]  # 6 clips above the median
    tvsum = {"qid": "t", "label": [[r] * 20 for r in ratings], "domain": "BK"}
    prediction = {"qid": "t", "pred_saliency_scores": ratings}
    assert F.tvsum_map([prediction], [tvsum])["top5-mAP"] == 100.0


def test_pairing_requires_matching_qids() -> None:
    with pytest.raises(ValueError, match="predicted twice"):
        F.pair_by_qid([{"qid": 1}, {"qid": 1}], [QV])
    with pytest.raises(ValueError, match=r"no prediction for 1 qids \[1\].*no ground truth for 1"):
        F.pair_by_qid([{"qid": 2}], [QV])
    pairs = F.pair_by_qid([{"qid": 2}, {"qid": 1}], [QV, {**QV, "qid": 2}])
    assert [p["qid"] for p, _ in pairs] == [1, 2]  # ground-truth order


def test_official_rounding() -> None:
    assert F.official_round(41.325) == float(f"{41.325:.2f}")
    assert F.round_metrics({"a": {"b": 1.23456}}, 3) == {"a": {"b": 1.235}}
