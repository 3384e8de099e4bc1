"""Highlight detection metrics as ``torchmetrics.Metric``s: QVHighlights HL-mAP / HL-Hit1
(Moment-DETR), YouTube Highlights mAP and TVSum top-5 mAP (UMT protocol), per domain.

Per-query (per-video) results are ``cat`` list states; domains travel as fixed-width byte codes
so they synchronise under DDP like any tensor.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from vhd.metrics import functional as F


class QVHighlightsSaliencyMetric(Metric):
    """HL-min-{Fair,Good,VeryGood}-{mAP,Hit1}: AP per annotator averaged; Hit@1 when the top
    clip is positive for any annotator. Ground truth without ``saliency_scores`` is skipped
    (Charades-style records carry none)."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("rows", default=[], dist_reduce_fx="cat")

    def update(
        self, predictions: Sequence[Mapping[str, Any]], ground_truth: Sequence[Mapping[str, Any]]
    ) -> None:
        rows = [
            F.saliency_row(p["pred_saliency_scores"], g)
            for p, g in F.pair_by_qid(predictions, ground_truth)
            if g.get("saliency_scores") is not None
        ]
        if rows:
            self.rows.append(
                torch.as_tensor(np.stack(rows), dtype=torch.float64, device=self.device)
            )

    def compute(self) -> dict[str, torch.Tensor]:
        rows = dim_zero_cat(self.rows).cpu().numpy() if self.rows else np.zeros((0, 3, 4))
        return {key: torch.tensor(value) for key, value in F.summarize_saliency(rows).items()}


class _PerVideoMetric(Metric):
    """One AP per video plus its domain; summarised per domain and averaged over domains."""

    full_state_update = False
    higher_is_better = True
    name = ""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("values", default=[], dist_reduce_fx="cat")
        self.add_state("domains", default=[], dist_reduce_fx="cat")

    def video_ap(self, scores: Sequence[float], record: Mapping[str, Any]) -> float:
        raise NotImplementedError

    def update(
        self, predictions: Sequence[Mapping[str, Any]], ground_truth: Sequence[Mapping[str, Any]]
    ) -> None:
        pairs = F.pair_by_qid(predictions, ground_truth)
        if not pairs:
            return
        values = [self.video_ap(p["pred_saliency_scores"], g) for p, g in pairs]
        codes = np.stack([F.encode_domain(str(g.get("domain", "all"))) for _, g in pairs])
        self.values.append(torch.as_tensor(values, dtype=torch.float64, device=self.device))
        self.domains.append(torch.as_tensor(codes, device=self.device))

    def compute(self) -> dict[str, torch.Tensor]:
        if not self.values:
            return {self.name: torch.tensor(0.0)}
        values = dim_zero_cat(self.values).cpu().numpy()
        domains = [F.decode_domain(code) for code in dim_zero_cat(self.domains).cpu().numpy()]
        summary = F.summarize_domains(values, domains, self.name)
        return {key: torch.tensor(value) for key, value in summary.items()}


class YouTubeHighlightsMetric(_PerVideoMetric):
    """``mAP``: mean over domains of the per-video AP (UMT); ``mAP/<domain>``; ``mAP-videos``."""

    name = "mAP"
    video_ap: Callable[..., float] = staticmethod(F.youtube_video_ap)  # type: ignore[assignment]


class TVSumMetric(_PerVideoMetric):
    """``top5-mAP``: mean over domains of the top-5 mAP (UMT / QD-DETR / VideoLights)."""

    name = "top5-mAP"
    video_ap: Callable[..., float] = staticmethod(F.tvsum_video_ap)  # type: ignore[assignment]
