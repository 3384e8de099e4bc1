"""Moment retrieval (QVHighlights, Charades-STA, TACoS) as a ``torchmetrics.Metric``.

Each query becomes one row per length bucket (in bucket?, AP per IoU threshold, top-1 IoU; see
``functional.moment_query``). The rows are ``cat`` list states: DDP gathers every rank's queries
and ``compute`` averages them exactly as the official script averages queries, so a distributed
run gives the single-pass figures: rows are put back in split order first (``vhd.metrics.order``),
and vhd's evaluation sampler visits each query once (a padding DistributedSampler would repeat a
few).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torchmetrics import Metric

from vhd.metrics import functional as F
from vhd.metrics.order import in_split_order, positions
from vhd.types import Prediction

# What ``compute`` reports per protocol; ``functional.moment_retrieval`` has every bucket's figures.
_QVHIGHLIGHTS_KEYS = (
    *(f"MR-{bucket}-mAP" for bucket in F.QVHIGHLIGHTS_BUCKETS),
    *(f"MR-full-mAP@{F.threshold_key(t)}" for t in F.MAP_THRESHOLDS),
    *(f"MR-full-R1@{F.threshold_key(t)}" for t in F.QVHIGHLIGHTS_R1_THRESHOLDS),
    "MR-full-mIoU",
)
_GROUNDING_KEYS = (
    *(f"MR-full-R1@{F.threshold_key(t)}" for t in F.GROUNDING_R1_THRESHOLDS),
    "MR-full-mIoU",
)
COMPUTED_KEYS = {
    "qvhighlights": _QVHIGHLIGHTS_KEYS,
    "charades": _GROUNDING_KEYS,
    "tacos": _GROUNDING_KEYS,
}


class MomentRetrievalMetric(Metric):
    """Moment retrieval figures in percent, named as the official brief.

    ``dataset="qvhighlights"`` (Moment-DETR): ``MR-full-mAP`` (mAP averaged over IoU
    0.5:0.05:0.95), ``MR-full-mAP@0.5`` ... ``@0.95``, ``MR-{short,middle,long}-mAP`` (queries
    with ground-truth windows of (0,10], (10,30], (30,150] s, scored against those windows only),
    ``MR-full-R1@0.5`` ... ``@0.95`` and ``MR-full-mIoU``. At most ``max_windows`` predicted
    windows per query count for mAP, the first ones as listed.

    ``dataset="charades"`` or ``"tacos"``: ``MR-full-R1@0.3`` ... ``@0.95`` and ``MR-full-mIoU``
    of the top-1 (first listed) window.
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(
        self, dataset: str = "qvhighlights", max_windows: int = F.MAX_PRED_WINDOWS, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.protocol = F.moment_protocol(dataset)
        self.dataset = dataset
        self.max_windows = max_windows
        self.add_state("in_bucket", default=[], dist_reduce_fx="cat")
        self.add_state("ap", default=[], dist_reduce_fx="cat")
        self.add_state("top1_iou", default=[], dist_reduce_fx="cat")
        self.add_state("order", default=[], dist_reduce_fx="cat")

    def update(
        self,
        predictions: Sequence[Prediction],
        ground_truth: Sequence[Mapping[str, Any]],
        order: Sequence[int] | None = None,
    ) -> None:
        """Score a batch; ``ground_truth`` are the raw annotation records, matched by qid;
        ``order`` their positions in the split (see ``vhd.metrics.order``)."""
        pairs = F.pair_by_qid(predictions, ground_truth)
        if not pairs:
            return
        if (where := positions(order, len(pairs), self.device)) is not None:
            self.order.append(where)
        rows = F.moment_rows(pairs, self.dataset, self.max_windows)
        for state, value in zip((self.in_bucket, self.ap, self.top1_iou), rows, strict=True):
            state.append(torch.as_tensor(value, dtype=torch.float64, device=self.device))

    def compute(self) -> dict[str, torch.Tensor]:
        buckets = tuple(self.protocol["buckets"])
        if len(self.in_bucket):  # a list before DDP sync, one tensor after
            in_bucket, ap, top1_iou = in_split_order(
                self.order, self.in_bucket, self.ap, self.top1_iou
            )
        else:
            in_bucket, ap, top1_iou = F.moment_rows([], self.dataset)
        summary = F.summarize_moments(
            in_bucket > 0,
            ap,
            top1_iou,
            buckets,
            self.protocol["map_thresholds"],
            self.protocol["r1_thresholds"],
        )
        return {
            key: torch.tensor(summary[key], dtype=torch.float64)
            for key in COMPUTED_KEYS[self.dataset]
        }
