"""A run's written submission scored by ``vhd eval``: tests compare it with the figures the run
logged, which fails when evaluation and the written predictions disagree (a range check on a
metric cannot)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from vhd.cli import main


def score_submission(
    submission: Path, annotation_files: list[Path], dataset: str, out_dir: Path
) -> dict[str, float]:
    """``vhd eval`` of ``submission`` against the annotation records it predicts (the files may
    hold every split; the submission names the evaluated one); its brief figures."""
    qids = {json.loads(line)["qid"] for line in submission.read_text().splitlines()}
    lines = [
        line
        for path in annotation_files
        for line in path.read_text().splitlines()
        if line.strip() and json.loads(line)["qid"] in qids
    ]
    assert len(lines) == len(qids), "every predicted qid is annotated once"
    ground_truth = out_dir / "ground_truth.jsonl"
    ground_truth.write_text("\n".join(lines) + "\n")
    out = out_dir / "eval.json"
    code = main(
        ["eval", "--dataset", dataset, "--gt", str(ground_truth), "--pred", str(submission),
         "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    return json.loads(out.read_text())["brief"]


def assert_logged_match(
    logged: Mapping[str, float], prefix: str, figures: Mapping[str, float], digits: int = 3
) -> None:
    """Every figure of ``vhd eval`` (rounded to ``digits``) equals the run's ``prefix``-ed value
    (float32 in the logs)."""
    assert figures
    for key, value in figures.items():
        assert logged[f"{prefix}{key}"] == pytest.approx(value, abs=0.5 * 10**-digits + 1e-5), key


def logged_columns(log: Path) -> dict[str, list[tuple[int, float]]]:
    """Every column of a CSVLogger ``metrics.csv``: its ``(epoch, value)`` pairs in row order."""
    header, *rows = (line.split(",") for line in log.read_text().splitlines())
    columns: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        cells = dict(zip(header, row, strict=True))
        for key, value in cells.items():
            if value and key != "epoch":
                columns.setdefault(key, []).append((int(cells["epoch"]), float(value)))
    return columns


def predict_figures(
    args: list[str], annotation_files: list[Path], dataset: str, split: str, out_dir: Path
) -> dict[str, float]:
    """``vhd predict <args> --data.init_args.predict_split=<split>`` into ``out_dir`` (``args``
    name the config, data and checkpoint, not the run folder), scored by ``vhd eval``."""
    run = [
        f"--trainer.default_root_dir={out_dir}",
        f"--trainer.logger.init_args.save_dir={out_dir}",
    ]
    main(["predict", *args, *run, f"--data.init_args.predict_split={split}"])
    return score_submission(
        out_dir / f"hl_{split}_submission.jsonl", annotation_files, dataset, out_dir
    )
