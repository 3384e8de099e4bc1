"""Default callbacks of every vhd run."""

from __future__ import annotations

import os
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


class BestCheckpoint(ModelCheckpoint):
    """Keeps ``<default_root_dir>/checkpoints/best.ckpt`` (and ``last.ckpt``) on the main metric.

    ``monitor`` defaults to the model's ``main_metric`` (which depends on the datamodule's
    evaluation protocol) and the folder to the run folder, so a config names neither and
    ``vhd test --ckpt_path <run>/checkpoints/best.ckpt`` always finds the selected model. The
    file is overwritten rather than versioned so that this path stays stable.
    """

    def __init__(
        self,
        monitor: str | None = None,
        mode: str = "max",
        dirpath: str | None = None,
        filename: str = "best",
        save_last: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("enable_version_counter", False)
        super().__init__(
            dirpath=dirpath,
            filename=filename,
            monitor=monitor,
            mode=mode,
            save_last=save_last,
            **kwargs,
        )

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.monitor is None:
            self.monitor = getattr(pl_module, "main_metric", None)
        if self.dirpath is None:
            self.dirpath = os.path.join(trainer.default_root_dir, "checkpoints")
        super().setup(trainer, pl_module, stage)
