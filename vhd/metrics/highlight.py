"""Highlight detection as ``torchmetrics.Metric``s: QVHighlights HL-mAP / HL-Hit1 (Moment-DETR),
YouTube Highlights mAP and TVSum top-5 mAP (UMT), per domain.

Per-query (per-video) results are ``cat`` list states, so DDP gathers every rank's rows and
``compute`` averages them as the official scripts do, in split order (``vhd.metrics.order``), so
DDP gives the single-process figures to the last digit. Domains travel as fixed-width byte codes, a
tensor like any other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torchmetrics import Metric

from vhd.metrics import functional as F
from vhd.metrics.order import in_split_order, positions
from vhd.types import Prediction


class QVHighlightsSaliencyMetric(Metric):
    """``HL-min-{Fair,Good,VeryGood}-{mAP,Hit1}`` in percent (Moment-DETR).

    A clip is positive for an annotator when rated at least 2 (Fair), 3 (Good) or 4 (VeryGood).
    mAP: ``functional.saliency_ap`` per annotator, averaged over annotators and queries; the
    prediction is cut or zero-padded to ``int(duration / 2)`` clips first. Hit1: the top-scored
    clip is positive for any annotator. Ground truth without ``saliency_scores`` is skipped.
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("ap", default=[], dist_reduce_fx="cat")
        self.add_state("hit", default=[], dist_reduce_fx="cat")
        self.add_state("order", default=[], dist_reduce_fx="cat")

    def update(
        self,
        predictions: Sequence[Prediction],
        ground_truth: Sequence[Mapping[str, Any]],
        order: Sequence[int] | None = None,
    ) -> None:
        """``order``: the records' positions in the split (see ``vhd.metrics.order``)."""
        rated = [F.has_saliency(g) for g in ground_truth]
        paired = F.pair_by_qid(predictions, ground_truth)
        pairs = [pair for pair, keep in zip(paired, rated, strict=True) if keep]
        if not pairs:
            return
        if (where := positions(order, len(ground_truth), self.device)) is not None:
            self.order.append(where[torch.as_tensor(rated, device=self.device)])
        ap, hit = F.saliency_rows(pairs)
        self.ap.append(torch.as_tensor(ap, dtype=torch.float64, device=self.device))
        self.hit.append(torch.as_tensor(hit, dtype=torch.float64, device=self.device))

    def compute(self) -> dict[str, torch.Tensor]:
        if len(self.ap):  # a list before DDP sync, one tensor after
            ap, hit = in_split_order(self.order, self.ap, self.hit)
        else:
            ap, hit = F.saliency_rows([])
        summary = F.summarize_saliency(ap, hit)
        return {key: torch.tensor(value, dtype=torch.float64) for key, value in summary.items()}


class _PerVideoMetric(Metric):
    """One AP per video plus its domain; summarised overall, per domain and over domains."""

    full_state_update = False
    higher_is_better = True
    is_differentiable = False
    name: ClassVar[str] = ""
    video_ap: ClassVar[Callable[[Sequence[float], Mapping[str, Any]], float]]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("values", default=[], dist_reduce_fx="cat")
        self.add_state("domains", default=[], dist_reduce_fx="cat")
        self.add_state("order", default=[], dist_reduce_fx="cat")

    def update(
        self,
        predictions: Sequence[Prediction],
        ground_truth: Sequence[Mapping[str, Any]],
        order: Sequence[int] | None = None,
    ) -> None:
        """``order``: the records' positions in the split (see ``vhd.metrics.order``)."""
        pairs = F.pair_by_qid(predictions, ground_truth)
        if not pairs:
            return
        if (where := positions(order, len(pairs), self.device)) is not None:
            self.order.append(where)
        values = [type(self).video_ap(p["pred_saliency_scores"], g) for p, g in pairs]
        codes = np.stack([F.encode_domain(F.video_domain(g)) for _, g in pairs])
        self.values.append(torch.as_tensor(values, dtype=torch.float64, device=self.device))
        self.domains.append(torch.as_tensor(codes, device=self.device))

    def compute(self) -> dict[str, torch.Tensor]:
        values, codes = (
            in_split_order(self.order, self.values, self.domains)
            if len(self.values)
            else (np.zeros(0), [])
        )
        domains = [F.decode_domain(code) for code in codes]
        summary = F.summarize_domains(values, domains, self.name)
        return {key: torch.tensor(value, dtype=torch.float64) for key, value in summary.items()}


class YouTubeHighlightsMetric(_PerVideoMetric):
    """YouTube Highlights mAP in percent (UMT): AP over all clips of a video ranked by score,
    trapezoid rule, 0 for a video without positives.

    Keys: ``mAP`` (mean over videos), ``mAP/<domain>`` (mean over a domain's videos: what UMT
    prints for a model trained on that domain) and ``mAP-domain-avg`` (mean of the per-domain
    figures: the "Avg." column of the papers' tables).
    """

    name = "mAP"
    video_ap = staticmethod(F.youtube_video_ap)


class TVSumMetric(_PerVideoMetric):
    """TVSum top-5 mAP in percent (UMT / QD-DETR; see ``functional.tvsum_video_ap``).

    Keys: ``top5-mAP`` (mean over videos), ``top5-mAP/<domain>`` and ``top5-mAP-domain-avg``
    (mean over domains: the "Avg." column of the papers' tables).
    """

    name = "top5-mAP"
    video_ap = staticmethod(F.tvsum_video_ap)
