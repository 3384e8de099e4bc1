"""HPCL training windows per video and epoch (``windows_per_video``): how many items an epoch has,
where in the video they fall, and that the configs and the CLI reach the argument."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import yaml

from vhd.datamodules import HighlightDataModule
from vhd.datamodules.targets import sample_training_window
from vhd.lightning_cli import VHDCLI
from vhd.models import VHDModule

REPO = Path(__file__).resolve().parents[1]
LENGTHS = {"long": 100, "short": 45, "tiny": 12, "held_out": 30}


def alternating(length: int) -> np.ndarray:
    """0, 1, 0, 1, ...: every consecutive 20-clip window qualifies (10 positives, 10 negatives)."""
    return (np.arange(length) % 2).astype(np.float32)


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    """YouTube-format annotations of four videos (three train) and their features, whose first
    column is the clip index."""
    rows = [
        {"vid": vid, "domain": "dog", "label": [[int(x)] for x in alternating(length)]}
        for vid, length in LENGTHS.items()
    ]
    (tmp_path / "youtube_train.jsonl").write_text("\n".join(map(json.dumps, rows[:3])) + "\n")
    (tmp_path / "youtube_valid.jsonl").write_text(json.dumps(rows[3]) + "\n")
    splits = {"dog": {"train": ["long", "short", "tiny"], "val": ["held_out"]}}
    (tmp_path / "splits.json").write_text(json.dumps(splits))
    (tmp_path / "video_features").mkdir()
    for vid, length in LENGTHS.items():
        features = np.zeros((length, 4), dtype=np.float32)
        features[:, 0] = np.arange(length)
        np.save(tmp_path / "video_features" / f"{vid}.npy", features)
    return tmp_path


def build(root: Path, windows_per_video: int | str) -> HighlightDataModule:
    dm = HighlightDataModule(
        data_root=str(root), train_window=20, windows_per_video=windows_per_video, batch_size=4
    )
    dm.setup("fit")
    return dm


def starts_by_video(dm: HighlightDataModule) -> dict[str, list[int]]:
    """First clip of every training item of one epoch, per video, in item order."""
    starts: dict[str, list[int]] = {}
    for index in range(len(dm.datasets["train"])):
        meta = dm.datasets["train"][index]["meta"]
        starts.setdefault(meta["vid"], []).append(meta["clip_ids"][0])
    return starts


def test_window_shares_spread_over_the_video() -> None:
    torch.manual_seed(0)
    labels, starts = alternating(100), 100 - 20 + 1
    for _ in range(10):
        for part in range(4):
            clips = sample_training_window(labels, 20, 0.5, part, 4)
            assert (np.diff(clips) == 1).all() and len(clips) == 20
            assert part * starts // 4 <= clips[0] < (part + 1) * starts // 4  # its own share
    sparse = np.zeros(100)
    sparse[::12] = 1  # no consecutive window qualifies: repaired windows, started in the share
    for part in range(3):
        clips = sample_training_window(sparse, 20, 0.5, part, 3)
        assert int(sparse[clips].sum()) == 7  # the repair still reaches 1:2
    more_parts_than_starts = sample_training_window(alternating(21), 20, 0.5, 3, 4)
    assert more_parts_than_starts[0] in (0, 1)  # shares repeat, never empty
    torch.manual_seed(1)
    default = sample_training_window(labels, 20)
    torch.manual_seed(1)
    assert np.array_equal(default, sample_training_window(labels, 20, 0.5, 0, 1))  # as before


@pytest.mark.parametrize(
    ("windows_per_video", "per_video"),
    [(1, {"long": 1, "short": 1, "tiny": 1}), (3, {"long": 3, "short": 3, "tiny": 3}),
     ("all", {"long": 5, "short": 3, "tiny": 1})],
)  # fmt: skip
def test_items_per_epoch(data_root: Path, windows_per_video: int | str, per_video: dict) -> None:
    torch.manual_seed(0)
    dm = build(data_root, windows_per_video)
    assert len(dm.datasets["train"]) == sum(per_video.values())
    assert len(dm.datasets["val"]) == 1  # evaluation: one whole video each
    starts = starts_by_video(dm)
    assert {vid: len(found) for vid, found in starts.items()} == per_video
    assert starts["tiny"] == [0] * per_video["tiny"]  # shorter than T: the whole video, each time
    if windows_per_video != 1:
        assert starts["long"] == sorted(set(starts["long"]))  # different, spread positions
    seen = sum(len(batch["meta"]) for batch in dm.train_dataloader())
    assert seen == sum(per_video.values())  # the loader serves every window of the epoch
    for batch in dm.train_dataloader():
        for row, meta in enumerate(batch["meta"]):
            valid = batch["video_mask"][row]
            assert batch["video"][row, valid, 0].tolist() == meta["clip_ids"]


def test_all_windows_cover_the_video(data_root: Path) -> None:
    """In three epochs "all" (five windows of the 100-clip video per epoch) visits nearly every
    clip of it, one window per epoch at most 60."""
    covered: dict[int | str, set[int]] = {}
    for windows in (1, "all"):
        torch.manual_seed(0)
        dm = build(data_root, windows)
        clips: set[int] = set()
        for _ in range(3):  # a fresh draw per epoch
            for index in range(len(dm.datasets["train"])):
                meta = dm.datasets["train"][index]["meta"]
                if meta["vid"] == "long":
                    clips.update(meta["clip_ids"])
        covered[windows] = clips
    assert len(covered["all"]) >= 85 and len(covered[1]) <= 60


@pytest.mark.parametrize("bad", [0, -2, "every", 1.5, True])
def test_bad_windows_per_video(data_root: Path, bad: object) -> None:
    with pytest.raises(ValueError, match="windows_per_video must be a positive number"):
        HighlightDataModule(data_root=str(data_root), train_window=20, windows_per_video=bad)


@pytest.mark.parametrize("protocol", ["tvsum", "youtube"])
def test_windows_per_video_from_config_and_cli(protocol: str) -> None:
    config = REPO / "configs" / f"hpcl_{protocol}.yaml"
    written = yaml.safe_load(config.read_text())["data"]["init_args"]["windows_per_video"]
    for extra, expected in (([], written), (["--data.init_args.windows_per_video=3"], 3),
                            (["--data.init_args.windows_per_video=all"], "all")):  # fmt: skip
        cli = VHDCLI(
            VHDModule, L.LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
            run=False, args=["--config", str(config), *extra],
        )  # fmt: skip
        assert cli.datamodule.hparams.windows_per_video == expected
