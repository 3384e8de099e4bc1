"""Highlight detection benchmarks: YouTube Highlights and TVSum (one domain or all).

Records come from the jsonl files, split membership from ``splits.json`` (or, for TVSum under
HPCL's protocol, from video length). Targets per clip:

- YouTube: the binary label; ``saliency`` = ``labels``.
- TVSum: ``saliency`` = the VideoLights/UMT score (sum over 20 annotators of rating - 1, x 12/80),
  ``labels`` = HPCL's top-50% binary labels of the mean rating.
- ``saliency_pos`` / ``saliency_neg``: the official single (argmax, argmin) pair.

With ``train_window`` (HPCL: T = 20) training items are T-clip windows drawn by
``targets.sample_training_window``, ``windows_per_video`` of them per video and epoch, spread over
the video; evaluation always sees whole videos.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from vhd.datamodules.annotations import (
    AnnotationError,
    read_json,
    read_jsonl,
    require_fields,
    source,
    strip_private,
)
from vhd.datamodules.clip_time import clip_rows, clip_spans, covered_clips, pool_rows
from vhd.datamodules.common import (
    FeatureGroup,
    LabelledDataModule,
    ShortFeatures,
    describe_records,
    log,
    report_records,
    short_features_error,
)
from vhd.datamodules.features import CacheMode, FeatureFolder
from vhd.datamodules.targets import (
    extreme_pair,
    sample_training_window,
    temporal_endpoint_features,
    top_fraction_labels,
    tvsum_saliency,
    window_feasible,
)

HighlightProtocol = Literal["youtube", "tvsum"]
SplitProtocol = Literal["splits_file", "longest_two"]
HighlightSplit = Literal["train", "val", "test"]
WindowsPerVideo = int | Literal["all"]
DEFAULT_ANNOTATION_FILES = {
    "youtube": ["youtube_train.jsonl", "youtube_valid.jsonl"],
    "tvsum": ["tvsum_train.jsonl", "tvsum_val.jsonl"],
}
TVSUM_RATINGS = (1, 5)


# -- records ---------------------------------------------------------------------------------------
def parse_labels(record: dict[str, Any], protocol: str, top_fraction: float):
    """(labels, saliency) per annotated clip, validated against the benchmark's format."""
    rows = np.asarray(record["label"], dtype=np.float32)
    if protocol == "youtube":
        if rows.ndim != 2 or rows.shape[1] != 1 or not np.isin(rows, (0, 1)).all():
            raise AnnotationError(
                f"{source(record)}: vid={record['vid']!r} label must be one [0] or [1] per clip "
                f"(YouTube Highlights format), got shape {rows.shape}; use protocol='tvsum' for "
                "TVSum annotations"
            )
        labels = rows[:, 0].copy()
        return labels, labels.copy()
    low, high = TVSUM_RATINGS
    if rows.ndim != 2 or rows.size == 0 or rows.min() < low or rows.max() > high:
        raise AnnotationError(
            f"{source(record)}: vid={record['vid']!r} label must be (clips x annotators) ratings "
            f"{low}-{high} (TVSum format), got shape {rows.shape}; use protocol='youtube' for "
            "binary labels"
        )
    return top_fraction_labels(rows.mean(axis=1), top_fraction), tvsum_saliency(rows)


def assign_splits(
    records: dict[str, dict[str, Any]],
    splits: dict[str, Any],
    splits_path: Path,
    domain: str | None,
    protocol: str,
    split_protocol: str,
) -> dict[str, list[str]]:
    """vids of "train" and "val" for the domain (or all), checked against the annotations."""
    if domain is not None and domain not in splits:
        raise AnnotationError(
            f"unknown {protocol} domain {domain!r}; {splits_path} lists {sorted(splits)} "
            "(set data.domain to one of them, or null for all)"
        )
    chosen: dict[str, list[str]] = {"train": [], "val": []}
    absent: list[str] = []
    for name in [domain] if domain is not None else list(splits):
        entry = splits[name]
        if not isinstance(entry, dict) or not {"train", "val"} <= set(entry):
            raise AnnotationError(
                f"{splits_path}: domain {name!r} must map to {{'train': [...], 'val': [...]}}"
            )
        listed = [vid for split in ("train", "val") for vid in entry[split]]
        absent += [vid for vid in listed if vid not in records]
        for vid in listed:
            if vid in records and records[vid].get("domain", name) != name:
                raise AnnotationError(
                    f"{source(records[vid])}: vid={vid!r} has domain "
                    f"{records[vid].get('domain')!r} but {splits_path} lists it under {name!r}"
                )
        if split_protocol == "longest_two":
            present = sorted(
                (vid for vid in listed if vid in records),
                key=lambda vid: (
                    -float(records[vid].get("duration", len(records[vid]["label"]))),
                    vid,
                ),
            )
            chosen["train"] += present[:2]
            chosen["val"] += present[2:]
        else:
            for split in ("train", "val"):
                chosen[split] += [vid for vid in entry[split] if vid in records]
    if absent:
        log.warning(
            "%d videos listed in %s have no annotation record and are skipped: %s",
            len(absent),
            splits_path,
            ", ".join(map(repr, absent[:5])) + (" ..." if len(absent) > 5 else ""),
        )
    listed_anywhere = {
        vid for entry in splits.values() for split in ("train", "val") for vid in entry[split]
    }
    unlisted = [records[vid] for vid in records if vid not in listed_anywhere]
    if unlisted:
        log.warning(
            "%d annotation records are in no split of %s and are not used: %s",
            len(unlisted),
            splits_path,
            describe_records(unlisted),
        )
    return chosen


# -- dataset ---------------------------------------------------------------------------------------
def clip_features(entry: dict[str, Any], features: np.ndarray) -> np.ndarray:
    """A video's feature rows for its labelled clips: the first ``num_clips`` when rows are clips;
    with a ``feature_step``, each clip's rows pooled into one, or (``pool_features=False``) every
    row up to the last clip's."""
    rows = entry.get("clip_rows")
    if rows is None:
        return features[: entry["num_clips"]]
    if entry["pool_features"]:
        return pool_rows(features, rows)
    return features[: int(rows[:, 1].max())]


class HighlightDataset(Dataset):
    """Whole videos (or HPCL training windows) with per-clip targets, as ``collate_items`` items."""

    def __init__(
        self,
        videos: list[dict[str, Any]],
        video: FeatureGroup,
        audio: FeatureGroup | None,
        text: FeatureGroup | None,
        *,
        clip_len: float,
        use_tef: bool,
        train_window: int | None,
        min_positive_ratio: float,
        windows_per_video: WindowsPerVideo = 1,
    ) -> None:
        self.videos = videos
        self.video = video
        self.audio = audio
        self.text = text
        self.clip_len = clip_len
        self.use_tef = use_tef
        self.train_window = train_window
        self.min_positive_ratio = min_positive_ratio
        # (video, part, parts) per item: window ``part`` of the ``parts`` the video gives
        self.items = [
            (position, part, parts)
            for position, entry in enumerate(videos)
            for parts in [self.windows_of(entry["num_clips"], windows_per_video)]
            for part in range(parts)
        ]

    def windows_of(self, num_clips: int, windows_per_video: WindowsPerVideo) -> int:
        """Items a video gives per epoch: 1 when evaluating; ``"all"``: ceil(num_clips / T), as
        many windows as tile the video."""
        if self.train_window is None:
            return 1
        if windows_per_video == "all":
            return max(1, math.ceil(num_clips / self.train_window))
        return int(windows_per_video)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        position, part, parts = self.items[index]
        entry = self.videos[position]
        record, num_clips = entry["record"], entry["num_clips"]
        vid = record["vid"]
        video = clip_features(entry, self.video.load(vid))
        if self.use_tef:
            video = np.concatenate([video, temporal_endpoint_features(len(video))], axis=1)
        arrays = {"video": video, "labels": entry["labels"], "saliency": entry["saliency"]}
        if self.audio is not None:
            arrays["audio"] = clip_features(entry, self.audio.load(vid))
        meta: dict[str, Any] = {
            "qid": record.get("qid", vid),
            "index": index,  # position in the split: evaluation order under DDP
            "vid": vid,
            "query": record.get("query", entry["domain"]),
            "duration": float(record.get("duration", num_clips * self.clip_len)),
            "clip_len": self.clip_len,
            "domain": entry["domain"],
            "annotation": strip_private(record),
        }
        if "clip_rows" in entry and not entry["pool_features"]:
            meta["clip_rows"] = entry["clip_rows"].tolist()
            meta["feature_step"] = entry["feature_step"]
        if self.train_window is not None:
            clips = sample_training_window(
                entry["labels"], self.train_window, self.min_positive_ratio, part, parts
            )
            arrays = {key: value[clips] for key, value in arrays.items()}
            meta["clip_ids"] = clips.tolist()
        meta["num_clips"] = len(arrays["labels"])
        positive, negative = extreme_pair(arrays["saliency"])
        item: dict[str, Any] = {
            key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in arrays.items()
        }
        item["saliency_pos"] = torch.as_tensor(positive, dtype=torch.long)
        item["saliency_neg"] = torch.as_tensor(negative, dtype=torch.long)
        if self.text is not None:
            item["query"] = torch.from_numpy(self.text.load(str(meta["qid"])))
        item["meta"] = meta
        return item


class HighlightDataModule(LabelledDataModule):
    """YouTube Highlights or TVSum: jsonl annotations, ``splits.json``, per-video feature folders.

    Paths are relative to ``data_root``. The benchmarks have train and val splits only; "test"
    is served the val split (the split every paper reports). ``split_protocol="longest_two"``
    (TVSum only) is HPCL's protocol: per domain the two longest videos train, the other three test.

    Features: ``video_feature_dirs`` (default ``[video_features]``) and optional
    ``audio_feature_dirs`` hold ``{vid}.npz`` (key ``features``) or ``{vid}.npy``; types are
    concatenated after cutting to the shortest, and clips beyond the labels are cut. Optional
    query features (VideoLights on TVSum: ``{qid}.npz``, key ``token``) come from
    ``text_feature_dir``. ``train_window`` (HPCL: 20) turns training items into windows of that
    many clips with positives:negatives >= ``min_positive_ratio``, ``windows_per_video`` of them
    per training video and epoch (an int, or ``"all"``: ceil(clips / train_window), enough to tile
    the video), each drawn from its own share of the video so they spread over it (HPCL's
    configs give the learning curve behind their value); ``tvsum_top_fraction`` is the share of
    TVSum clips labelled 1 for HPCL. ``on_short_features="truncate"`` cuts labels to
    shorter features (logged) instead of failing. ``feature_cache``: ``"memory"`` or ``"mmap"``
    (packed file under ``cache_dir``, default ``data_root/.feature_cache``). ``synthetic`` (e.g.
    ``{seed: 0, size: tiny}``) generates the embedded synthetic data in the protocol's format into
    ``data_root`` first.
    ``feature_recipe``: the ``vhd extract`` recipe(s) the features must come from; with a
    ``manifest.json`` in ``data_root`` (written by ``vhd extract``) its recipe and clip length
    are checked before training.

    ``feature_step``: seconds per feature row when rows are not the labelled clips (RASL: 0.2, its
    5 fps); null means one row per clip (``clip_len``), as the released benchmark features are.
    Rows are then placed on the clips by time (``clip_time``: the rows whose centre falls in a
    clip's span), and features that stop more than one step short of the last labelled clip's end
    are an error (or, with ``on_short_features="truncate"``, cut the clips they do not reach).
    ``pool_features`` averages each clip's rows into one (models that read one row per clip);
    ``False`` keeps every row and gives each item ``meta["clip_rows"]`` ([first, end) rows per
    clip) and ``meta["feature_step"]``, for RASL, which scores 30 s windows at the feature rate and
    pools its scores onto the clips. Every feature folder shares the step.
    """

    synthetic_kind = "highlights"
    split_aliases: ClassVar[dict[str, str]] = {"test": "val"}

    def __init__(
        self,
        data_root: str = "data/youtube_highlights",
        protocol: HighlightProtocol = "youtube",
        domain: str | None = None,
        annotation_files: list[str] | None = None,
        splits_file: str = "splits.json",
        split_protocol: SplitProtocol = "splits_file",
        video_feature_dirs: list[str] | None = None,
        audio_feature_dirs: list[str] | None = None,
        text_feature_dir: str | None = None,
        text_feature_key: str = "last_hidden_state",
        text_file_prefix: str = "",
        normalize_video: bool = False,
        normalize_audio: bool = False,
        normalize_text: bool = True,
        use_tef: bool = False,
        max_v_l: int | None = None,
        max_q_l: int = 32,
        clip_len: float = 2.0,
        feature_step: float | None = None,
        pool_features: bool = True,
        train_window: int | None = None,
        min_positive_ratio: float = 0.5,
        windows_per_video: WindowsPerVideo = 1,
        tvsum_top_fraction: float = 0.5,
        on_short_features: ShortFeatures = "error",
        feature_cache: CacheMode = "none",
        cache_dir: str | None = None,
        predict_split: HighlightSplit = "val",
        batch_size: int = 32,
        eval_batch_size: int = 16,
        num_workers: int = 0,
        pin_memory: bool = False,
        synthetic: dict[str, Any] | None = None,
        feature_recipe: str | list[str] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if protocol not in DEFAULT_ANNOTATION_FILES:
            raise ValueError(f"unknown highlight protocol {protocol!r}; use 'youtube' or 'tvsum'")
        if split_protocol not in ("splits_file", "longest_two"):
            raise ValueError(
                f"unknown split_protocol {split_protocol!r}; use 'splits_file' or 'longest_two'"
            )
        if split_protocol == "longest_two" and protocol != "tvsum":
            raise ValueError("split_protocol='longest_two' is TVSum's HPCL protocol; use tvsum")
        if predict_split not in ("train", "val", "test"):
            raise ValueError(f"unknown predict_split {predict_split!r}; use train, val or test")
        if train_window is not None and train_window < 2:
            raise ValueError(
                f"train_window must be at least 2 clips (HPCL: 20), got {train_window}"
            )
        if windows_per_video != "all" and (
            isinstance(windows_per_video, bool)
            or not isinstance(windows_per_video, int)
            or windows_per_video < 1
        ):
            raise ValueError(
                f"windows_per_video must be a positive number of windows or 'all', got "
                f"{windows_per_video!r}"
            )
        if feature_step is not None and feature_step <= 0:
            raise ValueError(f"feature_step is seconds per feature row, got {feature_step}")
        if feature_step is not None and not pool_features and train_window is not None:
            raise ValueError(
                "pool_features=False keeps feature rows apart from the labelled clips, for "
                "evaluation (RASL); train_window needs one row per clip: pool_features=True"
            )
        self.data_root = Path(data_root)
        self.protocol = protocol
        self.domain = domain
        self.predict_split = predict_split
        self.video_feature_dirs = video_feature_dirs or ["video_features"]
        self._splits: dict[str, list[str]] | None = None
        self._records: dict[str, dict[str, Any]] = {}

    def synthetic_options(self) -> dict[str, Any]:
        return {"style": self.protocol, **(self.hparams.synthetic or {})}

    def feature_clip_len(self) -> tuple[float, str]:
        if self.hparams.feature_step is None:
            return super().feature_clip_len()
        return float(self.hparams.feature_step), "data.feature_step"

    # -- annotations -------------------------------------------------------------------------
    def _load_annotations(self) -> dict[str, list[str]]:
        if self._splits is not None:
            return self._splits
        files = self.hparams.annotation_files or DEFAULT_ANNOTATION_FILES[self.protocol]
        for name in files:
            for record in read_jsonl(self.data_root / name):
                require_fields(record, ("vid", "label"))
                vid = str(record["vid"])
                if vid in self._records:
                    raise AnnotationError(
                        f"{source(record)}: vid={vid!r} already annotated at "
                        f"{source(self._records[vid])}; keep one record per video"
                    )
                self._records[vid] = record
        splits_path = self.data_root / self.hparams.splits_file
        splits = read_json(splits_path)
        if not isinstance(splits, dict):
            raise AnnotationError(f"{splits_path}: expected {{domain: {{train, val}}}} mapping")
        self._splits = assign_splits(
            self._records, splits, splits_path, self.domain, self.protocol,
            self.hparams.split_protocol,
        )  # fmt: skip
        self._domain_of = {
            vid: name
            for name, entry in splits.items()
            for s in ("train", "val")
            for vid in entry[s]
        }
        return self._splits

    # -- datasets ----------------------------------------------------------------------------
    def _groups(self) -> tuple[FeatureGroup, FeatureGroup | None, FeatureGroup | None]:
        hp = self.hparams
        cache_dir = self.data_root / (hp.cache_dir or ".feature_cache")
        common = dict(cache=hp.feature_cache, cache_dir=cache_dir)
        video = FeatureGroup(
            self.data_root, self.video_feature_dirs, what="video", config_key="video_feature_dirs",
            normalize=hp.normalize_video, max_len=hp.max_v_l, **common,
        )  # fmt: skip
        audio = None
        if hp.audio_feature_dirs:
            audio = FeatureGroup(
                self.data_root, hp.audio_feature_dirs, what="audio",
                config_key="audio_feature_dirs", normalize=hp.normalize_audio,
                max_len=hp.max_v_l, **common,
            )  # fmt: skip
        text = None
        if hp.text_feature_dir:
            text = FeatureGroup(
                self.data_root, [hp.text_feature_dir], what="text", config_key="text_feature_dir",
                key=hp.text_feature_key, prefix=hp.text_file_prefix, normalize=hp.normalize_text,
                max_len=hp.max_q_l, **common,
            )  # fmt: skip
        return video, audio, text

    def _build(self, split: str) -> HighlightDataset:
        hp = self.hparams
        vids = self._load_annotations()[split]
        if not vids:
            raise AnnotationError(
                f"the {split} split of {self.protocol} domain {self.domain or 'all'} is empty "
                f"after filtering ({hp.split_protocol}, {self.data_root / hp.splits_file}); "
                "check domain, splits_file and annotation_files"
            )
        records = [self._records[vid] for vid in vids]
        video, audio, text = self._groups()
        by_vid = {str(record["vid"]): [record] for record in records}
        lengths = video.check(by_vid)
        if audio is not None:
            audio_lengths = audio.check(by_vid)
            lengths = {vid: min(length, audio_lengths[vid]) for vid, length in lengths.items()}
        if text is not None:
            text.check({str(record.get("qid", record["vid"])): [record] for record in records})
        videos = self._reconcile(records, lengths)
        if split == "train" and hp.train_window is not None:
            self._report_windows(videos)
        return HighlightDataset(
            videos, video, audio, text, clip_len=hp.clip_len, use_tef=hp.use_tef,
            train_window=hp.train_window if split == "train" else None,
            min_positive_ratio=hp.min_positive_ratio, windows_per_video=hp.windows_per_video,
        )  # fmt: skip

    def _reconcile(
        self, records: list[dict[str, Any]], lengths: dict[str, int]
    ) -> list[dict[str, Any]]:
        """Per-clip targets cut to what both features and labels cover; short features raise."""
        hp = self.hparams
        videos, short, cut_features = [], [], []
        for record in records:
            vid = str(record["vid"])
            labels, saliency = parse_labels(record, self.protocol, hp.tvsum_top_fraction)
            available, timing = lengths[vid], {}
            if hp.feature_step is not None:
                available, timing = self._rows_by_time(record, len(labels), lengths[vid])
            if available < len(labels):
                detail = f"{available} feature clips, {len(labels)} labelled clips"
                short.append((record, timing.get("shortfall", detail)))
                if hp.on_short_features == "error":
                    continue
                # recompute on the kept clips, so TVSum's top 50% is of what the model sees
                record_cut = {**record, "label": record["label"][:available]}
                labels, saliency = parse_labels(record_cut, self.protocol, hp.tvsum_top_fraction)
            elif available > len(labels) or timing.get("spare_rows", 0) > 1:
                cut_features.append(record)
            num_clips = min(available, len(labels))
            videos.append(
                {
                    "record": record,
                    "domain": self._domain_of.get(vid, record.get("domain", "")),
                    "num_clips": num_clips,
                    "labels": labels[:num_clips],
                    "saliency": saliency[:num_clips],
                    **{key: timing[key] for key in ("clip_rows", "feature_step") if timing},
                    "pool_features": hp.pool_features,
                }
            )
        if short and hp.on_short_features == "error":
            truncate = "set on_short_features='truncate' to cut their labels to the features"
            raise short_features_error(
                short,
                f"check data.feature_step (seconds per feature row) or {truncate}"
                if hp.feature_step is not None
                else f"or {truncate}",
            )
        report_records([record for record, _ in short], "had labels cut to their shorter features")
        report_records(
            cut_features, "have more feature clips than labels; the unlabelled tail clips are cut"
        )
        return videos

    def _rows_by_time(
        self, record: dict[str, Any], num_labels: int, num_rows: int
    ) -> tuple[int, dict[str, Any]]:
        """Rows every ``feature_step`` s placed on the labelled clips (``clip_time``): the clips
        they cover within one step, and the entry's ``clip_rows``, ``feature_step``, the
        ``spare_rows`` past the last clip and the ``shortfall`` in words."""
        step, vid = float(self.hparams.feature_step), str(record["vid"])
        spans = clip_spans(record, num_labels, self.hparams.clip_len)
        covered = covered_clips(spans, num_rows, step)
        rows = clip_rows(spans[:covered], step, num_rows)
        spare = num_rows - int(rows[:, 1].max()) if covered else 0
        timing: dict[str, Any] = {"clip_rows": rows, "feature_step": step, "spare_rows": spare}
        if covered < num_labels:  # named only when short: a file lookup per video otherwise
            folder = self.data_root / self.video_feature_dirs[0]
            where = FeatureFolder(folder).path_for(vid) or folder / f"{vid}.npz"
            timing["shortfall"] = (
                f"{where}: {num_rows} rows of {step:g} s cover {num_rows * step:.1f} s, but the "
                f"{num_labels} labelled clips span {spans[-1, 1]:.1f} s"
            )
        return covered, timing

    def _report_windows(self, videos: list[dict[str, Any]]) -> None:
        hp = self.hparams
        short = [v["record"] for v in videos if v["num_clips"] < hp.train_window]
        infeasible = [
            v["record"]
            for v in videos
            if v["num_clips"] >= hp.train_window
            and not window_feasible(v["labels"], hp.train_window, hp.min_positive_ratio)
        ]
        report_records(short, f"are shorter than train_window={hp.train_window}; used whole")
        report_records(
            infeasible,
            f"cannot give {hp.train_window}-clip windows with positives:negatives >= "
            f"{hp.min_positive_ratio}; their windows come as close as the labels allow",
        )
