"""MomentDataModule on real QVHighlights / Charades annotations with features the test writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vhd.datamodules import MomentDataModule
from vhd.datamodules.annotations import AnnotationError
from vhd.datamodules.features import FeatureError


def write_features(root: Path, records: list[dict], clips: int, video_dim: int = 6) -> None:
    rng = np.random.default_rng(0)
    (root / "video").mkdir(parents=True, exist_ok=True)
    (root / "text").mkdir(exist_ok=True)
    for record in records:
        np.savez(
            root / "video" / f"{record['vid']}.npz", features=rng.normal(size=(clips, video_dim))
        )
        np.savez(
            root / "text" / f"qid{record['qid']}.npz", last_hidden_state=rng.normal(size=(7, 4))
        )


def subset(path: Path, count: int, out: Path) -> list[dict]:
    records = [json.loads(line) for line in path.read_text().splitlines()[:count]]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(record) + "\n" for record in records))
    return records


def datamodule(root: Path, **kwargs) -> MomentDataModule:
    settings = dict(
        data_root=str(root),
        train_file="train.jsonl",
        val_file="train.jsonl",
        test_file="train.jsonl",
        video_feature_dirs=["video"],
        text_feature_dir="text",
        batch_size=3,
        eval_batch_size=3,
    )
    settings.update(kwargs)
    return MomentDataModule(**settings)


def test_qvhighlights_targets_match_official_construction(
    shared_data: Path, tmp_path: Path
) -> None:
    records = subset(
        shared_data / "qvhighlights" / "highlight_val_release.jsonl", 6, tmp_path / "train.jsonl"
    )
    write_features(tmp_path, records, clips=75)
    dm = datamodule(tmp_path)
    dm.setup("fit")
    item = dm.datasets["train"][0]
    record = records[0]
    assert item["video"].shape == (75, 6 + 2)  # + temporal endpoint features
    assert torch.allclose(item["video"][:, :6].norm(dim=1), torch.ones(75), atol=1e-4)
    assert item["video"][3, -2:].tolist() == pytest.approx([3 / 75, 4 / 75])
    (start, end), *_ = record["relevant_windows"]
    assert item["windows"][0].tolist() == pytest.approx(
        [(start + end) / 2 / 150, (end - start) / 150]
    )
    expected = np.zeros(75)
    expected[record["relevant_clip_ids"]] = np.sum(record["saliency_scores"], axis=1)
    assert item["saliency"].numpy() == pytest.approx(expected)
    order = np.argsort(np.sum(record["saliency_scores"], axis=1))  # the official tie order
    assert int(item["saliency_pos"][0]) == record["relevant_clip_ids"][order[-1]]
    assert int(item["saliency_neg"][0]) == record["relevant_clip_ids"][order[0]]
    assert int(item["saliency_neg"][1]) not in record["relevant_clip_ids"]

    batch = next(iter(dm.val_dataloader()))
    assert batch["video"].shape == (3, 75, 8) and batch["video_mask"].dtype == torch.bool
    assert batch["query"].shape == (3, 7, 4) and batch["query_mask"].all()
    assert batch["saliency_pos"].shape == (3, 2) and len(batch["windows"]) == 3
    assert batch["meta"][0]["annotation"]["qid"] == record["qid"]


def test_charades_window_saliency(shared_data: Path, tmp_path: Path) -> None:
    path = shared_data / "charades_sta" / "charades_sta_test_tvr_format.jsonl"
    records = subset(path, 3, tmp_path / "train.jsonl")
    write_features(tmp_path, records, clips=20)
    dm = datamodule(tmp_path, protocol="charades", clip_len=1.0)
    dm.setup("fit")
    item = dm.datasets["train"][0]
    duration, (start, end) = records[0]["duration"], records[0]["relevant_windows"][0]
    step = duration / 20
    first, last = int(start / step), min(int(end / step), 20) - 1
    assert item["saliency"].nonzero().flatten().tolist() == list(range(first, last + 1))


def test_unlabelled_split_yields_inputs_only(shared_data: Path, tmp_path: Path) -> None:
    records = subset(
        shared_data / "qvhighlights" / "highlight_test_release.jsonl", 2, tmp_path / "train.jsonl"
    )
    write_features(tmp_path, records, clips=75)
    dm = datamodule(tmp_path)
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    assert "windows" not in batch and "saliency" not in batch and "video" in batch


def test_errors_name_the_file_and_the_fix(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text('{"qid": 1, "vid": "a", "duration": 10}\nnot json\n')
    with pytest.raises(AnnotationError, match=r"train.jsonl:2"):
        datamodule(tmp_path).setup("fit")

    (tmp_path / "train.jsonl").write_text(
        '{"qid": 1, "vid": "a", "duration": 10, "relevant_windows": [[0, 4]]}\n'
    )
    with pytest.raises(FeatureError, match=r"no feature file for a in .*video"):
        dm = datamodule(tmp_path)
        dm.setup("fit")
        dm.datasets["train"][0]

    (tmp_path / "video").mkdir()
    (tmp_path / "text").mkdir()
    np.savez(tmp_path / "video" / "a.npz", features=np.full((5, 3), np.nan))
    np.savez(tmp_path / "text" / "qid1.npz", last_hidden_state=np.ones((2, 3)))
    dm = datamodule(tmp_path)
    dm.setup("fit")
    with pytest.raises(FeatureError, match=r"a.npz contains NaN"):
        dm.datasets["train"][0]
