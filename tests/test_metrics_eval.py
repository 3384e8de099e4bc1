"""``vhd eval``: the official JSON structure, the table, and submission checks with file:line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.metrics_helpers import write_jsonl
from vhd.metrics.evaluate import brief, evaluate, format_table, main

GT = {
    "qid": 1,
    "duration": 20,
    "vid": "v",
    "relevant_windows": [[0, 4], [10, 14]],
    "relevant_clip_ids": [0, 1, 5, 6],
    "saliency_scores": [[4, 2, 0], [3, 2, 0], [1, 4, 0], [0, 1, 0]],
}
PRED = {"qid": 1, "pred_relevant_windows": [[0, 4, 1.0]], "pred_saliency_scores": [1] + [0] * 9}


def run(tmp_path: Path, gt: list[dict], pred: list[dict] | str, *extra: str) -> int:
    gt_path = write_jsonl(tmp_path / "gt.jsonl", gt)
    pred_path = tmp_path / "pred.jsonl"
    if isinstance(pred, str):
        pred_path.write_text(pred)
    else:
        write_jsonl(pred_path, pred)
    return main(["--gt", str(gt_path), "--pred", str(pred_path), *extra])


def test_qvhighlights_official_structure(tmp_path: Path, capsys) -> None:
    out = tmp_path / "metrics.json"
    assert run(tmp_path, [GT], [PRED], "--out", str(out)) == 0
    metrics = json.loads(out.read_text())
    # Moment-DETR's eval_submission: brief, then the sorted groups.
    assert list(metrics) == ["brief", "HL-min-Fair", "HL-min-Good", "HL-min-VeryGood", "full",
                             "long", "middle", "short"]  # fmt: skip
    assert list(metrics["brief"])[:3] == ["MR-full-R1@0.5", "MR-full-R1@0.7", "MR-full-mAP"]
    assert list(metrics["brief"])[-1] == "HL-min-VeryGood-Hit1"
    assert list(metrics["full"]["MR-mAP"]) == [
        "0.5", "0.55", "0.6", "0.65", "0.7", "0.75", "0.8", "0.85", "0.9", "0.95", "average"
    ]  # fmt: skip
    assert metrics["full"]["MR-mAP"]["average"] == 50.0  # 1 of 2 windows found, precision 1
    assert metrics["HL-min-Fair"] == {
        "HL-mAP": metrics["brief"]["HL-min-Fair-mAP"],
        "HL-Hit1": 100.0,
    }
    printed = capsys.readouterr().out
    assert "MR-full-mAP" in printed and "50.00" in printed


def test_only_the_predicted_task_is_scored(tmp_path: Path) -> None:
    windows_only = {"qid": 1, "pred_relevant_windows": [[0, 4, 1.0]]}
    metrics = evaluate([windows_only], [GT])
    assert "HL-min-Fair" not in metrics and "full" in metrics
    saliency_only = {"qid": 1, "pred_saliency_scores": [1.0] * 10}
    assert next(iter(evaluate([saliency_only], [GT])["brief"])) == "HL-min-Fair-mAP"


def test_other_datasets(tmp_path: Path) -> None:
    charades = evaluate([{"qid": 1, "pred_relevant_windows": [[0, 6, 1.0]]}],
                        [{"qid": 1, "relevant_windows": [[0, 10]]}], "charades")  # fmt: skip
    assert charades["brief"] == {"MR-full-R1@0.3": 100.0, "MR-full-R1@0.5": 100.0,
                                 "MR-full-R1@0.7": 0.0, "MR-full-mIoU": 60.0}  # fmt: skip
    assert len(charades["full"]["MR-R1"]) == 14
    record = {"qid": "a", "label": [[0], [1], [0]], "domain": "dog"}
    youtube = evaluate([{"qid": "a", "pred_saliency_scores": [0.3, 0.2, 0.1]}], [record], "youtube")
    # ranks 0 1 0: 0 + (1)(0 + 1/2)/2 + 0 = 0.25
    assert youtube["brief"] == {"mAP": 25.0, "mAP-domain-avg": 25.0, "mAP/dog": 25.0}
    out = tmp_path / "tvsum.json"
    tvsum = {"qid": "t", "label": [[r] * 20 for r in range(1, 13)], "domain": "BK"}
    pred = {"qid": "t", "pred_saliency_scores": list(range(12))}
    assert run(tmp_path, [tvsum], [pred], "--dataset", "tvsum", "--out", str(out)) == 0
    assert json.loads(out.read_text())["brief"]["top5-mAP/BK"] == 100.0


def test_qid_mismatch_lists_missing_and_extra(tmp_path: Path, capsys) -> None:
    gt = [GT, {**GT, "qid": 2}]
    preds = [{**PRED, "qid": 1}, {**PRED, "qid": 3}]
    assert run(tmp_path, gt, preds) == 2
    printed = capsys.readouterr().out
    assert "missing 1: [2]" in printed and "extra 1: [3]" in printed
    assert run(tmp_path, gt, preds, "--allow-partial") == 0
    assert "scoring 1 of 2 qids" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"qid": 1, "pred_saliency_scores": [1]}\n{oops\n', "pred.jsonl:2: not valid JSON"),
        ("[1, 2]\n", "pred.jsonl:1: expected a JSON object"),
        ('{"pred_saliency_scores": [1]}\n', "pred.jsonl:1: needs a qid"),
        ('{"qid": 1, "pred_relevant_windows": [[0, 4]]}\n', "pred.jsonl:1: qid 1 pred_relevant_"),
        ('{"qid": 1, "pred_relevant_windows": [[5, 4, 1]]}\n', "ends before it starts"),
        ('{"qid": 1, "pred_saliency_scores": [NaN]}\n', "finite numbers"),
        ('{"qid": 1, "relevant_windows": [[0, 4]]}\n', "annotation file passed as --pred"),
        ("", "no records"),
    ],
)
def test_malformed_lines_are_reported_with_file_and_line(
    tmp_path: Path, capsys, content: str, message: str
) -> None:
    assert run(tmp_path, [GT], content) == 2
    assert message in " ".join(capsys.readouterr().out.split())


def test_duplicates_and_inconsistent_fields(tmp_path: Path, capsys) -> None:
    assert run(tmp_path, [GT], [PRED, PRED]) == 2
    assert "pred.jsonl:2: qid 1 already predicted at" in " ".join(capsys.readouterr().out.split())
    gt = [GT, {**GT, "qid": 2}]
    assert run(tmp_path, gt, [PRED, {"qid": 2, "pred_saliency_scores": [1.0]}]) == 2
    assert "lack pred_relevant_windows, first at" in " ".join(capsys.readouterr().out.split())
    youtube = [{"qid": 1, "label": [[1]], "domain": "dog"}]
    assert run(tmp_path, youtube, [{"qid": 1, "pred_relevant_windows": []}], "--dataset",
               "youtube") == 2  # fmt: skip
    assert "this dataset needs it" in " ".join(capsys.readouterr().out.split())
    assert main(["--gt", str(tmp_path / "absent.jsonl"), "--pred", str(tmp_path / "x")]) == 2


def test_table_and_brief_helpers() -> None:
    flat = {"test/HL-min-Fair-mAP": 1.234, "test/MR-full-mAP": 12.346, "test/loss": 3.0}
    assert brief(flat, "qvhighlights", prefix="test/") == {
        "MR-full-mAP": 12.346,
        "HL-min-Fair-mAP": 1.234,
    }
    text = format_table(brief(flat, "qvhighlights", "test/"), title="run")
    assert "run" in text and "MR-full-mAP" in text and "12.35" in text and "\x1b" not in text
    assert "25.000" in format_table({"brief": {"mAP": 25.0}}, digits=3)
