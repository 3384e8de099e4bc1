"""The per-query kernels of ``functional``, run on every query at once.

The official scripts loop over queries and call NumPy a few dozen times per query; 1,550 queries
then spend their time in call overhead. Here the queries are padded into arrays (a ``valid`` mask
marks the real entries) and each step is one NumPy call for all of them. Padding never changes a
number: padded entries sort last, contribute exact zeros to sums taken in the official order, and
are never matched.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pad_rows(
    arrays: Sequence[np.ndarray], width: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Row lists (k_i, d) -> ``(N, K, d)`` zero-padded and a ``(N, K)`` mask of the real rows;
    ``K`` is the longest list unless ``width`` cuts or widens it."""
    counts = np.array([len(array) for array in arrays], dtype=np.int64)
    tail = arrays[0].shape[1:] if len(arrays) else ()
    longest = int(counts.max(initial=0)) if width is None else width
    counts = np.minimum(counts, longest)
    padded = np.zeros((len(arrays), longest, *tail))
    valid = np.arange(longest)[None, :] < counts[:, None]
    if counts.sum():
        padded[valid] = np.concatenate(
            [array[:count] for array, count in zip(arrays, counts.tolist(), strict=True)]
        )
    return padded, valid


def split_rows(lists: Sequence[object], columns: int, cut: bool) -> list[np.ndarray] | None:
    """Lists of numeric rows (``[[start, end, ...], ...]``) as one ``(k_i, columns)`` array per
    list, converted in one NumPy call (rows cut to ``columns`` when ``cut``). None when some list
    is not plain rows of that width; the caller then converts them one by one and names the bad
    record."""
    if not all(type(rows) is list for rows in lists):
        return None
    try:
        flat = [row[:columns] if cut else row for rows in lists for row in rows]
        array = np.asarray(flat, dtype=np.float64)
    except (ValueError, TypeError):
        return None
    if flat and (array.ndim != 2 or array.shape[1] != columns):
        return None
    return np.split(array.reshape(-1, columns), np.cumsum([len(rows) for rows in lists])[:-1])


def cross_iou(spans1: np.ndarray, spans2: np.ndarray) -> np.ndarray:
    """``(..., P, 2)`` x ``(..., G, 2)`` -> ``(..., P, G)`` IoU with union = sum of lengths -
    intersection, 0 where the union is not positive (``functional.temporal_iou``, batched)."""
    left = np.maximum(spans1[..., :, None, 0], spans2[..., None, :, 0])
    right = np.minimum(spans1[..., :, None, 1], spans2[..., None, :, 1])
    inter = np.clip(right - left, 0, None)
    lengths1 = spans1[..., 1] - spans1[..., 0]
    lengths2 = spans2[..., 1] - spans2[..., 0]
    union = lengths1[..., :, None] + lengths2[..., None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def hull_iou(spans1: np.ndarray, spans2: np.ndarray) -> np.ndarray:
    """``(..., 2)`` pairs -> IoU as the official R1 divides it: intersection over the hull."""
    inter = np.clip(
        np.minimum(spans1[..., 1], spans2[..., 1]) - np.maximum(spans1[..., 0], spans2[..., 0]),
        0,
        None,
    )
    hull = np.maximum(spans1[..., 1], spans2[..., 1]) - np.minimum(spans1[..., 0], spans2[..., 0])
    return np.divide(inter, hull, out=np.zeros_like(inter), where=hull != 0)


def gather_rows(array: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``array[n, order[n, i], ...]`` for ``(N, L, ...)`` and ``(N, L)``: ``take_along_axis`` on
    axis 1 through one flat fancy index, which is several times faster."""
    flat = order + np.arange(len(order))[:, None] * array.shape[1]
    return array.reshape(-1, *array.shape[2:])[flat]


def rank_rows(scores: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per row, the real entries by descending score (ties in list order), then the padding."""
    return np.lexsort((-scores, ~valid), axis=-1)


def detection_ap(
    gt_windows: np.ndarray,
    gt_valid: np.ndarray,
    pred_windows: np.ndarray,
    pred_valid: np.ndarray,
    thresholds: np.ndarray,
) -> np.ndarray:
    """Detection AP of N problems at T thresholds -> ``(N, T)``; ``gt (N, G, 2)``, ``pred (N, P,
    3)`` with their masks. Predictions by descending score each take the free ground-truth window
    of highest IoU (ties: the later one, as the official's reversed stable sort), a hit when that
    IoU reaches the threshold; a problem without ground truth scores 0."""
    count, preds = pred_windows.shape[:2]
    order = rank_rows(pred_windows[..., 2], pred_valid)
    ranked = gather_rows(pred_windows[..., :2], order)
    ranked_valid = gather_rows(pred_valid, order)
    # the kept windows first (in order), then problems grouped by how many they keep, so a few
    # queries with 20 windows do not widen the arrays of the many with one
    kept_first = np.argsort(~gt_valid, axis=1, kind="stable")
    gt_windows, gt_valid = gather_rows(gt_windows, kept_first), gather_rows(gt_valid, kept_first)
    counts = gt_valid.sum(axis=1)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    hits = np.zeros((len(thresholds), count, preds), dtype=bool)
    width = 1
    while (counts > width // 2).any():
        group = (counts > width // 2) & (counts <= width)
        if group.any():
            hits[:, group] = _greedy_hits(
                cross_iou(ranked[group], gt_windows[group, :width]),
                gt_valid[group, :width],
                ranked_valid[group],
                thresholds,
            )
        width *= 2
    found = np.cumsum(hits, axis=-1)
    precision = np.where(ranked_valid, found / np.arange(1, preds + 1), 0.0)
    recall = found / np.maximum(counts, 1)[:, None]
    return _interpolated_ap(precision, recall).T * (counts > 0)[:, None]


def _greedy_hits(
    ious: np.ndarray, gt_valid: np.ndarray, pred_valid: np.ndarray, thresholds: np.ndarray
) -> np.ndarray:
    """``(T, N, P)`` hits of ranked predictions: each takes the free window of highest IoU (ties:
    the later window), a hit when that IoU reaches the threshold. ``ious (N, P, G)``."""
    count, preds, windows = ious.shape
    later_first = np.arange(windows)[::-1]
    taken = np.broadcast_to(~gt_valid, (len(thresholds), count, windows)).copy()
    hits = np.zeros((len(thresholds), count, preds), dtype=bool)
    for p in range(preds):
        free_iou = np.where(taken, -1.0, ious[None, :, p, :])  # (T, N, G)
        best = later_first[np.argmax(free_iou[..., ::-1], axis=-1)]
        hit = np.take_along_axis(free_iou, best[..., None], axis=-1)[..., 0] >= thresholds[:, None]
        hit &= pred_valid[None, :, p]
        hits[..., p] = hit
        taken |= hit[..., None] & (np.arange(windows) == best[..., None])
    return hits


def _interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    """VOC area under the interpolated precision-recall curve along the last axis: the terms
    where recall grows, summed as the official ``np.sum`` of them."""
    precision = np.concatenate([precision, np.zeros((*precision.shape[:-1], 1))], axis=-1)
    recall = np.concatenate([recall, np.ones((*recall.shape[:-1], 1))], axis=-1)
    best_after = np.flip(np.maximum.accumulate(np.flip(precision, -1), axis=-1), -1)
    steps = np.diff(recall, axis=-1, prepend=0.0)
    grows = steps != 0
    terms = np.where(grows, steps * best_after, 0.0)
    compact = np.argsort(~grows, axis=-1, kind="stable")
    return numpy_sum(np.take_along_axis(terms, compact, axis=-1), grows.sum(axis=-1))


def saliency_ap(labels: np.ndarray, scores: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Moment-DETR's saliency AP of every label column: ``labels (N, L, C)``, ``scores (N, L)``,
    ``valid (N, L)`` -> ``(N, C)``. Rank clips by descending score (ties in clip order); at the
    last clip of each tie take the precision, interpolated as the best one at that rank or later;
    average it over the ties where recall (float32, as the official) grows. A column whose real
    labels are all equal scores 1 if they are positive, else 0."""
    clips = scores.shape[1]
    order = rank_rows(scores, valid)
    ranked_scores, ranked_valid, ranked = (
        gather_rows(array, order) for array in (scores, valid, labels)
    )
    ranked = ranked * ranked_valid[..., None]
    true_pos = np.cumsum(ranked, axis=1)  # (N, L, C)
    next_valid = np.concatenate([ranked_valid[:, 1:], np.zeros((len(valid), 1), bool)], axis=1)
    tie_end = ranked_valid & (~next_valid | (np.diff(ranked_scores, axis=1, append=0.0) != 0))
    precision = np.where(tie_end[..., None], true_pos / np.arange(1, clips + 1)[:, None], 0.0)
    best_after = np.flip(np.maximum.accumulate(np.flip(precision, 1), axis=1), 1)
    total = true_pos[:, -1:, :]
    recall = (true_pos / np.maximum(total, 1)).astype(np.float32)
    # recall at the previous tie's end: the running max of tie-end recalls, shifted by one clip
    recall_at_ends = np.where(tie_end[..., None], recall, np.float32(0))
    before = np.maximum.accumulate(recall_at_ends, axis=1)
    before = np.concatenate([np.zeros_like(before[:, :1]), before[:, :-1]], axis=1)
    grows = tie_end[..., None] & (recall != before)
    # the chosen precisions first, in rank order, per (query, column) row
    compact = np.argsort(~grows.transpose(0, 2, 1), axis=-1, kind="stable")  # (N, C, L)
    chosen = gather_rows(
        best_after.transpose(0, 2, 1).reshape(-1, clips), compact.reshape(-1, clips)
    )
    chosen = chosen.reshape(compact.shape)
    counts = grows.sum(axis=1)
    ap = numpy_sum(chosen, counts) / np.maximum(counts, 1)
    first = labels[:, :1, :]
    constant = np.all((labels == first) | ~valid[..., None], axis=1)
    return np.where(constant, (first[:, 0] != 0).astype(np.float64), ap)


def numpy_sum(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``values[..., :count].sum()`` per row, added in the order of NumPy's pairwise sum (what the
    official ``np.mean`` does), so the result is bit for bit the official one. Rows longer than
    NumPy's block of 128 are summed by NumPy itself."""
    width = values.shape[-1]
    values = np.concatenate([values, np.zeros((*values.shape[:-1], 8))], axis=-1)
    sequential = np.zeros(values.shape[:-1])  # fewer than 8 values: one running sum
    for index in range(min(width, 7)):
        sequential += np.where(index < counts, values[..., index], 0.0)
    blocked = counts - counts % 8  # 8 to 128 values: 8 running sums over whole blocks of 8
    partial = values[..., :8].copy()
    for start in range(8, width, 8):
        partial += np.where((start < blocked)[..., None], values[..., start : start + 8], 0.0)
    total = ((partial[..., 0] + partial[..., 1]) + (partial[..., 2] + partial[..., 3])) + (
        (partial[..., 4] + partial[..., 5]) + (partial[..., 6] + partial[..., 7])
    )
    for offset in range(7):  # then the remainder, one by one
        index = np.minimum(blocked + offset, width + 7)[..., None]
        total += np.where(
            blocked + offset < counts, np.take_along_axis(values, index, -1)[..., 0], 0
        )
    total = np.where(counts < 8, sequential, total)
    for row in zip(*np.nonzero(counts > 128), strict=True):
        total[row] = values[row][: counts[row]].sum()
    return total
