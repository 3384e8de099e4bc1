"""``vhd eval``: score a submission jsonl against ground truth, like the official checkers."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from vhd.datamodules.annotations import AnnotationError, read_jsonl, strip_private
from vhd.metrics import functional as F

DATASETS = ("qvhighlights", "charades", "tacos", "youtube", "tvsum")
QVHIGHLIGHTS_BRIEF = (
    "MR-full-mAP",
    "MR-full-mAP@0.5",
    "MR-full-mAP@0.75",
    "MR-short-mAP",
    "MR-middle-mAP",
    "MR-long-mAP",
    "MR-full-R1@0.5",
    "MR-full-R1@0.7",
)


class SubmissionError(ValueError):
    """A submission that does not match its ground truth; the message lists what differs."""


def check_qids(predictions: Sequence[Mapping], ground_truth: Sequence[Mapping], pred_path: str):
    pred_qids = {p["qid"] for p in predictions}
    gt_qids = {g["qid"] for g in ground_truth}
    if pred_qids != gt_qids:
        missing, extra = sorted(gt_qids - pred_qids, key=str), sorted(pred_qids - gt_qids, key=str)
        raise SubmissionError(
            f"{pred_path}: qids differ from the ground truth; missing {len(missing)}: "
            f"{missing[:20]}, extra {len(extra)}: {extra[:20]}. Predict every query of the split, "
            "or pass --allow-partial to score the shared qids only"
        )


def evaluate(
    predictions: Sequence[Mapping[str, Any]],
    ground_truth: Sequence[Mapping[str, Any]],
    dataset: str = "qvhighlights",
) -> dict[str, Any]:
    """Metrics in the official structure: ``brief`` first, then grouped figures."""
    if dataset == "qvhighlights":
        results: dict[str, Any] = {}
        if any("pred_relevant_windows" in p for p in predictions):
            results.update(F.qvhighlights_mr(predictions, ground_truth))
        if any("pred_saliency_scores" in p for p in predictions):
            results.update(F.qvhighlights_hl(predictions, ground_truth))
        brief = {k: results[k] for k in QVHIGHLIGHTS_BRIEF if k in results}
        brief.update({k: v for k, v in results.items() if k.startswith("HL-")})
        structured: dict[str, Any] = {"brief": brief}
        for bucket in F.LENGTH_BUCKETS:
            if f"MR-{bucket}-mAP" in results:
                structured[f"MR-{bucket}"] = {
                    k: v for k, v in results.items() if k.startswith(f"MR-{bucket}-")
                }
        for level in F.SALIENCY_LEVELS:
            if f"HL-min-{level}-mAP" in results:
                structured[f"HL-min-{level}"] = {
                    "HL-mAP": results[f"HL-min-{level}-mAP"],
                    "HL-Hit1": results[f"HL-min-{level}-Hit1"],
                }
        return structured
    if dataset in ("charades", "tacos"):
        return {"brief": F.grounding_mr(predictions, ground_truth)}
    if dataset == "youtube":
        return {"brief": F.youtube_map(predictions, ground_truth)}
    if dataset == "tvsum":
        return {"brief": F.tvsum_map(predictions, ground_truth)}
    raise ValueError(f"unknown dataset {dataset!r}; choose one of {DATASETS}")


def brief(metrics: Mapping[str, float], dataset: str | None, prefix: str = "") -> dict[str, float]:
    """The headline figures of a protocol (the official brief), in the official order."""
    names = {k[len(prefix) :]: v for k, v in metrics.items() if k.startswith(prefix)}
    if dataset == "qvhighlights":
        keys = [k for k in QVHIGHLIGHTS_BRIEF if k in names]
        keys += [k for k in names if k.startswith("HL-")]
    elif dataset in ("charades", "tacos"):
        keys = [k for k in names if k.startswith("MR-full-R1@") or k == "MR-full-mIoU"]
    else:
        keys = list(names)
    return {key: names[key] for key in keys}


def metrics_table(metrics: Mapping[str, float], title: str = "metrics") -> Table:
    """A two-column rich table of figures rounded to two decimals, as the official prints."""
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(key, f"{float(value):.2f}")
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vhd eval", description=__doc__)
    parser.add_argument("--gt", required=True, help="ground-truth jsonl (official annotations)")
    parser.add_argument("--pred", required=True, help="submission jsonl (one line per query)")
    parser.add_argument("--dataset", choices=DATASETS, default="qvhighlights")
    parser.add_argument("--out", help="write the metrics JSON here")
    parser.add_argument(
        "--allow-partial", action="store_true", help="score only the qids in both files"
    )
    args = parser.parse_args(argv)
    console = Console()
    try:
        ground_truth = [strip_private(r) for r in read_jsonl(args.gt)]
        predictions = [strip_private(r) for r in read_jsonl(args.pred)]
        if args.allow_partial:
            shared = {p["qid"] for p in predictions} & {g["qid"] for g in ground_truth}
            ground_truth = [g for g in ground_truth if g["qid"] in shared]
            predictions = [p for p in predictions if p["qid"] in shared]
        else:
            check_qids(predictions, ground_truth, args.pred)
        metrics = F.round_metrics(evaluate(predictions, ground_truth, args.dataset))
    except (AnnotationError, SubmissionError, FileNotFoundError, ValueError, KeyError) as err:
        console.print(f"[red]error:[/red] {err}")
        return 2
    console.print(metrics_table(metrics["brief"], title=f"{args.dataset}: {Path(args.pred).name}"))
    if args.out:
        Path(args.out).write_text(json.dumps(metrics, indent=4))
    return 0


if __name__ == "__main__":
    sys.exit(main())
