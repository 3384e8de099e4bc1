"""Writes ``vhd predict`` output as the official submission (``hl_{split}_submission.jsonl``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
import torch.distributed as dist
from lightning.pytorch.callbacks import BasePredictionWriter

from vhd.atomic import write_text_atomic
from vhd.types import Prediction


def write_jsonl(path: str | Path, rows: list[Prediction]) -> Path:
    return write_text_atomic(path, "".join(json.dumps(row) + "\n" for row in rows))


class SubmissionWriter(BasePredictionWriter):
    """One jsonl line per query in split order, written once by rank 0 under DDP.

    ``output_dir`` defaults to the trainer's ``default_root_dir``; the split name comes from the
    datamodule's ``predict_split`` (``test`` when it has none). Each process predicts its share
    of the split (each query once); rank 0 gathers the rows and writes them in the order of the
    split, so the file is the one a single process writes.
    """

    def __init__(self, output_dir: str | None = None) -> None:
        super().__init__(write_interval="epoch")
        self.output_dir = output_dir
        self.path: Path | None = None

    def write_on_epoch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        predictions: Any,
        batch_indices: Any,
    ) -> None:
        split = getattr(trainer.datamodule, "predict_split", "test")
        target = Path(self.output_dir or trainer.default_root_dir) / f"hl_{split}_submission.jsonl"
        rows = indexed_rows(predictions, batch_indices)
        if trainer.world_size > 1 and dist.is_available() and dist.is_initialized():
            gathered: list[Any] = [None] * trainer.world_size if trainer.is_global_zero else []
            dist.gather_object(rows, gathered if trainer.is_global_zero else None, dst=0)
            rows = [row for part in gathered for row in part] if trainer.is_global_zero else []
        if trainer.is_global_zero:
            self.path = write_jsonl(target, [row for _, row in sorted(rows, key=lambda r: r[0])])


def indexed_rows(predictions: Any, batch_indices: Any) -> list[tuple[int, Prediction]]:
    """(position in the split, row) for every prediction of the one predict dataloader.

    Lightning records each batch's dataset indices; without them, the order of arrival.
    """
    rows = [row for batch in predictions for row in batch]
    indices = [index for batch in batch_indices or [] for index in batch]
    if len(indices) != len(rows):
        indices = list(range(len(rows)))
    return list(zip(indices, rows, strict=True))
