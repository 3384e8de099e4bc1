"""Shared helpers of the metrics tests: the real annotations (skipped when absent) and
deterministic predictions for them.

The parity tests' expected numbers come from scoring exactly these predictions with the official
scripts, outside the project; change a generator and those numbers must be produced again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_file(*parts: str) -> Path:
    """A file of the real annotations beside the clone; skip the test when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"real annotations not found at {path}")
    return path


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def qvhighlights_predictions(ground_truth: list[dict[str, Any]], seed: int = 0) -> list[dict]:
    """Jittered ground-truth windows plus distractors, with what the official scripts must agree
    on: up to 16 windows (mAP reads the first 10 as listed), every fifth query listed out of
    score order (R1 takes the first listed), tied scores, windows past either end of the video,
    and saliency of +-3 clips around ``duration / 2`` with ties (scores rounded to 0.5)."""
    rng = np.random.default_rng(seed)
    predictions = []
    for index, record in enumerate(ground_truth):
        duration = float(record["duration"])
        windows = []
        for start, end in record["relevant_windows"]:
            start, end = start + rng.normal(scale=3.0), end + rng.normal(scale=3.0)
            windows.append([start, max(end, start + 1.0), rng.uniform(0.3, 1.0)])
        for _ in range(int(rng.integers(0, 14))):
            start = rng.uniform(-10, duration)
            windows.append([start, start + rng.uniform(1, 60), rng.uniform(0, 0.8)])
        windows = [[round(s, 2), round(e, 2), round(c, 2)] for s, e, c in windows]  # ties
        windows.sort(key=lambda w: -w[2])
        if index % 5 == 0:
            rng.shuffle(windows)
        clips = int(duration / 2) + int(rng.integers(-3, 4))
        saliency = rng.normal(scale=2.0, size=clips)
        for clip, ratings in zip(
            record["relevant_clip_ids"], record["saliency_scores"], strict=True
        ):
            if clip < clips:
                saliency[clip] += sum(ratings)
        if index % 50 == 0:
            saliency[:] = 1.0  # every clip tied
        predictions.append(
            {
                "qid": record["qid"],
                "vid": record["vid"],
                "pred_relevant_windows": windows,
                "pred_saliency_scores": [float(v) for v in np.round(2 * saliency) / 2],
            }
        )
    return predictions


def grounding_predictions(ground_truth: list[dict[str, Any]], seed: int = 0) -> list[dict]:
    """Charades-STA / TACoS: a jittered ground-truth window, a few random ones, listed in random
    order (R1 takes the first listed)."""
    rng = np.random.default_rng(seed)
    predictions = []
    for record in ground_truth:
        duration = float(record["duration"])
        start, end = record["relevant_windows"][0]
        scale = 0.3 * (end - start) + 0.5
        start, end = start + rng.normal(scale=scale), end + rng.normal(scale=scale)
        windows = [[start, max(end, start + 0.1), 0.9]]
        for _ in range(int(rng.integers(0, 4))):
            other = rng.uniform(0, duration)
            windows.append([other, other + rng.uniform(0.5, duration / 3), 0.5])
        rng.shuffle(windows)
        predictions.append(
            {
                "qid": record["qid"],
                "vid": record["vid"],
                "pred_relevant_windows": [[round(v, 2) for v in w] for w in windows],
            }
        )
    return predictions


def highlight_predictions(ground_truth: list[dict[str, Any]], seed: int = 0) -> list[dict]:
    """YouTube Highlights / TVSum: mean label + noise, no ties (UMT's torch.argsort is not
    stable); every seventh video is 1-3 clips short (UMT then ranks only the scored clips)."""
    rng = np.random.default_rng(seed)
    predictions = []
    for index, record in enumerate(ground_truth):
        labels = np.asarray(record["label"], dtype=np.float64).mean(axis=1)
        scores = labels + rng.normal(scale=0.8 * (labels.std() + 0.1), size=len(labels))
        if index % 7 == 0:
            scores = scores[: len(scores) - int(rng.integers(1, 4))]
        predictions.append(
            {"qid": record["qid"], "vid": record["vid"], "pred_saliency_scores": scores.tolist()}
        )
    return predictions


def perfect_predictions(ground_truth: list[dict[str, Any]]) -> list[dict]:
    """The annotations as predictions: the ground-truth windows (score 1, as listed) and, per
    clip, the sum of the annotators' ratings (0 outside the relevant clips)."""
    predictions = []
    for record in ground_truth:
        saliency = [0.0] * int(record["duration"] / 2)
        for clip, ratings in zip(
            record["relevant_clip_ids"], record["saliency_scores"], strict=True
        ):
            saliency[clip] = float(sum(ratings))
        predictions.append(
            {
                "qid": record["qid"],
                "vid": record["vid"],
                "pred_relevant_windows": [[s, e, 1.0] for s, e in record["relevant_windows"]],
                "pred_saliency_scores": saliency,
            }
        )
    return predictions
