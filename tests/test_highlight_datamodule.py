"""HighlightDataModule on the real YouTube Highlights / TVSum annotations and on synthetic data."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from vhd.datamodules import HighlightDataModule
from vhd.datamodules.annotations import AnnotationError
from vhd.datamodules.features import FeatureError
from vhd.datamodules.targets import sample_training_window, window_feasible, window_ok


def read_records(folder: Path, names: list[str]) -> dict[str, dict]:
    rows = (json.loads(line) for name in names for line in (folder / name).read_text().splitlines())
    return {row["vid"]: row for row in rows}


def write_features(root: Path, lengths: dict[str, int], audio: bool = True, shift: int = 0) -> None:
    """Video (dim 5) and audio (dim 3) files; the video's first column is the clip index."""
    rng = np.random.default_rng(0)
    for folder, dim in (("video_features", 5), ("audio_features", 3))[: 2 if audio else 1]:
        (root / folder).mkdir(parents=True, exist_ok=True)
        for vid, length in lengths.items():
            array = rng.normal(size=(length + shift, dim))
            array[:, 0] = np.arange(length + shift)
            np.savez(root / folder / f"{vid}.npz", features=array)


def datamodule(root: Path, data: Path, protocol: str, **kwargs) -> HighlightDataModule:
    """Annotations read in place from ``data`` (absolute paths), features from ``root``."""
    files = {
        "youtube": ["youtube_train.jsonl", "youtube_valid.jsonl"],
        "tvsum": ["tvsum_train.jsonl", "tvsum_val.jsonl"],
    }[protocol]
    settings = dict(
        data_root=str(root),
        protocol=protocol,
        annotation_files=[str(data / name) for name in files],
        splits_file=str(data / "splits.json"),
        audio_feature_dirs=["audio_features"],
        batch_size=4,
        eval_batch_size=4,
    )
    settings.update(kwargs)
    return HighlightDataModule(**settings)


@pytest.fixture
def youtube(shared_data: Path) -> Path:
    return shared_data / "youtube_highlights"


@pytest.fixture
def tvsum(shared_data: Path) -> Path:
    return shared_data / "tvsum"


def domain_lengths(data: Path, files: list[str], domain: str) -> dict[str, int]:
    splits = json.loads((data / "splits.json").read_text())[domain]
    records = read_records(data, files)
    return {
        vid: len(records[vid]["label"])
        for s in ("train", "val")
        for vid in splits[s]
        if vid in records
    }


def test_youtube_domain_targets_and_batches(
    youtube: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = ["youtube_train.jsonl", "youtube_valid.jsonl"]
    lengths = domain_lengths(youtube, files, "parkour")
    write_features(tmp_path, lengths)
    with caplog.at_level(logging.WARNING, logger="vhd.datamodules"):
        dm = datamodule(tmp_path, youtube, "youtube", domain="parkour")
        dm.setup("fit")
    assert "3 videos listed in" in caplog.text and "no annotation record" in caplog.text
    splits = json.loads((youtube / "splits.json").read_text())["parkour"]
    records = read_records(youtube, files)
    train = dm.datasets["train"]
    assert [v["record"]["vid"] for v in train.videos] == [
        v for v in splits["train"] if v in records
    ]
    assert len(dm.datasets["val"]) == len([v for v in splits["val"] if v in records])

    item = train[0]
    record = records[item["meta"]["vid"]]
    labels = np.array(record["label"])[:, 0]
    assert item["video"].shape == (len(labels), 5) and item["audio"].shape == (len(labels), 3)
    np.testing.assert_array_equal(item["labels"].numpy(), labels)
    np.testing.assert_array_equal(item["saliency"].numpy(), labels)
    order = np.argsort(labels)  # official: argsort(scores)[-1] / [0]
    assert item["saliency_pos"].tolist() == [order[-1]] and item["saliency_neg"].tolist() == [
        order[0]
    ]
    meta = item["meta"]
    assert meta["domain"] == "parkour" and meta["qid"] == meta["vid"] and meta["query"] == "parkour"
    assert meta["annotation"] == record and meta["num_clips"] == len(labels)

    batch = next(iter(dm.val_dataloader()))
    longest = max(m["num_clips"] for m in batch["meta"])
    assert batch["video"].shape == (4, longest, 5) and batch["audio"].shape == (4, longest, 3)
    assert batch["labels"].shape == batch["saliency"].shape == batch["video_mask"].shape
    assert batch["video_mask"].sum(1).tolist() == [m["num_clips"] for m in batch["meta"]]
    assert batch["saliency_pos"].shape == (4, 1) and batch["saliency_pos"].dtype == torch.long
    assert dm.protocol == "youtube" and dm.predict_split == "val"
    test_batch = next(iter(dm.test_dataloader()))  # the benchmark's test split is val
    assert [m["vid"] for m in test_batch["meta"]] == [m["vid"] for m in batch["meta"]]


def test_tvsum_scores_labels_and_pairs(tvsum: Path, tmp_path: Path) -> None:
    lengths = domain_lengths(tvsum, ["tvsum_train.jsonl", "tvsum_val.jsonl"], "BK")
    write_features(tmp_path, lengths)
    dm = datamodule(tmp_path, tvsum, "tvsum", domain="BK")
    dm.setup("validate")
    (item,) = [dm.datasets["val"][0]]
    record = read_records(tvsum, ["tvsum_val.jsonl"])["Se3oxnaPsz0"]
    ratings = np.array(record["label"])
    assert item["meta"]["vid"] == "Se3oxnaPsz0" and ratings.shape == (69, 20)
    # hand-computed for the first clips: sum over the 20 annotators of (rating - 1), x 12/80
    for clip in range(3):
        expected = sum(rating - 1 for rating in record["label"][clip]) * 12 / 80
        assert float(item["saliency"][clip]) == pytest.approx(expected)
    labels = item["labels"].numpy()
    assert labels.sum() == math.ceil(69 / 2)  # HPCL: the top 50% of clips are highlights
    means = ratings.mean(axis=1)
    assert means[labels == 1].min() >= means[labels == 0].max()
    order = np.argsort((ratings - 1).sum(axis=1))
    assert item["saliency_pos"].tolist() == [order[-1]] and item["saliency_neg"].tolist() == [
        order[0]
    ]
    assert item["meta"]["query"] == record["query"] and item["meta"]["domain"] == "BK"


def test_both_tvsum_protocols(tvsum: Path, tmp_path: Path) -> None:
    files = ["tvsum_train.jsonl", "tvsum_val.jsonl"]
    records = read_records(tvsum, files)
    write_features(tmp_path, {vid: len(r["label"]) for vid, r in records.items()}, audio=False)
    splits = json.loads((tvsum / "splits.json").read_text())
    common = dict(audio_feature_dirs=None)

    dm = datamodule(tmp_path, tvsum, "tvsum", **common)  # all ten domains, 4 train / 1 val each
    dm.setup("fit")
    assert len(dm.datasets["train"]) == 40 and len(dm.datasets["val"]) == 10
    dm = datamodule(tmp_path, tvsum, "tvsum", domain="VT", **common)
    dm.setup("fit")
    assert [v["record"]["vid"] for v in dm.datasets["train"].videos] == splits["VT"]["train"]
    assert [v["record"]["vid"] for v in dm.datasets["val"].videos] == splits["VT"]["val"]

    dm = datamodule(tmp_path, tvsum, "tvsum", split_protocol="longest_two", **common)
    dm.setup("fit")
    assert len(dm.datasets["train"]) == 20 and len(dm.datasets["val"]) == 30
    dm = datamodule(tmp_path, tvsum, "tvsum", domain="BK", split_protocol="longest_two", **common)
    dm.setup("fit")
    # BK durations: oDXZc0tZe04 190, WxtbjNsCQ8A 132, uGu_10sucQo 83, Se3oxnaPsz0 69, EE-bNr36nyA 49
    assert [v["record"]["vid"] for v in dm.datasets["train"].videos] == [
        "oDXZc0tZe04",
        "WxtbjNsCQ8A",
    ]
    assert {v["record"]["vid"] for v in dm.datasets["val"].videos} == {
        "uGu_10sucQo", "Se3oxnaPsz0", "EE-bNr36nyA"
    }  # fmt: skip
    with pytest.raises(ValueError, match=r"longest_two.*TVSum"):
        datamodule(tmp_path, tvsum, "youtube", split_protocol="longest_two")


def test_training_window_rule() -> None:
    torch.manual_seed(0)
    labels = np.zeros(100)
    labels[40:50] = 1  # consecutive windows with >= 7 positives exist
    for _ in range(20):
        clips = sample_training_window(labels, 20)
        assert (np.diff(clips) == 1).all() and len(clips) == 20
        positives = int(labels[clips].sum())
        assert window_ok(positives, 20 - positives, 0.5) and positives >= 7
    sparse = np.zeros(100)
    sparse[::12] = 1  # 9 isolated positives: no consecutive window reaches 1:2
    assert window_feasible(sparse, 20, 0.5)
    for _ in range(20):
        clips = sample_training_window(sparse, 20)
        positives = int(sparse[clips].sum())
        assert len(clips) == 20 == len(set(clips.tolist())) and (np.diff(clips) > 0).all()
        assert positives == 7  # the fewest swaps that reach positives:negatives >= 1:2
    everything = np.ones(60)
    everything[5] = 0
    clips = sample_training_window(everything, 20)
    assert 5 in clips and len(clips) == 20  # a window of positives gets one negative
    assert sample_training_window(np.array([0, 1, 0]), 20).tolist() == [0, 1, 2]  # short: whole
    hopeless = np.zeros(50)
    hopeless[3] = 1
    assert not window_feasible(hopeless, 20, 0.5)
    assert int(hopeless[sample_training_window(hopeless, 20)].sum()) == 1  # as close as it gets


def test_hpcl_training_windows_in_batches(
    youtube: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lengths = domain_lengths(youtube, ["youtube_train.jsonl", "youtube_valid.jsonl"], "skating")
    write_features(tmp_path, lengths)
    with caplog.at_level(logging.WARNING, logger="vhd.datamodules"):
        dm = datamodule(tmp_path, youtube, "youtube", domain="skating", train_window=20)
        dm.setup("fit")
    assert "train_window=20" in caplog.text  # short or infeasible videos are reported
    torch.manual_seed(0)
    batch = next(iter(dm.train_dataloader()))
    assert batch["video"].shape[1] == 20 and batch["labels"].shape == (4, 20)
    for row, meta in enumerate(batch["meta"]):
        clips = meta["clip_ids"]
        assert len(clips) == meta["num_clips"] == int(batch["video_mask"][row].sum())
        assert clips == sorted(clips)
        valid = batch["video_mask"][row]
        assert batch["video"][row, valid, 0].tolist() == clips  # the features of those clips
        expected = np.array(meta["annotation"]["label"])[clips, 0]
        np.testing.assert_array_equal(batch["labels"][row, valid].numpy(), expected)
        positives = int(expected.sum())
        if window_feasible(np.array(meta["annotation"]["label"])[:, 0], 20, 0.5):
            assert window_ok(positives, len(clips) - positives, 0.5)
    val = next(iter(dm.val_dataloader()))
    assert "clip_ids" not in val["meta"][0]  # evaluation sees whole videos


@pytest.mark.parametrize("style", ["youtube", "tvsum"])
def test_synthetic_highlights(tmp_path: Path, style: str) -> None:
    dm = HighlightDataModule(
        data_root=str(tmp_path / style),
        protocol=style,
        audio_feature_dirs=["audio_features"],
        train_window=20,
        synthetic={"seed": 0, "size": "tiny"},
        feature_cache="memory",
        batch_size=4,
    )
    dm.prepare_data()
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["video"].shape[-1] == 256 and batch["audio"].shape[-1] == 64
    assert set(batch) >= {"labels", "saliency", "saliency_pos", "saliency_neg", "video_mask"}
    domains = {"youtube": {"dog", "gymnastics", "parkour"}, "tvsum": {"BK", "BT", "DS"}}[style]
    assert {m["domain"] for v in [dm.datasets["val"]] for m in [v[0]["meta"]]} <= domains


def test_length_mismatches(youtube: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lengths = domain_lengths(youtube, ["youtube_train.jsonl", "youtube_valid.jsonl"], "parkour")
    write_features(tmp_path, lengths, shift=-2)
    with pytest.raises(FeatureError, match=r"records have features shorter.*parkour|feature clips"):
        datamodule(tmp_path, youtube, "youtube", domain="parkour").setup("fit")
    with caplog.at_level(logging.WARNING, logger="vhd.datamodules"):
        dm = datamodule(
            tmp_path, youtube, "youtube", domain="parkour", on_short_features="truncate"
        )
        dm.setup("fit")
    assert f"{len(dm.datasets['train'])} records had labels cut" in caplog.text
    item = dm.datasets["train"][0]
    assert len(item["labels"]) == len(item["meta"]["annotation"]["label"]) - 2
    write_features(tmp_path, lengths, shift=3)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vhd.datamodules"):
        dm = datamodule(tmp_path, youtube, "youtube", domain="parkour")
        dm.setup("fit")
    assert "more feature clips than labels" in caplog.text
    item = dm.datasets["train"][0]
    assert len(item["video"]) == len(item["meta"]["annotation"]["label"])


def test_errors_name_the_file_the_record_and_the_fix(
    youtube: Path, tvsum: Path, tmp_path: Path
) -> None:
    with pytest.raises(
        AnnotationError, match=r"unknown youtube domain 'cats'.*'dog'.*data\.domain"
    ):
        datamodule(tmp_path, youtube, "youtube", domain="cats").setup("fit")
    with pytest.raises(FeatureError, match=r"video feature files are missing .*youtube_train"):
        datamodule(tmp_path, youtube, "youtube", domain="dog").setup("fit")
    with pytest.raises(ValueError, match=r"unknown predict_split 'dev'"):
        datamodule(tmp_path, youtube, "youtube", predict_split="dev")
    with pytest.raises(ValueError, match=r"unknown highlight protocol 'qv'"):
        HighlightDataModule(data_root=str(tmp_path), protocol="qv")
    # TVSum annotations read as YouTube: the label format says so
    write_features(tmp_path, {vid: 300 for vid in read_records(tvsum, ["tvsum_val.jsonl"])})
    wrong = datamodule(
        tmp_path, tvsum, "youtube", annotation_files=[str(tvsum / "tvsum_val.jsonl")]
    )  # fmt: skip
    with pytest.raises(
        AnnotationError, match=r"tvsum_val\.jsonl:\d+: vid=.* label must be one \[0\]"
    ):
        wrong.setup("validate")

    record = {"qid": "a", "vid": "a", "duration": 4, "label": [[0], [1]], "domain": "dog"}
    (tmp_path / "ann.jsonl").write_text(json.dumps(record) + "\n" + json.dumps(record) + "\n")
    (tmp_path / "splits.json").write_text(json.dumps({"dog": {"train": ["a"], "val": []}}))
    write_features(tmp_path, {"a": 2})
    local = dict(annotation_files=["ann.jsonl"], splits_file="splits.json")
    with pytest.raises(AnnotationError, match=r"ann\.jsonl:2: vid='a' already annotated at .*:1"):
        datamodule(tmp_path, youtube, "youtube", **local).setup("fit")
    (tmp_path / "ann.jsonl").write_text(json.dumps(record) + "\n")
    dm = datamodule(tmp_path, youtube, "youtube", **local)
    with pytest.raises(AnnotationError, match=r"val split of youtube domain all is empty"):
        dm.setup("fit")
    (tmp_path / "splits.json").write_text(json.dumps({"cat": {"train": ["a"], "val": ["a"]}}))
    with pytest.raises(AnnotationError, match=r"ann\.jsonl:1: vid='a' has domain 'dog' but"):
        datamodule(tmp_path, youtube, "youtube", **local).setup("fit")
    (tmp_path / "splits.json").write_text('{"dog": [1, 2}')
    with pytest.raises(AnnotationError, match=r"splits\.json:1:\d+: not valid JSON"):
        datamodule(tmp_path, youtube, "youtube", **local).setup("fit")


def write_timed_features(root: Path, rows: dict[str, int], step: float) -> None:
    """Video features every ``step`` s whose first column is each row's centre time."""
    (root / "video_features").mkdir(parents=True, exist_ok=True)
    for vid, count in rows.items():
        array = np.zeros((count, 5), dtype=np.float32)
        array[:, 0] = (np.arange(count) + 0.5) * step
        np.savez(root / "video_features" / f"{vid}.npz", features=array)


def test_features_every_fifth_of_a_second_pool_onto_tvsum_clips(
    tvsum: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clips = domain_lengths(tvsum, ["tvsum_train.jsonl", "tvsum_val.jsonl"], "BK")
    write_timed_features(tmp_path, {vid: 10 * n + 3 for vid, n in clips.items()}, 0.2)
    timed = dict(domain="BK", audio_feature_dirs=None, feature_step=0.2)
    dm = datamodule(tmp_path, tvsum, "tvsum", **timed)
    assert dm.feature_clip_len() == (0.2, "data.feature_step")  # what the manifest must say
    with caplog.at_level(logging.WARNING, logger="vhd.datamodules"):
        dm.setup("validate")
    assert "unlabelled tail clips are cut" in caplog.text  # the 3 rows past the last clip
    for index in range(len(dm.datasets["val"])):
        item = dm.datasets["val"][index]
        n = clips[item["meta"]["vid"]]
        assert item["video"].shape == (n, 5) and item["meta"]["num_clips"] == len(item["labels"])
        # clip i is [2i, 2i + 2) s: the mean of its ten row centres is 2i + 1
        np.testing.assert_allclose(item["video"][:, 0], 2 * np.arange(n) + 1, atol=1e-4)
    rows = datamodule(tmp_path, tvsum, "tvsum", **timed, pool_features=False)
    rows.setup("validate")
    item = rows.datasets["val"][0]
    n = clips[item["meta"]["vid"]]
    assert item["video"].shape == (10 * n, 5) and len(item["labels"]) == n
    assert item["meta"]["clip_rows"][:2] == [[0, 10], [10, 20]] and item["meta"]["feature_step"]


def test_youtube_clips_take_the_rows_of_their_frame_ranges(youtube: Path, tmp_path: Path) -> None:
    records = read_records(youtube, ["youtube_train.jsonl", "youtube_valid.jsonl"])
    lengths = domain_lengths(youtube, ["youtube_train.jsonl", "youtube_valid.jsonl"], "surfing")
    # as vhd extract cuts them: ceil(duration / 0.2) rows; 2 s per clip would overrun the video
    rows = {vid: math.ceil(records[vid]["duration"] / 0.2) for vid in lengths}
    assert any(2.0 * lengths[vid] > records[vid]["duration"] + 1 for vid in lengths)
    write_timed_features(tmp_path, rows, 0.2)
    dm = datamodule(
        tmp_path, youtube, "youtube", domain="surfing", audio_feature_dirs=None,
        feature_step=0.2, pool_features=False,
    )  # fmt: skip
    dm.setup("validate")
    for index in range(len(dm.datasets["val"])):
        item = dm.datasets["val"][index]
        record = records[item["meta"]["vid"]]
        assert item["meta"]["num_clips"] == len(record["label"])  # every clip, none cut
        centres = item["video"][:, 0].numpy()
        for (first, end), (start, stop) in zip(
            item["meta"]["clip_rows"], record["clip"], strict=True
        ):
            inside = (centres >= start / record["fps"]) & (centres < stop / record["fps"])
            assert end > first and inside[first:end].all()
            assert inside.sum() == end - first  # exactly the rows whose centre is in it
