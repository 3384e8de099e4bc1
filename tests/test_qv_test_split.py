"""Scoring the QVHighlights test split offline with ``highlight_test_with_gt.jsonl``, the test
labels the dataset's authors released after the Codalab server shut down: ``vhd eval`` against
the file (exact figures for submissions built from it), and ``vhd test`` on
``configs/videolights_qv.yaml`` with ``test_file`` pointing at it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from vhd.cli import main
from vhd.lightning_cli import VHDCLI
from vhd.models.base import VHDModule

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TEST_LABELS = "highlight_test_with_gt.jsonl"
MAX_PRED_WINDOWS = 10  # Moment-DETR scores the first 10 listed windows
HL_LEVELS = {"Fair": 2, "Good": 3, "VeryGood": 4}
QV_VIDEO = {"slowfast_features": 2304, "clip_features": 512, "blip_video_features": 768}
QV_TEXT = {"clip_text_features": 512, "blip_aug_text_features_openai": 768}


@pytest.fixture(scope="module")
def test_labels(shared_data: Path) -> Path:
    return shared_data / "qvhighlights" / TEST_LABELS


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open() if line.strip()]


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def submission(records: list[dict], shift: float = 0.0) -> list[dict]:
    """Every labelled window moved by ``shift`` seconds (score 1, file order), and per clip the
    highest of its three ratings (0 for unrated clips)."""
    rows = []
    for record in records:
        saliency = [0.0] * int(record["duration"] / 2)
        rated = zip(record["relevant_clip_ids"], record["saliency_scores"], strict=True)
        for clip, ratings in rated:
            saliency[clip] = float(max(ratings))
        windows = [[start + shift, end + shift, 1.0] for start, end in record["relevant_windows"]]
        inputs = {key: record[key] for key in ("qid", "vid", "query")}
        rows.append({**inputs, "pred_relevant_windows": windows, "pred_saliency_scores": saliency})
    return rows


def evaluate(gt: Path, rows: list[dict], tmp_path: Path) -> dict[str, float]:
    pred = write(tmp_path / "hl_test_submission.jsonl", rows)
    out = tmp_path / "metrics.json"
    assert main(["eval", "--gt", str(gt), "--pred", str(pred), "--out", str(out)]) == 0
    return json.loads(out.read_text())["brief"]


def iou(a: list[float], b: list[float]) -> float:
    overlap = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    return overlap / (max(a[1], b[1]) - min(a[0], b[0]))


def percent(flags: list[bool]) -> float:
    return round(100 * sum(flags) / len(flags), 2)


def test_eval_scores_the_labels_themselves_as_the_official_script(
    test_labels: Path, tmp_path: Path
) -> None:
    records = read(test_labels)
    assert len(records) == 1542  # the whole test split, every record labelled
    brief = evaluate(test_labels, submission(records), tmp_path)
    assert brief["MR-full-R1@0.5"] == brief["MR-full-R1@0.7"] == 100.0
    # every listed window is a hit; only queries with more than 10 windows miss some (recall)
    recall = [min(1.0, MAX_PRED_WINDOWS / len(r["relevant_windows"])) for r in records]
    expected_map = round(100 * sum(recall) / len(records), 2)
    assert expected_map < 100  # 12 test queries have more than 10 windows
    assert brief["MR-full-mAP"] == brief["MR-full-mAP@0.75"] == expected_map
    for level, threshold in HL_LEVELS.items():  # the top clip is one rated highest
        top = [max(map(max, r["saliency_scores"])) >= threshold for r in records]
        assert brief[f"HL-min-{level}-Hit1"] == percent(top), level


def test_eval_scores_shifted_windows_lower(test_labels: Path, tmp_path: Path) -> None:
    records = read(test_labels)
    oracle = evaluate(test_labels, submission(records), tmp_path)
    shifted = evaluate(test_labels, submission(records, shift=4.0), tmp_path)
    top_iou = [
        max(iou([s + 4.0, e + 4.0], window) for window in r["relevant_windows"])
        for r in records
        for s, e in r["relevant_windows"][:1]
    ]
    for threshold in (0.5, 0.7):
        expected = percent([value >= threshold for value in top_iou])
        assert shifted[f"MR-full-R1@{threshold}"] == expected < 100
    assert shifted["MR-full-mAP"] < oracle["MR-full-mAP"] - 10
    for level in HL_LEVELS:  # same saliency scores
        assert shifted[f"HL-min-{level}-mAP"] == oracle[f"HL-min-{level}-mAP"]


def test_eval_names_the_labels_when_given_the_unlabelled_release(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    release = shared_data / "qvhighlights" / "highlight_test_release.jsonl"
    pred = write(
        tmp_path / "pred.jsonl", submission(read(shared_data / "qvhighlights" / TEST_LABELS))
    )
    assert main(["eval", "--gt", str(release), "--pred", str(pred)]) == 2
    message = " ".join(capsys.readouterr().out.split())
    assert "no record has relevant_windows or saliency_scores" in message
    assert f"score the QVHighlights test split against {TEST_LABELS}" in message


# -- vhd test on the QVHighlights config ---------------------------------------------------------
def official_layout(root: Path, labelled: list[dict], train: list[dict]) -> Path:
    """The release's layout with random features: train/val files, the test release (inputs only)
    and the test labels beside it."""
    root.mkdir()
    write(root / "highlight_train_release.jsonl", train)
    write(root / "highlight_val_release.jsonl", train)
    inputs = [{k: r[k] for k in ("qid", "query", "duration", "vid")} for r in labelled]
    write(root / "highlight_test_release.jsonl", inputs)
    write(root / TEST_LABELS, labelled)
    rng = np.random.default_rng(0)
    for record in (*train, *labelled):
        clips = min(75, math.ceil(record["duration"] / 2))
        for folder, dim in QV_VIDEO.items():
            (root / folder).mkdir(exist_ok=True)
            features = rng.standard_normal((clips, dim)).astype(np.float32)
            np.savez(root / folder / f"{record['vid']}.npz", features=features)
        for folder, dim in QV_TEXT.items():
            (root / folder).mkdir(exist_ok=True)
            features = rng.standard_normal((len(record["query"].split()) + 2, dim))
            np.savez(root / folder / f"qid{record['qid']}.npz", last_hidden_state=features)
    return root


def qv_args(root: Path, run_dir: Path, test_file: str | None = None) -> list[str]:
    args = [
        f"--config={CONFIGS / 'videolights_qv.yaml'}",
        f"--data.init_args.data_root={root}",
        "--data.init_args.num_workers=0",
        "--data.init_args.pin_memory=false",
        "--data.init_args.eval_batch_size=3",
        f"--trainer.default_root_dir={run_dir}",
        f"--trainer.logger.init_args.save_dir={run_dir}",
    ]
    return args + ([f"--data.init_args.test_file={test_file}"] if test_file else [])


def test_vhd_test_scores_the_test_labels(
    shared_data: Path, test_labels: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labelled = read(test_labels)[:5]
    train = read(shared_data / "qvhighlights" / "highlight_val_release.jsonl")[:2]
    root = official_layout(tmp_path / "qvhighlights", labelled, train)
    run_dir = tmp_path / "run"

    # the config's default test file has no labels: one error line that names the fix
    assert main(["test", *qv_args(root, run_dir)]) == 2
    message = " ".join(capsys.readouterr().err.split())
    assert "highlight_test_release.jsonl has no labels (relevant_windows)" in message
    assert f"set data.test_file={TEST_LABELS}" in message

    # with the labels, `vhd test` scores the model's predictions of the test split: the
    # figures `vhd eval` gives its submission against the same labels (an untrained model, same
    # seed, so the same weights in both runs)
    cli = VHDCLI(VHDModule, subclass_mode_model=True, subclass_mode_data=True,
                 args=["test", *qv_args(root, run_dir, TEST_LABELS)])  # fmt: skip
    logged = {k.removeprefix("test/"): float(v) for k, v in cli.trainer.callback_metrics.items()}
    assert main(["predict", *qv_args(root, run_dir, TEST_LABELS)]) == 0
    written = read(run_dir / "hl_test_submission.jsonl")
    assert [row["qid"] for row in written] == [record["qid"] for record in labelled]
    brief = evaluate(root / TEST_LABELS, written, tmp_path)
    assert len(brief) == 14  # MR and HL figures
    for key, value in brief.items():
        assert logged[key] == pytest.approx(value, abs=0.005 + 1e-9), key
