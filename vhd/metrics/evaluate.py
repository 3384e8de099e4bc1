"""``vhd eval``: score a submission jsonl against the ground truth, like the official scripts.

    vhd eval --gt highlight_val_release.jsonl --pred hl_val_submission.jsonl --out metrics.json
    vhd eval --gt highlight_test_with_gt.jsonl --pred hl_test_submission.jsonl  # the test split

prints a table of the headline figures and writes the JSON the official script writes (for
QVHighlights, the structure of Moment-DETR's ``eval_submission``: ``brief``, ``HL-min-*`` and the
``full`` / ``long`` / ``middle`` / ``short`` buckets), rounded as it rounds.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from vhd.metrics import functional as F
from vhd.metrics.submission import (
    SubmissionError,
    check_ground_truth,
    check_predictions,
    match_qids,
    read_jsonl,
)

DATASETS = ("qvhighlights", "charades", "tacos", "youtube", "tvsum")
# Moment-DETR's brief, in its order (it sorts the MR keys, then appends the HL ones).
QVHIGHLIGHTS_MR_BRIEF = tuple(sorted((
    "MR-full-mAP", "MR-full-mAP@0.5", "MR-full-mAP@0.75", "MR-short-mAP", "MR-middle-mAP",
    "MR-long-mAP", "MR-full-R1@0.5", "MR-full-R1@0.7",
)))  # fmt: skip
QVHIGHLIGHTS_HL_BRIEF = tuple(
    f"HL-min-{level}-{figure}" for level in F.SALIENCY_LEVELS for figure in ("mAP", "Hit1")
)
GROUNDING_BRIEF = (
    *(f"MR-full-R1@{F.threshold_key(t)}" for t in F.GROUNDING_BRIEF_THRESHOLDS),
    "MR-full-mIoU",
)
HIGHLIGHT_DIGITS = 3  # UMT rounds its fraction to 5 decimals: 3 in percent
# Ground-truth fields that hold the labels; a file with none of them is inputs only.
LABEL_FIELDS = {
    "qvhighlights": ("relevant_windows", "saliency_scores"),
    "charades": ("relevant_windows",),
    "tacos": ("relevant_windows",),
    "youtube": ("label",),
    "tvsum": ("label",),
}
REQUIRED_FIELDS = {
    "charades": ("pred_relevant_windows",),
    "tacos": ("pred_relevant_windows",),
    "youtube": ("pred_saliency_scores",),
    "tvsum": ("pred_saliency_scores",),
}


def _qvhighlights(predictions: F.Records, ground_truth: F.Records) -> dict[str, Any]:
    flat: dict[str, float] = {}
    nested: dict[str, Any] = {}
    if "pred_relevant_windows" in predictions[0]:
        flat.update(F.qvhighlights_mr(predictions, ground_truth))
        for bucket in F.QVHIGHLIGHTS_BUCKETS:
            nested[bucket] = {
                "MR-mAP": {
                    **{
                        F.threshold_key(t): flat[f"MR-{bucket}-mAP@{F.threshold_key(t)}"]
                        for t in F.MAP_THRESHOLDS
                    },
                    "average": flat[f"MR-{bucket}-mAP"],
                },
                "MR-R1": {
                    F.threshold_key(t): flat[f"MR-{bucket}-R1@{F.threshold_key(t)}"]
                    for t in F.QVHIGHLIGHTS_R1_THRESHOLDS
                },
            }
    if "pred_saliency_scores" in predictions[0]:
        flat.update(F.qvhighlights_hl(predictions, ground_truth))
        for level in F.SALIENCY_LEVELS:
            nested[f"HL-min-{level}"] = {
                "HL-mAP": flat[f"HL-min-{level}-mAP"],
                "HL-Hit1": flat[f"HL-min-{level}-Hit1"],
            }
    keys = [k for k in (*QVHIGHLIGHTS_MR_BRIEF, *QVHIGHLIGHTS_HL_BRIEF) if k in flat]
    return F.round_metrics({"brief": {k: flat[k] for k in keys}, **dict(sorted(nested.items()))})


def _grounding(predictions: F.Records, ground_truth: F.Records, dataset: str) -> dict[str, Any]:
    flat = F.moment_retrieval(predictions, ground_truth, dataset)
    full = {
        "MR-R1": {
            F.threshold_key(t): flat[f"MR-full-R1@{F.threshold_key(t)}"]
            for t in F.GROUNDING_R1_THRESHOLDS
        },
        "MR-mIoU": flat["MR-full-mIoU"],
    }
    return F.round_metrics({"brief": {k: flat[k] for k in GROUNDING_BRIEF}, "full": full})


def check_labelled(ground_truth: Sequence[Mapping[str, Any]], dataset: str, path: str) -> None:
    """Ground truth must carry labels: the QVHighlights test release has none (its labels are
    ``highlight_test_with_gt.jsonl``, released by the dataset's authors)."""
    fields = LABEL_FIELDS.get(dataset, ())
    if any(record.get(field) is not None for record in ground_truth for field in fields):
        return
    hint = ""
    if Path(path).name == "highlight_test_release.jsonl":
        hint = "; score the QVHighlights test split against highlight_test_with_gt.jsonl"
    raise SubmissionError(
        f"{path}: no record has {' or '.join(fields)}: this is not ground truth for {dataset} "
        f"(inputs only?){hint}"
    )


def evaluate(
    predictions: Sequence[Mapping[str, Any]],
    ground_truth: Sequence[Mapping[str, Any]],
    dataset: str = "qvhighlights",
) -> dict[str, Any]:
    """The official structure, rounded as the official scripts round (2 decimals; 3 for UMT's
    YouTube / TVSum figures). QVHighlights scores MR when predictions have windows and HD when they
    have saliency scores (as Moment-DETR, judged on the first prediction)."""
    if not predictions:
        raise ValueError("no predictions to evaluate")
    if dataset == "qvhighlights":
        return _qvhighlights(predictions, ground_truth)
    if dataset in ("charades", "tacos"):
        return _grounding(predictions, ground_truth, dataset)
    if dataset in ("youtube", "tvsum"):
        score = F.youtube_map if dataset == "youtube" else F.tvsum_map
        return F.round_metrics({"brief": score(predictions, ground_truth)}, HIGHLIGHT_DIGITS)
    raise ValueError(f"unknown dataset {dataset!r}; choose one of {DATASETS}")


def brief(metrics: Mapping[str, float], dataset: str | None, prefix: str = "") -> dict[str, float]:
    """The headline figures of a protocol from flat metrics (e.g. a metric's ``compute`` or logged
    ``test/...`` keys with ``prefix="test/"``), in the official order."""
    names = {k[len(prefix) :]: v for k, v in metrics.items() if k.startswith(prefix)}
    if dataset == "qvhighlights":
        keys = [k for k in (*QVHIGHLIGHTS_MR_BRIEF, *QVHIGHLIGHTS_HL_BRIEF) if k in names]
    elif dataset in ("charades", "tacos"):
        keys = [k for k in GROUNDING_BRIEF if k in names]
    else:
        keys = list(names)
    return {key: float(names[key]) for key in keys}


def metrics_table(metrics: Mapping[str, Any], title: str | None = None, digits: int = 2) -> Table:
    """A rich table of flat figures, or of the ``brief`` of an official structure, with
    ``digits`` decimals (the official scripts print 2)."""
    if isinstance(metrics.get("brief"), Mapping):
        metrics = metrics["brief"]
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(key, f"{float(value):.{digits}f}")
    return table


def format_table(
    metrics: Mapping[str, Any], title: str | None = None, digits: int = 2, width: int = 80
) -> str:
    """``metrics_table`` rendered to plain text, e.g. for logs at the end of a training run."""
    console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
    console.print(metrics_table(metrics, title, digits))
    return console.file.getvalue()  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vhd eval",
        description="Score a submission jsonl against the ground truth, as the official scripts "
        "do: a table of the headline figures, and the official JSON with --out.",
    )
    parser.add_argument("--gt", required=True, help="ground-truth jsonl (the official annotations)")
    parser.add_argument("--pred", required=True, help="submission jsonl, one line per query")
    parser.add_argument("--dataset", choices=DATASETS, default="qvhighlights")
    parser.add_argument("--out", help="write the metrics JSON here")
    parser.add_argument(
        "--allow-partial", action="store_true", help="score only the qids found in both files"
    )
    args = parser.parse_args(argv)
    console = Console(highlight=False)
    try:
        gt_records = read_jsonl(args.gt)
        check_ground_truth(gt_records)
        ground_truth = [record for _, record in gt_records]
        check_labelled(ground_truth, args.dataset, args.gt)
        pred_records = read_jsonl(args.pred)
        check_predictions(pred_records, REQUIRED_FIELDS.get(args.dataset, ()))
        all_gt = len(ground_truth)
        predictions, ground_truth = match_qids(
            [record for _, record in pred_records], ground_truth, args.allow_partial, args.pred
        )
        if len(predictions) < len(pred_records):
            console.print(
                f"--allow-partial: scoring {len(predictions)} of {len(pred_records)} qids",
                soft_wrap=True,
            )
        if len(ground_truth) < all_gt:
            console.print(
                f"--allow-partial: {all_gt - len(ground_truth)} of {all_gt} ground-truth qids "
                "have no prediction and are left out of the score",
                soft_wrap=True,
            )
        metrics = evaluate(predictions, ground_truth, args.dataset)
    except (SubmissionError, ValueError, KeyError, TypeError) as err:
        console.print(f"[red]error:[/red] {err}", soft_wrap=True)
        return 2
    digits = HIGHLIGHT_DIGITS if args.dataset in ("youtube", "tvsum") else 2
    console.print(metrics_table(metrics, f"{args.dataset}: {Path(args.pred).name}", digits))
    if args.out:
        Path(args.out).write_text(json.dumps(metrics, indent=4) + "\n")
        console.print(f"metrics written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
