"""Default callbacks of every vhd run."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
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


class LogLines(L.Callback):
    """Plain progress lines for a log file: a line at the start of fit and one per epoch.

    Rich's bar draws only on a terminal, so ``vhd fit > train.log`` showed nothing for minutes;
    ``vhd.lightning_cli`` adds this callback whenever stdout is not a TTY. Steps/s counts training
    batches over training time (validation excluded); the loss is the epoch's mean training loss,
    and, when the epoch validated, the validation figures are the model-selection one followed by
    the protocol's other headline ones.
    """

    def __init__(self) -> None:
        self._batches = 0
        self._loss_sum: Tensor | float = 0.0  # summed on the device: no sync per step
        self._seconds = 0.0
        self._since: float | None = None
        self._validation: dict[str, float] = {}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datasets = getattr(trainer.datamodule, "datasets", {}) or {}
        sizes = ", ".join(f"{split} {len(data)}" for split, data in datasets.items())
        device = f"{trainer.strategy.root_device}"
        if trainer.num_devices > 1:
            device += f" x{trainer.num_devices} ({type(trainer.strategy).__name__})"
        self._print(
            trainer,
            f"vhd fit: {type(pl_module).__name__}, run folder {trainer.default_root_dir}, "
            f"data {sizes or 'from the datamodule'}, device {device}, precision "
            f"{trainer.precision}, {trainer.max_epochs} epochs",
        )

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._batches, self._loss_sum, self._seconds = 0, 0.0, 0.0
        self._validation = {}
        self._since = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:  # fmt: skip
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if isinstance(loss, Tensor):
            self._loss_sum = self._loss_sum + loss.detach()
        self._batches += 1

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._pause()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            from vhd.metrics.evaluate import brief

            metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
            main = str(getattr(pl_module, "main_metric", "")).removeprefix("val/")
            figures = brief(metrics, getattr(pl_module, "protocol", None), "val/")
            first = {main: metrics[f"val/{main}"]} if f"val/{main}" in metrics else {}
            self._validation = {**first, **figures}  # the model-selection figure first
        if self._since is None and self._batches:
            self._since = time.perf_counter()  # validation within the epoch: training resumes

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._pause()
        rate = self._batches / self._seconds if self._seconds > 0 else float("nan")
        line = f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}: {rate:.2f} steps/s"
        if self._batches:
            line += f", train loss {float(self._loss_sum) / self._batches:.4f}"
        if self._validation:
            line += ", val " + ", ".join(f"{k} {v:.2f}" for k, v in self._validation.items())
        self._print(trainer, line)

    def _pause(self) -> None:
        if self._since is not None:
            self._seconds += time.perf_counter() - self._since
            self._since = None

    @staticmethod
    def _print(trainer: L.Trainer, line: str) -> None:
        if trainer.is_global_zero:
            print(line, flush=True)
