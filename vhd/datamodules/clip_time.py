"""Feature rows at any step placed onto a benchmark's labelled clips by time.

Row j of features made every ``step`` seconds covers [j * step, (j + 1) * step) (``vhd extract``
clips). A labelled clip takes the rows whose centre falls in its time span: a centre belongs to
one span of a tiling, so with clips of 2 s and rows of 0.2 s each clip gets its own 10 rows, and
no row is shared out by a partial overlap. A clip narrower than a step (features coarser than the
clips) holds no centre and takes the row under its own centre instead.

Clip spans come from the annotation where it gives them (YouTube Highlights: ``clip`` frame
ranges and ``fps``, about 3.3 s windows every 1.7 s, so neighbours share rows), else from the
benchmark grid [i * clip_len, (i + 1) * clip_len) (TVSum: 2 s clips; its jsonl ``duration`` is
the clip count, not seconds, so it is not used).
"""

from __future__ import annotations

from typing import Any

import numpy as np

TOLERANCE_S = 1e-6  # float slack when comparing times


def clip_spans(record: dict[str, Any], num_clips: int, clip_len: float) -> np.ndarray:
    """(num_clips, 2) start and end seconds of each labelled clip."""
    frames, fps = record.get("clip"), record.get("fps")
    if frames is not None and fps and len(frames) == num_clips:
        return np.asarray(frames, dtype=np.float64).reshape(num_clips, 2) / float(fps)
    starts = np.arange(num_clips, dtype=np.float64) * clip_len
    return np.stack([starts, starts + clip_len], axis=1)


def clip_rows(spans: np.ndarray, step: float, num_rows: int) -> np.ndarray:
    """(num_clips, 2) [first, end) of each clip's rows: those whose centre is in its span, or the
    row under the clip's centre when none is; never past the ``num_rows`` there are."""
    first = np.ceil(spans[:, 0] / step - 0.5 - TOLERANCE_S).astype(np.int64)
    end = np.ceil(spans[:, 1] / step - 0.5 - TOLERANCE_S).astype(np.int64)
    under_centre = np.floor(spans.mean(axis=1) / step).astype(np.int64)
    empty = end <= first
    first, end = np.where(empty, under_centre, first), np.where(empty, under_centre + 1, end)
    end = np.clip(end, 1, num_rows)
    return np.stack([np.clip(first, 0, end - 1), end], axis=1)


def covered_clips(spans: np.ndarray, num_rows: int, step: float) -> int:
    """Leading clips the rows reach, within one step: a last row may stop short of a clip's end."""
    beyond = np.flatnonzero(spans[:, 1] > (num_rows + 1) * step + TOLERANCE_S)
    return int(beyond[0]) if len(beyond) else len(spans)


def pool_rows(features: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(time, dim) features -> (num_clips, dim): the mean of each clip's rows (``clip_rows``)."""
    sums = np.concatenate([np.zeros((1, features.shape[1])), features.cumsum(0, dtype=np.float64)])
    counts = (rows[:, 1] - rows[:, 0])[:, None]
    return ((sums[rows[:, 1]] - sums[rows[:, 0]]) / counts).astype(np.float32)
