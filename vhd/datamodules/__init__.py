"""DataModules: files in, ``Batch`` out. Models never see paths.

- ``MomentDataModule``: QVHighlights, Charades-STA, TACoS (jsonl + video/text feature folders).
- ``HighlightDataModule``: YouTube Highlights, TVSum (one domain or all; HPCL training windows).
- ``UnlabeledDataModule``: RASL pretraining windows of visual + audio features.
"""

from vhd.datamodules.annotations import AnnotationError, read_jsonl
from vhd.datamodules.collate import collate_items
from vhd.datamodules.features import (
    FeatureError,
    FeatureFolder,
    FeatureStore,
    l2_normalize,
    load_concatenated,
)
from vhd.datamodules.highlights import HighlightDataModule, HighlightDataset
from vhd.datamodules.moments import MomentDataModule, MomentDataset
from vhd.datamodules.unlabeled import UnlabeledDataModule, UnlabeledDataset

__all__ = [
    "AnnotationError",
    "FeatureError",
    "FeatureFolder",
    "FeatureStore",
    "HighlightDataModule",
    "HighlightDataset",
    "MomentDataModule",
    "MomentDataset",
    "UnlabeledDataModule",
    "UnlabeledDataset",
    "collate_items",
    "l2_normalize",
    "load_concatenated",
    "read_jsonl",
]
