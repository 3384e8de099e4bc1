"""Metrics that give the official evaluators' numbers, as torchmetrics and pure functions.

The torchmetrics classes are imported on first use, so ``vhd eval`` (``vhd.metrics.evaluate``,
NumPy only) does not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "MomentRetrievalMetric": "vhd.metrics.moment_retrieval",
    "QVHighlightsSaliencyMetric": "vhd.metrics.highlight",
    "TVSumMetric": "vhd.metrics.highlight",
    "YouTubeHighlightsMetric": "vhd.metrics.highlight",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
