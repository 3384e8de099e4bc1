"""Hand-computed cases and invariants of the metrics, and the ``vhd eval`` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vhd.metrics import MomentRetrievalMetric, QVHighlightsSaliencyMetric, YouTubeHighlightsMetric
from vhd.metrics import functional as F
from vhd.metrics.evaluate import main as eval_main

GT = {
    "qid": 1,
    "duration": 20,
    "vid": "v",
    "relevant_windows": [[0, 4], [10, 14]],
    "relevant_clip_ids": [0, 1, 5, 6],
    "saliency_scores": [[4, 2, 0], [3, 2, 0], [1, 4, 0], [0, 1, 0]],
}


def test_iou_and_detection_ap_by_hand() -> None:
    assert F.temporal_iou([[0, 0.2]], [[0, 0.3], [0, 1]])[0].tolist() == pytest.approx([2 / 3, 0.2])
    gt = np.array([[0.0, 4.0], [10.0, 14.0]])
    # Best-scored window hits GT 1, the second misses, the third hits GT 2: AP = (1 + 2/3) / 2.
    preds = np.array([[0.0, 4.0, 0.9], [5.0, 8.0, 0.8], [10.0, 14.0, 0.7]])
    assert F.detection_ap(gt, preds, np.array([0.5]))[0] == pytest.approx((1 + 2 / 3) / 2)
    # A duplicate of a matched window is a false positive: each GT is matched once.
    dup = np.array([[0.0, 4.0, 0.9], [0.0, 4.0, 0.8]])
    assert F.detection_ap(gt, dup, np.array([0.5]))[0] == pytest.approx(0.5)
    # Ties keep the listed order (stable sort), as the official list.sort does.
    tied = np.array([[5.0, 8.0, 0.5], [0.0, 4.0, 0.5]])
    assert F.detection_ap(gt[:1], tied, np.array([0.5]))[0] == pytest.approx(0.5)


def test_r1_uses_first_window_and_best_matching_gt() -> None:
    prediction = {"qid": 1, "pred_relevant_windows": [[10, 14, 0.1], [0, 4, 0.9]]}
    results = F.qvhighlights_mr([prediction], [GT])
    assert results["MR-full-R1@0.7"] == 100.0  # first listed window vs the 2nd GT window
    assert results["MR-short-mAP"] == 100.0  # both GT windows are 4 s long


def test_query_without_predictions_scores_zero() -> None:
    results = F.qvhighlights_mr([{"qid": 1, "pred_relevant_windows": []}], [GT])
    assert results["MR-full-mAP"] == 0.0 and results["MR-full-R1@0.5"] == 0.0


def test_windows_outside_the_video_only_lower_iou() -> None:
    results = F.qvhighlights_mr([{"qid": 1, "pred_relevant_windows": [[-4, 4, 1.0]]}], [GT])
    assert results["MR-full-mIoU"] == pytest.approx(50.0)


def test_saliency_ap_hit_and_length_fitting() -> None:
    # Ranked labels 1, 0, 1, 0: precision 1 at recall 0.5 and 2/3 at recall 1 -> mean of the two.
    scores = np.array([0.1, 0.9, 0.8, 0.2])
    assert F.saliency_ap(np.array([0, 1, 0, 1]), scores) == pytest.approx((1 + 2 / 3) / 2)
    assert F.saliency_ap(np.zeros(3), np.arange(3)) == 0.0  # no positives
    row = F.saliency_row([9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5], GT)  # 12 scores for 10 clips: cut
    assert row[0, 3] == 1.0  # Fair hit: clip 0 has a 4 from annotator 1
    assert row[2, 2] == 0.0  # annotator 3 gave no "very good" -> AP 0
    short = F.saliency_row([1.0], GT)  # zero-padded to 10 clips
    assert short.shape == (3, 4)


def test_perfect_predictions_score_100() -> None:
    prediction = {
        "qid": 1,
        "pred_relevant_windows": [[0, 4, 1.0], [10, 14, 0.9]],
        "pred_saliency_scores": [1, 1, 0, 0, 0, 1, 1, 0, 0, 0],
    }
    assert F.qvhighlights_mr([prediction], [GT])["MR-full-mAP"] == 100.0
    assert F.qvhighlights_hl([prediction], [GT])["HL-min-Fair-Hit1"] == 100.0
    youtube = {"qid": "a", "label": [[0], [1], [1], [0]], "domain": "dog"}
    assert (
        F.youtube_map([{"qid": "a", "pred_saliency_scores": [0, 2, 1, 0]}], [youtube])["mAP"] == 100
    )


def test_youtube_video_without_positives_scores_zero_and_umt_trapezoid() -> None:
    assert F.ranked_ap([0, 0, 0]) == 0.0
    # ranks: miss, hit -> recall 0 -> 1 with precision 0 -> 1/2: (1 - 0) * (0 + 0.5) / 2
    assert F.ranked_ap([0, 1]) == pytest.approx(0.25)


def test_tvsum_median_is_the_lower_middle_value() -> None:
    ratings = np.array([[1], [2], [3], [4]], dtype=float).repeat(20, axis=1)
    record = {"label": ratings.tolist()}
    # median 2 (torch's lower middle): clips 3 and 4 positive; ranking them first scores 1.
    assert F.tvsum_video_ap([0, 0, 1, 2], record) == pytest.approx(1.0)


def test_metric_merging_equals_one_pass() -> None:
    records = [
        {
            "qid": i,
            "label": [[int(j % 3 == 0)] for j in range(9)],
            "domain": "dog" if i % 2 else "ski",
        }
        for i in range(6)
    ]
    rng = np.random.default_rng(0)
    preds = [{"qid": i, "pred_saliency_scores": rng.normal(size=9).tolist()} for i in range(6)]
    whole, first, second = (YouTubeHighlightsMetric() for _ in range(3))
    whole.update(preds, records)
    first.update(preds[:4], records[:4])
    second.update(preds[4:], records[4:])
    first.merge_state(second)
    assert {k: float(v) for k, v in first.compute().items()} == {
        k: float(v) for k, v in whole.compute().items()
    }
    assert set(whole.compute()) == {"mAP", "mAP/dog", "mAP/ski", "mAP-videos"}


def test_metric_reset_and_empty() -> None:
    metric = MomentRetrievalMetric("charades")
    metric.update([{"qid": 1, "pred_relevant_windows": [[0, 4, 1]]}], [GT])
    assert float(metric.compute()["MR-full-R1@0.7"]) == 100.0
    metric.reset()
    assert float(metric.compute()["MR-full-mIoU"]) == 0.0
    assert set(QVHighlightsSaliencyMetric().compute()) >= {"HL-min-VeryGood-mAP"}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_vhd_eval_writes_official_structure(tmp_path: Path, capsys) -> None:
    gt = write_jsonl(tmp_path / "gt.jsonl", [GT])
    prediction = {
        "qid": 1,
        "pred_relevant_windows": [[0, 4, 1.0]],
        "pred_saliency_scores": [1] * 10,
    }
    pred = write_jsonl(tmp_path / "pred.jsonl", [prediction])
    assert eval_main(["--gt", str(gt), "--pred", str(pred), "--out", str(tmp_path / "m.json")]) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["brief"]["MR-full-R1@0.7"] == 100.0
    assert set(metrics) >= {"brief", "MR-full", "MR-short", "HL-min-Fair"}
    assert "MR-full-mAP" in capsys.readouterr().out


def test_vhd_eval_reports_qid_mismatch_and_bad_lines(tmp_path: Path, capsys) -> None:
    gt = write_jsonl(tmp_path / "gt.jsonl", [GT, {**GT, "qid": 2}])
    rows = [{"qid": qid, "pred_relevant_windows": [[0, 4, 1]]} for qid in (1, 3)]
    pred = write_jsonl(tmp_path / "pred.jsonl", rows)
    assert eval_main(["--gt", str(gt), "--pred", str(pred)]) == 2
    out = capsys.readouterr().out
    assert "missing 1: [2]" in out and "extra 1: [3]" in out
    assert eval_main(["--gt", str(gt), "--pred", str(pred), "--allow-partial"]) == 0
    capsys.readouterr()
    (tmp_path / "bad.jsonl").write_text('{"qid": 1}\n{oops\n')
    assert eval_main(["--gt", str(gt), "--pred", str(tmp_path / "bad.jsonl")]) == 2
    assert "bad.jsonl:2" in capsys.readouterr().out
