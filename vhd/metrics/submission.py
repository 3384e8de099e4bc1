"""Reading and checking submission files before they are scored.

Checks what the official scripts assume or assert (Moment-DETR asserts the qid sets are equal and
reads ``pred_relevant_windows`` on every line when the first has it), and reports each problem
with the ``file:line`` to fix, instead of a traceback from inside a metric.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vhd.errors import UserError

try:  # a few times faster on the float lists of a submission; json is the fallback and the judge
    from orjson import loads as fast_loads
except ImportError:  # pragma: no cover - orjson is a dependency, but the code runs without it
    fast_loads = json.loads

PRED_FIELDS = ("pred_relevant_windows", "pred_saliency_scores")
MAX_LISTED = 20  # qids listed in an error message


class SubmissionError(UserError, ValueError):
    """A malformed submission or one that does not match its ground truth; the message says
    where and what to fix."""


def read_jsonl(path: str | Path) -> list[tuple[str, dict[str, Any]]]:
    """``(file:line, record)`` per non-blank line; a line that is not a JSON object is an error."""
    path = Path(path)
    if not path.is_file():
        raise SubmissionError(f"{path}: no such file")
    records = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = fast_loads(line)
            except ValueError:  # what orjson rejects json may accept (NaN), or explain better
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise SubmissionError(f"{where}: not valid JSON ({err.msg})") from None
            if not isinstance(record, dict):
                raise SubmissionError(f"{where}: expected a JSON object, got {record!r:.60}")
            if not _is_qid(record.get("qid")):
                raise SubmissionError(
                    f"{where}: needs a qid (int or str), got {record.get('qid')!r}"
                )
            records.append((where, record))
    if not records:
        raise SubmissionError(f"{path}: no records")
    return records


def _is_qid(value: Any) -> bool:
    return isinstance(value, int | str) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _all_numbers(values: list[Any]) -> bool:
    """``all(map(_is_number, values))``, fast on the common case of plain ints and floats."""
    if {type(value) for value in values} <= {int, float}:
        return all(map(math.isfinite, values))
    return all(map(_is_number, values))


def _well_formed_windows(windows: list[Any]) -> bool:
    """Every row ``[start, end, score, ...]`` of finite numbers with ``end >= start``: one pass
    over all values instead of three checks per row."""
    if not all(type(row) is list and len(row) >= 3 for row in windows):
        return False
    return _all_numbers([value for row in windows for value in row[:3]]) and all(
        row[1] >= row[0] for row in windows
    )


def _window_problem(windows: list[Any]) -> str | None:
    """The first malformed row of windows, or None."""
    for index, row in enumerate(windows):
        if not (isinstance(row, list) and len(row) >= 3 and all(map(_is_number, row[:3]))):
            return f"pred_relevant_windows[{index}] = {row!r:.60} is not [start, end, score]"
        if row[1] < row[0]:
            return f"pred_relevant_windows[{index}] = {row!r:.60} ends before it starts"
    return None


def prediction_problem(record: Mapping[str, Any]) -> str | None:
    """What is wrong with one prediction record, or None."""
    if not any(field in record for field in PRED_FIELDS):
        return (
            f"has neither {PRED_FIELDS[0]} nor {PRED_FIELDS[1]} (is this an annotation file "
            "passed as --pred?)"
        )
    windows = record.get("pred_relevant_windows")
    if "pred_relevant_windows" in record:
        if not isinstance(windows, list):
            return "pred_relevant_windows must be a list of [start, end, score]"
        if not _well_formed_windows(windows) and (problem := _window_problem(windows)):
            return problem
    scores = record.get("pred_saliency_scores")
    if "pred_saliency_scores" in record and not (
        isinstance(scores, list) and scores and _all_numbers(scores)
    ):
        return "pred_saliency_scores must be a non-empty list of finite numbers, one per clip"
    return None


def check_predictions(
    records: Sequence[tuple[str, Mapping[str, Any]]], required: Sequence[str] = ()
) -> None:
    """Every record well formed, qids unique, and the prediction fields present on every line
    whenever they are on any (or when ``required``)."""
    seen: dict[Any, str] = {}
    for where, record in records:
        problem = prediction_problem(record)
        if problem:
            raise SubmissionError(f"{where}: qid {record['qid']!r} {problem}")
        if record["qid"] in seen:
            raise SubmissionError(
                f"{where}: qid {record['qid']!r} already predicted at {seen[record['qid']]}"
            )
        seen[record["qid"]] = where
    for field in PRED_FIELDS:
        lacking = [where for where, record in records if field not in record]
        if lacking and (field in required or len(lacking) < len(records)):
            raise SubmissionError(
                f"{len(lacking)} predictions lack {field}, first at {lacking[0]}; "
                f"{'this dataset needs it' if field in required else 'other lines have it'}"
            )


def check_ground_truth(records: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
    """Each qid once: a repeated one would be scored against whichever record came last."""
    seen: dict[Any, str] = {}
    for where, record in records:
        if record["qid"] in seen:
            raise SubmissionError(
                f"{where}: qid {record['qid']!r} is already in the ground truth at "
                f"{seen[record['qid']]}; keep one record per query"
            )
        seen[record["qid"]] = where


def match_qids(
    predictions: Sequence[Mapping[str, Any]],
    ground_truth: Sequence[Mapping[str, Any]],
    allow_partial: bool = False,
    pred_path: str = "predictions",
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """Predictions and ground truth over the same qids. Unequal sets are an error listing the
    missing and extra qids, unless ``allow_partial``: then only the shared qids are kept."""
    pred_qids = {p["qid"] for p in predictions}
    gt_qids = {g["qid"] for g in ground_truth}
    if pred_qids != gt_qids and not allow_partial:
        missing = sorted(gt_qids - pred_qids, key=str)
        extra = sorted(pred_qids - gt_qids, key=str)
        raise SubmissionError(
            f"{pred_path}: qids differ from the ground truth: missing {len(missing)}: "
            f"{missing[:MAX_LISTED]}, extra {len(extra)}: {extra[:MAX_LISTED]}. Predict every "
            "query of the split, or pass --allow-partial to score the shared qids only"
        )
    shared = pred_qids & gt_qids
    if not shared:
        raise SubmissionError(f"{pred_path}: no qid in common with the ground truth")
    return (
        [p for p in predictions if p["qid"] in shared],
        [g for g in ground_truth if g["qid"] in shared],
    )
