"""Videos of any length: overlapping windows in, one set of moments and one saliency curve out.

A model trained on ``max_v_l`` clips (VideoLights on QVHighlights: 75 clips, 150 s) sees a
longer video as windows of ``max_v_l`` clips, each starting half a window after the previous and
the last ending at the video's end. Per clip, the saliency is the mean over the windows that
cover it; moments are shifted to absolute time and merged by non-maximum suppression.
"""

from __future__ import annotations

import numpy as np

Moment = tuple[float, float, float]  # start_s, end_s, score
NMS_IOU = 0.5  # moments overlapping a better one by more than this are dropped


def window_starts(num_clips: int, window: int | None) -> list[int]:
    """First clip of each window; one window when the video fits (or there is no limit)."""
    if window is None or num_clips <= window:
        return [0]
    stride = max(1, window // 2)
    starts = list(range(0, num_clips - window + 1, stride))
    if starts[-1] != num_clips - window:
        starts.append(num_clips - window)
    return starts


def average_saliency(parts: list[tuple[int, np.ndarray]], num_clips: int) -> np.ndarray:
    """Per-clip mean of the windows' scores; ``parts`` are (first clip, scores)."""
    total = np.zeros(num_clips)
    count = np.zeros(num_clips)
    for start, scores in parts:
        total[start : start + len(scores)] += scores
        count[start : start + len(scores)] += 1
    return total / np.maximum(count, 1)


def temporal_nms(moments: list[Moment], iou: float = NMS_IOU) -> list[Moment]:
    """Best first; a moment is dropped when it overlaps a kept one by more than ``iou``."""
    kept: list[Moment] = []
    for start, end, score in sorted(moments, key=lambda m: -m[2]):
        overlaps = (
            (min(end, k_end) - max(start, k_start)) / (max(end, k_end) - min(start, k_start))
            for k_start, k_end, _ in kept
        )
        if all(overlap <= iou for overlap in overlaps):
            kept.append((start, end, score))
    return kept


def moments_from_saliency(saliency: np.ndarray, clip_len: float, duration: float) -> list[Moment]:
    """Moments for methods that score clips only (HPCL, RASL): every maximal run of clips above
    the midpoint between the median and the maximum score, scored by its mean, best first.

    A run is a stretch the model marks as standing out from the video's typical level; the
    midpoint keeps a single sharp peak as one moment instead of the whole video.
    """
    if len(saliency) == 0:
        return []
    median, peak = float(np.median(saliency)), float(np.max(saliency))
    above = saliency > (median + peak) / 2 if peak > median else saliency >= peak
    moments: list[Moment] = []
    start = None
    for index, flag in enumerate([*above.tolist(), False]):
        if flag and start is None:
            start = index
        elif not flag and start is not None:
            end_s = min(index * clip_len, duration)
            moments.append((start * clip_len, end_s, float(saliency[start:index].mean())))
            start = None
    return sorted(moments, key=lambda m: -m[2])
