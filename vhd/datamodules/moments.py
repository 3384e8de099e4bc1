"""Moment retrieval datasets in the QVHighlights jsonl format (QVHighlights, Charades-STA, TACoS).

Targets are built as the official Moment-DETR / QD-DETR / VideoLights loaders build them, so a
model trained here sees the numbers it would see in the official code (see
``shared/docs/videolights_reference.md`` section 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vhd.datamodules.annotations import AnnotationError, read_jsonl, require_fields, source
from vhd.datamodules.collate import collate_items
from vhd.datamodules.features import FeatureFolder, load_concatenated
from vhd.types import Batch

MomentProtocol = Literal["qvhighlights", "charades", "tacos"]
Split = Literal["train", "val", "test"]


def temporal_endpoint_features(length: int) -> np.ndarray:
    """(i/L, (i+1)/L) per clip: the TEF columns appended after the visual features."""
    starts = np.arange(length, dtype=np.float32) / length
    return np.stack([starts, starts + 1.0 / length], axis=1)


def windows_to_center_width(windows: np.ndarray, span: float) -> np.ndarray:
    """Seconds -> normalised (center, width); official loaders divide by ctx_l x clip_len."""
    normalized = np.clip(np.asarray(windows, dtype=np.float32) / span, 0.0, 1.0)
    return np.stack([normalized.mean(axis=1), normalized[:, 1] - normalized[:, 0]], axis=1)


class MomentDataset(Dataset):
    """One annotation file plus its feature folders; items are dicts that ``collate_items`` pads."""

    def __init__(
        self,
        records: list[dict[str, Any]],
        video_folders: list[FeatureFolder],
        text_folder: FeatureFolder,
        *,
        protocol: MomentProtocol,
        max_v_l: int,
        max_q_l: int,
        clip_len: float,
        max_windows: int,
        normalize_video: bool,
        normalize_text: bool,
        use_tef: bool,
        with_labels: bool,
    ) -> None:
        self.records = records
        self.video_folders = video_folders
        self.text_folder = text_folder
        self.protocol = protocol
        self.max_v_l = max_v_l
        self.max_q_l = max_q_l
        self.clip_len = clip_len
        self.max_windows = max_windows
        self.normalize_video = normalize_video
        self.normalize_text = normalize_text
        self.use_tef = use_tef
        self.with_labels = with_labels

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        video = load_concatenated(
            self.video_folders, record["vid"], self.max_v_l, self.normalize_video
        )
        if self.use_tef:
            video = np.concatenate([video, temporal_endpoint_features(len(video))], axis=1)
        query = load_concatenated(
            [self.text_folder], str(record["qid"]), self.max_q_l, self.normalize_text
        )
        item: dict[str, Any] = {
            "video": torch.from_numpy(video),
            "query": torch.from_numpy(query),
            "meta": {
                "qid": record["qid"],
                "vid": record["vid"],
                "query": record.get("query", ""),
                "duration": float(record["duration"]),
                "clip_len": self.clip_len,
                "num_clips": len(video),
                "annotation": {k: v for k, v in record.items() if not k.startswith("_")},
            },
        }
        if self.with_labels:
            item.update(self._targets(record, len(video)))
        return item

    def _targets(self, record: dict[str, Any], num_clips: int) -> dict[str, Any]:
        windows = np.asarray(record["relevant_windows"], dtype=np.float32).reshape(-1, 2)
        if len(windows) > self.max_windows:  # official: shuffle, keep the first max_windows
            windows = windows[torch.randperm(len(windows))[: self.max_windows].numpy()]
        if "saliency_scores" in record and record.get("relevant_clip_ids") is not None:
            saliency = self._annotator_saliency(record, num_clips)
            positive, negative = self._qvhighlights_pairs(record, saliency, num_clips)
        else:
            saliency = self._window_saliency(windows[0], float(record["duration"]), num_clips)
            positive, negative = self._window_pairs(saliency)
        return {
            "windows": torch.from_numpy(
                windows_to_center_width(windows, num_clips * self.clip_len)
            ),
            "saliency": torch.from_numpy(saliency),
            "saliency_pos": torch.as_tensor(positive, dtype=torch.long),
            "saliency_neg": torch.as_tensor(negative, dtype=torch.long),
        }

    def _annotator_saliency(self, record: dict[str, Any], num_clips: int) -> np.ndarray:
        """Per clip: the sum of the three annotators' 0-4 ratings (0..12), zero elsewhere."""
        clip_ids = np.asarray(record["relevant_clip_ids"], dtype=np.int64)
        scores = np.asarray(record["saliency_scores"], dtype=np.float32).reshape(len(clip_ids), -1)
        if clip_ids.size and clip_ids.max() >= num_clips:
            raise AnnotationError(
                f"{source(record)}: qid={record['qid']} has relevant clip id {clip_ids.max()} but "
                f"the features of vid {record['vid']!r} have only {num_clips} clips; check the "
                "feature files (or max_v_l) for this video"
            )
        saliency = np.zeros(num_clips, dtype=np.float32)
        saliency[clip_ids] = scores.sum(axis=1)
        return saliency

    def _window_saliency(self, window: np.ndarray, duration: float, num_clips: int) -> np.ndarray:
        """Charades-style binary saliency: 1 on the clips covered by the first window."""
        seconds_per_clip = duration / num_clips
        start = int(window[0] / seconds_per_clip)
        end = max(0, min(int(window[1] / seconds_per_clip), num_clips) - 1)
        saliency = np.zeros(num_clips, dtype=np.float32)
        saliency[min(start, end) : end + 1] = 1.0
        return saliency

    def _qvhighlights_pairs(
        self, record: dict[str, Any], saliency: np.ndarray, num_clips: int
    ) -> tuple[list[int], list[int]]:
        """Pair 1: (best, worst) relevant clip; pair 2: (random relevant, random irrelevant)."""
        clip_ids = np.asarray(record["relevant_clip_ids"], dtype=np.int64)
        ranked = clip_ids[
            np.argsort(saliency[clip_ids])
        ]  # numpy's default order on ties, as official
        positive = [int(ranked[-1]), int(clip_ids[torch.randint(len(clip_ids), ()).item()])]
        negative = [int(ranked[0])]
        outside = np.setdiff1d(np.arange(num_clips), clip_ids)
        if len(outside):
            negative.append(int(outside[torch.randint(len(outside), ()).item()]))
        else:
            positive[1] = positive[0]
            negative.append(negative[0])
        return positive, negative

    def _window_pairs(self, saliency: np.ndarray) -> tuple[list[int], list[int]]:
        """Two distinct random clips inside and outside the window (positives when none outside)."""
        inside = np.flatnonzero(saliency > 0)
        outside = np.flatnonzero(saliency == 0)
        positive = inside[torch.randperm(len(inside))[:2].numpy()].tolist()
        positive = (positive * 2)[:2]
        if len(outside) >= 2:
            negative = outside[torch.randperm(len(outside))[:2].numpy()].tolist()
        else:
            negative = list(positive)
        return positive, negative


class MomentDataModule(L.LightningDataModule):
    """QVHighlights-format moment retrieval data: jsonl annotations + per-video feature folders.

    Paths are relative to ``data_root``. ``synthetic`` (e.g. ``{seed: 0, size: quickstart}``)
    generates the embedded synthetic moments data into ``data_root`` on first use, so a config
    runs on a machine without any benchmark features.
    """

    def __init__(
        self,
        data_root: str = "data/qvhighlights",
        train_file: str | None = "highlight_train_release.jsonl",
        val_file: str | None = "highlight_val_release.jsonl",
        test_file: str | None = "highlight_test_release.jsonl",
        video_feature_dirs: list[str] | None = None,
        text_feature_dir: str = "clip_text_features",
        text_feature_key: str = "last_hidden_state",
        text_file_prefix: str = "qid",
        protocol: MomentProtocol = "qvhighlights",
        max_v_l: int = 75,
        max_q_l: int = 32,
        clip_len: float = 2.0,
        max_windows: int = 5,
        normalize_video: bool = True,
        normalize_text: bool = True,
        use_tef: bool = True,
        predict_split: Split = "test",
        batch_size: int = 32,
        eval_batch_size: int = 100,
        num_workers: int = 0,
        pin_memory: bool = False,
        synthetic: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.data_root = Path(data_root)
        self.protocol = protocol
        self.predict_split = predict_split
        self.video_feature_dirs = video_feature_dirs or ["slowfast_features", "clip_features"]
        self.files = {"train": train_file, "val": val_file, "test": test_file}
        self.datasets: dict[str, MomentDataset] = {}

    def prepare_data(self) -> None:
        if self.hparams.synthetic is not None:
            from vhd.datamodules.synthetic import ensure_synthetic

            ensure_synthetic("moments", self.data_root, **self.hparams.synthetic)

    def setup(self, stage: str | None = None) -> None:
        wanted = {
            "fit": ["train", "val"],
            "validate": ["val"],
            "test": ["test"],
            "predict": [self.predict_split],
        }.get(stage or "fit", ["train", "val", "test"])
        for split in wanted:
            if split not in self.datasets:
                self.datasets[split] = self._build(split)

    def _build(self, split: str) -> MomentDataset:
        filename = self.files[split]
        if filename is None:
            raise ValueError(
                f"no {split}_file configured for {type(self).__name__}; set data.{split}_file"
            )
        records = read_jsonl(self.data_root / filename)
        if not records:
            raise AnnotationError(f"{self.data_root / filename} holds no records")
        for record in records:
            require_fields(record, ("qid", "vid", "duration"))
        with_labels = all(record.get("relevant_windows") for record in records)
        hp = self.hparams
        return MomentDataset(
            records,
            [FeatureFolder(self.data_root / folder) for folder in self.video_feature_dirs],
            FeatureFolder(
                self.data_root / hp.text_feature_dir, hp.text_feature_key, hp.text_file_prefix
            ),
            protocol=self.protocol,
            max_v_l=hp.max_v_l,
            max_q_l=hp.max_q_l,
            clip_len=hp.clip_len,
            max_windows=hp.max_windows,
            normalize_video=hp.normalize_video,
            normalize_text=hp.normalize_text,
            use_tef=hp.use_tef,
            with_labels=with_labels,
        )

    def _loader(self, split: str, shuffle: bool, batch_size: int) -> DataLoader[Batch]:
        return DataLoader(
            self.datasets[split],
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=self.hparams.num_workers,
            pin_memory=self.hparams.pin_memory,
            persistent_workers=self.hparams.num_workers > 0,
            collate_fn=collate_items,
        )

    def train_dataloader(self) -> DataLoader[Batch]:
        return self._loader("train", shuffle=True, batch_size=self.hparams.batch_size)

    def val_dataloader(self) -> DataLoader[Batch]:
        return self._loader("val", shuffle=False, batch_size=self.hparams.eval_batch_size)

    def test_dataloader(self) -> DataLoader[Batch]:
        return self._loader("test", shuffle=False, batch_size=self.hparams.eval_batch_size)

    def predict_dataloader(self) -> DataLoader[Batch]:
        return self._loader(
            self.predict_split, shuffle=False, batch_size=self.hparams.eval_batch_size
        )
