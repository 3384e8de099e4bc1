"""Moment retrieval datasets in the QVHighlights jsonl format (QVHighlights, Charades-STA, TACoS).

Targets are built as the official Moment-DETR / QD-DETR / VideoLights loaders build them, so a
model trained here sees the numbers it would see in the official code (see
``shared/docs/videolights_reference.md`` section 1 and ``targets.py``). The rule follows the
record: annotator ratings (``relevant_clip_ids`` + ``saliency_scores``) give the QVHighlights
targets, windows alone the Charades-STA ones (as the official code does for pretraining corpora).

Per-dataset settings (official): QVHighlights max_v_l 75, max_q_l 32, clip_len 2, max_windows 5,
text files ``qid{qid}.npz``; Charades-STA the same with clip_len 1; TACoS clip_len 2, no cut
(max_v_l null), text files ``{qid}.npz`` (text_file_prefix "").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from vhd.datamodules.annotations import (
    AnnotationError,
    read_jsonl,
    require_fields,
    source,
    strip_private,
)
from vhd.datamodules.common import (
    FeatureGroup,
    LabelledDataModule,
    ShortFeatures,
    report_records,
    short_features_error,
)
from vhd.datamodules.features import CacheMode
from vhd.datamodules.holdout import HoldoutError, split_records
from vhd.datamodules.targets import (
    annotator_saliency,
    clamp_windows,
    qvhighlights_pairs,
    temporal_endpoint_features,
    window_pairs,
    window_saliency,
    windows_to_center_width,
)
from vhd.errors import ConfigError

__all__ = [
    "MomentDataModule",
    "MomentDataset",
    "temporal_endpoint_features",
    "windows_to_center_width",
]

MomentProtocol = Literal["qvhighlights", "charades", "tacos"]
Split = Literal["train", "val", "test"]
# The splits a stage scores, so they need labels (predict needs none).
EVALUATED_SPLITS = {"fit": ("val",), "validate": ("val",), "test": ("test",)}
QV_TEST_LABELS = "highlight_test_with_gt.jsonl"


def unlabelled_split_message(data_root: Path, files: dict[str, str | None], split: str) -> str:
    """Why an inputs-only split cannot be scored, and the fix (the QVHighlights test labels)."""
    filename = files[split]
    message = (
        f"{data_root / str(filename)} has no labels (relevant_windows), so the {split} split "
        f"cannot be scored; point data.{split}_file at a labelled file, or use `vhd predict` to "
        "write its submission"
    )
    if filename is not None and Path(filename).name == "highlight_test_release.jsonl":
        message += (
            f". For the QVHighlights test split, download {QV_TEST_LABELS} (the test labels the "
            f"dataset's authors released, see the README) and set data.test_file={QV_TEST_LABELS}"
        )
    return message


# -- labels ----------------------------------------------------------------------------------------
def parse_moment_labels(record: dict[str, Any]) -> dict[str, np.ndarray]:
    """Windows (n, 2) seconds, and for rated records clip ids with their rating rows."""
    windows = np.asarray(record["relevant_windows"], dtype=np.float32)
    if windows.ndim != 2 or windows.shape[1] != 2 or (windows[:, 1] < windows[:, 0]).any():
        raise AnnotationError(
            f"{source(record)}: qid={record.get('qid')!r} relevant_windows must be [[start, end], "
            f"...] seconds with start <= end, got {record['relevant_windows']!r:.80}"
        )
    labels = {"windows": windows}
    if record.get("relevant_clip_ids") is not None and record.get("saliency_scores") is not None:
        clip_ids = np.asarray(record["relevant_clip_ids"], dtype=np.int64).reshape(-1)
        scores = np.asarray(record["saliency_scores"], dtype=np.float32)
        if len(scores) != len(clip_ids) or len(clip_ids) == 0:
            raise AnnotationError(
                f"{source(record)}: qid={record.get('qid')!r} has {len(clip_ids)} "
                f"relevant_clip_ids but {len(scores)} saliency_scores rows; they pair one to one"
            )
        labels.update(clip_ids=clip_ids, scores=scores.reshape(len(clip_ids), -1))
    return labels


def fit_labels(labels: dict[str, np.ndarray], num_clips: int, clip_len: float, clamp: bool = False):
    """Labels restricted to the features' span, and why they did not fit (``""`` if they did).

    Windows may end up to one clip past the features (extractors round the last clip down) and
    are kept as annotated (release) unless ``clamp``; longer ones are a problem, cut when the
    caller truncates. Clip ids index the saliency vector, so they must exist.
    """
    span = num_clips * clip_len
    problems = []
    windows = labels["windows"]
    too_long = windows[:, 1].max() > span + clip_len + 1e-6
    if too_long:
        problems.append(f"windows end at {windows[:, 1].max():g}s, features cover {span:g}s")
    # the first window as annotated: the Charades-style saliency rule clamps it itself (official)
    fitted = {
        "windows": clamp_windows(windows, span) if clamp or too_long else windows,
        "first": windows[0],
    }
    if "clip_ids" in labels:
        keep = labels["clip_ids"] < num_clips
        if not keep.all():
            problems.append(
                f"relevant clip id {labels['clip_ids'].max()} but {num_clips} feature clips"
            )
        fitted.update(clip_ids=labels["clip_ids"][keep], scores=labels["scores"][keep])
    return fitted, "; ".join(problems)


# -- dataset ---------------------------------------------------------------------------------------
class MomentDataset(Dataset):
    """Prepared (record, clip count, labels) entries plus feature groups; dict items for collate."""

    def __init__(
        self,
        entries: list[dict[str, Any]],
        video: FeatureGroup,
        text: FeatureGroup,
        audio: FeatureGroup | None = None,
        *,
        clip_len: float,
        max_windows: int,
        use_tef: bool,
        with_labels: bool,
    ) -> None:
        self.entries = entries
        self.video = video
        self.text = text
        self.audio = audio
        self.clip_len = clip_len
        self.max_windows = max_windows
        self.use_tef = use_tef
        self.with_labels = with_labels

    @property
    def records(self) -> list[dict[str, Any]]:
        return [entry["record"] for entry in self.entries]

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict[str, Any]:
        entry = self.entries[index]
        record, num_clips = entry["record"], entry["num_clips"]
        video = self.video.load(record["vid"])[:num_clips]
        if self.use_tef:
            video = np.concatenate([video, temporal_endpoint_features(num_clips)], axis=1)
        item: dict[str, Any] = {
            "video": torch.from_numpy(video),
            "query": torch.from_numpy(self.text.load(str(record["qid"]))),
            "meta": {
                "qid": record["qid"],
                "index": index,  # position in the split: evaluation order under DDP
                "vid": record["vid"],
                "query": record.get("query", ""),
                "duration": float(record["duration"]),
                "clip_len": self.clip_len,
                "num_clips": num_clips,
                "annotation": strip_private(record),
            },
        }
        if self.audio is not None:
            item["audio"] = torch.from_numpy(self.audio.load(record["vid"])[:num_clips])
        if self.with_labels:
            item.update(self._targets(entry["labels"], float(record["duration"]), num_clips))
        return item

    def _targets(
        self, labels: dict[str, np.ndarray], duration: float, num_clips: int
    ) -> dict[str, Any]:
        windows = labels["windows"]
        if len(windows) > self.max_windows:  # official: shuffle, keep the first max_windows
            windows = windows[torch.randperm(len(windows))[: self.max_windows].numpy()]
        if "clip_ids" in labels:
            saliency = annotator_saliency(labels["clip_ids"], labels["scores"], num_clips)
            positive, negative = qvhighlights_pairs(labels["clip_ids"], labels["scores"], num_clips)
        else:  # official: only the first window (in file order) defines saliency
            saliency = window_saliency(labels["first"], duration, num_clips)
            positive, negative = window_pairs(labels["first"], duration, num_clips)
        return {
            "windows": torch.from_numpy(
                windows_to_center_width(windows, num_clips * self.clip_len)
            ),
            "saliency": torch.from_numpy(saliency),
            "saliency_pos": torch.as_tensor(positive, dtype=torch.long),
            "saliency_neg": torch.as_tensor(negative, dtype=torch.long),
        }


class MomentDataModule(LabelledDataModule):
    """QVHighlights-format moment retrieval data: jsonl annotations + per-video feature folders.

    Paths are relative to ``data_root``. Video types (``video_feature_dirs``, ``{vid}.npz`` key
    ``features``) are each cut to ``max_v_l`` and L2-normalised, then cut to the shortest together
    with the optional ``audio_feature_dirs`` and concatenated; ``use_tef`` appends the two temporal
    endpoint columns. Text: ``{text_file_prefix}{qid}.npz`` in ``text_feature_dir`` (one folder or
    a list, concatenated), key ``last_hidden_state`` (tokens) or ``pooler_output`` (one row).
    A split whose records have no ``relevant_windows`` (e.g. the QVHighlights test set) yields
    inputs only: ``vhd predict`` writes its submission, while validating or testing on it stops
    with an error (for the QVHighlights test split, ``test_file: highlight_test_with_gt.jsonl``,
    the labels the authors released, scores it). Default folders when null: video
    ``[slowfast_features, clip_features]``. Labels that need more clips than the features have
    fail at setup, listing the records;
    ``on_short_features="truncate"`` cuts them instead (logged, with a count). ``feature_cache``:
    ``"memory"`` or ``"mmap"`` (one packed file per folder under ``cache_dir``, default
    ``data_root/.feature_cache``, built once). ``synthetic`` (e.g. ``{seed: 0, size:
    quickstart}``) generates the embedded synthetic moments data into ``data_root`` on first use.
    ``feature_recipe``: the ``vhd extract`` recipe(s) the features must come from; with a
    ``manifest.json`` in ``data_root`` (written by ``vhd extract``) its recipe and clip length
    are checked before training. ``clamp_span_targets``: clamp training windows to the
    features' span (targets in [0, 1], windows starting after it dropped); the release (False)
    keeps them as annotated, so a window ending past the features gives a target above 1.
    ``val_holdout``: a share (0-1) of the train file's videos held out as the validation split
    (fixed by a hash of the video ids; ``val_file`` must be null), e.g. for Charades-STA, where
    the release selects checkpoints on the test file; 0 reads ``val_file``.
    """

    synthetic_kind = "moments"

    def __init__(
        self,
        data_root: str = "data/qvhighlights",
        train_file: str | None = "highlight_train_release.jsonl",
        val_file: str | None = "highlight_val_release.jsonl",
        test_file: str | None = "highlight_test_release.jsonl",
        video_feature_dirs: list[str] | None = None,
        text_feature_dir: str | list[str] = "clip_text_features",
        text_feature_key: str = "last_hidden_state",
        text_file_prefix: str = "qid",
        audio_feature_dirs: list[str] | None = None,
        protocol: MomentProtocol = "qvhighlights",
        max_v_l: int | None = 75,
        max_q_l: int | None = 32,
        clip_len: float = 2.0,
        max_windows: int = 5,
        normalize_video: bool = True,
        normalize_text: bool = True,
        normalize_audio: bool = False,
        use_tef: bool = True,
        on_short_features: ShortFeatures = "error",
        feature_cache: CacheMode = "none",
        cache_dir: str | None = None,
        predict_split: Split = "test",
        batch_size: int = 32,
        eval_batch_size: int = 100,
        num_workers: int = 0,
        pin_memory: bool = False,
        synthetic: dict[str, Any] | None = None,
        feature_recipe: str | list[str] | None = None,
        clamp_span_targets: bool = False,
        val_holdout: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if val_holdout and val_file is not None:
            raise HoldoutError(
                f"val_holdout={val_holdout} carves the validation split from train_file; set "
                f"val_file to null (it is {val_file!r})"
            )
        if protocol not in ("qvhighlights", "charades", "tacos"):
            raise ValueError(
                f"unknown moment protocol {protocol!r}; use qvhighlights, charades or tacos"
            )
        if predict_split not in ("train", "val", "test"):
            raise ValueError(f"unknown predict_split {predict_split!r}; use train, val or test")
        self.data_root = Path(data_root)
        self.protocol = protocol
        self.predict_split = predict_split
        self.video_feature_dirs = video_feature_dirs or ["slowfast_features", "clip_features"]
        self.text_feature_dirs = (
            [text_feature_dir] if isinstance(text_feature_dir, str) else list(text_feature_dir)
        )
        self.files = {"train": train_file, "val": val_file, "test": test_file}
        if val_holdout:
            self.files["val"] = train_file

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        for split in EVALUATED_SPLITS.get(stage or "fit", ()):
            if not self.datasets[split].with_labels:
                raise AnnotationError(unlabelled_split_message(self.data_root, self.files, split))

    def _groups(self) -> tuple[FeatureGroup, FeatureGroup, FeatureGroup | None]:
        hp = self.hparams
        common = dict(
            cache=hp.feature_cache, cache_dir=self.data_root / (hp.cache_dir or ".feature_cache")
        )
        video = FeatureGroup(
            self.data_root, self.video_feature_dirs, what="video", config_key="video_feature_dirs",
            normalize=hp.normalize_video, max_len=hp.max_v_l, **common,
        )  # fmt: skip
        text = FeatureGroup(
            self.data_root, self.text_feature_dirs, what="text", config_key="text_feature_dir",
            key=hp.text_feature_key, prefix=hp.text_file_prefix,
            normalize=hp.normalize_text, max_len=hp.max_q_l, **common,
        )  # fmt: skip
        audio = None
        if hp.audio_feature_dirs:
            audio = FeatureGroup(
                self.data_root, hp.audio_feature_dirs, what="audio",
                config_key="audio_feature_dirs", normalize=hp.normalize_audio,
                max_len=hp.max_v_l, **common,
            )  # fmt: skip
        return video, text, audio

    def _read(self, split: str) -> tuple[Path, list[dict[str, Any]], bool]:
        if split not in self.files:
            raise ValueError(f"unknown split {split!r}; moment datasets have train, val and test")
        filename = self.files[split]
        if filename is None:
            raise ConfigError(
                f"no {split}_file configured for {type(self).__name__}; set data.{split}_file"
            )
        path = self.data_root / filename
        records = read_jsonl(path)
        if not records:
            raise AnnotationError(f"{path} holds no records; check the file or data.{split}_file")
        if self.hparams.val_holdout and split in ("train", "val"):
            records = split_records(records, self.hparams.val_holdout, held_out=split == "val")
        first_of_qid: dict[str, dict[str, Any]] = {}
        for record in records:
            require_fields(record, ("qid", "vid", "duration"))
            first = first_of_qid.setdefault(str(record["qid"]), record)
            if first is not record:  # text features are found by qid: the two would share one
                raise AnnotationError(
                    f"{source(record)}: qid {record['qid']!r} is already used at {source(first)}; "
                    "every query needs its own qid (its text features are read by qid): "
                    "renumber or remove one of them"
                )
        labelled = [bool(record.get("relevant_windows")) for record in records]
        if any(labelled) and not all(labelled):
            unlabelled = records[labelled.index(False)]
            raise AnnotationError(
                f"{source(unlabelled)}: qid={unlabelled['qid']!r} has no relevant_windows while "
                f"other records of {path} do; a split is either labelled or inputs-only"
            )
        return path, records, all(labelled)

    def _build(self, split: str) -> MomentDataset:
        hp = self.hparams
        path, records, with_labels = self._read(split)
        video, text, audio = self._groups()
        by_vid: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            by_vid.setdefault(str(record["vid"]), []).append(record)
        lengths = video.check(by_vid)
        if audio is not None:
            audio_lengths = audio.check(by_vid)
            lengths = {vid: min(length, audio_lengths[vid]) for vid, length in lengths.items()}
        text.check({str(record["qid"]): [record] for record in records})
        entries = self._entries(records, lengths, with_labels)
        if not entries:
            raise AnnotationError(
                f"{path}: no record is left after fitting labels to the features; check the "
                "features or use on_short_features='error' to see why"
            )
        return MomentDataset(
            entries, video, text, audio, clip_len=hp.clip_len, max_windows=hp.max_windows,
            use_tef=hp.use_tef, with_labels=with_labels,
        )  # fmt: skip

    def _entries(
        self, records: list[dict[str, Any]], lengths: dict[str, int], with_labels: bool
    ) -> list[dict[str, Any]]:
        hp = self.hparams
        entries, short, emptied = [], [], []
        for record in records:
            num_clips = lengths[str(record["vid"])]
            entry: dict[str, Any] = {"record": record, "num_clips": num_clips}
            if with_labels:
                labels, problem = fit_labels(
                    parse_moment_labels(record), num_clips, hp.clip_len, hp.clamp_span_targets
                )
                if problem:
                    short.append((record, problem))
                if len(labels["windows"]) == 0 or len(labels.get("clip_ids", [0])) == 0:
                    emptied.append(record)
                    continue
                entry["labels"] = labels
            entries.append(entry)
        if short and hp.on_short_features == "error":
            raise short_features_error(
                short, "or set on_short_features='truncate' to cut their labels to the features"
            )
        report_records([record for record, _ in short], "had labels cut to their features")
        report_records(emptied, "lost every label to the cut and are left out of this split")
        return entries
