"""Default callbacks of every vhd run."""

from __future__ import annotations

import os
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import Tensor


class BestCheckpoint(ModelCheckpoint):
    """Keeps ``<default_root_dir>/checkpoints/best.ckpt`` on the main metric and ``last.ckpt``.

    ``monitor`` defaults to the model's ``main_metric`` (which depends on the datamodule's
    evaluation protocol) and the folder to the run folder, so a config names neither and
    ``vhd test --ckpt_path <run>/checkpoints/best.ckpt`` always finds the selected model. The
    files are overwritten rather than versioned so that these paths stay stable.

    ``last.ckpt`` is the state at the end of the last finished training epoch, written every
    epoch (Lightning's own ``save_last`` writes it only when a new best is saved), so
    ``vhd fit ... --ckpt_path last`` resumes where a killed run stopped.
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
        self._last_saved_step: int | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.monitor is None:
            self.monitor = getattr(pl_module, "main_metric", None)
        if self.dirpath is None:
            self.dirpath = run_checkpoint_dir(trainer)
        super().setup(trainer, pl_module, stage)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        finished_fit_epoch = not (trainer.fast_dev_run or trainer.sanity_checking)
        if self.save_last and finished_fit_epoch and self._last_saved_step != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def _save_last_checkpoint(
        self, trainer: L.Trainer, monitor_candidates: dict[str, Tensor]
    ) -> None:
        super()._save_last_checkpoint(trainer, monitor_candidates)
        self._last_saved_step = trainer.global_step

    def _find_last_checkpoints(self, trainer: L.Trainer) -> set[str]:
        """``ckpt_path="last"`` is resolved before ``setup``: look in the folder setup picks."""
        if self.dirpath is None:
            last = os.path.join(run_checkpoint_dir(trainer), f"{self.CHECKPOINT_NAME_LAST}.ckpt")
            return {os.path.normpath(last)} if os.path.isfile(last) else set()
        return super()._find_last_checkpoints(trainer)


def run_checkpoint_dir(trainer: L.Trainer) -> str:
    return os.path.join(trainer.default_root_dir, "checkpoints")
