"""Writing files the way the real benchmarks store them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def save_arrays(path: Path, **arrays: np.ndarray) -> None:
    """Uncompressed float32 npz: what feature extractors write, and fast to load."""
    np.savez(path, **{key: np.asarray(value, dtype=np.float32) for key, value in arrays.items()})


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))


def seconds(value: float) -> int | float:
    """Whole seconds as int, as QVHighlights and TVSum write them."""
    value = round(float(value), 6)
    return int(value) if value.is_integer() else value
