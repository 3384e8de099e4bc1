"""Deterministic predictions for the real annotations, shared by the parity tests and by the
one-off script that scored them with the official evaluators (see test_metrics_parity.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def qvhighlights_predictions(ground_truth: list[dict[str, Any]], seed: int = 0) -> list[dict]:
    """Noisy copies of the GT windows plus distractors; saliency = ratings + noise (no ties)."""
    rng = np.random.default_rng(seed)
    predictions = []
    for record in ground_truth:
        duration = float(record["duration"])
        windows = []
        for start, end in record["relevant_windows"]:
            jitter = rng.normal(scale=4.0, size=2)
            windows.append([start + jitter[0], end + jitter[1], rng.uniform(0.3, 1.0)])
        for _ in range(int(rng.integers(0, 12))):
            start = rng.uniform(0, duration - 2)
            windows.append([start, min(duration, start + rng.uniform(2, 60)), rng.uniform(0, 0.8)])
        windows = [[round(s, 2), round(max(e, s + 0.5), 2), round(c, 4)] for s, e, c in windows]
        windows.sort(key=lambda w: -w[2])
        clips = int(duration / 2)
        saliency = rng.normal(scale=3.0, size=clips + int(rng.integers(-2, 3)))
        for clip, ratings in zip(
            record["relevant_clip_ids"], record["saliency_scores"], strict=True
        ):
            if clip < len(saliency):
                saliency[clip] += sum(ratings)
        predictions.append(
            {
                "qid": record["qid"],
                "vid": record["vid"],
                "pred_relevant_windows": windows,
                "pred_saliency_scores": [round(float(v), 4) for v in saliency],
            }
        )
    return predictions


def highlight_predictions(ground_truth: list[dict[str, Any]], seed: int = 0) -> list[dict]:
    """Per clip: mean label + Gaussian noise, one score per clip (no ties)."""
    rng = np.random.default_rng(seed)
    predictions = []
    for record in ground_truth:
        labels = np.asarray(record["label"], dtype=np.float64).mean(axis=1)
        scores = labels + rng.normal(scale=0.8 * (labels.std() + 0.1), size=len(labels))
        predictions.append(
            {"qid": record["qid"], "vid": record["vid"], "pred_saliency_scores": scores.tolist()}
        )
    return predictions
