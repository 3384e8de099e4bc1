"""Unlabelled pretraining corpora (RASL): fixed windows of visual + audio feature vectors.

RASL (section IV-F) cuts every video into 30 s windows at 5 fps (150 steps); a video or a last
piece shorter than a window is repeated until it fills one. Audio is average-pooled and linearly
interpolated to the visual length first, so step i of both modalities is the same instant (the
model then resamples each audio vector's length to the visual one: ``RASL.audio_alignment``).
Each item also carries the random mask of the auxiliary masked reconstruction task (50% of steps).

Every step of a window is real input (repeats included: RASL reconstructs them too), so
``video_mask`` is all True; ``meta["source_steps"]`` says how many leading steps are distinct
video and ``meta["window_start"]`` where the window starts in the video.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from vhd.datamodules.annotations import AnnotationError, read_jsonl, require_fields
from vhd.datamodules.common import FeatureGroup, VHDDataModule
from vhd.datamodules.features import CacheMode, pool_and_interpolate
from vhd.errors import MissingFileError


def window_indices(num_steps: int, start: int, window: int) -> np.ndarray:
    """Steps ``start..`` of a video, the piece repeated until it fills ``window`` steps."""
    piece = min(window, num_steps - start)
    return start + np.arange(window) % piece


def random_mask(length: int, ratio: float) -> torch.Tensor:
    """Exactly round(ratio x length) randomly chosen steps set True (= masked)."""
    mask = torch.zeros(length, dtype=torch.bool)
    mask[torch.randperm(length)[: round(ratio * length)]] = True
    return mask


class UnlabeledDataset(Dataset):
    """One item per (video, window); windows tile each video from its first step."""

    def __init__(
        self,
        records: list[dict[str, Any]],
        lengths: dict[str, int],
        video: FeatureGroup,
        audio: FeatureGroup | None,
        *,
        window: int,
        fps: float,
        mask_ratio: float,
    ) -> None:
        self.records = {str(record["vid"]): record for record in records}
        self.lengths = lengths
        self.video = video
        self.audio = audio
        self.window = window
        self.fps = fps
        self.mask_ratio = mask_ratio
        self.items = [
            (vid, start) for vid in self.records for start in range(0, lengths[vid], window)
        ]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        vid, start = self.items[index]
        num_steps = self.lengths[vid]
        steps = window_indices(num_steps, start, self.window)
        video = self.video.load(vid)[:num_steps]
        item: dict[str, Any] = {"video": torch.from_numpy(np.ascontiguousarray(video[steps]))}
        if self.audio is not None:
            audio = pool_and_interpolate(self.audio.load(vid), num_steps)
            item["audio"] = torch.from_numpy(np.ascontiguousarray(audio[steps]))
        item["mask"] = random_mask(self.window, self.mask_ratio)
        record = self.records[vid]
        item["meta"] = {
            "qid": vid,
            "index": index,  # position in the split: evaluation order under DDP
            "vid": vid,
            "query": "",
            "duration": float(record.get("duration", num_steps / self.fps)),
            "clip_len": 1.0 / self.fps,
            "num_clips": self.window,
            "window_start": int(start),
            "source_steps": int(min(self.window, num_steps - start)),
            "annotation": {key: value for key, value in record.items() if key[0] != "_"},
        }
        return item


class UnlabeledDataModule(VHDDataModule):
    """A folder of per-video visual (and audio) feature files without labels, for pretraining.

    Paths are relative to ``data_root``. Videos are the lines of ``video_list`` (jsonl with
    ``vid``, optionally ``duration``) or, when it is null, every ``.npz``/``.npy`` file of the first
    video feature folder. ``window_seconds`` x ``fps`` (30 s x 5 fps = 150) steps per item; the
    ``fps`` is that of the visual features (the embedded synthetic data: 0.5, one per 2 s clip).
    ``audio_feature_dirs=[]`` trains on video alone. No evaluation protocol (``protocol=None``):
    RASL is evaluated with ``HighlightDataModule``.
    ``feature_recipe``: the ``vhd extract`` recipe(s) the features must come from; with a
    ``manifest.json`` in ``data_root`` (written by ``vhd extract``) its recipe and clip length
    are checked before training.
    """

    synthetic_kind = "unlabeled"

    def __init__(
        self,
        data_root: str = "data/unlabeled",
        video_feature_dirs: list[str] | None = None,
        audio_feature_dirs: list[str] | None = None,
        video_list: str | None = None,
        window_seconds: float = 30.0,
        fps: float = 5.0,
        mask_ratio: float = 0.5,
        normalize_video: bool = False,
        normalize_audio: bool = False,
        feature_cache: CacheMode = "none",
        cache_dir: str | None = None,
        predict_split: Literal["train"] = "train",
        batch_size: int = 8,
        eval_batch_size: int = 8,
        num_workers: int = 0,
        pin_memory: bool = False,
        synthetic: dict[str, Any] | None = None,
        feature_recipe: str | list[str] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.window = round(window_seconds * fps)
        if self.window < 1:
            raise ValueError(
                f"window_seconds x fps = {window_seconds} x {fps} is under one step; RASL: 30 x 5"
            )
        if not 0.0 <= mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio} (RASL: 0.5)")
        if predict_split != "train":
            raise ValueError(f"unlabelled corpora have one split, 'train'; got {predict_split!r}")
        self.data_root = Path(data_root)
        self.protocol: str | None = None
        self.predict_split = predict_split
        self.video_feature_dirs = video_feature_dirs or ["video_features"]
        self.audio_feature_dirs = (
            ["audio_features"] if audio_feature_dirs is None else list(audio_feature_dirs)
        )

    def stage_splits(self, stage: str | None) -> list[str]:
        return ["train"]

    def feature_clip_len(self) -> tuple[float, str]:
        return 1.0 / self.hparams.fps, f"1 / data.fps (fps={self.hparams.fps:g})"

    def _records(self) -> list[dict[str, Any]]:
        hp = self.hparams
        if hp.video_list is not None:
            records = read_jsonl(self.data_root / hp.video_list)
            for record in records:
                require_fields(record, ("vid",))
            where = self.data_root / hp.video_list
        else:
            where = self.data_root / self.video_feature_dirs[0]
            if not where.is_dir():
                raise MissingFileError(
                    f"video feature folder {where} does not exist; check data_root and "
                    "video_feature_dirs"
                )
            stems = sorted(
                {path.stem for path in where.iterdir() if path.suffix in (".npz", ".npy")}
            )
            records = [{"vid": stem} for stem in stems]
        if not records:
            raise AnnotationError(
                f"no videos in {where}; add feature files or list them in video_list"
            )
        return records

    def _build(self, split: str) -> UnlabeledDataset:
        if split != "train":
            raise ValueError(f"unlabelled corpora have one split, 'train'; got {split!r}")
        hp = self.hparams
        records = self._records()
        common = dict(
            cache=hp.feature_cache, cache_dir=self.data_root / (hp.cache_dir or ".feature_cache")
        )
        by_vid = {str(record["vid"]): [record] for record in records}
        video = FeatureGroup(
            self.data_root, self.video_feature_dirs, what="video", config_key="video_feature_dirs",
            normalize=hp.normalize_video, **common,
        )  # fmt: skip
        lengths = video.check(by_vid)
        audio = None
        if self.audio_feature_dirs:
            audio = FeatureGroup(
                self.data_root, self.audio_feature_dirs, what="audio",
                config_key="audio_feature_dirs", normalize=hp.normalize_audio, **common,
            )  # fmt: skip
            audio.check(by_vid)
        return UnlabeledDataset(
            records, lengths, video, audio, window=self.window, fps=hp.fps,
            mask_ratio=hp.mask_ratio,
        )  # fmt: skip
