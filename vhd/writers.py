"""Writes ``vhd predict`` output as the official submission (``hl_{split}_submission.jsonl``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import BasePredictionWriter

from vhd.types import Prediction


def write_jsonl(path: str | Path, rows: list[Prediction]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row) + "\n")
    return path


class SubmissionWriter(BasePredictionWriter):
    """One jsonl line per query, in dataloader order; ranks write parts that rank 0 merges.

    ``output_dir`` defaults to the trainer's ``default_root_dir``; the split name comes from the
    datamodule's ``predict_split`` (``test`` when it has none).
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
        rows = [row for batch in predictions for row in batch]  # one dataloader: batch lists
        if trainer.world_size == 1:
            self.path = write_jsonl(target, rows)
            return
        write_jsonl(target.with_suffix(f".rank{trainer.global_rank}.jsonl"), rows)
        trainer.strategy.barrier()
        if trainer.is_global_zero:
            parts = [target.with_suffix(f".rank{rank}.jsonl") for rank in range(trainer.world_size)]
            merged = [json.loads(line) for part in parts for line in part.read_text().splitlines()]
            self.path = write_jsonl(target, merged)
            for part in parts:
                part.unlink()
        trainer.strategy.barrier()
