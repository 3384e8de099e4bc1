"""UnlabeledDataModule: RASL windows, repetition, audio alignment and the reconstruction mask."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from vhd.datamodules import UnlabeledDataModule
from vhd.datamodules.annotations import AnnotationError
from vhd.datamodules.features import FeatureError
from vhd.datamodules.unlabeled import window_indices


def write_corpus(root: Path, steps: dict[str, int], audio_factor: int = 4) -> None:
    """Video rows hold their step index; audio is ``audio_factor`` x denser, also an index ramp."""
    (root / "video_features").mkdir(parents=True)
    (root / "audio_features").mkdir()
    for vid, count in steps.items():
        video = np.tile(np.arange(count, dtype=np.float32)[:, None], (1, 3))
        audio = np.tile((np.arange(count * audio_factor) / audio_factor)[:, None], (1, 2))
        np.savez(root / "video_features" / f"{vid}.npz", features=video)
        np.save(root / "audio_features" / f"{vid}.npy", audio)


def test_window_indices_tile_and_repeat() -> None:
    assert window_indices(10, 0, 4).tolist() == [0, 1, 2, 3]
    assert window_indices(10, 8, 4).tolist() == [8, 9, 8, 9]  # the last piece repeated
    assert window_indices(3, 0, 8).tolist() == [0, 1, 2, 0, 1, 2, 0, 1]  # a short video


def test_rasl_windows_audio_and_mask(tmp_path: Path) -> None:
    write_corpus(tmp_path, {"long": 400, "short": 60})
    dm = UnlabeledDataModule(data_root=str(tmp_path), batch_size=4)  # 30 s x 5 fps = 150 steps
    dm.setup("fit")
    dataset = dm.datasets["train"]
    assert dm.window == 150 and len(dataset) == math.ceil(400 / 150) + 1
    assert dm.protocol is None and dm.predict_split == "train"
    torch.manual_seed(0)
    batch = next(iter(dm.train_dataloader()))
    assert batch["video"].shape == (4, 150, 3) and batch["audio"].shape == (4, 150, 2)
    assert batch["video_mask"].all()  # repeats are real input; meta says where they start
    assert batch["mask"].dtype == torch.bool and batch["mask"].sum(1).tolist() == [75] * 4
    for row, meta in enumerate(batch["meta"]):
        steps = window_indices(400 if meta["vid"] == "long" else 60, meta["window_start"], 150)
        assert batch["video"][row, :, 0].tolist() == steps.tolist()
        assert meta["source_steps"] == len(set(steps.tolist())) and meta["num_clips"] == 150
        assert meta["clip_len"] == pytest.approx(0.2)
        # audio pooled 4 -> 1 then aligned: step i is the mean of audio frames 4i..4i+3
        np.testing.assert_allclose(batch["audio"][row, :, 0].numpy(), steps + 0.375, atol=1e-5)
    masks = torch.stack([dataset[0]["mask"] for _ in range(3)])
    assert not (masks[0] == masks[1]).all()  # drawn anew each time


def test_video_list_fps_and_video_only(tmp_path: Path) -> None:
    write_corpus(tmp_path, {"a": 20, "b": 7}, audio_factor=1)
    (tmp_path / "list.jsonl").write_text(json.dumps({"vid": "b", "duration": 14.0}) + "\n")
    dm = UnlabeledDataModule(
        data_root=str(tmp_path), video_list="list.jsonl", fps=0.5, audio_feature_dirs=[]
    )
    dm.setup("fit")
    (item,) = [dm.datasets["train"][i] for i in range(len(dm.datasets["train"]))]
    assert dm.window == 15 and "audio" not in item and item["video"].shape == (15, 3)
    assert item["meta"]["annotation"] == {"vid": "b", "duration": 14.0}
    assert item["meta"]["source_steps"] == 7 and item["mask"].sum() == 8  # round(0.5 x 15)


def test_synthetic_unlabeled(tmp_path: Path) -> None:
    dm = UnlabeledDataModule(
        data_root=str(tmp_path / "unlabeled"),
        fps=0.5,  # one synthetic feature per 2 s clip
        synthetic={"seed": 0, "size": "tiny"},
        feature_cache="mmap",
    )
    dm.prepare_data()
    dm.setup("fit")
    listed = (tmp_path / "unlabeled" / "videos.jsonl").read_text().splitlines()
    assert len({dm.datasets["train"].items[i][0] for i in range(len(dm.datasets["train"]))}) == len(
        listed
    )
    batch = next(iter(dm.train_dataloader()))
    assert batch["video"].shape[1:] == (15, 256) and batch["audio"].shape[1:] == (15, 64)


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"video feature folder .*video_features"):
        UnlabeledDataModule(data_root=str(tmp_path)).setup("fit")
    (tmp_path / "video_features").mkdir()
    with pytest.raises(AnnotationError, match=r"no videos in .*video_features"):
        UnlabeledDataModule(data_root=str(tmp_path)).setup("fit")
    np.savez(tmp_path / "video_features" / "a.npz", features=np.ones((4, 2)))
    with pytest.raises(FeatureError, match=r"1 of 1 audio feature files are missing .*vid='a'"):
        UnlabeledDataModule(data_root=str(tmp_path)).setup("fit")
    with pytest.raises(ValueError, match=r"under one step"):
        UnlabeledDataModule(data_root=str(tmp_path), window_seconds=0.1, fps=1)
    with pytest.raises(ValueError, match=r"mask_ratio"):
        UnlabeledDataModule(data_root=str(tmp_path), mask_ratio=1.0)
