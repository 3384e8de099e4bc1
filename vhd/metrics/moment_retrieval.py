"""Moment retrieval metrics (QVHighlights, Charades-STA, TACoS) as ``torchmetrics.Metric``s.

Each update turns a query into one row of per-bucket APs and top-1 IoU (see
``functional.moment_rows``); the rows are a ``cat`` list state, so DDP ranks merge exactly and
``compute`` equals the functional twin on the whole set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from vhd.metrics import functional as F

PROTOCOLS = ("qvhighlights", "charades", "tacos")


class MomentRetrievalMetric(Metric):
    """QVHighlights: R1@0.3..0.95, mAP@0.5..0.95 and its average per length bucket (short,
    middle, long, full), keys as Moment-DETR's brief (``MR-full-R1@0.5``, ``MR-full-mAP``...).
    Charades-STA / TACoS: ``MR-full-R1@{0.3,0.5,0.7}`` and ``MR-full-mIoU``."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, dataset: str = "qvhighlights", max_windows: int = 10, **kwargs: Any):
        super().__init__(**kwargs)
        if dataset not in PROTOCOLS:
            raise ValueError(
                f"unknown moment retrieval dataset {dataset!r}; use one of {PROTOCOLS}"
            )
        self.dataset = dataset
        self.max_windows = max_windows
        self.add_state("rows", default=[], dist_reduce_fx="cat")

    def update(
        self, predictions: Sequence[Mapping[str, Any]], ground_truth: Sequence[Mapping[str, Any]]
    ) -> None:
        rows = [
            F.moment_rows(
                p.get("pred_relevant_windows", []), g["relevant_windows"], self.max_windows
            )
            for p, g in F.pair_by_qid(predictions, ground_truth)
        ]
        if rows:
            self.rows.append(
                torch.as_tensor(np.stack(rows), dtype=torch.float64, device=self.device)
            )

    def compute(self) -> dict[str, torch.Tensor]:
        rows = dim_zero_cat(self.rows).cpu().numpy() if self.rows else np.zeros((0, 4, 12))
        summary = (
            F.summarize_moments(rows)
            if self.dataset == "qvhighlights"
            else (F.grounding_summary(rows))
        )
        return {key: torch.tensor(value) for key, value in summary.items()}
