"""What ``Highlighter`` returns for one video: moments, saliency over time, and their provenance.

``vhd highlight`` writes it as ``{vid}.json``; ``plot`` and ``write_reel`` make the picture and
the highlight reel from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class HighlightResult:
    """Moments are ``(start_s, end_s, score)``, best first, after non-maximum suppression.

    ``saliency[i]`` scores clip i, which covers ``[times[i], times[i] + clip_len)`` seconds.
    """

    video: Path
    vid: str
    method: str  # "VideoLights", "HPCL", "RASL", ...
    checkpoint: str
    recipes: list[str]
    clip_len: float
    duration: float  # seconds of video
    times: np.ndarray  # (clips,) start of each clip in seconds
    saliency: np.ndarray  # (clips,) one score per clip
    moments: list[tuple[float, float, float]]
    query: str | None = None
    notes: list[str] = field(default_factory=list)  # warnings given while scoring

    def top(self, count: int) -> list[tuple[float, float, float]]:
        return self.moments[:count]

    def to_json(self) -> dict[str, Any]:
        return {
            "vid": self.vid,
            "video": str(self.video),
            "query": self.query,
            "method": self.method,
            "checkpoint": self.checkpoint,
            "recipes": self.recipes,
            "clip_len": self.clip_len,
            "duration": round(self.duration, 3),
            "moments": [[round(s, 3), round(e, 3), round(float(p), 4)] for s, e, p in self.moments],
            "saliency": [
                {
                    "start": round(float(t), 3),
                    "end": round(float(min(t + self.clip_len, self.duration)), 3),
                    "score": round(float(v), 4),
                }
                for t, v in zip(self.times, self.saliency, strict=True)
            ],
            "notes": self.notes,
        }

    def plot(self, path: str | Path, top: int = 5) -> Path:
        from vhd.highlight.plot import plot_result

        return plot_result(self, Path(path), top)

    def write_reel(self, path: str | Path, top: int = 5) -> Path:
        """The ``top`` moments cut from the source with their audio, in time order."""
        from vhd.highlight.reel import write_reel

        return write_reel(self.video, self.top(top), Path(path))
