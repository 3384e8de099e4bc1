"""Parity with the official evaluators on the real annotations.

The expected numbers were produced once, outside the project, by scoring the predictions of
``tests/metrics_helpers.py`` (as written to jsonl) with the official code, unmodified:

- QVHighlights: Moment-DETR ``standalone_eval/eval.py`` ``eval_submission`` (jayleicn/moment_detr
  @ b7e553ac3b0c, numpy 2.4.6, scikit-learn 1.9.1) on ``highlight_val_release.jsonl``;
- Charades-STA / TACoS: UniVTG ``eval/eval.py`` ``compute_mr_r1`` (showlab/UniVTG @ 32659ac7aeba)
  on ``charades_sta_test_tvr_format.jsonl`` and ``tacos/test.jsonl``;
- YouTube Highlights / TVSum: UMT ``YouTubeHighlights.evaluate`` / ``TVSum.evaluate``
  (TencentARC/UMT @ bde05e3de390, torch 2.11) per domain, on ``youtube_valid.jsonl`` and on all
  50 TVSum videos (``tvsum_val.jsonl`` + ``tvsum_train.jsonl``), with ``youtube_anno.json`` /
  ``tvsum_anno.json`` as UMT's labels. UMT returns fractions rounded to 5 decimals.

Only the numbers are kept here; none of their code.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.metrics_helpers import (
    grounding_predictions,
    highlight_predictions,
    load_jsonl,
    perfect_predictions,
    qvhighlights_predictions,
    shared_file,
    write_jsonl,
)
from vhd.metrics import (
    MomentRetrievalMetric,
    QVHighlightsSaliencyMetric,
    TVSumMetric,
    YouTubeHighlightsMetric,
)
from vhd.metrics import functional as F
from vhd.metrics.evaluate import evaluate, main

MAP_KEYS = [*(F.threshold_key(t) for t in F.MAP_THRESHOLDS), "average"]
R1_KEYS = [F.threshold_key(t) for t in F.QVHIGHLIGHTS_R1_THRESHOLDS]
# Moment-DETR on qvhighlights_predictions(val): per bucket, MR-mAP at 0.5..0.95 + average, MR-R1.
OFFICIAL_MAP = {
    "full": [61.13, 58.78, 56.35, 52.88, 48.06, 42.98, 36.27, 28.65, 19.25, 8.86, 41.32],
    "long": [67.73, 67.08, 66.51, 65.99, 64.83, 64.0, 61.05, 55.23, 42.05, 22.16, 57.66],
    "middle": [60.74, 58.78, 56.26, 52.4, 45.85, 37.56, 28.29, 17.93, 9.02, 2.04, 36.89],
    "short": [24.83, 20.52, 16.3, 11.25, 7.15, 5.21, 3.15, 1.97, 1.1, 0.19, 9.17],
}
OFFICIAL_R1 = {
    "full": [50.19, 47.87, 45.74, 42.45, 38.06, 33.68, 28.52, 22.32, 15.29, 7.03],
    "long": [49.83, 48.61, 48.08, 47.39, 46.34, 45.64, 43.21, 38.5, 29.79, 16.2],
    "middle": [41.8, 40.33, 38.56, 35.74, 30.83, 24.87, 18.81, 12.02, 6.17, 1.46],
    "short": [21.45, 17.95, 14.92, 10.26, 6.76, 5.13, 3.26, 2.33, 1.63, 0.47],
}
OFFICIAL_HL = {"Fair": (91.85, 98.26), "Good": (80.26, 97.55), "VeryGood": (50.95, 87.61)}
OFFICIAL_BRIEF = {
    "MR-full-R1@0.5": 50.19, "MR-full-R1@0.7": 38.06, "MR-full-mAP": 41.32,
    "MR-full-mAP@0.5": 61.13, "MR-full-mAP@0.75": 42.98, "MR-long-mAP": 57.66,
    "MR-middle-mAP": 36.89, "MR-short-mAP": 9.17, "HL-min-Fair-mAP": 91.85,
    "HL-min-Fair-Hit1": 98.26, "HL-min-Good-mAP": 80.26, "HL-min-Good-Hit1": 97.55,
    "HL-min-VeryGood-mAP": 50.95, "HL-min-VeryGood-Hit1": 87.61,
}  # fmt: skip
# Moment-DETR on perfect_predictions(val), the annotations as predictions. Not 100 everywhere,
# by the official definitions: 13 queries have more than 10 windows (mAP reads 10), a bucket
# scores the other buckets' windows as false positives and R1 the first listed window against the
# bucket's windows, 3 annotators who disagree cannot all be ranked perfectly by one score list,
# and a query whose clips nobody rated 4 can have no very good top clip.
OFFICIAL_PERFECT_BRIEF = {
    "MR-full-R1@0.5": 100.0, "MR-full-R1@0.7": 100.0, "MR-full-mAP": 99.76,
    "MR-full-mAP@0.5": 99.76, "MR-full-mAP@0.75": 99.76, "MR-long-mAP": 92.73,
    "MR-middle-mAP": 89.8, "MR-short-mAP": 79.75, "HL-min-Fair-mAP": 97.14,
    "HL-min-Fair-Hit1": 100.0, "HL-min-Good-mAP": 88.27, "HL-min-Good-Hit1": 99.87,
    "HL-min-VeryGood-mAP": 60.81, "HL-min-VeryGood-Hit1": 95.68,
}  # fmt: skip
# UniVTG's compute_mr_r1 on grounding_predictions(test): R1 at 0.3..0.95, then mIoU.
OFFICIAL_GROUNDING = {
    "charades": ([52.96, 49.65, 45.73, 41.64, 36.77, 31.83, 26.02, 20.03, 13.9, 9.35, 5.67, 2.96,
                  1.18, 0.3], 33.87),
    "tacos": ([48.24, 45.59, 43.21, 39.72, 35.97, 31.49, 26.14, 20.59, 15.05, 9.92, 6.07, 3.02,
               1.35, 0.32], 31.48),
}  # fmt: skip
# UMT's evaluate per domain on highlight_predictions (fractions, 5 decimals).
OFFICIAL_YOUTUBE = {"dog": 0.9267, "gymnastics": 0.96365, "parkour": 0.98067,
                    "skating": 0.96574, "skiing": 0.95764, "surfing": 0.91861}  # fmt: skip
OFFICIAL_TVSUM = {"BK": 0.68676, "BT": 0.76188, "DS": 0.65574, "FM": 0.71547, "GA": 0.78788,
                  "MS": 0.73675, "PK": 0.72933, "PR": 0.72706, "VT": 0.7693,
                  "VU": 0.78729}  # fmt: skip


def official_qvhighlights() -> dict:
    """The whole structure Moment-DETR's eval_submission returned, rebuilt from the tables."""
    structure: dict = {"brief": OFFICIAL_BRIEF}
    for level, (mean_ap, hit) in OFFICIAL_HL.items():
        structure[f"HL-min-{level}"] = {"HL-mAP": mean_ap, "HL-Hit1": hit}
    for bucket in ("full", "long", "middle", "short"):
        structure[bucket] = {
            "MR-mAP": dict(zip(MAP_KEYS, OFFICIAL_MAP[bucket], strict=True)),
            "MR-R1": dict(zip(R1_KEYS, OFFICIAL_R1[bucket], strict=True)),
        }
    return structure


@pytest.fixture(scope="module")
def qvhighlights(tmp_path_factory) -> tuple[list[dict], list[dict]]:
    """Predictions round-tripped through jsonl, exactly as the official script read them."""
    ground_truth = load_jsonl(shared_file("qvhighlights", "highlight_val_release.jsonl"))
    path = tmp_path_factory.mktemp("parity") / "pred.jsonl"
    write_jsonl(path, qvhighlights_predictions(ground_truth))
    return load_jsonl(path), ground_truth


def test_qvhighlights_structure_equals_official(qvhighlights) -> None:
    predictions, ground_truth = qvhighlights
    ours = evaluate(predictions, ground_truth, "qvhighlights")
    expected = official_qvhighlights()
    assert ours == expected
    assert list(ours) == list(expected) and list(ours["brief"]) == list(expected["brief"])


def test_qvhighlights_metrics_in_two_ddp_shards_equal_official(qvhighlights) -> None:
    predictions, ground_truth = qvhighlights
    half = len(ground_truth) // 2
    shards = []
    for part in (slice(0, half), slice(half, None)):
        moments, saliency = MomentRetrievalMetric(), QVHighlightsSaliencyMetric()
        moments.update(predictions[part], ground_truth[part])
        saliency.update(predictions[part], ground_truth[part])
        shards.append((moments, saliency))
    (merged_mr, merged_hl), (other_mr, other_hl) = shards
    merged_mr.merge_state(other_mr)
    merged_hl.merge_state(other_hl)
    ours = {
        k: F.official_round(v) for k, v in {**merged_mr.compute(), **merged_hl.compute()}.items()
    }
    assert {key: ours[key] for key in OFFICIAL_BRIEF} == OFFICIAL_BRIEF
    for key, value in zip(MAP_KEYS[:-1], OFFICIAL_MAP["full"], strict=False):
        assert ours[f"MR-full-mAP@{key}"] == value
    for key, value in zip(R1_KEYS, OFFICIAL_R1["full"], strict=True):
        assert ours[f"MR-full-R1@{key}"] == value


def test_vhd_eval_on_the_annotations_as_predictions(tmp_path: Path, capsys) -> None:
    gt = shared_file("qvhighlights", "highlight_val_release.jsonl")
    pred = write_jsonl(tmp_path / "perfect.jsonl", perfect_predictions(load_jsonl(gt)))
    out = tmp_path / "metrics.json"
    assert main(["--gt", str(gt), "--pred", str(pred), "--out", str(out)]) == 0
    metrics = json.loads(out.read_text())
    assert metrics["brief"] == OFFICIAL_PERFECT_BRIEF
    assert set(metrics["full"]["MR-R1"].values()) == {100.0}  # every threshold
    assert "100.00" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("dataset", "path"),
    [
        ("charades", ("charades_sta", "charades_sta_test_tvr_format.jsonl")),
        ("tacos", ("tacos", "test.jsonl")),
    ],
)
def test_grounding_equals_univtg(dataset: str, path: tuple[str, str], tmp_path: Path) -> None:
    ground_truth = load_jsonl(shared_file(*path))
    pred = write_jsonl(tmp_path / "pred.jsonl", grounding_predictions(ground_truth))
    ours = evaluate(load_jsonl(pred), ground_truth, dataset)
    recall, miou = OFFICIAL_GROUNDING[dataset]
    assert ours["full"] == {
        "MR-R1": dict(
            zip((F.threshold_key(t) for t in F.GROUNDING_R1_THRESHOLDS), recall, strict=True)
        ),
        "MR-mIoU": miou,
    }


def umt_check(metric, ground_truth: list[dict], official: dict[str, float], name: str) -> None:
    metric.update(highlight_predictions(ground_truth), ground_truth)
    ours = {key: float(value) for key, value in metric.compute().items()}
    assert {d: round(ours[f"{name}/{d}"] / 100, 5) for d in official} == official
    assert ours[f"{name}-domain-avg"] == pytest.approx(
        100 * sum(official.values()) / len(official), abs=1e-3
    )


def test_youtube_highlights_equals_umt() -> None:
    ground_truth = load_jsonl(shared_file("youtube_highlights", "youtube_valid.jsonl"))
    umt_check(YouTubeHighlightsMetric(), ground_truth, OFFICIAL_YOUTUBE, "mAP")


def test_tvsum_equals_umt() -> None:
    ground_truth = load_jsonl(shared_file("tvsum", "tvsum_val.jsonl"))
    ground_truth += load_jsonl(shared_file("tvsum", "tvsum_train.jsonl"))
    umt_check(TVSumMetric(), ground_truth, OFFICIAL_TVSUM, "top5-mAP")
