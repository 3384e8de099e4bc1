"""Writes ``vhd predict`` output as the official submission (``hl_{split}_submission.jsonl``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
import torch.distributed as dist
from lightning.pytorch.callbacks import Callback

from vhd.atomic import write_text_atomic
from vhd.tracking import log_submission
from vhd.types import Batch, Prediction


def write_jsonl(path: str | Path, rows: list[Prediction]) -> Path:
    return write_text_atomic(path, "".join(json.dumps(row) + "\n" for row in rows))


class SubmissionWriter(Callback):
    """One jsonl line per query in split order, written once by rank 0 under DDP.

    ``output_dir`` defaults to the trainer's ``default_root_dir``; the split name comes from the
    datamodule's ``predict_split`` (``test`` when it has none). Each process predicts its share
    of the split in whole batches (``vhd.datamodules.samplers.WholeBatches``); rank 0 gathers the
    rows with their split positions (``meta["index"]``) and writes each once, in the order of
    the split: the file one process writes.
    """

    def __init__(self, output_dir: str | None = None) -> None:
        self.output_dir = output_dir
        self.path: Path | None = None
        self._rows: dict[int, Prediction] = {}

    def on_predict_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._rows = {}

    def on_predict_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Batch,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        for meta, row in zip(batch["meta"], outputs, strict=True):
            self._rows[meta["index"]] = row

    def on_predict_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        split = getattr(trainer.datamodule, "predict_split", "test")
        target = Path(self.output_dir or trainer.default_root_dir) / f"hl_{split}_submission.jsonl"
        rows = self._rows
        if trainer.world_size > 1 and dist.is_available() and dist.is_initialized():
            gathered: list[Any] = [None] * trainer.world_size if trainer.is_global_zero else []
            dist.gather_object(rows, gathered if trainer.is_global_zero else None, dst=0)
            rows = {index: row for part in gathered for index, row in part.items()}
        if trainer.is_global_zero:  # one row per split position (see WholeBatches)
            self.path = write_jsonl(target, [rows[index] for index in sorted(rows)])
            log_submission(trainer, self.path)
