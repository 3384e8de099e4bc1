"""Pure functions that give the official evaluators' numbers, query by query.

Sources of truth (re-implemented from their definitions, never copied):

- QVHighlights MR and HD: Moment-DETR ``standalone_eval/eval.py`` (jayleicn/moment_detr).
- Charades-STA / TACoS: the same R1 (top-1 window vs. the ground-truth window of highest IoU) at
  IoU 0.3..0.95 and its mean IoU, as UniVTG's ``eval/eval.py`` extends Moment-DETR's script.
- YouTube Highlights and TVSum: UMT ``datasets/youtube.py`` / ``datasets/tvsum.py``
  (TencentARC/UMT), the protocol QD-DETR, UniVTG and VideoLights report.

Each query (video) becomes a small row of numbers (APs, IoUs, hits); ``summarize_*`` averages rows
exactly as the official scripts average queries. The torchmetrics classes keep the same rows as
``cat`` states, so a DDP run and a single pass give the same figures. Figures are percentages in
full precision; ``round_metrics`` rounds them as the official scripts print.

Where the official scripts crash, or silently drop data, we do this instead (documented once here):

- a query without predicted windows scores AP 0 and IoU 0 (Moment-DETR crashes in R1 and leaves the
  query out of mAP, which would reward predicting nothing for hard queries);
- a window of zero or negative length has IoU 0 (the official cross IoU gives NaN for 0/0, which
  then counts as a match);
- a ground-truth record without windows, or with a clip id beyond ``duration / 2``, is an error
  naming its qid (the official script gives NaN or crashes);
- ties are broken deterministically, by list order (stable sorts). The official scripts use the same
  order wherever their sort is stable (Python's ``list.sort``, sklearn's mergesort, numpy's
  argsort on fewer than 17 elements); ``torch.argsort`` in UMT is unstable, so on tied saliency
  scores UMT's own figure varies between runs and machines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vhd.metrics import batched


def _thresholds(first: float, last: float) -> tuple[float, ...]:
    """Thresholds as the official scripts spell them: ``float(f"{t:.2f}")`` of a linspace."""
    count = round((last - first) / 0.05) + 1
    return tuple(float(f"{t:.2f}") for t in np.linspace(first, last, count))


MAP_THRESHOLDS = _thresholds(0.5, 0.95)  # mAP@[0.5:0.05:0.95]
QVHIGHLIGHTS_R1_THRESHOLDS = _thresholds(0.5, 0.95)  # Moment-DETR's R1
GROUNDING_R1_THRESHOLDS = _thresholds(0.3, 0.95)  # UniVTG's R1 for Charades-STA / TACoS
GROUNDING_BRIEF_THRESHOLDS = (0.3, 0.5, 0.7)
MAX_PRED_WINDOWS = 10  # Moment-DETR's mAP reads the first 10 listed windows
# Ground-truth window lengths (lo, hi] in seconds; "full" keeps every window (the official
# (0, 150] range short-circuits to "no filter", so longer or empty windows stay in "full").
QVHIGHLIGHTS_BUCKETS: dict[str, tuple[float, float] | None] = {
    "short": (0.0, 10.0),
    "middle": (10.0, 30.0),
    "long": (30.0, 150.0),
    "full": None,
}
GROUNDING_BUCKETS: dict[str, tuple[float, float] | None] = {"full": None}
SALIENCY_LEVELS = {"Fair": 2, "Good": 3, "VeryGood": 4}  # minimum rating of a positive clip
QVHIGHLIGHTS_CLIP_LEN = 2.0
QVHIGHLIGHTS_ANNOTATORS = 3
TVSUM_TOP_K = 5
Records = Sequence[Mapping[str, Any]]  # predictions or ground-truth records, as read from jsonl


def threshold_key(threshold: float) -> str:
    """``0.5`` -> ``"0.5"``, as the official scripts' ``str(float)`` keys."""
    return str(float(threshold))


# -- moment retrieval ------------------------------------------------------------------------------
def temporal_iou(spans1: np.ndarray, spans2: np.ndarray) -> np.ndarray:
    """(N, M) IoU of ``[start, end]`` rows, union = sum of lengths - intersection (the official
    "cross" IoU that mAP matching and the R1 ground-truth choice use); 0 where the union is not
    positive."""
    spans1 = np.asarray(spans1, dtype=np.float64).reshape(-1, 2)
    spans2 = np.asarray(spans2, dtype=np.float64).reshape(-1, 2)
    return batched.cross_iou(spans1, spans2)


def hull_iou(span1: Sequence[float], span2: Sequence[float]) -> float:
    """IoU as the official R1 computes it: intersection over the hull of the two spans. Equal to
    the union when they overlap, but divided as the official does, so thresholds compare bit for
    bit."""
    spans = np.asarray([span1, span2], dtype=np.float64)
    return float(batched.hull_iou(spans[0], spans[1]))


def detection_ap(
    gt_windows: np.ndarray,
    pred_windows: np.ndarray,
    thresholds: Sequence[float] = MAP_THRESHOLDS,
) -> np.ndarray:
    """AP of one query per IoU threshold, as ActivityNet / MMAction2 detection AP: predictions by
    descending score, each one matched to the free ground-truth window of highest IoU, each
    ground-truth window matched at most once (``batched.detection_ap`` for one query)."""
    gt = np.asarray(gt_windows, dtype=np.float64).reshape(1, -1, 2)
    pred = np.asarray(pred_windows, dtype=np.float64).reshape(1, -1, 3)
    valid_gt, valid_pred = np.ones(gt.shape[:2], bool), np.ones(pred.shape[:2], bool)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    return batched.detection_ap(gt, valid_gt, pred, valid_pred, thresholds)[0]


def as_pred_windows(windows: Any, qid: Any = None) -> np.ndarray:
    """``[[start, end, score], ...]`` as a (P, 3) array; an error naming the qid otherwise."""
    array = np.asarray(windows if windows is not None else [], dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, 3))
    if array.ndim != 2 or array.shape[1] < 3:
        raise ValueError(
            f"qid {qid}: pred_relevant_windows must be rows of [start, end, score], got shape "
            f"{array.shape}"
        )
    return array[:, :3]


def as_gt_windows(record: Mapping[str, Any]) -> np.ndarray:
    """The record's ``relevant_windows`` as a (G, 2) array, at least one window."""
    windows = record.get("relevant_windows")
    array = np.asarray(windows if windows is not None else [], dtype=np.float64)
    if array.size == 0 or array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(
            f"qid {record.get('qid')}: moment retrieval needs relevant_windows as a non-empty "
            f"list of [start, end] rows, got {windows!r:.80}"
        )
    return array


def moment_query(
    pred_windows: np.ndarray,
    gt_windows: np.ndarray,
    buckets: Mapping[str, tuple[float, float] | None] = QVHIGHLIGHTS_BUCKETS,
    map_thresholds: Sequence[float] = MAP_THRESHOLDS,
    max_windows: int | None = MAX_PRED_WINDOWS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One query's row per length bucket: ``in_bucket (B,)``, ``ap (B, T)``, ``top1_iou (B,)``.

    A bucket keeps the ground-truth windows whose length is in it, and the query only when one
    is left. mAP reads the first ``max_windows`` windows *as listed* (then sorts them by score);
    R1 compares the first listed window with the kept ground-truth window of highest IoU with it.
    """
    rows = moment_batch([pred_windows], [gt_windows], buckets, map_thresholds, max_windows)
    in_bucket, ap, top1_iou = (row[0] for row in rows)
    return in_bucket, ap, top1_iou


def moment_batch(
    pred_windows: Sequence[np.ndarray],
    gt_windows: Sequence[np.ndarray],
    buckets: Mapping[str, tuple[float, float] | None] = QVHIGHLIGHTS_BUCKETS,
    map_thresholds: Sequence[float] = MAP_THRESHOLDS,
    max_windows: int | None = MAX_PRED_WINDOWS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``moment_query`` of N queries at once: ``(N, B)``, ``(N, B, T)``, ``(N, B)``."""
    count = len(gt_windows)
    if count == 0:
        return (
            np.zeros((0, len(buckets)), dtype=bool),
            np.zeros((0, len(buckets), len(map_thresholds))),
            np.zeros((0, len(buckets))),
        )
    gt, gt_valid = batched.pad_rows(gt_windows)
    lengths = gt[..., 1] - gt[..., 0]
    kept = np.stack(
        [
            gt_valid
            if bounds is None
            else gt_valid & (lengths > bounds[0]) & (lengths <= bounds[1])
            for bounds in buckets.values()
        ],
        axis=1,
    )  # (N, B, G)
    in_bucket = kept.any(axis=2)
    ap = np.zeros((count, len(buckets), len(map_thresholds)))
    top1_iou = np.zeros((count, len(buckets)))
    if len(map_thresholds):
        # one matching problem per query with all its windows, plus one per bucket that keeps
        # some but not all of them (a bucket keeping all has the same AP)
        listed, listed_valid = batched.pad_rows(pred_windows, max_windows)
        partial = in_bucket & (kept != gt_valid[:, None, :]).any(axis=2)
        rows, columns = np.nonzero(partial)
        query = np.concatenate([np.arange(count), rows])
        problems = batched.detection_ap(
            gt[query],
            np.concatenate([gt_valid, kept[rows, columns]]),
            listed[query],
            listed_valid[query],
            np.asarray(map_thresholds, dtype=np.float64),
        )
        ap = np.where(in_bucket[..., None], problems[:count, None, :], 0.0)
        ap[rows, columns] = problems[count:]
    top1, has_top1 = batched.pad_rows([windows[:1, :2] for windows in pred_windows], 1)
    ious = np.where(kept, batched.cross_iou(top1, gt)[:, None, 0, :], -np.inf)  # (N, B, G)
    best = np.take_along_axis(gt, np.argmax(ious, axis=2)[..., None], axis=1)  # (N, B, 2)
    top1_iou = batched.hull_iou(top1, best) * (has_top1 & in_bucket)
    return in_bucket, ap, top1_iou


def summarize_moments(
    in_bucket: np.ndarray,
    ap: np.ndarray,
    top1_iou: np.ndarray,
    buckets: Sequence[str] = tuple(QVHIGHLIGHTS_BUCKETS),
    map_thresholds: Sequence[float] = MAP_THRESHOLDS,
    r1_thresholds: Sequence[float] = QVHIGHLIGHTS_R1_THRESHOLDS,
) -> dict[str, float]:
    """Stacked query rows (N, B), (N, B, T), (N, B) -> flat figures per bucket, in percent:
    ``MR-<bucket>-mAP`` (mean over thresholds of the mean over queries), ``MR-<bucket>-mAP@t``,
    ``MR-<bucket>-R1@t`` and ``MR-<bucket>-mIoU``. An empty bucket gives NaN, as the official
    mean over no queries does."""
    results: dict[str, float] = {}
    for b, name in enumerate(buckets):
        selected = np.asarray(in_bucket[:, b], dtype=bool) if len(in_bucket) else np.zeros(0, bool)
        ious = top1_iou[selected, b] if len(top1_iou) else np.zeros(0)
        empty = not selected.any()
        if len(map_thresholds):
            per_threshold = (
                np.full(len(map_thresholds), np.nan) if empty else ap[selected, b].mean(axis=0)
            )
            results[f"MR-{name}-mAP"] = 100 * float(np.mean(per_threshold))
            for threshold, value in zip(map_thresholds, per_threshold, strict=True):
                results[f"MR-{name}-mAP@{threshold_key(threshold)}"] = 100 * float(value)
        for threshold in r1_thresholds:
            recall = np.nan if empty else float(np.mean(ious >= threshold))
            results[f"MR-{name}-R1@{threshold_key(threshold)}"] = 100 * recall
        results[f"MR-{name}-mIoU"] = np.nan if empty else 100 * float(np.mean(ious))
    return results


MOMENT_PROTOCOLS: dict[str, dict[str, Any]] = {
    "qvhighlights": {
        "buckets": QVHIGHLIGHTS_BUCKETS,
        "map_thresholds": MAP_THRESHOLDS,
        "r1_thresholds": QVHIGHLIGHTS_R1_THRESHOLDS,
    },
    **{
        name: {
            "buckets": GROUNDING_BUCKETS,
            "map_thresholds": (),
            "r1_thresholds": GROUNDING_R1_THRESHOLDS,
        }
        for name in ("charades", "tacos")
    },
}


def moment_protocol(dataset: str) -> dict[str, Any]:
    if dataset not in MOMENT_PROTOCOLS:
        raise ValueError(
            f"unknown moment retrieval dataset {dataset!r}; use one of {list(MOMENT_PROTOCOLS)}"
        )
    return MOMENT_PROTOCOLS[dataset]


def moment_rows(
    pairs: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
    dataset: str = "qvhighlights",
    max_windows: int | None = MAX_PRED_WINDOWS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stacked ``moment_query`` rows of (prediction, ground truth) pairs."""
    protocol = moment_protocol(dataset)
    preds = batched.split_rows([p.get("pred_relevant_windows") for p, _ in pairs], 3, cut=True)
    if preds is None:  # some list is not plain rows: convert one by one, naming the bad qid
        preds = [as_pred_windows(p.get("pred_relevant_windows"), g.get("qid")) for p, g in pairs]
    gts = batched.split_rows([g.get("relevant_windows") for _, g in pairs], 2, cut=False)
    if gts is None or any(len(windows) == 0 for windows in gts):
        gts = [as_gt_windows(g) for _, g in pairs]
    return moment_batch(preds, gts, protocol["buckets"], protocol["map_thresholds"], max_windows)


def moment_retrieval(
    predictions: Records,
    ground_truth: Records,
    dataset: str = "qvhighlights",
    max_windows: int | None = MAX_PRED_WINDOWS,
) -> dict[str, float]:
    """Every moment retrieval figure of a protocol, flat, in percent, full precision."""
    protocol = moment_protocol(dataset)
    rows = moment_rows(pair_by_qid(predictions, ground_truth), dataset, max_windows)
    return summarize_moments(
        *rows, tuple(protocol["buckets"]), protocol["map_thresholds"], protocol["r1_thresholds"]
    )


def qvhighlights_mr(
    predictions: Records, ground_truth: Records, max_windows: int = MAX_PRED_WINDOWS
) -> dict[str, float]:
    """QVHighlights moment retrieval figures (Moment-DETR), flat, in percent."""
    return moment_retrieval(predictions, ground_truth, "qvhighlights", max_windows)


def grounding_mr(predictions: Records, ground_truth: Records) -> dict[str, float]:
    """Charades-STA / TACoS figures: R1@0.3..0.95 and mIoU of the top-1 window, in percent."""
    return moment_retrieval(predictions, ground_truth, "charades")


# -- QVHighlights highlight detection --------------------------------------------------------------
def qvhighlights_ratings(record: Mapping[str, Any]) -> np.ndarray:
    """(clips, 3) annotator ratings 0-4 over the whole video (``int(duration / 2)`` clips), 0
    outside the relevant clips, as Moment-DETR's ``mk_gt_scores``."""
    qid = record.get("qid")
    require_fields(record, ("duration", "relevant_clip_ids", "saliency_scores"))
    clips = int(record["duration"] / QVHIGHLIGHTS_CLIP_LEN)
    ratings = np.zeros((clips, QVHIGHLIGHTS_ANNOTATORS))
    clip_ids = np.asarray(record["relevant_clip_ids"], dtype=np.int64).reshape(-1)
    scores = np.asarray(record["saliency_scores"], dtype=np.float64)
    if scores.shape != (len(clip_ids), QVHIGHLIGHTS_ANNOTATORS):
        raise ValueError(
            f"qid {qid}: saliency_scores must be one row of {QVHIGHLIGHTS_ANNOTATORS} ratings "
            f"per relevant clip id ({len(clip_ids)}), got shape {scores.shape}"
        )
    if clip_ids.size and (clip_ids.min() < 0 or clip_ids.max() >= clips):
        raise ValueError(
            f"qid {qid}: relevant clip ids {clip_ids.min()}..{clip_ids.max()} outside the "
            f"{clips} clips of a {record['duration']} s video; fix the annotation"
        )
    ratings[clip_ids] = scores
    return ratings


def qvhighlights_ratings_batch(records: Records) -> tuple[np.ndarray, np.ndarray]:
    """``qvhighlights_ratings`` of N records: ``(N, clips, 3)`` zero-padded and ``(N, clips)``
    marking each video's clips. One NumPy call for all records; a record that does not fit the
    fast path is checked alone, which names it."""
    counts, clip_ids, rows = [], [], []
    for record in records:
        require_fields(record, ("duration", "relevant_clip_ids", "saliency_scores"))
        ids, scores = record.get("relevant_clip_ids"), record.get("saliency_scores")
        if not (isinstance(ids, list) and isinstance(scores, list) and len(ids) == len(scores)):
            qvhighlights_ratings(record)  # raises with the qid and the fix
        counts.append(len(ids))
        clip_ids += ids
        rows += scores
    clips = np.array([int(record["duration"] / QVHIGHLIGHTS_CLIP_LEN) for record in records])
    valid = np.arange(clips.max(initial=0))[None, :] < clips[:, None]
    query = np.repeat(np.arange(len(records)), counts)
    try:
        clip_ids = np.asarray(clip_ids, dtype=np.int64).reshape(-1)
        rows = np.asarray(rows, dtype=np.float64).reshape(len(query), QVHIGHLIGHTS_ANNOTATORS)
    except (ValueError, TypeError):
        clip_ids = None
    if clip_ids is None or ((clip_ids < 0) | (clip_ids >= clips[query])).any():
        for record in records:
            qvhighlights_ratings(record)  # raises with the qid and the fix
    ratings = np.zeros((*valid.shape, QVHIGHLIGHTS_ANNOTATORS))
    ratings[query, clip_ids] = rows
    return ratings, valid


def _fit_predictions(
    scores: Sequence[Sequence[float]], records: Records, valid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Predicted clip scores cut or zero-padded to each video's clips (Moment-DETR does this
    before AP, so a short prediction ranks its missing clips at score 0), and the index of each
    prediction's top clip before cutting (first of ties)."""
    lengths = np.array([len(values) for values in scores])
    for values, record in zip(scores, records, strict=True):
        if not len(values):
            raise ValueError(f"qid {record.get('qid')}: pred_saliency_scores is empty")
    flat = np.asarray([value for values in scores for value in values], dtype=np.float64)
    query = np.repeat(np.arange(len(lengths)), lengths)
    position = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    raw = np.full((len(lengths), max(lengths.max(), valid.shape[1])), -np.inf)
    raw[query, position] = flat
    top = raw.argmax(axis=1)
    clips = valid.shape[1]
    given = valid & (np.arange(clips)[None, :] < lengths[:, None])
    return np.where(given, raw[:, :clips], 0.0), top


def saliency_ap(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Moment-DETR's ``get_ap`` (from video2gif): the mean, over the score thresholds where recall
    grows, of the interpolated precision there. Not sklearn's average_precision: a tie that adds
    several positives counts once. All-negative labels give 0, all-positive 1."""
    labels = np.asarray(y_true, dtype=np.float64).reshape(1, -1, 1)
    scores = np.asarray(y_score, dtype=np.float64).reshape(1, -1)
    return float(batched.saliency_ap(labels, scores, np.ones(scores.shape, bool))[0, 0])


def saliency_query(
    scores: Sequence[float], record: Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """One query: ``ap (levels, annotators)`` and ``hit (levels,)`` for Fair, Good, VeryGood.

    Hit@1 looks at the top-scored clip of the prediction as given (before cutting), and counts
    when any annotator rated it at least the level; a top clip beyond the video is a miss.
    """
    ap, hit = saliency_batch([scores], [record])
    return ap[0], hit[0]


def saliency_batch(
    scores: Sequence[Sequence[float]], records: Sequence[Mapping[str, Any]]
) -> tuple[np.ndarray, np.ndarray]:
    """``saliency_query`` of N queries at once: ``(N, levels, annotators)`` and ``(N, levels)``."""
    levels = len(SALIENCY_LEVELS)
    if not records:
        return np.zeros((0, levels, QVHIGHLIGHTS_ANNOTATORS)), np.zeros((0, levels))
    ratings, valid = qvhighlights_ratings_batch(records)
    fitted, top = _fit_predictions(scores, records, valid)
    minimums = np.array(list(SALIENCY_LEVELS.values()), dtype=np.float64)
    positive = ratings[:, :, None, :] >= minimums[None, None, :, None]  # (N, L, levels, annot.)
    columns = positive.reshape(*valid.shape, -1).astype(np.float64)
    ap = batched.saliency_ap(columns, fitted, valid).reshape(len(records), levels, -1)
    inside = top < valid.sum(axis=1)
    top_clip = positive[np.arange(len(records)), np.minimum(top, valid.shape[1] - 1)]
    hit = (top_clip.any(axis=2) & inside[:, None]).astype(np.float64)
    return ap, hit


def summarize_saliency(ap: np.ndarray, hit: np.ndarray) -> dict[str, float]:
    """(N, levels, annotators) APs and (N, levels) hits -> ``HL-min-<level>-{mAP,Hit1}`` in
    percent; mAP is the mean over queries and annotators, as the official."""
    results = {}
    for level, name in enumerate(SALIENCY_LEVELS):
        empty = len(ap) == 0
        results[f"HL-min-{name}-mAP"] = np.nan if empty else 100 * float(np.mean(ap[:, level]))
        results[f"HL-min-{name}-Hit1"] = np.nan if empty else 100 * float(np.mean(hit[:, level]))
    return results


def has_saliency(record: Mapping[str, Any]) -> bool:
    """Whether a ground-truth record carries QVHighlights saliency ratings."""
    return record.get("saliency_scores") is not None


def saliency_rows(
    pairs: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
) -> tuple[np.ndarray, np.ndarray]:
    for prediction, record in pairs:
        if prediction.get("pred_saliency_scores") is None:
            raise ValueError(f"qid {record.get('qid')}: prediction has no pred_saliency_scores")
    return saliency_batch([p["pred_saliency_scores"] for p, _ in pairs], [g for _, g in pairs])


def qvhighlights_hl(predictions: Records, ground_truth: Records) -> dict[str, float]:
    """QVHighlights highlight detection figures over the records that have saliency ratings."""
    pairs = [(p, g) for p, g in pair_by_qid(predictions, ground_truth) if has_saliency(g)]
    return summarize_saliency(*saliency_rows(pairs))


# -- YouTube Highlights and TVSum (UMT) ----------------------------------------------------------
def ranked_ap(ranked_labels: Sequence[float]) -> float:
    """UMT's AP of a ranked list of 0/1 labels: trapezoid rule over (recall, precision) from
    (0, 1), summed in rank order as UMT does; 0 when there is no positive."""
    labels = np.asarray(ranked_labels, dtype=np.float64)
    positives = labels.sum()
    if positives == 0:
        return 0.0
    hits = np.cumsum(labels)
    recall = hits / positives
    precision = hits / np.arange(1, len(labels) + 1)
    previous_recall = np.r_[0.0, recall[:-1]]
    previous_precision = np.r_[1.0, precision[:-1]]
    terms = (recall - previous_recall) * (previous_precision + precision) / 2
    return float(sum(terms.tolist()))  # left to right, as UMT accumulates


def rank_clips(scores: Sequence[float], num_clips: int) -> np.ndarray:
    """Clip indices by descending score (ties in clip order). UMT ranks the clips the model
    scored, so a prediction shorter than the labels leaves the remaining clips out; a longer one
    is cut (UMT itself fails on it)."""
    values = np.asarray(scores, dtype=np.float64).reshape(-1)[:num_clips]
    return np.argsort(-values, kind="stable")


def youtube_labels(record: Mapping[str, Any]) -> np.ndarray:
    """Per-clip 0/1 highlight labels from ``label`` rows ``[0/1]`` (UMT's ``match > 0``)."""
    require_fields(record, ("label",))
    labels = np.asarray(record["label"], dtype=np.float64)
    return labels.reshape(len(labels), -1)[:, 0]


def youtube_video_ap(scores: Sequence[float], record: Mapping[str, Any]) -> float:
    """UMT's YouTube Highlights AP of one video over all its ranked clips."""
    labels = youtube_labels(record)
    return ranked_ap(labels[rank_clips(scores, len(labels))])


def tvsum_video_ap(
    scores: Sequence[float], record: Mapping[str, Any], k: int = TVSUM_TOP_K
) -> float:
    """UMT's TVSum top-k AP of one video, averaged over its annotators (20).

    Per annotator a clip is positive when its rating is above the median of that annotator's
    ratings over the whole video (UMT takes torch's lower median, numpy averages the two middle
    values: for "above" both select the same clips); AP is UMT's trapezoid over the k
    top-scored clips, with recall relative to the positives among those k. QD-DETR, UniVTG and
    VideoLights copy this definition (QD-DETR cuts a longer prediction instead of failing).
    Video-summarisation papers evaluate TVSum differently (F-score of knapsack summaries, or
    rank correlation with the mean rating); those numbers are not comparable with this one.
    """
    require_fields(record, ("label",))
    ratings = np.asarray(record["label"], dtype=np.float64)
    if ratings.ndim != 2:
        raise ValueError(
            f"qid {record.get('qid')}: TVSum label must be (clips, annotators), got {ratings.shape}"
        )
    top = rank_clips(scores, len(ratings))[:k]
    aps = [
        ranked_ap((ratings[top, a] > np.median(ratings[:, a])).astype(np.float64))
        for a in range(ratings.shape[1])
    ]
    return float(np.mean(aps))


def summarize_domains(values: np.ndarray, domains: Sequence[str], name: str) -> dict[str, float]:
    """Per-video APs -> ``name`` (mean over videos), ``name/<domain>`` (mean over the domain's
    videos, the number UMT prints for a model trained on that domain) and ``name-domain-avg``
    (mean of the per-domain figures: the "Avg." column of the UMT / QD-DETR tables), in percent."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return {name: np.nan, f"{name}-domain-avg": np.nan}
    per_domain = {}
    for domain in sorted(set(domains)):
        mask = np.array([d == domain for d in domains])
        per_domain[f"{name}/{domain}"] = 100 * float(values[mask].mean())
    return {
        name: 100 * float(values.mean()),
        f"{name}-domain-avg": float(np.mean(list(per_domain.values()))),
        **per_domain,
    }


def video_domain(record: Mapping[str, Any]) -> str:
    return str(record.get("domain") or "all")


def youtube_map(predictions: Records, ground_truth: Records) -> dict[str, float]:
    """YouTube Highlights mAP (UMT), overall, per domain and averaged over domains."""
    pairs = pair_by_qid(predictions, ground_truth)
    values = [youtube_video_ap(p["pred_saliency_scores"], g) for p, g in pairs]
    return summarize_domains(np.array(values), [video_domain(g) for _, g in pairs], "mAP")


def tvsum_map(
    predictions: Records, ground_truth: Records, k: int = TVSUM_TOP_K
) -> dict[str, float]:
    """TVSum top-5 mAP (UMT), overall, per domain and averaged over domains."""
    pairs = pair_by_qid(predictions, ground_truth)
    values = [tvsum_video_ap(p["pred_saliency_scores"], g, k) for p, g in pairs]
    return summarize_domains(np.array(values), [video_domain(g) for _, g in pairs], "top5-mAP")


def encode_domain(domain: str, width: int = 32) -> np.ndarray:
    """A domain name as fixed-width bytes, so it travels in a DDP-synchronised tensor."""
    raw = domain.encode("utf-8")
    if len(raw) > width:
        raise ValueError(f"domain name {domain!r} longer than {width} bytes")
    return np.frombuffer(raw.ljust(width, b"\0"), dtype=np.uint8).copy()


def decode_domain(code: np.ndarray) -> str:
    return bytes(np.asarray(code, dtype=np.uint8)).rstrip(b"\0").decode("utf-8")


# -- shared helpers ------------------------------------------------------------------------------
def require_fields(record: Mapping[str, Any], fields: Sequence[str]) -> None:
    """An error naming the qid and the missing fields of a ground-truth record."""
    missing = [field for field in fields if record.get(field) is None]
    if missing:
        raise ValueError(f"qid {record.get('qid')!r}: ground truth lacks {', '.join(missing)}")


def pair_by_qid(
    predictions: Records, ground_truth: Records
) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """(prediction, ground truth) pairs in ground-truth order; the qids must match one to one."""
    by_qid: dict[Any, Mapping[str, Any]] = {}
    for prediction in predictions:
        if prediction["qid"] in by_qid:
            raise ValueError(f"qid {prediction['qid']!r} predicted twice")
        by_qid[prediction["qid"]] = prediction
    gt_qids = [record["qid"] for record in ground_truth]
    if len(set(gt_qids)) != len(gt_qids):
        raise ValueError("ground truth lists a qid twice")
    missing = [qid for qid in gt_qids if qid not in by_qid]
    extra = sorted(set(by_qid) - set(gt_qids), key=str)
    if missing or extra:
        raise ValueError(
            f"predictions and ground truth differ: no prediction for {len(missing)} qids "
            f"{missing[:10]}, no ground truth for {len(extra)} qids {extra[:10]}"
        )
    return [(by_qid[record["qid"]], record) for record in ground_truth]


def official_round(value: float, digits: int = 2) -> float:
    """Round as the official scripts print: ``float(f"{value:.2f}")``."""
    return float(f"{float(value):.{digits}f}")


def round_metrics(metrics: Mapping[str, Any], digits: int = 2) -> dict[str, Any]:
    """``official_round`` every number of a (nested) metrics dict."""
    return {
        key: round_metrics(value, digits)
        if isinstance(value, Mapping)
        else official_round(value, digits)
        for key, value in metrics.items()
    }
