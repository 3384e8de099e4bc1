"""What every vhd datamodule shares: feature groups checked at setup, length reports, loaders.

Checks run once in ``setup`` over the whole split (file headers only), so a missing file, a
dimension mismatch or features shorter than the labels fail before the first step, with every
offending record listed, instead of at some batch deep into an epoch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vhd.datamodules.annotations import source
from vhd.datamodules.collate import collate_items
from vhd.datamodules.features import (
    CacheMode,
    FeatureError,
    FeatureFolder,
    FeatureStore,
    load_concatenated,
)
from vhd.datamodules.samplers import evaluation_sampler, training_sampler
from vhd.errors import ConfigError
from vhd.seeding import run_seed
from vhd.types import Batch

log = logging.getLogger("vhd.datamodules")

ShortFeatures = Literal["error", "truncate"]
EXAMPLES = 5  # records named in a summary message


def describe_records(records: Iterable[dict[str, Any]], limit: int = EXAMPLES) -> str:
    """'qid=3 vid='a' (file:line), ...' for the first few records, then a count of the rest."""
    records = list(records)
    shown = [
        f"qid={record.get('qid')!r} vid={record.get('vid')!r} ({source(record)})"
        for record in records[:limit]
    ]
    more = f" and {len(records) - limit} more" if len(records) > limit else ""
    return "; ".join(shown) + more


class FeatureGroup:
    """Several feature types of one modality, read as one (time, sum of dims) array.

    Types are cut to ``max_len`` and normalised each on its own, then cut to the shortest and
    concatenated in folder order (the Moment-DETR / VideoLights convention).
    """

    def __init__(
        self,
        root: Path,
        folders: Sequence[str],
        *,
        what: str,
        config_key: str,
        key: str = "features",
        prefix: str = "",
        cache: CacheMode = "none",
        cache_dir: Path | None = None,
        normalize: bool = False,
        max_len: int | None = None,
    ) -> None:
        if not folders:
            raise ConfigError(f"{config_key} is empty; list at least one {what} feature folder")
        self.what = what
        self.config_key = config_key
        self.normalize = normalize
        self.max_len = max_len
        self.stores = [
            FeatureStore(FeatureFolder(root / folder, key, prefix), cache, cache_dir)
            for folder in folders
        ]

    def check(self, records_by_name: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
        """Usable length per name (min over types, cut to ``max_len``); fills the caches.

        Raises one ``FeatureError`` naming every missing file's record and all folders searched.
        """
        names = list(records_by_name)
        lengths: dict[str, int] = {}
        for store in self.stores:
            scan = store.scan(names)
            if scan.missing:
                raise FeatureError(self._missing_message(store, scan.missing, records_by_name))
            store.prepare(scan.lengths)
            for name, length in scan.lengths.items():
                lengths[name] = min(lengths.get(name, length), length)
        if self.max_len is not None:
            lengths = {name: min(length, self.max_len) for name, length in lengths.items()}
        return lengths

    def _missing_message(
        self, store: FeatureStore, missing: list[str], records_by_name: dict[str, list[dict]]
    ) -> str:
        records = [records_by_name[name][0] for name in missing]
        searched = ", ".join(str(other.folder.folder) for other in self.stores)
        return (
            f"{len(missing)} of {len(records_by_name)} {self.what} feature files are missing "
            f"from {store.folder.folder} (expected {store.folder.describe_search()}; folders "
            f"searched for {self.what}: {searched}): {describe_records(records)}. Extract those "
            f"features, fix {self.config_key} / data_root, or remove the records"
        )

    def load(self, name: str) -> np.ndarray:
        return load_concatenated(self.stores, name, self.max_len, self.normalize)


def report_records(records: list[dict[str, Any]], what: str) -> None:
    """One warning per split naming a few records: nothing is cut or skipped silently."""
    if records:
        log.warning("%d records %s: %s", len(records), what, describe_records(records))


def short_features_error(records: list[tuple[dict[str, Any], str]], fix: str) -> FeatureError:
    """Features shorter than their annotations: one error listing each record and its shortfall."""
    shown = "; ".join(
        f"qid={record.get('qid')!r} vid={record.get('vid')!r} ({source(record)}): {detail}"
        for record, detail in records[:EXAMPLES]
    )
    more = f" and {len(records) - EXAMPLES} more" if len(records) > EXAMPLES else ""
    return FeatureError(
        f"{len(records)} records have features shorter than their annotation implies: "
        f"{shown}{more}. Check the feature files (or raise max_v_l); {fix}"
    )


class VHDDataModule(L.LightningDataModule):
    """Loader plumbing of every vhd datamodule; subclasses build ``self.datasets[split]``.

    Subclasses call ``save_hyperparameters()`` themselves and define ``protocol``,
    ``predict_split``, ``synthetic_kind`` and ``_build(split)``.
    """

    synthetic_kind: str = ""
    # e.g. {"test": "val"} where a benchmark has no separate test split
    split_aliases: ClassVar[dict[str, str]] = {}

    def __init__(self) -> None:
        super().__init__()
        self.datasets: dict[str, Dataset] = {}
        self.feature_manifest: dict[str, Any] | None = None  # from data_root/manifest.json

    def synthetic_options(self) -> dict[str, Any]:
        return dict(self.hparams.synthetic or {})

    def prepare_data(self) -> None:
        if self.hparams.synthetic is not None:
            from vhd.datamodules.synthetic import ensure_synthetic

            ensure_synthetic(
                self.synthetic_kind, self.hparams.data_root, **self.synthetic_options()
            )

    def stage_splits(self, stage: str | None) -> list[str]:
        return {
            "fit": ["train", "val"],
            "validate": ["val"],
            "test": ["test"],
            "predict": [self.predict_split],
        }.get(stage or "fit", ["train", "val", "test"])

    def feature_clip_len(self) -> tuple[float, str]:
        """Seconds per feature row and the setting that says so, for the manifest check."""
        return float(self.hparams.clip_len), "data.clip_len"

    def check_manifest(self) -> None:
        """Features from ``vhd extract`` (a ``manifest.json`` in ``data_root``) must have been made
        with this clip_len and, when ``feature_recipe`` is set, with that recipe."""
        from vhd.extract.manifest import check_features, feature_provenance, read_manifest

        manifest = read_manifest(self.hparams.data_root)
        if manifest is not None:
            clip_len, setting = self.feature_clip_len()
            check_features(
                Path(self.hparams.data_root), manifest, clip_len=clip_len,
                recipes=self.hparams.feature_recipe, config=setting,
            )  # fmt: skip
            self.feature_manifest = feature_provenance(manifest)

    def state_dict(self) -> dict[str, Any]:
        """Saved in every checkpoint: how the features were made (recipes, clip_len, weights), so
        ``vhd highlight`` extracts exactly those from a new video."""
        return {"feature_manifest": self.feature_manifest} if self.feature_manifest else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.feature_manifest = state_dict.get("feature_manifest")

    def setup(self, stage: str | None = None) -> None:
        self.check_manifest()
        for split in self.stage_splits(stage):
            split = self.split_aliases.get(split, split)
            if split not in self.datasets:
                self.datasets[split] = self._build(split)

    def _build(self, split: str) -> Dataset:
        raise NotImplementedError

    def _loader(self, split: str, batch_size: int, shuffle: bool = False) -> DataLoader[Batch]:
        """``shuffle``: the (seed, epoch) training order; otherwise file order, split over
        processes without repeats (see ``vhd.datamodules.samplers``)."""
        split = self.split_aliases.get(split, split)
        if split not in self.datasets:
            self.datasets[split] = self._build(split)
        dataset = self.datasets[split]
        sampler = (
            training_sampler(dataset, self.trainer)
            if shuffle
            else evaluation_sampler(dataset, self.trainer, batch_size)
        )
        workers = self.hparams.num_workers
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            # the loader's own seed draws (worker seeds) leave the global generators alone, so
            # the epoch's draws follow ``seed_epoch`` whenever Lightning starts the iterator
            generator=torch.Generator().manual_seed(run_seed()),
            num_workers=workers,
            pin_memory=self.hparams.pin_memory,
            persistent_workers=workers > 0,
            collate_fn=collate_items,
        )

    def train_dataloader(self) -> DataLoader[Batch]:
        return self._loader("train", self.hparams.batch_size, shuffle=True)

    def predict_dataloader(self) -> DataLoader[Batch]:
        return self._loader(self.predict_split, self.hparams.eval_batch_size)


class LabelledDataModule(VHDDataModule):
    """Adds validation and test loaders (Lightning only validates when these are overridden)."""

    def val_dataloader(self) -> DataLoader[Batch]:
        return self._loader("val", self.hparams.eval_batch_size)

    def test_dataloader(self) -> DataLoader[Batch]:
        return self._loader("test", self.hparams.eval_batch_size)
