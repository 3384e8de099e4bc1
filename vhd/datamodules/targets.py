"""Training targets, built exactly as the official loaders build them (pure numpy/torch functions).

References: Moment-DETR / QD-DETR / VideoLights ``start_end_dataset.py`` (see
``shared/docs/videolights_reference.md`` section 1) and HPCL section 4.2 (training windows).
Randomness uses torch's generator, so Lightning's worker seeding makes it reproducible.
"""

from __future__ import annotations

import numpy as np
import torch

TVSUM_SCALE = 12 / 80  # VideoLights/UMT: sum of 20 annotators' (rating - 1), mapped to 0..12


def temporal_endpoint_features(length: int) -> np.ndarray:
    """(i/L, (i+1)/L) per clip: the TEF columns appended after the visual features."""
    starts = np.arange(length, dtype=np.float32) / length
    return np.stack([starts, starts + 1.0 / length], axis=1)


def windows_to_center_width(windows: np.ndarray, span: float) -> np.ndarray:
    """Seconds -> normalised (center, width); official loaders divide by ctx_l x clip_len.

    Not clamped, as released: a window ending past the features gives a target above 1
    (``clamp_windows`` first to keep targets in [0, 1]).
    """
    normalized = np.asarray(windows, dtype=np.float32).reshape(-1, 2) / span
    return np.stack([normalized.mean(axis=1), normalized[:, 1] - normalized[:, 0]], axis=1)


def clamp_windows(windows: np.ndarray, span: float) -> np.ndarray:
    """Windows cut to the features' span [0, span] s; those starting at or after it dropped."""
    windows = np.asarray(windows, dtype=np.float32).reshape(-1, 2)
    return np.clip(windows[windows[:, 0] < span], 0.0, span)


def _randint(high: int) -> int:
    return int(torch.randint(high, ()).item())


def _sample(values: np.ndarray, count: int) -> np.ndarray:
    """``count`` distinct random entries (python's ``random.sample`` of the official code)."""
    return values[torch.randperm(len(values))[:count].numpy()]


# -- QVHighlights (annotator ratings) -------------------------------------------------------------
def annotator_saliency(clip_ids: np.ndarray, scores: np.ndarray, num_clips: int) -> np.ndarray:
    """Per clip: the sum of the annotators' 0-4 ratings (0..12) at relevant clips, 0 elsewhere."""
    saliency = np.zeros(num_clips, dtype=np.float32)
    saliency[clip_ids] = scores.reshape(len(clip_ids), -1).sum(axis=1)
    return saliency


def qvhighlights_pairs(
    clip_ids: np.ndarray, scores: np.ndarray, num_clips: int
) -> tuple[list[int], list[int]]:
    """Pair 1: (best, worst) relevant clip by summed rating, numpy argsort order on ties.
    Pair 2: (random relevant, random irrelevant); a copy of pair 1 when every clip is relevant."""
    order = np.argsort(scores.reshape(len(clip_ids), -1).sum(axis=1))
    positive = [min(int(clip_ids[order[-1]]), num_clips - 1)]
    negative = [min(int(clip_ids[order[0]]), num_clips - 1)]
    outside = np.setdiff1d(np.arange(num_clips), clip_ids)
    if len(outside):
        positive.append(int(clip_ids[_randint(len(clip_ids))]))
        negative.append(int(outside[_randint(len(outside))]))
    else:
        positive.append(positive[0])
        negative.append(negative[0])
    return positive, negative


# -- Charades-STA / TACoS (one window, no ratings) ------------------------------------------------
def window_clip_range(window: np.ndarray, duration: float, num_clips: int) -> tuple[int, int]:
    """(gt_st, gt_ed) inclusive, with clips of duration / num_clips seconds (official)."""
    seconds_per_clip = duration / num_clips
    end = max(0, min(int(window[1] / seconds_per_clip), num_clips) - 1)
    start = min(int(window[0] / seconds_per_clip), end)
    return start, end


def window_saliency(window: np.ndarray, duration: float, num_clips: int) -> np.ndarray:
    """Binary saliency: 1 on the clips covered by the (first) window."""
    start, end = window_clip_range(window, duration, num_clips)
    saliency = np.zeros(num_clips, dtype=np.float32)
    saliency[start : end + 1] = 1.0
    return saliency


def window_pairs(
    window: np.ndarray, duration: float, num_clips: int
) -> tuple[list[int], list[int]]:
    """Two distinct random clips inside the window and two outside (the positives when fewer
    than two lie outside); a one-clip window gives that clip twice."""
    start, end = window_clip_range(window, duration, num_clips)
    inside = np.arange(start, end + 1)
    positive = _sample(inside, 2).tolist() if len(inside) > 1 else [start, start]
    outside = np.concatenate([np.arange(0, start), np.arange(end + 1, num_clips)])
    negative = _sample(outside, 2).tolist() if len(outside) >= 2 else list(positive)
    return positive, negative


# -- YouTube Highlights / TVSum --------------------------------------------------------------------
def tvsum_saliency(ratings: np.ndarray) -> np.ndarray:
    """(clips, annotators) ratings 1-5 -> sum of (rating - 1) x 12/80 (VideoLights/UMT)."""
    return ((ratings - 1.0).sum(axis=1) * TVSUM_SCALE).astype(np.float32)


def top_fraction_labels(scores: np.ndarray, fraction: float) -> np.ndarray:
    """1 on the ceil(fraction x clips) highest-scoring clips (HPCL's top-50% TVSum labels).

    Rank-based so exactly that share is positive; ties go to the earlier clip (stable sort).
    """
    count = int(np.ceil(fraction * len(scores) - 1e-9))
    labels = np.zeros(len(scores), dtype=np.float32)
    labels[np.argsort(-scores, kind="stable")[:count]] = 1.0
    return labels


def extreme_pair(scores: np.ndarray) -> tuple[list[int], list[int]]:
    """([argmax], [argmin]) as ``np.argsort(scores)[-1]`` / ``[0]``: the official tie order."""
    order = np.argsort(scores)
    return [int(order[-1])], [int(order[0])]


# -- HPCL training windows -------------------------------------------------------------------------
def window_ok(positives: int, negatives: int, min_positive_ratio: float) -> bool:
    """Both classes present and positives:negatives >= min_positive_ratio (HPCL: 1:2)."""
    return positives >= 1 and negatives >= 1 and positives >= min_positive_ratio * negatives


def window_feasible(labels: np.ndarray, length: int, min_positive_ratio: float) -> bool:
    """Whether any ``length`` clips of the video (in order, not necessarily adjacent) qualify."""
    total_pos = int((labels > 0.5).sum())
    total_neg = len(labels) - total_pos
    return any(
        window_ok(k, length - k, min_positive_ratio) and length - k <= total_neg
        for k in range(1, min(total_pos, length) + 1)
    )


def _share(count: int, part: int, parts: int) -> tuple[int, int]:
    """``[lo, hi)``: the ``part``-th of ``parts`` near-equal shares of ``range(count)``, never
    empty (shares repeat when ``count < parts``)."""
    lo = part * count // parts
    return lo, max((part + 1) * count // parts, lo + 1)


def sample_training_window(
    labels: np.ndarray, length: int, min_positive_ratio: float = 0.5, part: int = 0, parts: int = 1
) -> np.ndarray:
    """Clip indices (increasing) of one HPCL training sequence of ``length`` segments.

    A start is drawn uniformly among the consecutive windows that qualify (``window_ok``). When
    none does, a random window is repaired as HPCL re-samples: clips of the over-represented class
    are swapped for clips of the missing class from elsewhere in the video, and the result is put
    back in temporal order. Videos shorter than ``length`` give all their clips; videos that
    cannot qualify at all give the best the repair reaches. Window ``part`` of ``parts`` draws its
    start from the ``part``-th of ``parts`` equal shares of those starts (in temporal order), so
    the windows a video gives in one epoch spread over it rather than land anywhere.
    """
    count = len(labels)
    if count <= length:
        return np.arange(count)
    positive = labels > 0.5
    cumulative = np.concatenate([[0], np.cumsum(positive)])
    pos_counts = cumulative[length:] - cumulative[:-length]
    neg_counts = length - pos_counts
    ok = (pos_counts >= 1) & (neg_counts >= 1) & (pos_counts >= min_positive_ratio * neg_counts)
    starts = np.flatnonzero(ok)
    if len(starts):
        lo, hi = _share(len(starts), part, parts)
        start = int(starts[lo + _randint(hi - lo)])
        return np.arange(start, start + length)
    lo, hi = _share(count - length + 1, part, parts)
    start = lo + _randint(hi - lo)
    window = np.arange(start, start + length)
    inside = np.zeros(count, dtype=bool)
    inside[window] = True
    pos_in, neg_in = window[positive[window]], window[~positive[window]]
    pos_out = np.flatnonzero(positive & ~inside)
    neg_out = np.flatnonzero(~positive & ~inside)
    if len(neg_in) == 0:  # all positive: bring in one negative
        swap = min(1, len(neg_out))
        drop, add = _sample(pos_in, swap), _sample(neg_out, swap)
    else:  # too few positives: the fewest swaps that reach the ratio (or all there are)
        swap = 0
        limit = min(len(pos_out), len(neg_in) - 1)
        while swap < limit and not window_ok(
            len(pos_in) + swap, len(neg_in) - swap, min_positive_ratio
        ):
            swap += 1
        drop, add = _sample(neg_in, swap), _sample(pos_out, swap)
    kept = np.setdiff1d(window, drop)
    return np.sort(np.concatenate([kept, add])).astype(np.int64)
