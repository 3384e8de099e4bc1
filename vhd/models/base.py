"""Shared LightningModule plumbing: one prediction path for evaluation and submission files.

Every method implements ``predict_batch`` (a ``Batch`` in, official-format ``Prediction``s out) and
``training_step``. Validation and test feed those same predictions to the metrics of the
datamodule's evaluation ``protocol``, and ``vhd predict`` writes them, so what is scored is what is
written.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from torch import nn

from vhd.callbacks import BestCheckpoint
from vhd.errors import ConfigError
from vhd.seeding import run_seed, seed_epoch
from vhd.tracking import log_final_metrics
from vhd.types import Batch, Prediction
from vhd.writers import SubmissionWriter

# Evaluation figures are logged from every process after torchmetrics has synchronised them, so
# they are equal everywhere; Lightning's advice to reduce them again does not apply.
warnings.filterwarnings("ignore", message=r"It is recommended to use `self\.log\('(val|test)/")

# The figure each protocol's models are selected on (Moment-DETR's default for QVHighlights).
MAIN_METRIC = {
    "qvhighlights": "MR-full-mAP",
    "charades": "MR-full-R1@0.7",
    "tacos": "MR-full-R1@0.5",
    "youtube": "mAP",
    "tvsum": "top5-mAP",
}


def build_metrics(protocol: str, predicts_windows: bool) -> nn.ModuleDict:
    """The torchmetrics of a protocol; moment metrics only for models that predict windows."""
    from vhd import metrics

    if protocol == "qvhighlights":
        built = {"saliency": metrics.QVHighlightsSaliencyMetric()}
        if predicts_windows:
            built["moments"] = metrics.MomentRetrievalMetric("qvhighlights")
    elif protocol in ("charades", "tacos"):
        built = {"moments": metrics.MomentRetrievalMetric(protocol)}
    elif protocol == "youtube":
        built = {"highlights": metrics.YouTubeHighlightsMetric()}
    elif protocol == "tvsum":
        built = {"highlights": metrics.TVSumMetric()}
    else:
        raise ValueError(
            f"unknown evaluation protocol {protocol!r}; expected one of {list(MAIN_METRIC)}"
        )
    return nn.ModuleDict(built)


class VHDModule(L.LightningModule):
    """Base of every vhd method. Subclasses set ``predicts_windows`` and ``input_dims``."""

    predicts_windows: bool = True

    def __init__(self, main_metric: str | None = None) -> None:
        super().__init__()
        self._main_metric = main_metric
        self.metrics: nn.ModuleDict | None = None
        self.protocol: str | None = None

    def keep_out_of_gradient(self, modules: Iterable[nn.Module | nn.Parameter]) -> None:
        """Parameters that no loss reaches in this configuration keep their place in the state
        dict (checkpoints load either way) but take no gradient. DDP requires every trainable
        parameter to receive one, and ``find_unused_parameters`` would cost every step."""
        for module in modules:
            module.requires_grad_(False)

    # -- what subclasses provide -------------------------------------------------------------
    def predict_batch(self, batch: Batch) -> list[Prediction]:
        raise NotImplementedError

    def derived_metrics(self, results: dict[str, float]) -> dict[str, float]:
        """Figures computed from the metrics (e.g. a method's model-selection score); none here."""
        return {}

    def input_dims(self) -> dict[str, int]:
        """Feature sizes the model was built for, by batch key (checked on the first batch)."""
        return {}

    # -- evaluation ----------------------------------------------------------------------------
    @property
    def main_metric(self) -> str:
        """The logged key model selection watches, e.g. ``val/MR-full-mAP``."""
        name = self._main_metric or MAIN_METRIC.get(self.protocol or "qvhighlights", "MR-full-mAP")
        return name if name.startswith("val/") else f"val/{name}"

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        self.protocol = getattr(datamodule, "protocol", None)
        if self.protocol is not None and self.metrics is None:
            self.metrics = build_metrics(self.protocol, self.predicts_windows)

    def _evaluate_step(self, batch: Batch) -> None:
        self._check_input_dims(batch)
        if self.metrics is None:
            raise ConfigError(
                "no evaluation protocol: the datamodule must define `protocol` to validate or test"
            )
        predictions = self.predict_batch(batch)
        ground_truth = [meta["annotation"] for meta in batch["meta"]]
        order = [meta["index"] for meta in batch["meta"]]
        for metric in self.metrics.values():
            metric.update(predictions, ground_truth, order)

    def _log_metrics(self, prefix: str) -> dict[str, float]:
        assert self.metrics is not None
        results: dict[str, Any] = {}
        for metric in self.metrics.values():
            results.update({key: float(value) for key, value in metric.compute().items()})
            metric.reset()
        results.update(self.derived_metrics(results))
        logged = {
            f"{prefix}/{key}": torch.as_tensor(value, dtype=torch.float32)
            for key, value in results.items()
        }
        self.log_dict(logged, sync_dist=False)  # torchmetrics already synchronised the states
        return {key: float(value) for key, value in logged.items()}

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate_step(batch)

    def on_validation_epoch_end(self) -> None:
        results = self._log_metrics("val")
        if self.trainer.state.fn == "validate" and not self.trainer.sanity_checking:
            log_final_metrics(self.trainer, "val", results)

    def on_fit_end(self) -> None:
        """The last validation's figures, the ones a fit ends with, as one table for trackers."""
        metrics = self.trainer.callback_metrics
        final = {key: value for key, value in metrics.items() if key.startswith("val/")}
        log_final_metrics(self.trainer, "val", final)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate_step(batch)

    def on_test_epoch_end(self) -> None:
        results = self._log_metrics("test")
        log_final_metrics(self.trainer, "test", results)
        if self.trainer.is_global_zero and not self.trainer.sanity_checking:
            from rich.console import Console

            from vhd.metrics.evaluate import brief, metrics_table

            title = f"{type(self).__name__} on {self.protocol} (test split)"
            Console().print(metrics_table(brief(results, self.protocol, prefix="test/"), title))

    def predict_step(self, batch: Batch, batch_idx: int) -> list[Prediction]:
        self._check_input_dims(batch)
        return self.predict_batch(batch)

    def on_train_start(self) -> None:
        if self.trainer.ckpt_path:
            rank_zero_info(
                f"vhd: resumed from {self.trainer.ckpt_path}: training goes on at epoch "
                f"{self.current_epoch} (global step {self.global_step})"
            )

    def on_train_epoch_start(self) -> None:
        seed_epoch(run_seed(), self.current_epoch, self.global_rank)  # see vhd/seeding.py

    def on_train_batch_start(self, batch: Batch, batch_idx: int) -> None:
        if batch_idx == 0:
            self._check_input_dims(batch)

    def _check_input_dims(self, batch: Batch) -> None:
        for key, expected in self.input_dims().items():
            if key in batch and batch[key].shape[-1] != expected:
                raise ConfigError(
                    f"{type(self).__name__} was built for {key} features of size {expected}, but "
                    f"the data gives {batch[key].shape[-1]} (feature folders concatenated, plus 2 "
                    f"temporal endpoint columns for video when use_tef is on); set the model's "
                    f"{key}_dim to {batch[key].shape[-1]} or change the data's feature folders"
                )

    # -- default callbacks ----------------------------------------------------------------------
    def configure_callbacks(self) -> list[Callback]:
        """Checkpoint on the main metric and write submissions unless the config already does."""
        existing = self.trainer.callbacks if self._trainer is not None else []
        callbacks: list[Callback] = []
        if not any(isinstance(cb, ModelCheckpoint) for cb in existing):
            callbacks.append(BestCheckpoint())
        if not any(isinstance(cb, SubmissionWriter) for cb in existing):
            callbacks.append(SubmissionWriter())
        return callbacks
