"""``vhd eval`` speed on the full QVHighlights val split, against the official Moment-DETR script.

Writes deterministic predictions for every val query (10 windows: the ground truth jittered plus
distractors, and one saliency score per clip), then times the whole ``vhd eval`` command (a new
process: interpreter start, imports, checks, scoring, table, JSON) and ``evaluate`` alone. With
``--official DIR``, a checkout of github.com/jayleicn/moment_detr, it also times the official
``standalone_eval/eval.py`` as it is, in its own process and interpreter (``--official_python``,
with numpy and scikit-learn), and its ``eval_submission`` alone, and checks that both give the
same numbers. Prints one JSON object.

    .venv/bin/python benchmarks/eval_speed.py [--official DIR --official_python PY]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from vhd.metrics.evaluate import evaluate

DEFAULT_GT = (
    Path(__file__).resolve().parents[2] / "shared/data/qvhighlights/highlight_val_release.jsonl"
)


# Times the official scoring function alone, in the official interpreter (argv: pred, gt).
OFFICIAL_SCORING = """
import sys, time
from standalone_eval.eval import eval_submission
from standalone_eval.utils import load_jsonl
submission, ground_truth = load_jsonl(sys.argv[1]), load_jsonl(sys.argv[2])
start = time.perf_counter()
eval_submission(submission, ground_truth, verbose=False)
print(time.perf_counter() - start)
"""


def predictions(ground_truth: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """Ten scored windows and per-clip saliency per query, near the ground truth."""
    rng = np.random.default_rng(seed)
    rows = []
    for record in ground_truth:
        duration = float(record["duration"])
        windows = [
            [start + rng.normal(scale=2.0), end + rng.normal(scale=2.0), rng.uniform(0.5, 1.0)]
            for start, end in record["relevant_windows"]
        ]
        while len(windows) < 10:
            start = rng.uniform(0, duration)
            windows.append([start, start + rng.uniform(2, 40), rng.uniform(0.0, 0.6)])
        windows = sorted(
            ([round(s, 2), round(max(e, s + 2.0), 2), round(c, 4)] for s, e, c in windows[:10]),
            key=lambda window: -window[2],
        )
        saliency = rng.normal(size=int(duration // 2))
        saliency[record["relevant_clip_ids"]] += 1.0
        rows.append(
            {
                "qid": record["qid"],
                "query": record["query"],
                "vid": record["vid"],
                "pred_relevant_windows": windows,
                "pred_saliency_scores": [round(float(score), 4) for score in saliency],
            }
        )
    return rows


def timed(command: list[str], repeats: int, **kwargs: Any) -> float:
    """Median wall time of a command, each run in a new process."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, **kwargs)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def flatten(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}/"))
        else:
            flat[prefix + key] = value
    return flat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gt", type=Path, default=DEFAULT_GT, help="QVHighlights val jsonl")
    parser.add_argument("--official", type=Path, help="a checkout of jayleicn/moment_detr")
    parser.add_argument("--official_python", default=sys.executable)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args()
    if not options.gt.is_file():
        raise SystemExit(f"{options.gt} not found: pass --gt highlight_val_release.jsonl")
    ground_truth = [json.loads(line) for line in options.gt.read_text().splitlines() if line]
    rows = predictions(ground_truth, options.seed)
    with tempfile.TemporaryDirectory() as folder:
        pred = Path(folder) / "hl_val_submission.jsonl"
        pred.write_text("".join(json.dumps(row) + "\n" for row in rows))
        ours = Path(folder) / "vhd.json"
        command = [sys.executable, "-m", "vhd.cli", "eval", "--gt", str(options.gt)]
        command += ["--pred", str(pred), "--out", str(ours)]
        results: dict[str, Any] = {"queries": len(rows), "repeats": options.repeats}
        results["vhd_eval_command_s"] = round(timed(command, options.repeats), 3)
        seconds = []
        for _ in range(options.repeats):
            start = time.perf_counter()
            evaluate(rows, ground_truth)
            seconds.append(time.perf_counter() - start)
        results["vhd_evaluate_s"] = round(statistics.median(seconds), 3)
        if options.official:
            theirs = Path(folder) / "official.json"
            official = [options.official_python, "standalone_eval/eval.py", "--not_verbose"]
            official += ["--submission_path", str(pred), "--gt_path", str(options.gt)]
            official += ["--save_path", str(theirs)]
            env = {**os.environ, "PYTHONPATH": str(options.official)}
            seconds = timed(official, options.repeats, cwd=options.official, env=env)
            results["official_command_s"] = round(seconds, 3)
            results["speedup"] = round(seconds / results["vhd_eval_command_s"], 1)
            scoring = subprocess.run(  # eval_submission alone, as vhd_evaluate_s
                [options.official_python, "-c", OFFICIAL_SCORING, str(pred), str(options.gt)],
                check=True, capture_output=True, text=True, cwd=options.official, env=env,
            )  # fmt: skip
            seconds = float(scoring.stdout.strip().splitlines()[-1])
            results["official_eval_submission_s"] = round(seconds, 3)
            results["scoring_speedup"] = round(seconds / results["vhd_evaluate_s"], 1)
            ours_flat = flatten(json.loads(ours.read_text()))
            theirs_flat = flatten(json.loads(theirs.read_text()))
            differing = sorted(key for key in theirs_flat if ours_flat.get(key) != theirs_flat[key])
            results["identical_numbers"] = not differing and ours_flat.keys() == theirs_flat.keys()
            results["differing_keys"] = differing[:10]
            results["compared_numbers"] = len(theirs_flat)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
