"""MomentDataModule on real QVHighlights, Charades-STA and TACoS annotations."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from vhd.datamodules import MomentDataModule
from vhd.datamodules.annotations import AnnotationError
from vhd.datamodules.features import FeatureError


def write_features(
    root: Path,
    records: list[dict],
    clips: int | None = None,
    video_dim: int = 6,
    clip_len: float = 2.0,
    prefix: str = "qid",
) -> None:
    """Video files of ``clips`` rows (default: what the duration implies) and 7-token queries."""
    rng = np.random.default_rng(0)
    (root / "video").mkdir(parents=True, exist_ok=True)
    (root / "text").mkdir(exist_ok=True)
    for record in records:
        count = clips or math.ceil(record["duration"] / clip_len)
        np.savez(
            root / "video" / f"{record['vid']}.npz", features=rng.normal(size=(count, video_dim))
        )
        np.savez(
            root / "text" / f"{prefix}{record['qid']}.npz",
            last_hidden_state=rng.normal(size=(7, 4)),
            pooler_output=rng.normal(size=4),
        )


def subset(path: Path, lines: list[int] | int, out: Path) -> list[dict]:
    rows = path.read_text().splitlines()
    chosen = range(lines) if isinstance(lines, int) else lines
    records = [json.loads(rows[index]) for index in chosen]
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


def first_item(dm: MomentDataModule, index: int = 0) -> dict:
    dm.setup("fit")
    return dm.datasets["train"][index]


@pytest.fixture
def qv_val(shared_data: Path) -> Path:
    return shared_data / "qvhighlights" / "highlight_val_release.jsonl"


def test_qvhighlights_targets_match_official_construction(qv_val: Path, tmp_path: Path) -> None:
    records = subset(qv_val, 6, tmp_path / "train.jsonl")
    write_features(tmp_path, records, clips=75)
    dm = datamodule(tmp_path)
    item = first_item(dm)
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
    assert int(item["saliency_pos"][1]) in record["relevant_clip_ids"]
    assert int(item["saliency_neg"][1]) not in record["relevant_clip_ids"]

    batch = next(iter(dm.val_dataloader()))
    assert batch["video"].shape == (3, 75, 8) and batch["video_mask"].dtype == torch.bool
    assert batch["query"].shape == (3, 7, 4) and batch["query_mask"].all()
    assert batch["saliency_pos"].shape == (3, 2) and len(batch["windows"]) == 3
    assert batch["meta"][0]["annotation"] == record  # the raw record, no private keys
    assert batch["meta"][0]["num_clips"] == 75 and batch["meta"][0]["clip_len"] == 2.0


def test_hand_computed_windows_and_saliency_of_a_short_video(qv_val: Path, tmp_path: Path) -> None:
    (record,) = subset(qv_val, [8], tmp_path / "train.jsonl")  # qid 8737, duration 126
    write_features(tmp_path, [record], clips=70)  # features a little longer than the 63 clips
    item = first_item(datamodule(tmp_path))
    assert record["qid"] == 8737 and item["video"].shape[0] == 70
    span = 70 * 2.0  # official: seconds / (ctx_l x clip_len), not / duration
    expected = [[(s + e) / 2 / span, (e - s) / span] for s, e in record["relevant_windows"]]
    np.testing.assert_allclose(item["windows"].numpy(), expected, rtol=1e-6)
    assert item["saliency"].shape == (70,)
    for clip, scores in zip(record["relevant_clip_ids"], record["saliency_scores"], strict=True):
        assert float(item["saliency"][clip]) == sum(scores)


def test_more_than_max_windows_keeps_a_random_five(qv_val: Path, tmp_path: Path) -> None:
    (record,) = subset(qv_val, [65], tmp_path / "train.jsonl")  # 7 windows
    write_features(tmp_path, [record], clips=75)
    torch.manual_seed(0)
    item = first_item(datamodule(tmp_path))
    allowed = {
        (round((s + e) / 300, 5), round((e - s) / 150, 5)) for s, e in record["relevant_windows"]
    }
    got = {(round(c, 5), round(w, 5)) for c, w in item["windows"].tolist()}
    assert len(record["relevant_windows"]) == 7 and len(got) == 5 and got <= allowed


def test_every_clip_relevant_copies_the_first_pair(qv_val: Path, tmp_path: Path) -> None:
    (record,) = subset(qv_val, [31], tmp_path / "train.jsonl")  # all 75 clips relevant
    write_features(tmp_path, [record], clips=75)
    item = first_item(datamodule(tmp_path))
    assert item["saliency_pos"][1] == item["saliency_pos"][0]
    assert item["saliency_neg"][1] == item["saliency_neg"][0]


def test_charades_window_saliency_and_pairs(shared_data: Path, tmp_path: Path) -> None:
    path = shared_data / "charades_sta" / "charades_sta_test_tvr_format.jsonl"
    records = subset(path, 3, tmp_path / "train.jsonl")
    write_features(tmp_path, records, clip_len=1.0)
    dm = datamodule(tmp_path, protocol="charades", clip_len=1.0)
    for index, record in enumerate(records):
        item = first_item(dm, index)
        clips = math.ceil(record["duration"])
        duration, (start, end) = record["duration"], record["relevant_windows"][0]
        step = duration / clips  # official: duration / ctx_l seconds per clip
        last = min(int(end / step), clips) - 1
        first = min(int(start / step), last)
        inside = list(range(first, last + 1))
        assert item["saliency"].nonzero().flatten().tolist() == inside
        positives, negatives = item["saliency_pos"].tolist(), item["saliency_neg"].tolist()
        assert set(positives) <= set(inside) and len(set(positives)) == min(2, len(inside))
        assert not set(negatives) & set(inside) and len(set(negatives)) == 2


def test_tacos_string_qids_unprefixed_text_and_no_length_cut(
    shared_data: Path, tmp_path: Path
) -> None:
    records = subset(shared_data / "tacos" / "test.jsonl", 2, tmp_path / "train.jsonl")
    write_features(tmp_path, records, prefix="")
    dm = datamodule(tmp_path, protocol="tacos", max_v_l=None, text_file_prefix="")
    item = first_item(dm)
    assert item["meta"]["qid"] == "s30-d52_0"
    assert item["video"].shape[0] == math.ceil(records[0]["duration"] / 2) == 125  # > 75: not cut
    (start, end), span = records[0]["relevant_windows"][0], 125 * 2.0
    expected = [(start + end) / 2 / span, (end - start) / span]
    np.testing.assert_allclose(item["windows"][0].numpy(), expected, rtol=1e-6)


def test_feature_types_are_concatenated_and_cut_to_the_shortest(
    qv_val: Path, tmp_path: Path
) -> None:
    records = subset(qv_val, 2, tmp_path / "train.jsonl")
    write_features(tmp_path, records, clips=75)
    rng = np.random.default_rng(1)
    for folder, rows, dim in (("video2", 74, 3), ("audio", 80, 5)):
        (tmp_path / folder).mkdir()
        for record in records:
            np.savez(
                tmp_path / folder / f"{record['vid']}.npz", features=rng.normal(size=(rows, dim))
            )
    (tmp_path / "text2").mkdir()
    for record in records:
        np.savez(tmp_path / "text2" / f"qid{record['qid']}.npz", pooler_output=rng.normal(size=9))
    dm = datamodule(
        tmp_path,
        video_feature_dirs=["video", "video2"],
        audio_feature_dirs=["audio"],
        text_feature_dir=["text2"],
        text_feature_key="pooler_output",
        on_short_features="truncate",  # the first record rates clip 74
    )
    item = first_item(dm)
    assert item["video"].shape == (74, 6 + 3 + 2) and item["audio"].shape == (74, 5)
    assert item["query"].shape == (1, 9)
    assert item["video"][-1, -1] == pytest.approx(1.0)  # TEF computed on the cut length
    batch = next(iter(dm.train_dataloader()))
    assert batch["audio"].shape == (2, 74, 5) and batch["audio_mask"].all()


def test_unlabelled_split_yields_inputs_only(shared_data: Path, tmp_path: Path) -> None:
    test_file = shared_data / "qvhighlights" / "highlight_test_release.jsonl"
    records = subset(test_file, 2, tmp_path / "train.jsonl")
    write_features(tmp_path, records, clips=75)
    dm = datamodule(tmp_path, predict_split="test")
    dm.setup("predict")  # testing on it is an error: tests/test_qv_test_split.py
    batch = next(iter(dm.predict_dataloader()))
    assert "windows" not in batch and "saliency" not in batch and "video" in batch
    assert [meta["qid"] for meta in batch["meta"]] == [record["qid"] for record in records]


def test_short_features_raise_or_truncate_with_a_count(
    qv_val: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    records = subset(qv_val, 3, tmp_path / "train.jsonl")
    write_features(tmp_path, records, clips=40)  # 80 s of 150 s videos
    with pytest.raises(FeatureError, match=r"3 records have features shorter.*train\.jsonl:1.*"):
        datamodule(tmp_path).setup("fit")
    with caplog.at_level(logging.WARNING, logger="vhd.datamodules"):
        dm = datamodule(tmp_path, on_short_features="truncate")
        dm.setup("fit")
    assert "records had labels cut to their features" in caplog.text
    kept = [r for r in records if min(s for s, _ in r["relevant_windows"]) < 80]
    assert len(dm.datasets["train"]) == len(kept)  # the rest lost every window (and are logged)
    item = dm.datasets["train"][0]
    relevant = [c for c in kept[0]["relevant_clip_ids"] if c < 40]
    assert (
        item["saliency"].shape == (40,)
        and item["saliency"].nonzero().flatten().tolist() == relevant
    )
    centers, widths = item["windows"].T
    assert ((centers + widths / 2) <= 1 + 1e-6).all()
    assert all(min(s for s, _ in r["relevant_windows"]) >= 2 for r in records)
    write_features(tmp_path, records, clips=1)  # every window now starts after the features
    with pytest.raises(AnnotationError, match=r"train\.jsonl: no record is left after fitting"):
        datamodule(tmp_path, on_short_features="truncate").setup("fit")


def test_synthetic_data_with_each_cache(tmp_path: Path) -> None:
    items = {}
    for cache in ("none", "memory", "mmap"):
        dm = MomentDataModule(
            data_root=str(tmp_path / "moments"),
            train_file="annotations/train.jsonl",
            val_file="annotations/val.jsonl",
            test_file="annotations/test.jsonl",
            video_feature_dirs=["video_features"],
            text_feature_dir="text_features",
            feature_cache=cache,
            synthetic={"seed": 0, "size": "tiny"},
        )
        dm.prepare_data()
        dm.setup("fit")
        torch.manual_seed(0)
        items[cache] = dm.datasets["train"][1]
        batch = next(iter(dm.val_dataloader()))
        assert batch["video"].shape[-1] == 256 + 2 and batch["query"].shape[-1] == 128
    assert (tmp_path / "moments" / ".feature_cache").is_dir()
    for cache in ("memory", "mmap"):
        for key in ("video", "query", "saliency", "saliency_pos", "saliency_neg"):
            torch.testing.assert_close(items[cache][key], items["none"][key])


def test_errors_name_the_file_the_record_and_the_fix(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text('{"qid": 1, "vid": "a", "duration": 10}\nnot json\n')
    with pytest.raises(AnnotationError, match=r"train\.jsonl:2: not valid JSON"):
        datamodule(tmp_path).setup("fit")

    (tmp_path / "train.jsonl").write_text(
        '{"qid": 1, "vid": "a", "duration": 10, "relevant_windows": [[0, 4]]}\n'
        '{"qid": 2, "vid": "a", "duration": 10}\n'
    )
    with pytest.raises(AnnotationError, match=r"train\.jsonl:2: qid=2 has no relevant_windows"):
        datamodule(tmp_path).setup("fit")

    (tmp_path / "train.jsonl").write_text(
        '{"qid": 1, "vid": "a", "duration": 10, "relevant_windows": [[0, 4]]}\n'
        '{"qid": 2, "vid": "b", "duration": 10, "relevant_windows": [[5, 4]]}\n'
    )
    with pytest.raises(FeatureError, match=r"2 of 2 video feature files are missing from .*video "):
        datamodule(tmp_path).setup("fit")
    with pytest.raises(FeatureError, match=r"qid=1 vid='a' \(.*train\.jsonl:1\).*Extract"):
        datamodule(tmp_path).setup("fit")

    (tmp_path / "video").mkdir()
    (tmp_path / "text").mkdir()
    for vid in "ab":
        np.savez(tmp_path / "video" / f"{vid}.npz", features=np.ones((5, 3)))
    np.savez(tmp_path / "text" / "qid1.npz", last_hidden_state=np.ones((2, 3)))
    with pytest.raises(FeatureError, match=r"1 of 2 text feature files .*qid=2 vid='b'"):
        datamodule(tmp_path).setup("fit")
    np.savez(tmp_path / "text" / "qid2.npz", last_hidden_state=np.ones((2, 3)))
    with pytest.raises(AnnotationError, match=r"train\.jsonl:2: qid=2 relevant_windows must be"):
        datamodule(tmp_path).setup("fit")

    (tmp_path / "train.jsonl").write_text(
        '{"qid": 1, "vid": "a", "duration": 10, "relevant_windows": [[0, 4]]}\n'
    )
    np.savez(tmp_path / "video" / "a.npz", features=np.full((5, 3), np.nan))
    nan_files = r"1 feature files contain NaN or inf values: \S+a\.npz \(5 of 5 rows\)"
    with pytest.raises(FeatureError, match=nan_files):
        datamodule(tmp_path).setup("fit")  # every value is checked once, at setup
    with pytest.raises(FeatureError, match=nan_files):
        datamodule(tmp_path, feature_cache="memory").setup("fit")  # while the cache is built

    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(AnnotationError, match=r"empty\.jsonl holds no records"):
        datamodule(tmp_path, train_file="empty.jsonl").setup("fit")
    with pytest.raises(ValueError, match=r"unknown predict_split 'dev'"):
        datamodule(tmp_path, predict_split="dev")
    with pytest.raises(ValueError, match=r"no val_file configured .*data\.val_file"):
        datamodule(tmp_path, val_file=None).setup("validate")
