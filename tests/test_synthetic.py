"""The embedded synthetic data: real formats, determinism, and planted learnable structure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vhd.datamodules.synthetic import World, ensure_synthetic, generate, main, resolve_config


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def features(path: Path, key: str = "features") -> np.ndarray:
    with np.load(path, allow_pickle=False) as archive:
        return archive[key]


@pytest.fixture(scope="module")
def moments(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate("moments", tmp_path_factory.mktemp("m"), seed=3, size="tiny")


@pytest.fixture(scope="module")
def highlights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate("highlights", tmp_path_factory.mktemp("h"), seed=3, size="tiny")


def test_moments_match_the_qvhighlights_format(moments: Path, shared_data: Path) -> None:
    real = jsonl(shared_data / "qvhighlights" / "highlight_val_release.jsonl")[0]
    for split in ("train", "val", "test"):
        for record in jsonl(moments / "annotations" / f"{split}.jsonl"):
            assert set(record) == set(real)
            assert isinstance(record["qid"], int) and isinstance(record["vid"], str)
            clips = round(record["duration"] / 2)
            ids = [
                c for s, e in record["relevant_windows"] for c in range(int(s // 2), int(e // 2))
            ]
            assert record["relevant_clip_ids"] == ids
            assert all(0 <= s < e <= record["duration"] for s, e in record["relevant_windows"])
            assert len(record["saliency_scores"]) == len(ids)
            assert all(
                len(row) == 3 and all(0 <= v <= 4 for v in row) for row in record["saliency_scores"]
            )
            video = features(moments / "video_features" / f"{record['vid']}.npz")
            assert video.shape == (clips, 256) and video.dtype == np.float32
            text = features(
                moments / "text_features" / f"qid{record['qid']}.npz", "last_hidden_state"
            )
            assert text.ndim == 2 and text.shape[1] == 128
    vids = [
        {r["vid"] for r in jsonl(moments / "annotations" / f"{s}.jsonl")}
        for s in ("train", "val", "test")
    ]
    assert not (vids[0] & vids[1]) and not (vids[0] & vids[2]) and not (vids[1] & vids[2])


def test_highlights_match_the_youtube_and_tvsum_formats(
    highlights: Path, tmp_path: Path, shared_data: Path
) -> None:
    real = jsonl(shared_data / "youtube_highlights" / "youtube_train.jsonl")[0]
    splits = json.loads((highlights / "splits.json").read_text())
    for record in jsonl(highlights / "youtube_train.jsonl") + jsonl(
        highlights / "youtube_valid.jsonl"
    ):
        assert set(record) <= set(real) and {"qid", "vid", "label", "domain", "duration"} <= set(
            record
        )
        assert record["vid"] in splits[record["domain"]]["train"] + splits[record["domain"]]["val"]
        audio = features(highlights / "audio_features" / f"{record['vid']}.npz")
        video = features(highlights / "video_features" / f"{record['vid']}.npz")
        assert len(audio) == len(video) == len(record["label"])
    tvsum = generate("highlights", tmp_path / "tv", seed=0, size="tiny", style="tvsum")
    records = jsonl(tvsum / "tvsum_train.jsonl")
    assert {len(v["train"]) for v in json.loads((tvsum / "splits.json").read_text()).values()} == {
        4
    }
    assert np.asarray(records[0]["label"]).shape[1] == 20
    assert set(np.unique(np.asarray(records[0]["label"]))) <= {1.0, 2.0, 3.0, 4.0, 5.0}


def test_deterministic_for_a_seed(moments: Path, tmp_path: Path) -> None:
    again = generate("moments", tmp_path / "again", seed=3, size="tiny")
    other = generate("moments", tmp_path / "other", seed=4, size="tiny")
    train = (moments / "annotations" / "train.jsonl").read_text()
    assert (again / "annotations" / "train.jsonl").read_text() == train
    assert (other / "annotations" / "train.jsonl").read_text() != train
    vid = jsonl(moments / "annotations" / "train.jsonl")[0]["vid"]
    np.testing.assert_array_equal(
        features(moments / "video_features" / f"{vid}.npz"),
        features(again / "video_features" / f"{vid}.npz"),
    )


def test_ensure_synthetic_reuses_and_regenerates(tmp_path: Path) -> None:
    out = ensure_synthetic("unlabeled", tmp_path / "u", seed=0, size="tiny")
    stamp = (out / "synth.json").stat().st_mtime_ns
    assert ensure_synthetic("unlabeled", out, seed=0, size="tiny") == out
    assert (out / "synth.json").stat().st_mtime_ns == stamp
    ensure_synthetic("unlabeled", out, seed=1, size="tiny")
    assert json.loads((out / "synth.json").read_text())["seed"] == 1
    assert len(jsonl(out / "videos.jsonl")) == len(list((out / "audio_features").glob("*.npz")))


def test_queries_point_at_their_windows(moments: Path) -> None:
    """Clips inside a query's windows resemble the query's event more than clips outside."""
    world = World(resolve_config("tiny"), 3)
    inside, outside = [], []
    for record in jsonl(moments / "annotations" / "train.jsonl"):
        video = features(moments / "video_features" / f"{record['vid']}.npz")
        similarity = video @ world.common_video.T  # (clips, events)
        event = int(np.argmax(similarity[record["relevant_clip_ids"]].mean(axis=0)))
        mask = np.zeros(len(video), dtype=bool)
        mask[record["relevant_clip_ids"]] = True
        inside.append(similarity[mask, event].mean())
        outside.append(similarity[~mask, event].mean())
    assert np.mean(inside) > np.mean(outside) + 100  # prototypes have norm 16, so dot ~ 256


def test_highlights_are_rare_distinct_and_echoed_by_audio(highlights: Path) -> None:
    world = World(resolve_config("tiny"), 3)
    labels, visual, audio_echo = [], [], []
    for record in jsonl(highlights / "youtube_train.jsonl"):
        label = np.asarray(record["label"])[:, 0]
        video = features(highlights / "video_features" / f"{record['vid']}.npz")
        audio = features(highlights / "audio_features" / f"{record['vid']}.npz")
        labels.append(label)
        visual.append(np.abs(video @ world.highlight_video.T).max(axis=1))
        audio_echo.append(audio @ world.highlight_audio)
    label = np.concatenate(labels)
    assert 0.05 < label.mean() < 0.35
    visual, echo = np.concatenate(visual), np.concatenate(audio_echo)
    assert visual[label == 1].mean() > 2 * visual[label == 0].mean()
    lagged = np.concatenate([np.r_[0, lab[:-1]] for lab in labels])
    assert np.corrcoef(echo, lagged)[0, 1] > np.corrcoef(echo, label)[0, 1] > 0


def test_unlabeled_shares_the_feature_space(tmp_path: Path) -> None:
    out = generate("unlabeled", tmp_path / "u", seed=0, size="tiny")
    assert features(next((out / "video_features").glob("*.npz"))).shape[1] == 256
    assert features(next((out / "audio_features").glob("*.npz"))).shape[1] == 64


def test_command_line(tmp_path: Path, capsys) -> None:
    assert main(["--kind", "moments", "--out", str(tmp_path / "d"), "--size", "tiny",
                 "--set", "num_clips=20"]) == 0  # fmt: skip
    record = jsonl(tmp_path / "d" / "annotations" / "train.jsonl")[0]
    assert record["duration"] == 40.0
    with pytest.raises(SystemExit):
        main(["--kind", "moments", "--out", str(tmp_path / "e"), "--set", "no_such=1"])
