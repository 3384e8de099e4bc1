"""Pure functions that reproduce the official evaluators' numbers.

- QVHighlights MR and HD: Moment-DETR's ``standalone_eval/eval.py`` (jayleicn/moment_detr).
- YouTube Highlights and TVSum: UMT's ``datasets/youtube.py`` and ``datasets/tvsum.py``
  (TencentARC/UMT), the protocol QD-DETR and VideoLights report.

Every figure is built from *per-query* (or per-video) rows, then averaged; the torchmetrics
classes store the same rows as tensors, so their results equal these functions' under DDP too.
Figures are percentages in full precision; the official scripts round to two decimals when they
print, which ``round_metrics`` does for tables and JSON.

Deliberate differences from the official scripts, where those crash or drop data silently:
a query with no predicted window scores AP 0 and IoU 0 (Moment-DETR crashes on R1 and drops the
query from mAP); a ground-truth clip id beyond ``duration / 2`` is an error naming the query.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

MAP_THRESHOLDS = np.round(np.linspace(0.5, 0.95, 10), 2)  # mAP@[0.5:0.05:0.95]
R1_THRESHOLDS = np.round(np.linspace(0.3, 0.95, 14), 2)  # R1@0.3 .. R1@0.95
LENGTH_BUCKETS: dict[str, tuple[float, float] | None] = {
    "short": (0.0, 10.0),
    "middle": (10.0, 30.0),
    "long": (30.0, 150.0),
    "full": None,  # every window, as the official (0, 150] range short-circuits
}
SALIENCY_LEVELS = {"Fair": 2, "Good": 3, "VeryGood": 4}
GROUNDING_THRESHOLDS = (0.3, 0.5, 0.7)


def _key(threshold: float) -> str:
    return f"{float(threshold):g}"


# -- moment retrieval --------------------------------------------------------------------------
def temporal_iou(spans1: np.ndarray, spans2: np.ndarray) -> np.ndarray:
    """(N, M) IoU of [start, end] rows; 0 where both spans are empty."""
    spans1 = np.asarray(spans1, dtype=np.float64).reshape(-1, 2)
    spans2 = np.asarray(spans2, dtype=np.float64).reshape(-1, 2)
    left = np.maximum(spans1[:, None, 0], spans2[None, :, 0])
    right = np.minimum(spans1[:, None, 1], spans2[None, :, 1])
    inter = np.clip(right - left, 0, None)
    union = (spans1[:, 1] - spans1[:, 0])[:, None] + (spans2[:, 1] - spans2[:, 0])[None] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def hull_iou(span1: np.ndarray, span2: np.ndarray) -> float:
    """IoU as the official R1 computes it: intersection over the spans' hull (same value as the
    union whenever they overlap, bit for bit as the official script divides)."""
    inter = max(0.0, min(span1[1], span2[1]) - max(span1[0], span2[0]))
    hull = max(span1[1], span2[1]) - min(span1[0], span2[0])
    return float(inter / hull) if hull != 0 else 0.0


def interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """VOC-style area under the interpolated precision-recall curve."""
    precision = np.concatenate([[0.0], precision, [0.0]])
    recall = np.concatenate([[0.0], recall, [1.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1]) + 1
    return float(np.sum((recall[steps] - recall[steps - 1]) * precision[steps]))


def detection_ap(
    gt_windows: np.ndarray, pred_windows: np.ndarray, thresholds: np.ndarray = MAP_THRESHOLDS
) -> np.ndarray:
    """AP per IoU threshold for one query: predictions by score, each GT window matched once."""
    ap = np.zeros(len(thresholds))
    if len(pred_windows) == 0 or len(gt_windows) == 0:
        return ap
    order = np.argsort(-pred_windows[:, 2], kind="stable")
    ious = temporal_iou(pred_windows[order, :2], gt_windows)  # (P, G)
    true_positive = np.zeros((len(thresholds), len(order)))
    for t, threshold in enumerate(thresholds):
        taken = np.zeros(len(gt_windows), dtype=bool)
        for p in range(len(order)):
            for g in np.argsort(ious[p])[::-1]:
                if ious[p, g] < threshold:
                    break
                if not taken[g]:
                    taken[g] = True
                    true_positive[t, p] = 1
                    break
    hits = np.cumsum(true_positive, axis=1)
    precision = hits / np.arange(1, len(order) + 1)
    recall = hits / len(gt_windows)
    return np.array([interpolated_ap(precision[t], recall[t]) for t in range(len(thresholds))])


def moment_rows(
    pred_windows: Sequence[Sequence[float]], gt_windows: Sequence[Sequence[float]], max_windows=10
) -> np.ndarray:
    """Per bucket: [in_bucket, AP per mAP threshold ..., top-1 IoU] for one query, (4, 12).

    The top-1 window is the first listed (as the official R1), compared with the ground-truth
    window of highest IoU with it; mAP uses the first ``max_windows`` windows.
    """
    preds = np.asarray(pred_windows, dtype=np.float64).reshape(-1, 3)[:max_windows]
    gts = np.asarray(gt_windows, dtype=np.float64).reshape(-1, 2)
    rows = np.zeros((len(LENGTH_BUCKETS), 2 + len(MAP_THRESHOLDS)))
    for b, bounds in enumerate(LENGTH_BUCKETS.values()):
        lengths = gts[:, 1] - gts[:, 0]
        kept = gts if bounds is None else gts[(lengths > bounds[0]) & (lengths <= bounds[1])]
        if len(kept) == 0:
            continue
        rows[b, 0] = 1.0
        rows[b, 1:-1] = detection_ap(kept, preds)
        if len(preds):
            best = kept[int(np.argmax(temporal_iou(preds[:1, :2], kept)[0]))]
            rows[b, -1] = hull_iou(preds[0, :2], best)
    return rows


def summarize_moments(rows: np.ndarray) -> dict[str, float]:
    """Official-style brief and per-threshold figures from stacked ``moment_rows`` (Q, 4, 12)."""
    results: dict[str, float] = {}
    for b, name in enumerate(LENGTH_BUCKETS):
        selected = rows[rows[:, b, 0] > 0, b] if len(rows) else np.zeros((0, rows.shape[-1]))
        if len(selected) == 0:
            ap = np.zeros(len(MAP_THRESHOLDS))
            ious = np.zeros(0)
        else:
            ap = selected[:, 1:-1].mean(axis=0)
            ious = selected[:, -1]
        results[f"MR-{name}-mAP"] = 100 * float(ap.mean())
        if name != "full":
            continue
        for threshold, value in zip(MAP_THRESHOLDS, ap, strict=True):
            results[f"MR-full-mAP@{_key(threshold)}"] = 100 * float(value)
        for threshold in R1_THRESHOLDS:
            recall = float(np.mean(ious >= threshold)) if len(ious) else 0.0
            results[f"MR-full-R1@{_key(threshold)}"] = 100 * recall
        results["MR-full-mIoU"] = 100 * float(ious.mean()) if len(ious) else 0.0
    return results


def grounding_summary(rows: np.ndarray) -> dict[str, float]:
    """Charades-STA / TACoS: R1@{0.3, 0.5, 0.7} and mIoU of the top-1 window."""
    ious = rows[:, 3, -1] if len(rows) else np.zeros(0)
    results = {
        f"MR-full-R1@{_key(t)}": 100 * float(np.mean(ious >= t)) if len(ious) else 0.0
        for t in GROUNDING_THRESHOLDS
    }
    results["MR-full-mIoU"] = 100 * float(ious.mean()) if len(ious) else 0.0
    return results


# -- QVHighlights highlight detection ------------------------------------------------------------
def precision_recall_points(y_true: np.ndarray, y_score: np.ndarray):
    """Precision and recall at each distinct score threshold, highest recall first (sklearn's)."""
    order = np.argsort(y_score, kind="mergesort")[::-1]
    scores, labels = y_score[order], y_true[order]
    cuts = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    true_pos = np.cumsum(labels)[cuts]
    false_pos = cuts + 1 - true_pos
    precision = true_pos / (true_pos + false_pos)
    recall = true_pos / true_pos[-1]
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0]


def saliency_ap(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Moment-DETR's ``get_ap``: mean interpolated precision at each recall step (video2gif)."""
    y_true = np.asarray(y_true, dtype=np.float64)
    if len(np.unique(y_true)) == 1:
        return float(y_true[0] != 0)
    precision, recall = precision_recall_points(y_true, np.asarray(y_score, dtype=np.float64))
    recall = recall.astype(np.float32)
    precision = np.maximum.accumulate(precision)
    steps = np.flatnonzero(np.diff(recall))
    return float(np.mean(precision[steps]))


def fit_length(scores: Sequence[float], length: int) -> np.ndarray:
    """Cut or zero-pad predicted clip scores to the ground truth's clip count (official)."""
    fitted = np.zeros(length)
    values = np.asarray(scores, dtype=np.float64)[:length]
    fitted[: len(values)] = values
    return fitted


def qvhighlights_gt_scores(record: Mapping[str, Any], clip_len: float = 2.0) -> np.ndarray:
    """(clips, 3) annotator ratings over the whole video, zero outside the relevant clips."""
    full = np.zeros((int(record["duration"] / clip_len), 3))
    clip_ids = np.asarray(record["relevant_clip_ids"], dtype=np.int64)
    if clip_ids.size and clip_ids.max() >= len(full):
        raise ValueError(
            f"qid {record.get('qid')}: relevant clip id {clip_ids.max()} beyond the "
            f"{len(full)} clips of a {record['duration']} s video; fix the annotation"
        )
    full[clip_ids] = np.asarray(record["saliency_scores"], dtype=np.float64).reshape(-1, 3)
    return full


def saliency_row(scores: Sequence[float], record: Mapping[str, Any]) -> np.ndarray:
    """Per level (Fair, Good, VeryGood): [AP of annotators 1-3 ..., Hit@1], shape (3, 4)."""
    ratings = qvhighlights_gt_scores(record)
    row = np.zeros((len(SALIENCY_LEVELS), 4))
    raw = np.asarray(scores, dtype=np.float64)
    top = int(np.argmax(raw)) if len(raw) else len(ratings)
    fitted = fit_length(raw, len(ratings))
    for level, minimum in enumerate(SALIENCY_LEVELS.values()):
        binary = (ratings >= minimum).astype(np.float64)
        row[level, :3] = [saliency_ap(binary[:, a], fitted) for a in range(3)]
        row[level, 3] = binary[top].max() if top < len(binary) else 0.0
    return row


def summarize_saliency(rows: np.ndarray) -> dict[str, float]:
    results = {}
    for level, name in enumerate(SALIENCY_LEVELS):
        level_rows = rows[:, level] if len(rows) else np.zeros((0, 4))
        mean_ap = level_rows[:, :3].mean() if len(level_rows) else 0.0
        hit = level_rows[:, 3].mean() if len(level_rows) else 0.0
        results[f"HL-min-{name}-mAP"] = 100 * float(mean_ap)
        results[f"HL-min-{name}-Hit1"] = 100 * float(hit)
    return results


# -- YouTube Highlights and TVSum (UMT protocol) ---------------------------------------------------
def ranked_ap(ranked_labels: Sequence[float]) -> float:
    """UMT's AP: trapezoid rule over the ranked binary labels; 0 without positives."""
    positives = float(sum(ranked_labels))
    if positives == 0:
        return 0.0
    hits = ap = recall = 0.0
    precision = 1.0
    for rank, label in enumerate(ranked_labels, start=1):
        hits += label
        new_recall, new_precision = hits / positives, hits / rank
        ap += (new_recall - recall) * (precision + new_precision) / 2
        recall, precision = new_recall, new_precision
    return ap


def youtube_labels(record: Mapping[str, Any]) -> np.ndarray:
    """Binary per-clip labels; ``label`` rows are [0/1] (UMT reads ``match > 0``, the same)."""
    return np.asarray(record["label"], dtype=np.float64).reshape(len(record["label"]), -1)[:, 0]


def youtube_video_ap(scores: Sequence[float], record: Mapping[str, Any]) -> float:
    labels = youtube_labels(record)
    order = np.argsort(-fit_length(scores, len(labels)), kind="stable")
    return ranked_ap(labels[order].tolist())


def tvsum_video_ap(scores: Sequence[float], record: Mapping[str, Any], k: int = 5) -> float:
    """Top-k mAP of one video: per annotator, clips above that annotator's median are positive
    (torch's median: the lower middle value), AP over the k best-scored clips; mean of the 20.

    QD-DETR and VideoLights use this UMT definition; PGL-SUM/DSNet-style TVSum evaluations
    (F-score of knapsack summaries) are a different protocol and not comparable.
    """
    ratings = np.asarray(record["label"], dtype=np.float64)
    order = np.argsort(-fit_length(scores, len(ratings)), kind="stable")[:k]
    aps = []
    for annotator in range(ratings.shape[1]):
        column = ratings[:, annotator]
        median = np.sort(column)[(len(column) - 1) // 2]
        aps.append(ranked_ap((column > median)[order].astype(float).tolist()))
    return float(np.mean(aps))


def encode_domain(domain: str, width: int = 32) -> np.ndarray:
    """A domain name as fixed-width bytes, so it can travel in a DDP-synchronised tensor."""
    raw = domain.encode("utf-8")[:width]
    return np.frombuffer(raw.ljust(width, b"\0"), dtype=np.uint8).copy()


def decode_domain(code: np.ndarray) -> str:
    return bytes(np.asarray(code, dtype=np.uint8)).rstrip(b"\0").decode("utf-8")


def summarize_domains(values: np.ndarray, domains: Sequence[str], name: str) -> dict[str, float]:
    """``name``: mean of the per-domain means (what the papers' tables average);
    ``name/<domain>`` per domain; ``name-videos``: mean over all videos."""
    if len(values) == 0:
        return {name: 0.0}
    per_domain = {}
    for domain in sorted(set(domains)):
        mask = np.array([d == domain for d in domains])
        per_domain[f"{name}/{domain}"] = 100 * float(values[mask].mean())
    results = {name: float(np.mean(list(per_domain.values()))), **per_domain}
    results[f"{name}-videos"] = 100 * float(values.mean())
    return results


# -- whole-submission helpers ------------------------------------------------------------------
def pair_by_qid(
    predictions: Sequence[Mapping[str, Any]], ground_truth: Sequence[Mapping[str, Any]]
) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """(prediction, ground truth) per ground-truth record; every record needs a prediction."""
    by_qid = {prediction["qid"]: prediction for prediction in predictions}
    missing = [record["qid"] for record in ground_truth if record["qid"] not in by_qid]
    if missing:
        raise ValueError(f"no prediction for qids {missing[:10]} ({len(missing)} in all)")
    return [(by_qid[record["qid"]], record) for record in ground_truth]


def qvhighlights_mr(predictions, ground_truth, max_windows: int = 10) -> dict[str, float]:
    pairs = pair_by_qid(predictions, ground_truth)
    rows = (
        np.stack(
            [
                moment_rows(p.get("pred_relevant_windows", []), g["relevant_windows"], max_windows)
                for p, g in pairs
            ]
        )
        if pairs
        else np.zeros((0, 4, 12))
    )
    return summarize_moments(rows)


def grounding_mr(predictions, ground_truth) -> dict[str, float]:
    pairs = pair_by_qid(predictions, ground_truth)
    rows = (
        np.stack(
            [
                moment_rows(p.get("pred_relevant_windows", []), g["relevant_windows"])
                for p, g in pairs
            ]
        )
        if pairs
        else np.zeros((0, 4, 12))
    )
    return grounding_summary(rows)


def qvhighlights_hl(predictions, ground_truth) -> dict[str, float]:
    pairs = [(p, g) for p, g in pair_by_qid(predictions, ground_truth) if "saliency_scores" in g]
    rows = (
        np.stack([saliency_row(p["pred_saliency_scores"], g) for p, g in pairs])
        if pairs
        else (np.zeros((0, 3, 4)))
    )
    return summarize_saliency(rows)


def youtube_map(predictions, ground_truth) -> dict[str, float]:
    pairs = pair_by_qid(predictions, ground_truth)
    values = np.array([youtube_video_ap(p["pred_saliency_scores"], g) for p, g in pairs])
    return summarize_domains(values, [str(g.get("domain", "all")) for _, g in pairs], "mAP")


def tvsum_map(predictions, ground_truth, k: int = 5) -> dict[str, float]:
    pairs = pair_by_qid(predictions, ground_truth)
    values = np.array([tvsum_video_ap(p["pred_saliency_scores"], g, k) for p, g in pairs])
    return summarize_domains(values, [str(g.get("domain", "all")) for _, g in pairs], "top5-mAP")


def round_metrics(metrics: Mapping[str, Any], digits: int = 2) -> dict[str, Any]:
    """Round like the official scripts print, recursively."""
    return {
        key: round_metrics(value, digits)
        if isinstance(value, Mapping)
        else round(float(value), digits)
        for key, value in metrics.items()
    }
