"""Writes ``vhd predict`` output as the official submission (``hl_{split}_submission.jsonl``)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import lightning as L
import torch.distributed as dist
from lightning.pytorch.callbacks import Callback

from vhd.atomic import write_text_atomic
from vhd.errors import UserError
from vhd.tracking import log_submission
from vhd.types import Batch, Prediction


class OutputError(UserError, OSError):
    """A folder a run must write into cannot be written; found before the work, not after."""


def check_writable(folder: str | Path, setting: str) -> None:
    """Create ``folder`` if needed and write a scratch file in it, or raise ``OutputError``."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise OutputError(
            f"cannot write into {folder} ({err.strerror or type(err).__name__}); set {setting} "
            "to a folder you can write"
        ) from err


def write_jsonl(path: str | Path, rows: list[Prediction]) -> Path:
    return write_text_atomic(path, "".join(json.dumps(row) + "\n" for row in rows))


class SubmissionWriter(Callback):
    """One jsonl line per query in split order, written once by rank 0 under DDP, atomically;
    the folder is checked before predicting and the path printed after writing.

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

    def target(self, trainer: L.Trainer) -> Path:
        split = getattr(trainer.datamodule, "predict_split", "test")
        return Path(self.output_dir or trainer.default_root_dir) / f"hl_{split}_submission.jsonl"

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Fail before predicting, not after, when the file cannot be written."""
        if trainer.is_global_zero:
            setting = "SubmissionWriter's output_dir" if self.output_dir else "default_root_dir"
            check_writable(self.target(trainer).parent, setting)

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
        rows = self._rows
        if trainer.world_size > 1 and dist.is_available() and dist.is_initialized():
            gathered: list[Any] = [None] * trainer.world_size if trainer.is_global_zero else []
            dist.gather_object(rows, gathered if trainer.is_global_zero else None, dst=0)
            rows = {index: row for part in gathered for index, row in part.items()}
        if trainer.is_global_zero:  # one row per split position (see WholeBatches)
            self.path = write_jsonl(self.target(trainer), [rows[i] for i in sorted(rows)])
            print(f"predictions written to {self.path}", flush=True)
            log_submission(trainer, self.path)
