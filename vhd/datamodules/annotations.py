"""Annotation files: jsonl/json readers that point at the exact line of a bad record."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vhd.errors import MissingFileError, UserError


class AnnotationError(UserError, ValueError):
    """A malformed or inconsistent annotation record; the message names file, line and fix."""


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read one JSON object per line; blank lines are allowed, anything else malformed raises."""
    path = _existing(path)
    records = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise AnnotationError(
                    f"{path}:{number}: not valid JSON ({err.msg}); each line must be one JSON "
                    "object"
                ) from None
            if not isinstance(record, dict):
                raise AnnotationError(
                    f"{path}:{number}: expected a JSON object, got {record!r:.60}"
                )
            record.setdefault("_source", f"{path}:{number}")
            records.append(record)
    return records


def read_json(path: str | Path) -> Any:
    """One JSON document (e.g. splits.json); a syntax error names file, line and column."""
    path = _existing(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise AnnotationError(
            f"{path}:{err.lineno}:{err.colno}: not valid JSON ({err.msg}); fix or re-download it"
        ) from None


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(
            f"annotation file not found: {path}; check data_root and the annotation file options"
        )
    return path


def require_fields(record: dict[str, Any], fields: Iterable[str]) -> None:
    """Raise naming the record's file:line when a field the dataset needs is absent."""
    missing = [name for name in fields if record.get(name) is None]
    if missing:
        raise AnnotationError(
            f"{source(record)}: record qid={record.get('qid')!r} lacks {missing}; "
            "add them or use the datamodule that matches this annotation format"
        )


def source(record: dict[str, Any]) -> str:
    """Where a record came from, as file:line (or '<memory>' for records built in code)."""
    return str(record.get("_source", "<memory>"))


def strip_private(record: dict[str, Any]) -> dict[str, Any]:
    """The record as it stands in the file, without bookkeeping keys (for metrics and writers)."""
    return {key: value for key, value in record.items() if not key.startswith("_")}
