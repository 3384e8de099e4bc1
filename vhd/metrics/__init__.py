"""Metrics that give the official evaluators' numbers, as torchmetrics and pure functions."""

from vhd.metrics.highlight import QVHighlightsSaliencyMetric, TVSumMetric, YouTubeHighlightsMetric
from vhd.metrics.moment_retrieval import MomentRetrievalMetric

__all__ = [
    "MomentRetrievalMetric",
    "QVHighlightsSaliencyMetric",
    "TVSumMetric",
    "YouTubeHighlightsMetric",
]
